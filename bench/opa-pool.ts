/**
 * The OPA worker pool in this process, without HTTP: what one decision costs the main thread
 * (the server's event loop, which every request shares) and how long it takes, for the policy the
 * benchmark's OPA row runs (no-wasi-sockets, built from WAT). `node bench/opa-pool.ts
 * [--seconds 5] [--concurrency 16] [--workers 2]`.
 *
 * Each evaluation gets an input as the server builds one for a pull: the artifact, trust and
 * namespace sections are the same objects every time (src/policy/input.ts caches them), the
 * request section is new, with the time of the millisecond. `concurrency` evaluations are kept in
 * flight, as the benchmark's 16 connections keep requests. CPU is read per thread
 * (process.threadCpuUsage) and for the whole process, so the workers' share shows apart.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { compileOpa, createOpaPool } from '../src/policy/opa/index.ts';
import type { PolicyInput } from '../src/policy/input-schema.ts';
import { buildModule } from '../test/policy/opa-wat.ts';
import { sampleInput } from '../test/suites/policy-engine.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '16' },
    workers: { type: 'string', default: '2' },
  },
});
const seconds = Number(args.seconds);
const concurrency = Number(args.concurrency);

const pool = createOpaPool({ size: Number(args.workers) });
const policy = await compileOpa({ entrypoint: 'custody/deny' }, await buildModule('no-wasi-sockets'), pool);
const base = sampleInput({ action: 'pull' });
const input = (): PolicyInput => ({ ...base, request: { ...base.request, time: new Date().toISOString() } });

async function run(ms: number): Promise<{ decisions: number; latencies: number[]; wallMs: number; main: NodeJS.CpuUsage; all: NodeJS.CpuUsage }> {
  const latencies: number[] = [];
  const main = process.threadCpuUsage();
  const all = process.cpuUsage();
  const started = performance.now();
  const until = started + ms;
  const loop = async () => {
    while (performance.now() < until) {
      const t = performance.now();
      const outcome = await policy.evaluate(input());
      latencies.push(performance.now() - t);
      if (outcome.deny) throw new Error('the benchmark policy denied its input');
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { decisions: latencies.length, latencies, wallMs: performance.now() - started, main: process.threadCpuUsage(main), all: process.cpuUsage(all) };
}

// warm-up: the JIT on both sides, and the workers' first instances
await run(1000);
const r = await run(seconds * 1000);
await pool.close();

const micros = (u: NodeJS.CpuUsage) => (u.user + u.system) / r.decisions;
const sorted = r.latencies.sort((a, b) => a - b);
const at = (q: number) => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 1000;
console.log(
  [
    `OPA pool, ${args.workers} workers, concurrency ${concurrency}, ${seconds} s: ${r.decisions} decisions, ${((r.decisions / r.wallMs) * 1000).toFixed(0)}/s`,
    `  CPU per decision: main thread ${micros(r.main).toFixed(1)} µs, whole process ${micros(r.all).toFixed(1)} µs`,
    `  latency: p50 ${at(0.5).toFixed(0)} µs, p99 ${at(0.99).toFixed(0)} µs`,
    `  load average (1 min) at the end: ${loadavg()[0]!.toFixed(2)}`,
  ].join('\n'),
);
