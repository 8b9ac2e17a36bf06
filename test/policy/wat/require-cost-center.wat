;; engine case require-cost-center, answering with a violation set of objects with a msg
;; (conftest's shape): [{"msg": …}] when neither the artifact's labels nor its annotations have
;; the key cost-center, [] otherwise. The search runs from "labels": to "created":, the part of
;; the artifact that holds both maps (sampleInput's key order).
(data (i32.const 1024) "\"labels\":")
(data (i32.const 1040) "\"created\":")
(data (i32.const 1056) "\"cost-center\":")
(data (i32.const 1088) "[{\"msg\":\"a push needs a cost-center label or annotation\"}]")
(func $decide (param $input i32) (param $data i32) (result i32)
  (local $from i32) (local $to i32) (local $at i32)
  (local.set $from (call $find_in (local.get $input) (i32.const 0) (i32.const 1024) (i32.const 9)))
  (local.set $to (call $find_in (local.get $input) (local.get $from) (i32.const 1040) (i32.const 10)))
  (local.set $at (call $find_in (local.get $input) (local.get $from) (i32.const 1056) (i32.const 14)))
  (if (result i32) (i32.and (i32.ge_s (local.get $at) (i32.const 0)) (i32.lt_s (local.get $at) (local.get $to)))
    (then (call $wrap_static (i32.const 72) (i32.const 2)))
    (else (call $wrap_static (i32.const 1088) (i32.const 58)))))
