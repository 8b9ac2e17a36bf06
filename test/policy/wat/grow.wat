;; hostile: allocates a MiB at a time without end; the allocator grows the memory until it
;; cannot (its maximum), then calls opa_abort, as OPA's malloc does
(func $decide (param $input i32) (param $data i32) (result i32)
  (loop $more
    (drop (call $malloc (i32.const 1048576)))
    (br $more))
  (unreachable))
