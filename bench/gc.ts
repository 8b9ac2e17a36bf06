/**
 * `npm run bench:gc`: the garbage collection benchmark of issue 14.
 *
 * 1. Mark and sweep: a filesystem store and an SQLite database (or `--postgres URL`) holding
 *    100 000 blobs, 10 % of them linked but referenced by no manifest; a dry run, then a run,
 *    timed, with the counts checked and the referenced blobs checked to be still there.
 * 2. Pushes while GC runs: a Custody server (the bin) seeded with the same data, 4 KiB blob
 *    pushes in rounds, alternating rounds with and without a collection running in a loop
 *    (each collection sweeps what the earlier rounds pushed, since their blobs are referenced
 *    by nothing). Each pair of rounds gives a throughput ratio; the median is reported.
 *
 *   --blobs N        blobs to seed (default 100000); --garbage P  percent unreferenced (default 10)
 *   --rounds N       pairs of push rounds (default 5); --pushes N  blobs per round (default 2000)
 *   --postgres URL   part 1 on this PostgreSQL database (it must be empty) instead of SQLite
 *   --only sweep|push  one part only;  --load N  N busy loops beside the run
 *   --storage fs|s3  the blob store: a directory (default) or S3, s3rver started here (bench/s3rver.ts);
 *                    on S3 the sweep's table also gives s3rver's own CPU seconds
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Readable } from 'node:stream';
import { Pool } from 'undici';
import { GarbageCollector } from '../src/lifecycle/gc.ts';
import type { MetaStore } from '../src/meta/metastore.ts';
import { openMetaStore } from '../src/meta/open.ts';
import { blobKeyOf, type BlobStore } from '../src/storage/blobstore.ts';
import { openBlobStore } from '../src/storage/open.ts';
import { sha256 } from './client.ts';
import { startBusyLoops } from './load.ts';
import { startBenchS3 } from './s3rver.ts';
import { ensureBinNodeFlags } from './node-flags.ts';
import { startCustody } from './servers.ts';
import { fmt, table } from './stats.ts';
import { prepareBlobs, shares } from './workloads.ts';

// The client threads pace their collections as the server does, with the gc() of the bin's flags.
await ensureBinNodeFlags();

const { values: args } = parseArgs({
  options: {
    blobs: { type: 'string', default: '100000' },
    garbage: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '5' },
    pushes: { type: 'string', default: '2000' },
    postgres: { type: 'string' },
    only: { type: 'string' },
    load: { type: 'string', default: '0' },
    storage: { type: 'string', default: 'fs' },
  },
});
if (args.storage !== 'fs' && args.storage !== 's3') throw new Error(`--storage: fs or s3, not ${args.storage}`);
const s3 = args.storage === 's3' ? await startBenchS3() : undefined;
if (s3) Object.assign(process.env, s3.env);

/** The blob store of a run: `dir`/blobs, or a fresh prefix in s3rver's bucket; its URL too, for a server. */
async function benchBlobStore(dir: string): Promise<{ url: string; blobs: BlobStore }> {
  const url = s3 ? s3.url(`${path.basename(dir)}/`) : path.join(dir, 'blobs');
  return { url, blobs: await openBlobStore(url, { fsync: false }) };
}
const blobCount = Number(args.blobs);
const garbageShare = Number(args.garbage) / 100;
const layersPerManifest = 10;

const quietLog = { info() {}, warn() {}, error() {}, debug() {}, trace() {}, fatal() {}, child: () => quietLog, level: 'silent', silent() {} };
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

