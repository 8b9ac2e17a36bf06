;; A tiny runtime for OPA's Wasm ABI, for test modules: the module fields every test policy
;; shares. test/policy/opa-wat.ts wraps them in a module with the imports, the ABI version
;; globals, the builtins and entrypoints maps, and the exports of the ABI version asked for,
;; then adds one policy file from this folder, which defines $decide.
;;
;; - Memory: page 0 holds static strings (0-1023 this runtime and the builder, 1024 and up the
;;   policy's); the heap starts at page 1 and is a bump allocator that grows the memory as OPA's
;;   malloc does, calling opa_abort when it cannot.
;; - A value is 8 bytes, the address and length of its JSON text: "parsing" keeps the text, and
;;   dumping copies it out with a NUL. That is all the host and the SDK need of values.
;; - $decide (param $input i32) (param $data i32) (result i32) returns the result set's value;
;;   decisions are byte searches over the input's JSON text (JSON.stringify in sampleInput's key
;;   order, so they are deterministic).

(global $heap (mut i32) (i32.const 65536))

;; the result set around a decision: [{"result": ... }]
(data (i32.const 0) "[{\"result\":")
(data (i32.const 16) "}]")
(data (i32.const 24) "opa_malloc: out of memory")
(data (i32.const 56) "true")
(data (i32.const 64) "false")
(data (i32.const 72) "[]")

(func $malloc (param $n i32) (result i32)
  (local $p i32) (local $end i32) (local $have i32)
  ;; 8-byte alignment
  (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
  (local.set $end (i32.add (local.get $p) (local.get $n)))
  (local.set $have (i32.mul (memory.size) (i32.const 65536)))
  (if (i32.gt_u (local.get $end) (local.get $have))
    (then
      (if (i32.eq
            (memory.grow (i32.div_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535)) (i32.const 65536)))
            (i32.const -1))
        (then (call $opa_abort (i32.const 24)) (unreachable)))))
  (global.set $heap (local.get $end))
  (local.get $p))

(func $value (param $ptr i32) (param $len i32) (result i32)
  (local $v i32)
  (local.set $v (call $malloc (i32.const 8)))
  (i32.store (local.get $v) (local.get $ptr))
  (i32.store offset=4 (local.get $v) (local.get $len))
  (local.get $v))
(func $text (param $v i32) (result i32) (i32.load (local.get $v)))
(func $len (param $v i32) (result i32) (i32.load offset=4 (local.get $v)))

(func $dump (param $v i32) (result i32)
  (local $out i32)
  (local.set $out (call $malloc (i32.add (call $len (local.get $v)) (i32.const 1))))
  (memory.copy (local.get $out) (call $text (local.get $v)) (call $len (local.get $v)))
  (i32.store8 (i32.add (local.get $out) (call $len (local.get $v))) (i32.const 0))
  (local.get $out))

;; a new value: prefix, then v's text, then suffix (static strings)
(func $around (param $pre i32) (param $prelen i32) (param $v i32) (param $suf i32) (param $suflen i32) (result i32)
  (local $n i32) (local $out i32)
  (local.set $n (i32.add (i32.add (local.get $prelen) (call $len (local.get $v))) (local.get $suflen)))
  (local.set $out (call $malloc (local.get $n)))
  (memory.copy (local.get $out) (local.get $pre) (local.get $prelen))
  (memory.copy (i32.add (local.get $out) (local.get $prelen)) (call $text (local.get $v)) (call $len (local.get $v)))
  (memory.copy (i32.add (i32.add (local.get $out) (local.get $prelen)) (call $len (local.get $v))) (local.get $suf) (local.get $suflen))
  (call $value (local.get $out) (local.get $n)))

;; [{"result": v}]
(func $wrap (param $v i32) (result i32)
  (call $around (i32.const 0) (i32.const 11) (local.get $v) (i32.const 16) (i32.const 2)))
(func $wrap_static (param $ptr i32) (param $len i32) (result i32)
  (call $wrap (call $value (local.get $ptr) (local.get $len))))
(func $decision (param $deny i32) (result i32)
  (if (result i32) (local.get $deny)
    (then (call $wrap_static (i32.const 56) (i32.const 4)))
    (else (call $wrap_static (i32.const 64) (i32.const 5)))))

