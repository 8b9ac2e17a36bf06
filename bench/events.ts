/**
 * `npm run bench:events`: the usage-events benchmark of issue 15.
 *
 * 1. The cost on the request path: two Custody servers (the bin), one with events on (the
 *    default) and one with CUSTODY_EVENTS_ENABLED=false, in paired rounds (ABBA order) of manifest
 *    GETs by tag (anonymous, concurrency 16), 4 KiB blob pulls and 64 MiB blob pulls. Each pair
 *    gives a throughput ratio and the server's extra CPU µs per operation; the medians are
 *    reported beside the floors (95 %, 95 %, 98 %).
 * 2. Ingest: events written straight to the store in batches of 1000 (SQLite, or `--postgres URL`),
 *    in events per second, and through the recorder (record() then flush()).
 * 3. Growth: 1 000 000 events of a realistic spread seeded into a fresh SQLite database, its size
 *    after a checkpoint, per million events and per event.
 *
 *   --rounds N       pairs of rounds per workload (default 5); --seconds S  manifest round length (default 5)
 *   --only path|ingest|growth   one part;  --events N  events seeded for growth (default 1000000)
 *   --postgres URL   ingest into this (empty) PostgreSQL database too
 *   --load N         N busy loops beside the run
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DatabaseSync } from 'node:sqlite';
import { EventRecorder } from '../src/insight/events.ts';
import { eventId, type UsageEvent } from '../src/meta/insight.ts';
import { openMetaStore } from '../src/meta/open.ts';
import { startBusyLoops } from './load.ts';
import { ensureBinNodeFlags } from './node-flags.ts';
import { sampleProcess } from './process-sample.ts';
import { startCustody, type Server } from './servers.ts';
import { fmt, summarize, table, type Result } from './stats.ts';
import { authFor, manifestWorkload, prepareBlobs, shares, type BlobPlan, type Clients } from './workloads.ts';

await ensureBinNodeFlags();

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    only: { type: 'string' },
    events: { type: 'string', default: '1000000' },
    postgres: { type: 'string' },
    load: { type: 'string', default: '0' },
  },
});

const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const quietLog = { info() {}, warn() {}, error() {}, debug() {}, trace() {}, fatal() {}, child: () => quietLog, level: 'silent', silent() {} };

/** A workload round against one server, with the server's CPU time per operation. */
async function measured(server: Server, run: () => Promise<Result>): Promise<Result & { load: string }> {
  const sample = sampleProcess(server.pid);
  const result = await run();
  const seen = sample.stop();
  if (seen && result.opsPerSec > 0) result.serverCpuMicrosPerOp = (seen.cpuSeconds * 1e6) / (result.opsPerSec * result.seconds);
  return { ...result, load: load() };
}

interface Workload {
  label: string;
  floor: number;
  /** runs one round against a server; `prepare` once per server first */
  prepare(server: Server): Promise<void>;
  round(server: Server): Promise<Result>;
  close(): Promise<void>;
}

function manifestGets(seconds: number): Workload {
  return {
    label: 'manifest GET by tag',
    floor: 0.95,
    prepare: async () => {},
    round: (server) => manifestWorkload(server, 16, seconds),
    close: async () => {},
  };
}

/** Pushes the blobs once per server, then pulls them all back each round. */
async function blobPulls(plan: BlobPlan, floor: number): Promise<Workload> {
  const clients: Clients = await prepareBlobs(plan);
  const repos = new Map<Server, { repo: string; auth: Record<string, string> }>();
  const loops = shares(plan.concurrency, clients.size);
  return {
    label: `${plan.label} pull`,
    floor,
    prepare: async (server) => {
      const repo = `bench/events-${plan.size}-${Date.now()}`;
      const auth = await authFor(server, [`repository:${repo}:pull,push`]);
      await clients.run((i) => ({ op: 'push', base: server.url, repo, concurrency: loops[i] ?? 1, auth }));
      repos.set(server, { repo, auth });
    },
    round: async (server) => {
      const { repo, auth } = repos.get(server)!;
      const { latencies, seconds } = await clients.run((i) => ({ op: 'pull', base: server.url, repo, concurrency: loops[i] ?? 1, auth }));
      return summarize(`${plan.label} pull`, latencies, seconds, plan.count * plan.size);
    },
    close: () => clients.close(),
  };
}

