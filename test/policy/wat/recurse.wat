;; hostile: recurses without end, until the stack runs out
(func $deeper (param $n i32) (result i32)
  (i32.add (call $deeper (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
(func $decide (param $input i32) (param $data i32) (result i32)
  (drop (call $deeper (i32.const 0)))
  (call $decision (i32.const 0)))
