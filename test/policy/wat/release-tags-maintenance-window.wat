;; engine case release-tags-maintenance-window, answering with a set of strings: ["…"] for
;; a delete of a tag that starts with v when request.time is outside 02:00 to 04:00 UTC, [] for
;; anything else. It stands for what `opa build -t wasm` makes of
;;
;;   deny contains "release tags …" if {
;;     input.action == "delete"
;;     startswith(input.artifact.tag, "v")
;;     [hour, _, _] := time.clock(time.parse_rfc3339_ns(input.request.time))
;;     not hour in {2, 3}
;;   }
;;
;; the time read from the input, as a string, and handed to the two host built-ins OPA's compiler
;; leaves out of the module (the builder declares {"time.parse_rfc3339_ns": 0, "time.clock": 1}),
;; in the rule's order: a request that is not a delete of a v* tag calls neither.
;; Byte searches, as the other cases: "action" is the first key after "version", "tag" the first
;; key of artifact after three strings, and "time" the first after "request" that is a key.
(data (i32.const 1024) "\"action\":")
(data (i32.const 1040) "\"action\":\"delete\"")
(data (i32.const 1064) "\"tag\":\"")
(data (i32.const 1072) "\"tag\":\"v")
(data (i32.const 1088) "\"request\":{")
(data (i32.const 1104) "\"time\":\"")
(data (i32.const 1112) "\"")
(data (i32.const 1120) "[")
(data (i32.const 1128) "[\"release tags are deleted only between 02:00 and 04:00 UTC\"]")
;; whether needle is in v's text at `at` (-1: nowhere)
(func $starts_at (param $v i32) (param $at i32) (param $needle i32) (param $nlen i32) (result i32)
  (i32.and (i32.ge_s (local.get $at) (i32.const 0))
           (i32.eq (call $find_in (local.get $v) (local.get $at) (local.get $needle) (local.get $nlen)) (local.get $at))))
(func $decide (param $input i32) (param $data i32) (result i32)
  (local $action i32) (local $tag i32) (local $open i32) (local $close i32) (local $clock i32) (local $hour i64)
  (local.set $action (call $find_in (local.get $input) (i32.const 0) (i32.const 1024) (i32.const 9)))
  (if (i32.eqz (call $starts_at (local.get $input) (local.get $action) (i32.const 1040) (i32.const 17)))
    (then (return (call $wrap_static (i32.const 72) (i32.const 2)))))
  (local.set $tag (call $find_in (local.get $input) (i32.const 0) (i32.const 1064) (i32.const 7)))
  (if (i32.eqz (call $starts_at (local.get $input) (local.get $tag) (i32.const 1072) (i32.const 8)))
    (then (return (call $wrap_static (i32.const 72) (i32.const 2)))))
  ;; request.time's JSON text, quotes included: a string value, as the built-in is given it
  (local.set $open
    (call $find_in (local.get $input) (call $find_in (local.get $input) (i32.const 0) (i32.const 1088) (i32.const 11)) (i32.const 1104) (i32.const 8)))
  (if (i32.lt_s (local.get $open) (i32.const 0)) (then (unreachable)))
  (local.set $open (i32.add (local.get $open) (i32.const 7)))
  (local.set $close (call $find_in (local.get $input) (i32.add (local.get $open) (i32.const 1)) (i32.const 1112) (i32.const 1)))
  (local.set $clock
    (call $opa_builtin1 (i32.const 1) (i32.const 0)
      (call $opa_builtin1 (i32.const 0) (i32.const 0)
        (call $value (i32.add (call $text (local.get $input)) (local.get $open)) (i32.add (i32.sub (local.get $close) (local.get $open)) (i32.const 1))))))
  ;; time.clock's value is [hour, minute, second]
  (local.set $hour (call $number_after (local.get $clock) (i32.const 1120) (i32.const 1)))
  (if (result i32) (i32.or (i64.eq (local.get $hour) (i64.const 2)) (i64.eq (local.get $hour) (i64.const 3)))
    (then (call $wrap_static (i32.const 72) (i32.const 2)))
    (else (call $wrap_static (i32.const 1128) (i32.const 61)))))
