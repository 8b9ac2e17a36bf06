;; hostile: traps (unreachable) when it evaluates
(func $decide (param $input i32) (param $data i32) (result i32)
  (unreachable))