async function pathBenchmark(): Promise<[string[][], string[][]]> {
  const on = await startCustody();
  const off = await startCustody({ CUSTODY_EVENTS_ENABLED: 'false' });
  const rows: string[][] = [['workload', 'pair', 'off ops/s', 'on ops/s', 'on/off', 'off µs/op', 'on µs/op', 'load (off / on)']];
  const summary: string[][] = [['workload', 'median on/off', 'floor', 'median extra server µs/op', 'met']];
  try {
    const rounds = Number(args.rounds);
    const workloads: (() => Promise<Workload>)[] = [
      async () => manifestGets(Number(args.seconds)),
      () => blobPulls({ label: '4 KiB', size: 4096, count: 2000, concurrency: 8 }, 0.95),
      () => blobPulls({ label: '64 MiB', size: 64 * 1024 * 1024, count: 8, concurrency: 2 }, 0.98),
    ];
    for (const make of workloads) {
      const w = await make();
      try {
        await w.prepare(off);
        await w.prepare(on);
        // a round each to warm up, not counted
        await w.round(off);
        await w.round(on);
        const ratios: number[] = [];
        const extra: number[] = [];
        for (let r = 0; r < rounds; r++) {
          const onFirst = r % 2 === 1;
          const first = await measured(onFirst ? on : off, () => w.round(onFirst ? on : off));
          const second = await measured(onFirst ? off : on, () => w.round(onFirst ? off : on));
          const [a, b] = onFirst ? [second, first] : [first, second];
          ratios.push(b.opsPerSec / a.opsPerSec);
          extra.push((b.serverCpuMicrosPerOp ?? NaN) - (a.serverCpuMicrosPerOp ?? NaN));
          rows.push([
            w.label,
            String(r + 1),
            fmt(a.opsPerSec, 0),
            fmt(b.opsPerSec, 0),
            `${fmt((b.opsPerSec / a.opsPerSec) * 100, 1)} %`,
            fmt(a.serverCpuMicrosPerOp, 0),
            fmt(b.serverCpuMicrosPerOp, 0),
            `${a.load} / ${b.load}`,
          ]);
          process.stderr.write(`  ${rows.at(-1)!.join('  ')}\n`);
        }
        const m = median(ratios);
        summary.push([w.label, `${fmt(m * 100, 1)} %`, `${fmt(w.floor * 100, 0)} %`, fmt(median(extra), 1), m >= w.floor ? 'yes' : 'no']);
      } finally {
        await w.close();
      }
    }
  } finally {
    await on.stop();
    await off.stop();
  }
  return [rows, summary];
}

const repositories = Array.from({ length: 200 }, (_, i) => `ns${i % 20}/repo${i}`);
const agents = ['skopeo/1.13.3', 'docker/27.3.1 go/go1.22.7 git-commit/c7b2db4 kernel/6.1.0 os/linux arch/amd64', 'containerd/1.7.22', 'podman/5.2.2'];

/** Events as a busy registry makes them: mostly pulls of blobs and manifests, some pushes, logins, tokens. */
function realistic(i: number, at: number): UsageEvent {
  const repository = repositories[i % repositories.length]!;
  const kind = i % 20;
  const type = kind < 16 ? 'pull' : kind < 18 ? 'push' : kind === 18 ? 'token' : 'delete';
  const object = type === 'token' ? '' : i % 3 === 0 ? 'manifest' : 'blob';
  return {
    id: eventId(at),
    at,
    type,
    object,
    namespace: repository.slice(0, repository.indexOf('/')),
    repository,
    digest: `sha256:${randomBytes(32).toString('hex')}`,
    tag: object === 'manifest' ? `v${i % 50}` : '',
    mediaType: object === 'manifest' ? 'application/vnd.oci.image.manifest.v1+json' : '',
    actor: `user${i % 100}`,
    actorKind: 'user',
    tokenId: '',
    bytes: object === 'blob' ? 1000 + ((i * 7919) % 50_000_000) : 1500,
    userAgent: agents[i % agents.length]!,
    source: `10.0.${(i >> 8) & 255}.${i & 255}`,
    durationMicros: 200 + (i % 5000),
    status: i % 50 === 0 ? 404 : 200,
    result: i % 50 === 0 ? 'error' : 'ok',
    detail: type === 'token' ? { scopes: [`repository:${repository}:pull`] } : {},
  };
}

