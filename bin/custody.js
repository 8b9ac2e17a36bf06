#!/usr/bin/env -S node --max-semi-space-size=8
// The flag caps V8's young generation at 2 × 8 MiB. Left alone, Node 24 grows it to 128 MiB on a
// machine with a lot of memory, and the server's resident memory with it, for no measurable gain
// in throughput (docs/decisions.md).
import '../dist/cli/main.js';
