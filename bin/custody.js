#!/usr/bin/env -S node --max-semi-space-size=8 --expose-gc
// Node flags are given here, at start (docs/decisions.md), and the benchmark reads them from this
// line to start its own process the same way. --max-semi-space-size=8 caps V8's young generation
// at 2 × 8 MiB: left alone, Node 24 grows it to 128 MiB on a machine with a lot of memory, and the
// server's resident memory with it, for no measurable gain in throughput. --expose-gc gives the
// server's buffer pacer (src/server/buffer-gc.ts) the gc() it frees streamed buffers with.
import '../dist/cli/main.js';
