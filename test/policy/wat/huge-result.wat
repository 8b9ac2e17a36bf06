;; hostile: answers with a result set of 4 MiB, [{"result":[{},{},…]}], the shape that costs
;; JSON.parse the most heap per byte (~25 bytes of heap per byte of text)
(data (i32.const 1024) "{},")
(func $decide (param $input i32) (param $data i32) (result i32)
  (local $n i32) (local $buf i32) (local $i i32)
  (local.set $n (i32.const 4194304))
  (local.set $buf (call $malloc (local.get $n)))
  (i32.store8 (local.get $buf) (i32.const 91)) ;; [
  (local.set $i (i32.const 1))
  (block $full
    (loop $fill
      (br_if $full (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $n)))
      (memory.copy (i32.add (local.get $buf) (local.get $i)) (i32.const 1024) (i32.const 3))
      (local.set $i (i32.add (local.get $i) (i32.const 3)))
      (br $fill)))
  ;; replace the last comma with ]
  (i32.store8 (i32.add (local.get $buf) (i32.sub (local.get $i) (i32.const 1))) (i32.const 93))
  (call $wrap (call $value (local.get $buf) (local.get $i))))
