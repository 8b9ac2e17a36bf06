;; engine case no-wasi-sockets, answering with an object: {"deny": true, "messages": […]} when
;; the artifact's Wasm imports (from "imports":[ to the next ]) hold a wasi:sockets interface,
;; {"deny": false} otherwise
(data (i32.const 1024) "\"imports\":[")
(data (i32.const 1040) "]")
(data (i32.const 1048) "\"wasi:sockets/")
(data (i32.const 1072) "{\"deny\":true,\"messages\":[\"a component that imports wasi:sockets may not be pushed\"]}")
(data (i32.const 1168) "{\"deny\":false}")
(func $decide (param $input i32) (param $data i32) (result i32)
  (local $from i32) (local $to i32) (local $at i32)
  (local.set $from (call $find_in (local.get $input) (i32.const 0) (i32.const 1024) (i32.const 11)))
  (local.set $to (call $find_in (local.get $input) (local.get $from) (i32.const 1040) (i32.const 1)))
  (local.set $at (call $find_in (local.get $input) (local.get $from) (i32.const 1048) (i32.const 14)))
  (if (result i32) (i32.and (i32.ge_s (local.get $at) (i32.const 0)) (i32.lt_s (local.get $at) (local.get $to)))
    (then (call $wrap_static (i32.const 1072) (i32.const 84)))
    (else (call $wrap_static (i32.const 1168) (i32.const 14)))))
