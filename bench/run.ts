/**
 * `npm run bench`: the registry benchmark of issue 2. It pushes and pulls blobs of three sizes and
 * GETs a manifest by tag, verifying every digest, against Custody and — with `--against URL` or
 * `--reference` — another registry in the same run, then prints figures, ratios and the targets.
 *
 *   npm run bench                       Custody alone (started from this checkout)
 *   npm run bench -- --reference        beside Debian's docker-registry (CNCF distribution 2.8)
 *   npm run bench -- --against URL      beside a registry already running at URL
 *   npm run bench -- --url URL --pid N --user admin:PASSWORD
 *                                       a Custody already running (its RSS read from /proc/N)
 *   --quick                             a small run that checks the harness (used by the tests)
 *   --only 1MiB,64MiB,manifest          run only some workloads (4KiB, 1MiB, 64MiB, manifest)
 *   --soak SECONDS                      instead: mixed pushes and pulls for that long, the server's
 *                                       RSS printed as it goes (soak.ts)
 *   --load N                            N busy loops beside the run, for figures on a loaded machine
 *   --storage fs|s3                     the Custody it starts stores blobs in its data dir (default) or
 *                                       on S3: s3rver, started here (bench/s3rver.ts); its CPU is shown
 *   --postgres URL                      the Custody it starts keeps its metadata in this (empty)
 *                                       PostgreSQL database, beside a second one on SQLite (issue 16)
 *   --json FILE                         also write the results as JSON
 */
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { basicAuth } from './client.ts';
import { ensureBinNodeFlags } from './node-flags.ts';
import { startBusyLoops } from './load.ts';
import { celPolicies, decisionLatency, opaPolicies, withPolicies, type EngineLatency } from './policies.ts';
import { sampleProcess } from './process-sample.ts';
import { startCustody, startReference, type Server } from './servers.ts';
import { startBenchS3, type BenchS3 } from './s3rver.ts';
import { soak } from './soak.ts';
import { fmt, table, type Result } from './stats.ts';
import { blobWorkload, manifestWorkload, prepareBlobs, tokenWorkload, type BlobPlan } from './workloads.ts';

// The client threads pace their collections as the server does, with the gc() of the bin's flags.
await ensureBinNodeFlags();

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    pid: { type: 'string' },
    against: { type: 'string' },
    reference: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    only: { type: 'string' },
    user: { type: 'string' },
    soak: { type: 'string' },
    load: { type: 'string' },
    storage: { type: 'string', default: 'fs' },
    postgres: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  // The usage is this file's opening comment.
  const { readFileSync } = await import('node:fs');
  const source = readFileSync(new URL(import.meta.url), 'utf8');
  console.log(
    source
      .slice(source.indexOf('/**') + 3, source.indexOf('*/'))
      .replace(/^ \* ?/gm, '')
      .trim(),
  );
  process.exit(0);
}

if (args.storage !== 'fs' && args.storage !== 's3') throw new Error(`--storage: fs or s3, not ${args.storage}`);
if (args.storage === 's3' && args.url) throw new Error('--storage s3 is for the Custody the benchmark starts, not one at --url');
if (args.postgres && (args.url || args.against || args.reference))
  throw new Error('--postgres compares two Custody servers it starts: not with --url, --against or --reference');
/** --storage s3: the S3 server under the Custody this run starts. */
let s3: BenchS3 | undefined;

/** Whether a workload was asked for: all of them unless --only names some. */
const wanted = (label: string) => !args.only || args.only.split(',').some((w) => w.trim().toLowerCase() === label.replace(/\s/g, '').toLowerCase());

interface Plan {
  /** each blob workload runs this many times per registry; the median round is reported */
  rounds: number;
  blobs: BlobPlan[];
  manifest: { concurrency: number; seconds: number };
}

