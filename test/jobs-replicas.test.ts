/**
 * The periodic jobs across replicas (issue 16): three `custody serve` processes on one PostgreSQL
 * database and one blob directory, every job on a one-second interval. Between two scrapes of
 * /metrics, each job's runs added up over the three (custody_scheduled_job_runs_total) equal the
 * intervals that passed, not three times that. Then garbage collection is made slow (many blobs
 * to sweep, a small batch, requests that make it rest) and the replica running it is SIGKILLed
 * while it holds the job's lease: nobody runs the job until that lease expires, then another
 * replica takes it over and resumes the interrupted collection to its end; the other jobs go on
 * once per interval on the two left.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { pushBlob, request } from './helpers/http.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { startProcess, tempDir, type ProcessServer } from './helpers/server.ts';

const havePostgres = await postgresAvailable();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const intervalMs = 1000;
const leaseMs = 3000;
/** every job on a one-second interval (upload expiry runs every expireAfterSeconds / 2; TUF every timestampExpirySeconds / 4) */
const config = {
  uploads: { expireAfterSeconds: 2 },
  tuf: { timestampExpirySeconds: 4 },
  jobs: { leaseSeconds: leaseMs / 1000, pruneSeconds: 1 },
  lifecycle: {
    // grace 0: blobs no manifest names are garbage at once; one row per batch, and while requests
    // come a collection works 5 % of the time: a run over a few hundred rows lasts many seconds
    gc: { graceSeconds: 0, intervalSeconds: 1, batchSize: 1, heartbeatSeconds: 0.5, busyShare: 0.05 },
    retention: { intervalSeconds: 1 },
  },
  insight: { metrics: { access: 'open' }, cost: { sampleSeconds: 1, budgetCheckSeconds: 1 } },
};
const jobs = ['upload-expiry', 'audit-prune', 'policy-prune', 'events-prune', 'webhook-prune', 'tuf-refresh', 'gc', 'retention', 'cost-sample', 'cost-check'];

/** Each job's runs on one replica, from its /metrics. */
async function runsOf(r: ProcessServer): Promise<Map<string, number>> {
  const reply = await request(r.url, '/metrics');
  expect(reply.status).toBe(200);
  const runs = new Map<string, number>();
  for (const m of reply.body.toString().matchAll(/^custody_scheduled_job_runs_total\{job="([a-z-]+)"\} (\d+)$/gm)) runs.set(m[1]!, Number(m[2]));
  return runs;
}

interface Totals {
  /** when the scrapes began and when the last ended: each replica's figures are from between the two */
  from: number;
  to: number;
  runs: Map<string, number>;
}

/** Each job's runs added up over the replicas. */
async function totals(replicas: ProcessServer[]): Promise<Totals> {
  const from = Date.now();
  const each = await Promise.all(replicas.map(runsOf));
  const runs = new Map<string, number>();
  for (const job of jobs)
    runs.set(
      job,
      each.reduce((sum, r) => sum + (r.get(job) ?? 0), 0),
    );
  return { from, to: Date.now(), runs };
}

const intervalOf = (t: number) => Math.floor(t / intervalMs);

/**
 * Per job, the runs between two scrapes, and the intervals begun between them: at least those
 * between the end of the first and the start of the second, at most those between its start and
 * the second's end (one more each way: a run comes a moment after its interval begins).
 */
function compare(before: Totals, after: Totals, only: string[] = jobs) {
  const intervals = { min: intervalOf(after.from) - intervalOf(before.to) - 1, max: intervalOf(after.to) - intervalOf(before.from) + 1 };
  return { intervals, runs: Object.fromEntries(only.map((job) => [job, (after.runs.get(job) ?? 0) - (before.runs.get(job) ?? 0)])) };
}

function expectOncePerInterval(counted: ReturnType<typeof compare>): void {
  const { min, max } = counted.intervals;
  for (const [job, runs] of Object.entries(counted.runs)) {
    expect(runs, `${job}: ${runs} runs in ${min + 1}-${max - 1} intervals`).toBeGreaterThanOrEqual(min);
    expect(runs, `${job}: ${runs} runs in ${min + 1}-${max - 1} intervals`).toBeLessThanOrEqual(max);
  }
}

const pidOf = (holder: string) => Number(holder.split(':')[1]);

