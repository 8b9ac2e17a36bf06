;; hostile: never decides (the pool's time limit stops it)
(func $decide (param $input i32) (param $data i32) (result i32)
  (loop $forever (br $forever))
  (unreachable))
