;; engine case signed-by-release: true unless the input holds a verified signature by
;; release@example.com (its fields in sampleInput's order: format, signer, issuer, verified)
(data (i32.const 1024) "\"signer\":\"release@example.com\",\"issuer\":\"\",\"verified\":true")
(func $decide (param $input i32) (param $data i32) (result i32)
  (call $decision
    (i32.lt_s (call $find_in (local.get $input) (i32.const 0) (i32.const 1024) (i32.const 58)) (i32.const 0))))
