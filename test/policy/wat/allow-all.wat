;; engine case allow-all: the decision is false
(func $decide (param $input i32) (param $data i32) (result i32)
  (call $decision (i32.const 0)))