;; the first index of needle in hay[0..hlen), or -1
(func $find (param $hay i32) (param $hlen i32) (param $needle i32) (param $nlen i32) (result i32)
  (local $i i32) (local $j i32)
  (block $none
    (loop $outer
      (br_if $none (i32.gt_s (i32.add (local.get $i) (local.get $nlen)) (local.get $hlen)))
      (local.set $j (i32.const 0))
      (block $mismatch
        (loop $inner
          (if (i32.eq (local.get $j) (local.get $nlen)) (then (return (local.get $i))))
          (br_if $mismatch
            (i32.ne (i32.load8_u (i32.add (i32.add (local.get $hay) (local.get $i)) (local.get $j)))
                    (i32.load8_u (i32.add (local.get $needle) (local.get $j)))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $inner)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $outer)))
  (i32.const -1))

;; the index of needle in a value's text at or after `from`, or -1
(func $find_in (param $v i32) (param $from i32) (param $needle i32) (param $nlen i32) (result i32)
  (local $at i32)
  (if (i32.lt_s (local.get $from) (i32.const 0)) (then (return (i32.const -1))))
  (local.set $at
    (call $find (i32.add (call $text (local.get $v)) (local.get $from)) (i32.sub (call $len (local.get $v)) (local.get $from))
                (local.get $needle) (local.get $nlen)))
  (if (result i32) (i32.lt_s (local.get $at) (i32.const 0))
    (then (i32.const -1))
    (else (i32.add (local.get $at) (local.get $from)))))

;; the unsigned integer right after needle in a value's text, or -1 when needle is absent
(func $number_after (param $v i32) (param $needle i32) (param $nlen i32) (result i64)
  (local $i i32) (local $c i32) (local $n i64)
  (local.set $i (call $find_in (local.get $v) (i32.const 0) (local.get $needle) (local.get $nlen)))
  (if (i32.lt_s (local.get $i) (i32.const 0)) (then (return (i64.const -1))))
  (local.set $i (i32.add (i32.add (call $text (local.get $v)) (local.get $i)) (local.get $nlen)))
  (block $done
    (loop $digits
      (local.set $c (i32.load8_u (local.get $i)))
      (br_if $done (i32.or (i32.lt_u (local.get $c) (i32.const 48)) (i32.gt_u (local.get $c) (i32.const 57))))
      (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10)) (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 48)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $digits)))
  (local.get $n))

;; ---- the ABI's exports (the builder exports those of the version asked for)

(func $opa_malloc (param $n i32) (result i32) (call $malloc (local.get $n)))
(func $opa_free (param $p i32))
(func $opa_json_parse (param $ptr i32) (param $len i32) (result i32) (call $value (local.get $ptr) (local.get $len)))
(func $opa_json_dump (param $v i32) (result i32) (call $dump (local.get $v)))
(func $opa_heap_ptr_get (result i32) (global.get $heap))
(func $opa_heap_ptr_set (param $p i32) (global.set $heap (local.get $p)))
(func $opa_value_add_path (param i32 i32 i32) (result i32) (i32.const 1))
(func $opa_value_remove_path (param i32 i32) (result i32) (i32.const 1))
(func $opa_value_free (param i32))
(func $opa_heap_blocks_stash)
(func $opa_heap_blocks_restore)
(func $opa_heap_stash_clear)

;; ABI 1.0/1.1: an evaluation context of 16 bytes: input, data, result, entrypoint
(func $opa_eval_ctx_new (result i32)
  (local $ctx i32)
  (local.set $ctx (call $malloc (i32.const 16)))
  (memory.fill (local.get $ctx) (i32.const 0) (i32.const 16))
  (local.get $ctx))
(func $opa_eval_ctx_set_input (param $ctx i32) (param $v i32) (i32.store (local.get $ctx) (local.get $v)))
(func $opa_eval_ctx_set_data (param $ctx i32) (param $v i32) (i32.store offset=4 (local.get $ctx) (local.get $v)))
(func $opa_eval_ctx_set_entrypoint (param $ctx i32) (param $e i32) (i32.store offset=12 (local.get $ctx) (local.get $e)))
(func $opa_eval_ctx_get_result (param $ctx i32) (result i32) (i32.load offset=8 (local.get $ctx)))
(func $eval (param $ctx i32) (result i32)
  (i32.store offset=8 (local.get $ctx) (call $decide (i32.load (local.get $ctx)) (i32.load offset=4 (local.get $ctx))))
  (i32.const 0))

;; ABI 1.2: one call, from the input's text to the result set's JSON
(func $opa_eval (param $reserved i32) (param $entrypoint i32) (param $data i32) (param $input i32) (param $input_len i32) (param $heap_ptr i32) (param $format i32) (result i32)
  (global.set $heap (local.get $heap_ptr))
  (call $dump (call $decide (call $value (local.get $input) (local.get $input_len)) (local.get $data))))