const KiB = 1024;
const MiB = 1024 * KiB;
const full: Plan = {
  rounds: 3,
  blobs: [
    { label: '4 KiB', size: 4 * KiB, count: 2000, concurrency: 8 },
    { label: '1 MiB', size: MiB, count: 300, concurrency: 4 },
    { label: '64 MiB', size: 64 * MiB, count: 8, concurrency: 2 },
  ],
  manifest: { concurrency: 16, seconds: 10 },
};
const quick: Plan = {
  rounds: 1,
  blobs: [
    { label: '4 KiB', size: 4 * KiB, count: 100, concurrency: 8 },
    { label: '1 MiB', size: MiB, count: 10, concurrency: 4 },
    { label: '64 MiB', size: 64 * MiB, count: 2, concurrency: 2 },
  ],
  manifest: { concurrency: 16, seconds: 1 },
};

/** --user NAME:PASSWORD for a Custody already running (an admin, or one allowed to create `bench`). */
function userCredentials(): Record<string, string> | undefined {
  if (!args.user) return undefined;
  const colon = args.user.indexOf(':');
  return basicAuth(args.user.slice(0, colon), args.user.slice(colon + 1));
}

interface Target {
  name: string;
  base: Server;
  other?: Server;
}

async function targets(): Promise<Target> {
  const base: Server = args.url
    ? { url: args.url, pid: args.pid ? Number(args.pid) : undefined, credentials: userCredentials(), stop: async () => {} }
    : await startCustodyOn(args.storage, args.postgres);
  if (args.postgres) return { name: 'Custody on SQLite', base, other: await startCustodyOn(args.storage) };
  if (args.reference) return { name: 'docker-registry', base, other: await startReference() };
  if (args.against) return { name: args.against, base, other: { url: args.against, pid: undefined, stop: async () => {} } };
  return { name: '', base };
}

/** `database`: a PostgreSQL URL (else SQLite in the data dir). Each server gets its own bucket prefix. */
async function startCustodyOn(storage: string | undefined, database?: string): Promise<Server> {
  const env: Record<string, string> = database ? { CUSTODY_DATABASE_URL: database } : {};
  if (storage !== 's3') return startCustody(env);
  s3 ??= await startBenchS3();
  return startCustody({ ...env, ...s3.env, CUSTODY_STORAGE_URL: s3.url(database ? 'custody-pg/' : 'custody/') });
}

/** Runs one workload against a server while sampling its memory and CPU time. */
async function measured(server: Server, run: () => Promise<Result>): Promise<Result> {
  const sample = sampleProcess(server.pid);
  const client = process.cpuUsage();
  const storageCpu = s3?.cpuSeconds();
  const result = await run();
  if (s3 && storageCpu !== undefined) result.storageCpuPercent = ((s3.cpuSeconds() - storageCpu) / result.seconds) * 100;
  const seen = sample.stop();
  const spent = process.cpuUsage(client);
  result.loadAvg1 = loadavg()[0];
  result.clientCpuPercent = ((spent.user + spent.system) / 1e6 / result.seconds) * 100;
  if (seen) {
    result.peakRssMiB = seen.rss;
    result.peakAnonMiB = seen.anon;
    result.serverCpuPercent = (seen.cpuSeconds / result.seconds) * 100;
    if (result.opsPerSec > 0) result.serverCpuMicrosPerOp = (seen.cpuSeconds * 1e6) / (result.opsPerSec * result.seconds);
    if (result.mbPerSec !== undefined) result.serverCpuPerGiB = seen.cpuSeconds / ((result.mbPerSec * result.seconds) / 1024);
  }
  return result;
}

interface Row {
  custody: Result;
  other?: Result;
}

/** The round with the median throughput: one slow or lucky round on a shared machine says little. */
function median(results: Result[]): Result {
  const sorted = [...results].sort((a, b) => a.opsPerSec - b.opsPerSec);
  return sorted[Math.floor(sorted.length / 2)] as Result;
}