async function ingest(url: string, label: string, count: number): Promise<string[][]> {
  const meta = await openMetaStore(url);
  try {
    const start = Date.now();
    const t = performance.now();
    for (let i = 0; i < count; i += 1000)
      await meta.insight.recordEvents(Array.from({ length: Math.min(1000, count - i) }, (_, j) => realistic(i + j, start + i + j)));
    const direct = count / ((performance.now() - t) / 1000);
    const recorder = new EventRecorder(meta.insight, quietLog as never, {
      flushMs: 1000,
      batchSize: 1000,
      maxBuffered: count,
      retentionMs: 1e12,
      rollupRetentionMs: 1e12,
    });
    const t2 = performance.now();
    for (let i = 0; i < count; i++) {
      const e = realistic(i, start + count + i);
      e.id = '';
      recorder.record(e);
    }
    await recorder.stop();
    const through = count / ((performance.now() - t2) / 1000);
    return [
      [label, 'recordEvents, batches of 1000', String(count), fmt(direct, 0), load()],
      [label, 'EventRecorder record() + flush', String(count), fmt(through, 0), load()],
    ];
  } finally {
    await meta.close();
  }
}

async function growth(count: number): Promise<string[][]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'custody-bench-events-'));
  const file = path.join(dir, 'custody.db');
  try {
    const meta = await openMetaStore(file);
    const sizeOf = async () => (await stat(file)).size;
    const start = Date.now() - 30 * 86_400_000;
    const empty = await sizeOf();
    const t = performance.now();
    // a month of events, spread evenly: the rollups grow with the hours as a registry's do
    const step = (30 * 86_400_000) / count;
    for (let i = 0; i < count; i += 1000)
      await meta.insight.recordEvents(Array.from({ length: Math.min(1000, count - i) }, (_, j) => realistic(i + j, Math.floor(start + (i + j) * step))));
    const seconds = (performance.now() - t) / 1000;
    await meta.close();
    const db = new DatabaseSync(file);
    db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    const rollups = (db.prepare('select count(*) as n from usage_rollups').get() as { n: number }).n;
    const eventsBytes = (
      db.prepare("select sum(pgsize) as b from dbstat where name like 'usage_events%' or name like 'sqlite_autoindex_usage_events%'").get() as {
        b: number | null;
      }
    ).b;
    db.close();
    const grown = (await sizeOf()) - empty;
    return [
      ['events seeded', String(count), `in ${fmt(seconds, 1)} s (${fmt(count / seconds, 0)}/s)`],
      ['database growth', `${fmt(grown / 1048576, 1)} MiB`, `${fmt(grown / count, 0)} B/event, ${fmt(((grown / count) * 1e6) / 1048576, 0)} MiB per million`],
      ['of which the events table and its indexes', eventsBytes === null ? '-' : `${fmt(eventsBytes / 1048576, 1)} MiB`, ''],
      ['rollup rows', String(rollups), ''],
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const busy = startBusyLoops(Number(args.load));
try {
  console.log(`load average at start: ${load()}${Number(args.load) ? ` (+${args.load} busy loops)` : ''}`);
  if (!args.only || args.only === 'path') {
    const [rows, summary] = await pathBenchmark();
    console.log(`\nEvents on against events off, paired rounds (ABBA), server CPU per operation from /proc`);
    console.log(table(rows));
    console.log(`\n${table(summary)}`);
  }
  if (!args.only || args.only === 'ingest') {
    const dir = await mkdtemp(path.join(tmpdir(), 'custody-bench-ingest-'));
    try {
      const rows = [['database', 'how', 'events', 'events/s', 'load'], ...(await ingest(path.join(dir, 'custody.db'), 'SQLite', 200_000))];
      if (args.postgres) rows.push(...(await ingest(args.postgres, 'PostgreSQL', 200_000)));
      console.log(`\nIngest`);
      console.log(table(rows));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  if (!args.only || args.only === 'growth') {
    const rows = await growth(Number(args.events));
    console.log(`\nDatabase growth (SQLite, a month of realistic events)`);
    console.log(table([['', '', ''], ...rows]));
  }
  console.log(`\nload average at end: ${load()}`);
} finally {
  busy.stop();
}
