;; calls two host built-ins, as OPA's compiled code does through opa_builtin0..4: the builder
;; declares {"time.now_ns": 0, "sprintf": 1} in the builtins export. The decision is the set
;; [sprintf(format, [time.now_ns()])], the format being the data document (a JSON string).
(data (i32.const 1048) "[")
(data (i32.const 1052) "]")
(func $decide (param $input i32) (param $data i32) (result i32)
  (local $now i32) (local $message i32)
  (local.set $now (call $opa_builtin0 (i32.const 0) (i32.const 0)))
  (local.set $message
    (call $opa_builtin2 (i32.const 1) (i32.const 0)
      (local.get $data)
      (call $around (i32.const 1048) (i32.const 1) (local.get $now) (i32.const 1052) (i32.const 1))))
  (call $wrap (call $around (i32.const 1048) (i32.const 1) (local.get $message) (i32.const 1052) (i32.const 1))))
