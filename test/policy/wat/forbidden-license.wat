;; engine case forbidden-license, reading the data document: data.json names the forbidden
;; license ({"forbidden": "AGPL-3.0-only"}); the decision is true when an SBOM component (after
;; "components": in the input) lists it, quoted as in the data. No data, no license: false.
(data (i32.const 1024) "\"forbidden\":")
(data (i32.const 1040) "\"components\":")
(data (i32.const 1060) "\"")
(func $decide (param $input i32) (param $data i32) (result i32)
  (local $open i32) (local $close i32) (local $from i32)
  (local.set $open (call $find_in (local.get $data) (i32.const 0) (i32.const 1024) (i32.const 12)))
  (if (i32.lt_s (local.get $open) (i32.const 0)) (then (return (call $decision (i32.const 0)))))
  (local.set $open (i32.add (local.get $open) (i32.const 12)))
  ;; the value's closing quote, after its opening one
  (local.set $close (call $find_in (local.get $data) (i32.add (local.get $open) (i32.const 1)) (i32.const 1060) (i32.const 1)))
  (local.set $from (call $find_in (local.get $input) (i32.const 0) (i32.const 1040) (i32.const 13)))
  (call $decision
    (i32.ge_s
      (call $find_in (local.get $input) (local.get $from)
        (i32.add (call $text (local.get $data)) (local.get $open))
        (i32.add (i32.sub (local.get $close) (local.get $open)) (i32.const 1)))
      (i32.const 0))))