/** Untimed traffic first, so that neither registry is measured while its JIT or caches are cold. */
async function warmUp(server: Server): Promise<void> {
  const plan = { label: 'warm-up', size: 64 * 1024, count: 200, concurrency: 4 };
  const clients = await prepareBlobs(plan);
  try {
    await blobWorkload(clients, server, plan);
  } finally {
    await clients.close();
  }
  await manifestWorkload(server, 4, 1);
  if (server.credentials) await manifestWorkload(server, 4, 1, 'bearer');
}

async function runAll(plan: Plan, t: Target): Promise<Row[]> {
  const rows: Row[] = [];
  process.stderr.write('warming up…\n');
  for (const server of t.other ? [t.base, t.other] : [t.base]) await warmUp(server);
  for (const w of plan.blobs.filter((b) => wanted(b.label))) {
    const rounds: { custody: Result[]; other: Result[] }[] = [
      { custody: [], other: [] },
      { custody: [], other: [] },
    ];
    for (let round = 0; round < plan.rounds; round++) {
      process.stderr.write(`${w.label} × ${w.count} at concurrency ${w.concurrency}, round ${round + 1} of ${plan.rounds}…\n`);
      // Fresh blobs each round, the same bytes for both registries; made per workload so 64 MiB
      // blobs are not all held at once. Who goes first alternates.
      const clients = await prepareBlobs(w);
      try {
        const servers = t.other ? (round % 2 === 0 ? [t.base, t.other] : [t.other, t.base]) : [t.base];
        for (const server of servers) {
          const results = await blobWorkload(clients, server, w, (run) => measured(server, run));
          results.forEach((r, i) => (server === t.base ? rounds[i]!.custody : rounds[i]!.other).push(r));
        }
      } finally {
        await clients.close();
      }
    }
    for (const r of rounds) rows.push({ custody: median(r.custody), other: r.other.length > 0 ? median(r.other) : undefined });
  }
  if (!wanted('manifest')) return rows;
  const m = plan.manifest;
  // Anonymous GETs on Custody and on the other registry, and (what authentication costs) the same
  // GETs with a Bearer token and GET /token itself: each for m.seconds per round, the order
  // rotating from round to round, the median round shown.
  const runs: { label: string; server: Server; run: () => Promise<Result> }[] = [
    { label: 'Custody', server: t.base, run: () => manifestWorkload(t.base, m.concurrency, m.seconds) },
  ];
  if (t.other) runs.push({ label: t.name, server: t.other, run: () => manifestWorkload(t.other!, m.concurrency, m.seconds) });
  if (t.base.credentials) {
    runs.push({ label: 'Custody, Bearer', server: t.base, run: () => manifestWorkload(t.base, m.concurrency, m.seconds, 'bearer') });
    runs.push({ label: 'Custody, /token', server: t.base, run: () => tokenWorkload(t.base, m.concurrency, m.seconds) });
    // The same anonymous GETs with five CEL policies deciding every pull (issue 13: within 10 %).
    runs.push({
      label: 'Custody, 5 CEL policies',
      server: t.base,
      run: () =>
        withPolicies(t.base, celPolicies, async () => {
          const r = await manifestWorkload(t.base, m.concurrency, m.seconds);
          decisionLatencies.cel = withLoad((await decisionLatency(t.base)).cel);
          return { ...r, workload: 'manifest GET by tag, 5 CEL policies' };
        }),
    });
    // …and with one OPA Wasm policy (its worker pool running: the RSS column shows it), within 25 %.
    const opa = await opaPolicies(t.base);
    runs.push({
      label: 'Custody, 1 OPA Wasm policy',
      server: t.base,
      run: () =>
        withPolicies(t.base, opa as { name: string }[], async () => {
          const r = await manifestWorkload(t.base, m.concurrency, m.seconds);
          decisionLatencies['opa-wasm'] = withLoad((await decisionLatency(t.base))['opa-wasm']);
          return { ...r, workload: 'manifest GET by tag, 1 OPA Wasm policy' };
        }),
    });
  }
  const results = runs.map((): Result[] => []);
  // Each policy run between two anonymous runs of its own (A B A), its pair: a policy run compared
  // with the round's one anonymous run, minutes and other workloads away, was judged by its
  // neighbours (a run right after /token's password hashing came out slower): OPA measured 99-136 %.
  const brackets = runs.map((): { before: Result; after: Result }[] => []);
  const anonymous = runs[0]!;
  for (let round = 0; round < plan.rounds; round++) {
    process.stderr.write(`manifest GET by tag and /token at concurrency ${m.concurrency}, ${m.seconds} s each, round ${round + 1} of ${plan.rounds}…\n`);
    for (let k = 0; k < runs.length; k++) {
      const i = (k + round) % runs.length;
      const { server, run, label } = runs[i]!;
      if (!label.includes('polic')) {
        results[i]!.push(await measured(server, run));
        continue;
      }
      const before = await measured(anonymous.server, anonymous.run);
      results[i]!.push(await measured(server, run));
      brackets[i]!.push({ before, after: await measured(anonymous.server, anonymous.run) });
    }
  }
  rows.push({ custody: median(results[0]!), other: t.other ? median(results[1]!) : undefined });
  for (let i = t.other ? 2 : 1; i < runs.length; i++) rows.push({ custody: median(results[i]!) });
  // Each policy row beside the mean of the anonymous runs just before and after it: the median
  // rows above may come from rounds the machine was busier or quieter in.
  const mean = (a: number | undefined, b: number | undefined) => ((a ?? NaN) + (b ?? NaN)) / 2;
  for (let i = 0; i < runs.length; i++) {
    if (!runs[i]!.label.includes('polic')) continue;
    paired[runs[i]!.label] = results[i]!.map((r, round) => {
      const { before, after } = brackets[i]![round]!;
      return {
        ratio: r.opsPerSec / mean(before.opsPerSec, after.opsPerSec),
        cpuMicros: (r.serverCpuMicrosPerOp ?? NaN) - mean(before.serverCpuMicrosPerOp, after.serverCpuMicrosPerOp),
        load: r.loadAvg1,
      };
    });
  }
  return rows;
}

