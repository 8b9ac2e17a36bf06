;; engine case over-quota, answering with a set of strings: ["…"] when the namespace has a
;; quota and its stored bytes pass it, [] otherwise
(data (i32.const 1024) "\"storedBytes\":")
(data (i32.const 1040) "\"quotaBytes\":")
(data (i32.const 1056) "[\"the namespace is over its storage quota\"]")
(func $decide (param $input i32) (param $data i32) (result i32)
  (local $stored i64) (local $quota i64)
  (local.set $stored (call $number_after (local.get $input) (i32.const 1024) (i32.const 14)))
  (local.set $quota (call $number_after (local.get $input) (i32.const 1040) (i32.const 13)))
  (if (result i32) (i32.and (i64.gt_s (local.get $quota) (i64.const 0)) (i64.gt_s (local.get $stored) (local.get $quota)))
    (then (call $wrap_static (i32.const 1056) (i32.const 43)))
    (else (call $wrap_static (i32.const 72) (i32.const 2)))))
