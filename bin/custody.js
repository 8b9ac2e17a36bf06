#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=2 --expose-gc
// Node flags are given here, at start (docs/decisions.md), and the benchmark reads them from this
// line to start its own process the same way. --max-semi-space-size=2 caps V8's young generation
// at 2 × 2 MiB: left alone, Node 24 grows it to 128 MiB on a machine with a lot of memory, and the
// server's resident memory with it, for no measurable gain in throughput; at 8 MiB it grew to the
// full 16 while the modules loaded and stayed there, ~11 MiB more resident in an idle server, and
// 17-20 MiB more at the peak of 64 MiB pushes, for the same CPU per GiB (docs/decisions.md).
// --expose-gc gives the server's buffer pacer (src/server/buffer-gc.ts) the gc() it frees streamed
// buffers with.
// MALLOC_ARENA_MAX=2 (read by glibc at the first malloc, so it must be set before node starts)
// caps glibc at two malloc arenas instead of one per thread that allocates: in five-minute soaks
// the server's RSS peaked 8-10 MiB lower (142 against 150, 141 against 151 MiB, run side by side)
// for the same CPU time per round (docs/benchmarks.md). Other C libraries ignore it.
import '../dist/cli/main.js';