/** Per policy row, each round against the anonymous run of that round: throughput ratio and the server's extra CPU µs per GET. */
const paired: Record<string, { ratio: number; cpuMicros: number; load: number | undefined }[]> = {};

function printPaired(): void {
  const entries = Object.entries(paired);
  if (entries.length === 0) return;
  const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const out = [['row', 'per round: ops/s against none (load)', 'median', 'server CPU µs/GET over none, per round', 'median']];
  for (const [label, rounds] of entries) {
    out.push([
      label,
      rounds.map((r) => `${(r.ratio * 100).toFixed(0)}% (${fmt(r.load, 1)})`).join(' '),
      `${((mid(rounds.map((r) => r.ratio)) ?? NaN) * 100).toFixed(0)}%`,
      rounds.map((r) => fmt(r.cpuMicros, 0)).join(' '),
      fmt(mid(rounds.map((r) => r.cpuMicros)), 0),
    ]);
  }
  console.log(`Policy rows, each round against the mean of the anonymous GETs just before and after it:\n${table(out)}\n`);
}

/** Per engine, how long the server's decisions took during the last policy round run. */
const decisionLatencies: Record<string, (EngineLatency & { loadAvg1?: number }) | undefined> = {};
const withLoad = (l: EngineLatency | undefined) => l && { ...l, loadAvg1: loadavg()[0] };