/** Seeds `count` 32-byte blobs, the referenced ones in manifests of 10 layers, the rest only linked. */
async function seed(meta: MetaStore, blobs: BlobStore, count: number): Promise<{ referenced: string[]; garbage: number }> {
  const garbage = Math.round(count * garbageShare);
  const digests: string[] = [];
  const started = performance.now();
  const write = async (i: number) => {
    const bytes = randomBytes(32);
    const digest = sha256(bytes);
    digests[i] = digest;
    await blobs.write(blobKeyOf('sha256', digest.slice(7)), Readable.from([bytes]));
    await meta.linkBlob(`seed/r${i % 50}`, digest, 32);
  };
  for (let i = 0; i < count; i += 64) await Promise.all(Array.from({ length: Math.min(64, count - i) }, (_, j) => write(i + j)));
  const referenced = digests.slice(garbage);
  // manifests per repository, each naming 10 of that repository's blobs
  const byRepo = new Map<string, string[]>();
  digests.forEach((d, i) => {
    if (i < garbage) return;
    const repo = `seed/r${i % 50}`;
    byRepo.set(repo, [...(byRepo.get(repo) ?? []), d]);
  });
  let n = 0;
  for (const [repo, ds] of byRepo) {
    for (let i = 0; i < ds.length; i += layersPerManifest) {
      const layers = ds.slice(i, i + layersPerManifest);
      const content = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: layers.map((digest) => ({ digest, size: 32 })), n: n++ }));
      const r = await meta.putManifest({
        repo,
        digest: sha256(content),
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        content,
        blobs: layers,
        manifests: [],
        tag: `t${i}`,
      });
      if (!r.ok) throw new Error(`seeding: ${r.missing} missing`);
    }
  }
  console.log(`seeded ${count} blobs (${garbage} unreferenced) and ${n} manifests in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { referenced, garbage };
}

async function sweepBenchmark(): Promise<string[][]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'custody-bench-gc-'));
  const meta = await openMetaStore(args.postgres ?? path.join(dir, 'custody.db'));
  const { blobs } = await benchBlobStore(dir);
  try {
    const { referenced, garbage } = await seed(meta, blobs, blobCount);
    await new Promise((r) => setTimeout(r, 5));
    const gc = new GarbageCollector({
      meta,
      blobs,
      log: quietLog as never,
      settings: { graceMs: 0, intervalMs: 0, batchSize: 500, heartbeatMs: 5000, busyShare: 1 },
    });
    const rows: string[][] = [];
    for (const dryRun of [true, false]) {
      const loadBefore = load();
      const t = performance.now();
      const cpu = process.cpuUsage();
      const s3cpu = s3?.cpuSeconds() ?? 0;
      const run = await gc.collect({ dryRun });
      const seconds = (performance.now() - t) / 1000;
      const spent = process.cpuUsage(cpu);
      if (!run || run.state !== 'done') throw new Error(`the ${dryRun ? 'dry run' : 'run'} did not finish: ${JSON.stringify(run)}`);
      const counts = dryRun ? run.planned : run.done;
      if (counts.blobs !== garbage || counts.links !== garbage) throw new Error(`expected ${garbage} blobs and links, got ${JSON.stringify(counts)}`);
      rows.push([
        dryRun ? 'plan (dry run)' : 'plan + sweep',
        String(blobCount),
        String(counts.blobs),
        fmt(seconds, 2),
        fmt(counts.blobs / seconds, 0),
        fmt((spent.user + spent.system) / 1e6, 2),
        ...(s3 ? [fmt(s3.cpuSeconds() - s3cpu, 2)] : []),
        `${loadBefore} → ${load()}`,
      ]);
    }
    // what is referenced is all still there
    for (const d of referenced.filter((_, i) => i % 97 === 0)) {
      if ((await blobs.stat(blobKeyOf('sha256', d.slice(7))))?.size !== 32) throw new Error(`referenced blob ${d} lost its bytes`);
    }
    return rows;
  } finally {
    await meta.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs collections back to back until `until` resolves, then waits for the last to end; what they did. */
async function collectLoop(
  url: string,
  auth: Record<string, string>,
  until: Promise<unknown>,
): Promise<{ runs: number; refused: number; blobs: number; seconds: number[] }> {
  let stop = false;
  void until.then(() => (stop = true));
  const pool = new Pool(url, { connections: 1 });
  const stats = { runs: 0, refused: 0, blobs: 0, seconds: [] as number[] };
  try {
    while (!stop) {
      const started = await pool.request({ path: '/api/v1/gc', method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
      const run = (await started.body.json()) as { id?: string };
      if (started.statusCode !== 202 || !run.id) {
        stats.refused++;
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const finished = await untilFinished(pool, auth, run.id);
      stats.runs++;
      stats.blobs += finished.done.blobs;
      stats.seconds.push((Date.parse(finished.finishedAt) - Date.parse(finished.startedAt)) / 1000);
    }
  } finally {
    await pool.close();
  }
  return stats;
}

async function untilFinished(
  pool: Pool,
  auth: Record<string, string>,
  id: string,
): Promise<{ done: { blobs: number }; startedAt: string; finishedAt: string }> {
  for (;;) {
    const r = await pool.request({ path: `/api/v1/gc/runs/${id}`, method: 'GET', headers: auth });
    const run = (await r.body.json()) as { state: string; done: { blobs: number }; startedAt: string; finishedAt: string };
    if (run.state !== 'running') return run;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until no collection runs (one started by a round before must not overlap a round without). */
async function quiet(url: string, auth: Record<string, string>): Promise<void> {
  const pool = new Pool(url, { connections: 1 });
  try {
    const r = await pool.request({ path: '/api/v1/gc/runs?limit=5', method: 'GET', headers: auth });
    const { runs } = (await r.body.json()) as { runs: { id: string; state: string }[] };
    for (const run of runs.filter((x) => x.state === 'running')) await untilFinished(pool, auth, run.id);
  } finally {
    await pool.close();
  }
}

async function pushBenchmark(): Promise<string[][]> {
  // the seeded data, in the server's own data dir
  const dir = await mkdtemp(path.join(tmpdir(), 'custody-bench-gcpush-'));
  const meta = await openMetaStore(path.join(dir, 'custody.db'));
  const { url: storageUrl, blobs: store } = await benchBlobStore(dir);
  await seed(meta, store, blobCount);
  await meta.close();
  const custody = await startCustody({ CUSTODY_GC_GRACE_SECONDS: '2', ...(s3 ? { ...s3.env, CUSTODY_STORAGE_URL: storageUrl } : {}) }, dir);
  const pushes = Number(args.pushes);
  const plan = { label: '4 KiB', size: 4096, count: pushes, concurrency: 8 };
  const clients = await prepareBlobs(plan);
  const auth = custody.credentials ?? {};
  const rows: string[][] = [];
  const ratios: number[] = [];
  try {
    const round = async (withGc: boolean) => {
      await quiet(custody.url, auth);
      const repo = `bench/gc-${Date.now()}`;
      const loops = shares(plan.concurrency, clients.size);
      let done!: () => void;
      const finished = new Promise<void>((r) => (done = r));
      const collecting = withGc ? collectLoop(custody.url, auth, finished) : undefined;
      if (withGc) await new Promise((r) => setTimeout(r, 100)); // the first collection is under way
      const loadBefore = load();
      const { seconds } = await clients.run((i) => ({ op: 'push', base: custody.url, repo, concurrency: loops[i] ?? 1, auth }));
      done();
      const loadAfter = load();
      const gc = await collecting;
      process.stderr.write(
        `  ${withGc ? 'with GC   ' : 'without GC'}: ${(pushes / seconds).toFixed(0)} pushes/s${gc ? `, ${gc.runs} collections (${gc.seconds.map((x) => x.toFixed(1)).join(', ')} s), ${gc.blobs} blobs freed` : ''}\n`,
      );
      return { rate: pushes / seconds, loadBefore, loadAfter, gc };
    };
    for (let r = 0; r < Number(args.rounds); r++) {
      // ABBA order, so that neither kind of round always follows the other
      const first = r % 2 === 0;
      const a = await round(!first);
      const b = await round(first);
      const without = first ? a : b;
      const withGc = first ? b : a;
      ratios.push(withGc.rate / without.rate);
      rows.push([
        String(r + 1),
        fmt(without.rate, 0),
        fmt(withGc.rate, 0),
        `${fmt((withGc.rate / without.rate) * 100, 0)} %`,
        `${withGc.gc?.runs ?? 0} (${withGc.gc?.seconds.map((x) => x.toFixed(1)).join(', ') ?? ''} s), ${withGc.gc?.blobs ?? 0} blobs freed`,
        `${without.loadBefore} / ${withGc.loadBefore}`,
      ]);
    }
  } finally {
    await clients.close();
    await custody.stop();
    await rm(dir, { recursive: true, force: true });
  }
  ratios.sort((x, y) => x - y);
  const median = ratios[Math.floor(ratios.length / 2)] ?? 0;
  rows.push(['median', '', '', `${fmt(median * 100, 0)} %`, '', '']);
  return rows;
}

const busy = startBusyLoops(Number(args.load));
try {
  console.log(`load average at start: ${load()}${Number(args.load) ? ` (+${args.load} busy loops)` : ''}`);
  if (!args.only || args.only === 'sweep') {
    const rows = await sweepBenchmark();
    console.log(
      `\nMark and sweep on the ${args.storage === 's3' ? 'S3 (s3rver)' : 'fs'} store and ${args.postgres ? 'PostgreSQL' : 'SQLite'} (target: under 60 s)`,
    );
    const head = ['run', 'blobs', 'unreferenced', 's', 'unreferenced blobs/s', 'bench CPU s', ...(s3 ? ['s3rver CPU s'] : []), 'load'];
    console.log(table([head, ...rows]));
  }
  if (!args.only || args.only === 'push') {
    const rows = await pushBenchmark();
    console.log(`\n4 KiB pushes, concurrency 8, with and without collections running (target: ≥ 85 %)`);
    console.log(table([['pair', 'pushes/s without', 'pushes/s with GC', 'ratio', 'collections', 'load (without / with)'], ...rows]));
  }
} finally {
  busy.stop();
  await s3?.stop();
}
