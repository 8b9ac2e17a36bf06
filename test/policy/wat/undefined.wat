;; an undefined decision: the empty result set
(func $decide (param $input i32) (param $data i32) (result i32)
  (call $value (i32.const 72) (i32.const 2)))