function printDecisionLatency(): void {
  const engines = Object.entries(decisionLatencies).filter((e): e is [string, EngineLatency & { loadAvg1?: number }] => e[1] !== undefined);
  if (engines.length === 0) return;
  const out = [['engine', 'evaluations', 'p50 µs', 'p99 µs', 'max µs', 'load']];
  for (const [engine, l] of engines)
    out.push([engine, String(l.evaluations), fmt(l.p50Micros, 1), fmt(l.p99Micros, 1), fmt(l.maxMicros, 1), fmt(l.loadAvg1, 2)]);
  console.log(`Policy decision latency (server side, one evaluation, the last 4096 of the last policy round):\n${table(out)}\n`);
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

/** Server and client CPU, each in % of one core: on a machine with few cores, what limits a figure. */
const cpu = (r: Result) => `${fmt(r.serverCpuPercent, 0)}/${fmt(r.clientCpuPercent, 0)}`;

function printTable(rows: Row[], name: string): void {
  const head = [
    'workload',
    'ops/s',
    'MiB/s',
    'p50 ms',
    'p99 ms',
    'RSS MiB',
    'anon',
    'CPU % srv/cli',
    'srv µs/op',
    'srv s/GiB',
    ...(s3 ? ['s3rver CPU %'] : []),
    'load',
  ];
  const out = [name ? [...head, `${name} ops/s`, 'MiB/s', 'p50 ms', 'p99 ms', 'CPU % srv/cli', 'srv µs/op', 'srv s/GiB', 'ratio'] : head];
  // Throughput and latency, then (Custody only) memory, then what each side's CPU did.
  const speed = (r: Result) => [fmt(r.opsPerSec), fmt(r.mbPerSec), fmt(r.p50, 2), fmt(r.p99, 2)];
  const work = (r: Result) => [cpu(r), fmt(r.serverCpuMicrosPerOp, 0), fmt(r.serverCpuPerGiB, 2)];
  for (const { custody: c, other: o } of rows) {
    const mine = [
      c.workload,
      ...speed(c),
      fmt(c.peakRssMiB, 0),
      fmt(c.peakAnonMiB, 0),
      ...work(c),
      ...(s3 ? [fmt(c.storageCpuPercent, 0)] : []),
      fmt(c.loadAvg1, 2),
    ];
    out.push(o ? [...mine, ...speed(o), ...work(o), `${fmt(ratio(c.opsPerSec, o.opsPerSec), 2)}×`] : mine);
  }
  const on = [args.postgres ? 'PostgreSQL' : '', s3 ? 'S3 (s3rver)' : ''].filter(Boolean).join(' and ');
  console.log(`\nCustody${on ? ` on ${on}` : ''}${name ? ` beside ${name}` : ''}:\n${table(out)}\n`);
}

interface Check {
  target: string;
  measured: string;
  pass: boolean;
}

/**
 * The floors issue 2 sets beside another registry, or with --postgres those issue 16 sets beside
 * the same Custody on SQLite; the comparisons need the other server in the same run.
 */
function checks(rows: Row[]): Check[] {
  const find = (w: string) => rows.find((r) => r.custody.workload === w);
  const out: Check[] = [];
  const atLeast = (workload: string, key: 'opsPerSec' | 'mbPerSec', floor: number, other = 'reference') => {
    const row = find(workload);
    const r = ratio(row?.custody[key], row?.other?.[key]);
    if (r !== undefined)
      out.push({ target: `${workload} ${key === 'opsPerSec' ? 'ops/s' : 'MiB/s'} ≥ ${floor}× ${other}`, measured: `${r.toFixed(2)}×`, pass: r >= floor });
  };
  if (args.postgres) {
    for (const w of ['manifest GET by tag', '4 KiB push']) atLeast(w, 'opsPerSec', 0.7, 'SQLite (PostgreSQL, issue 16)');
  } else {
    atLeast('manifest GET by tag', 'opsPerSec', 3);
    for (const w of ['4 KiB push', '4 KiB pull']) atLeast(w, 'opsPerSec', 2);
    for (const w of ['1 MiB push', '1 MiB pull', '64 MiB push', '64 MiB pull']) atLeast(w, 'mbPerSec', 1.2);
  }
  const manifest = find('manifest GET by tag');
  if (manifest?.other && !args.postgres) {
    const [mine, theirs] = [manifest.custody.p99, manifest.other.p99];
    out.push({ target: 'manifest GET p99 no worse than reference', measured: `${mine.toFixed(2)} ms vs ${theirs.toFixed(2)} ms`, pass: mine <= theirs });
  }
  const anonymous = find('manifest GET by tag')?.custody;
  const bearer = find('manifest GET by tag, bearer')?.custody;
  if (anonymous && bearer) {
    const share = bearer.opsPerSec / anonymous.opsPerSec;
    out.push({ target: 'authenticated manifest GET ≥ 90% of anonymous (issue 3)', measured: `${(share * 100).toFixed(0)}%`, pass: share >= 0.9 });
  }
  // the policy rows are judged by their median ratio to the anonymous runs around them (paired)
  for (const [label, what, floor] of [
    ['Custody, 5 CEL policies', 'manifest GET with 5 CEL policies', 0.9],
    ['Custody, 1 OPA Wasm policy', 'manifest GET with 1 OPA Wasm policy', 0.75],
  ] as const) {
    const ratios = (paired[label] ?? []).map((r) => r.ratio).sort((a, b) => a - b);
    const share = ratios[Math.floor(ratios.length / 2)];
    if (share === undefined) continue;
    out.push({ target: `${what} ≥ ${floor * 100}% of none (issue 13)`, measured: `${(share * 100).toFixed(0)}%`, pass: share >= floor });
  }
  const big = [find('64 MiB push'), find('64 MiB pull')].map((r) => r?.custody.peakRssMiB);
  if (big.every((m) => m !== undefined)) {
    const peak = Math.max(...big);
    out.push({ target: 'Custody RSS < 150 MiB while 64 MiB blobs stream', measured: `${peak.toFixed(0)} MiB`, pass: peak < 150 });
  }
  return out;
}

async function runSoak(server: Server, seconds: number): Promise<void> {
  process.stderr.write(`soak: mixed pushes and pulls (4 KiB, 1 MiB, 64 MiB at 90:9:1, concurrency 4) for ${seconds} s…\n`);
  const result = await soak(server, seconds, (line) => console.log(line));
  const end = result.samples.at(-1);
  console.log(
    `\nsoak: ${result.rounds} rounds in ${fmt(result.seconds, 0)} s, ${fmt(result.pushedMiB, 0)} MiB pushed and pulled; server RSS peak ${fmt(result.peakRssMiB, 0)} MiB (anon ${fmt(result.peakAnonMiB, 0)}), ` +
      `at the end ${fmt(result.endRssMiB ?? end?.rssMiB, 0)} MiB (anon ${fmt(result.endAnonMiB ?? end?.anonMiB, 0)}); server CPU ${fmt(result.serverCpuSeconds, 1)} s`,
  );
  if (result.peakRssMiB !== undefined)
    console.log(
      `Targets:\n${table([['Custody RSS < 150 MiB through the soak', `${fmt(result.peakRssMiB, 0)} MiB`, result.peakRssMiB < 150 ? 'PASS' : 'FAIL']])}\n`,
    );
  if (args.json) await writeFile(args.json, JSON.stringify({ soak: result }, null, 2));
}

async function main(): Promise<void> {
  const busy = startBusyLoops(Number(args.load ?? 0));
  const stopLoad = () => busy.stop();
  try {
    const t = await targets();
    try {
      if (args.soak !== undefined) return await runSoak(t.base, Number(args.soak));
      const rows = await runAll(args.quick ? quick : full, t);
      printTable(rows, t.name);
      printDecisionLatency();
      printPaired();
      const results = checks(rows);
      if (results.length > 0) console.log(`Targets:\n${table(results.map((c) => [c.target, c.measured, c.pass ? 'PASS' : 'FAIL']))}\n`);
      if (args.json) await writeFile(args.json, JSON.stringify({ against: t.name || undefined, quick: args.quick, rows, checks: results }, null, 2));
    } finally {
      await t.base.stop();
      await t.other?.stop();
      await s3?.stop();
    }
  } finally {
    stopLoad();
  }
}

await main();