describe.runIf(havePostgres)('periodic jobs across three replicas', () => {
  const replicas: ProcessServer[] = [];
  let db: pg.Client | undefined;
  afterAll(async () => {
    for (const r of replicas) await r.kill('SIGKILL');
    await db?.end();
    await dropDatabases();
  });

  it('runs each job once per interval between them, and takes over the job of a replica killed holding its lease', { timeout: 180_000 }, async () => {
    const databaseUrl = await freshDatabase();
    const shared = await tempDir('custody-jobs-');
    const configFile = path.join(shared, 'custody.yaml');
    // YAML is a superset of JSON
    await writeFile(configFile, JSON.stringify(config));
    const env = { CUSTODY_DATABASE_URL: databaseUrl, CUSTODY_STORAGE_URL: path.join(shared, 'blobs') };
    const dataDirs = await Promise.all([0, 1, 2].map(() => tempDir('custody-jobs-replica-')));
    const started = await Promise.allSettled(
      dataDirs.map(async (dataDir, i) => (replicas[i] = await startProcess({ dataDir, env, args: ['--config', configFile] }))),
    );
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    await sleep(1500);

    // 1. Once per interval between the three
    const before = await totals(replicas);
    await sleep(8000);
    const after = await totals(replicas);
    const counted = compare(before, after);
    console.log(`runs per job in ${counted.intervals.min + 1}-${counted.intervals.max - 1} intervals, three replicas: ${JSON.stringify(counted.runs)}`);
    expectOncePerInterval(counted);

    // 2. A collection long enough to be killed in: blobs that no manifest names, and requests
    // to every replica so that its pacer rests
    let busy = true;
    const traffic = (async () => {
      while (busy) {
        await Promise.all(
          replicas.filter((r) => r.child.exitCode === null && r.child.signalCode === null).map((r) => request(r.url, '/healthz').catch(() => {})),
        );
        await sleep(20);
      }
    })();
    for (let i = 0; i < 150; i++) await pushBlob(replicas[i % 3]!.url, 'jobs/app', `garbage ${i} ${randomBytes(8).toString('hex')}`);
    type Row = { id: string; owner: string; phase: string; resumed: number; state: string };
    let caught: { run: Row; holder: string } | undefined;
    for (const until = Date.now() + 30_000; !caught && Date.now() < until; await sleep(20)) {
      const run = (await db.query<Row>("select id, owner, phase, resumed, state from gc_runs where state = 'running' and dry_run = 0")).rows[0];
      const lease = (await db.query<{ holder: string; expires_at: number }>("select holder, expires_at from job_leases where name = 'gc'")).rows[0];
      // in its sweeps, with hundreds of rows to go, and run under the job's lease by the same process
      if (run && (run.phase === 'links' || run.phase === 'blobs') && lease && pidOf(lease.holder) === pidOf(run.owner) && Number(lease.expires_at) > Date.now())
        caught = { run, holder: lease.holder };
    }
    expect(caught, 'a collection running under the gc lease').toBeDefined();
    const victim = replicas.findIndex((r) => r.child.pid === pidOf(caught!.holder));
    expect(victim).toBeGreaterThanOrEqual(0);
    const killedRuns = await runsOf(replicas[victim]!);
    expect(await replicas[victim]!.kill('SIGKILL')).toBeNull();
    const killedAt = Date.now();
    const survivors = replicas.filter((_, i) => i !== victim);
    const survivorsBefore = await totals(survivors);
    // dead, it renews nothing: its lease ends where it is now
    const dead = (await db.query<{ holder: string; expires_at: number }>("select holder, expires_at from job_leases where name = 'gc'")).rows[0]!;
    expect(dead.holder).toBe(caught!.holder);
    const deadUntil = Number(dead.expires_at);
    expect(deadUntil).toBeGreaterThan(killedAt);
    expect(deadUntil).toBeLessThanOrEqual(killedAt + leaseMs + 100);

    // taken over by another replica, once the dead one's lease expired
    let taken: { holder: string; expires_at: number } | undefined;
    for (const until = Date.now() + 20_000; !taken && Date.now() < until; await sleep(10)) {
      // the runs first, then the lease: a lease still the dead one's after the runs were read was
      // its at that read too, so no survivor had taken the job yet (the other order races a
      // takeover between the two reads)
      const runs = (await totals(survivors)).runs.get('gc');
      const row = (await db.query<{ holder: string; expires_at: number }>("select holder, expires_at from job_leases where name = 'gc'")).rows[0];
      if (row && row.holder !== caught!.holder) taken = row;
      // until then, nobody else ran the job
      else expect(runs).toBe(survivorsBefore.runs.get('gc'));
    }
    const tookOverAt = Date.now();
    expect(taken, 'another replica took the gc lease').toBeDefined();
    expect(survivors.map((r) => r.child.pid)).toContain(pidOf(taken!.holder));
    // taken at expiry or after: while running, a lease reaches leaseMs past its last renewal
    expect(Number(taken!.expires_at) - leaseMs).toBeGreaterThanOrEqual(deadUntil);
    console.log(
      `gc lease: the killed replica's ran ${deadUntil - killedAt} ms past the kill; another replica had it ${tookOverAt - killedAt} ms after the kill`,
    );
    // the interrupted collection: resumed by the new holder, and finished once the requests stop
    await expect
      .poll(async () => (await db!.query<Row>('select owner, resumed from gc_runs where id = $1', [caught!.run.id])).rows[0], { timeout: 10_000 })
      .toMatchObject({ resumed: 1 });
    expect(pidOf((await db.query<Row>('select owner from gc_runs where id = $1', [caught!.run.id])).rows[0]!.owner)).toBe(pidOf(taken!.holder));
    busy = false;
    await traffic;
    await expect
      .poll(async () => (await db!.query<Row>('select state from gc_runs where id = $1', [caught!.run.id])).rows[0]?.state, { timeout: 30_000, interval: 200 })
      .toBe('done');
    // and the next collections (every second again, on the two left) sweep what was pushed after it began
    await expect
      .poll(async () => Number((await db!.query<{ n: string }>('select count(*) as n from repo_blobs')).rows[0]!.n), { timeout: 30_000, interval: 200 })
      .toBe(0);
    expect(killedRuns.get('gc')).toBeGreaterThan(0);

    // 3. The two left run every other job once per interval between them
    const twoBefore = await totals(survivors);
    await sleep(5000);
    const twoAfter = await totals(survivors);
    const others = jobs.filter((j) => j !== 'gc');
    const counted2 = compare(twoBefore, twoAfter, others);
    console.log(`runs per job in ${counted2.intervals.min + 1}-${counted2.intervals.max - 1} intervals, two replicas: ${JSON.stringify(counted2.runs)}`);
    expectOncePerInterval(counted2);
    for (const r of survivors) expect(r.child.exitCode).toBeNull();
  });
});
