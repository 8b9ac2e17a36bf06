;; the decision is the data document, whatever it is: for the tests of what a result means
(func $decide (param $input i32) (param $data i32) (result i32)
  (call $wrap (local.get $data)))
