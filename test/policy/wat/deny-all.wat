;; engine case deny-all: the decision is true
(func $decide (param $input i32) (param $data i32) (result i32)
  (call $decision (i32.const 1)))
