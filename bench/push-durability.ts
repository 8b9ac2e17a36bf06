/**
 * Small pushes with storage.fsync on, compared across builds: what a durability change costs.
 *
 *   node bench/push-durability.ts --checkout before=/tmp/a --checkout after=/tmp/b [--rounds 5]
 *        [--count 2000] [--concurrency 8] [--busy 1] [--env after:UV_THREADPOOL_SIZE=16] [--json FILE]
 *
 * Each --checkout is a built copy of Custody (a `git worktree` with `npm run build` done); one
 * server per checkout runs at the same time, each on its own temporary data directory with
 * `CUSTODY_STORAGE_FSYNC=true`. Every round pushes fresh 4 KiB blobs (POST, PATCH, PUT ?digest=,
 * as docker does, at `--concurrency`) to each server in turn, the order rotating from round to
 * round, so that a machine whose speed drifts moves every build alike; each build's figure is the
 * median round, and the ratio to the first build is taken round by round. `--busy N` keeps N
 * other processes spinning on the CPU for the whole run, for figures on a loaded machine.
 * `--env LABEL:NAME=VALUE` sets an environment variable for one build's server only; the same
 * directory may be given twice under two labels, to compare settings of one build.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { basicAuth, bearerAuth, type Auth } from './client.ts';
import { freePort } from './servers.ts';
import { summarize, table } from './stats.ts';
import { prepareBlobs } from './workloads.ts';

const { values: args } = parseArgs({
  options: {
    checkout: { type: 'string', multiple: true },
    rounds: { type: 'string', default: '5' },
    count: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    busy: { type: 'string', default: '0' },
    env: { type: 'string', multiple: true },
    json: { type: 'string' },
  },
});

const admin = { username: 'admin', password: 'bench-admin-password' };
const rounds = Number(args.rounds);
const plan = { label: '4 KiB', size: 4096, count: Number(args.count), concurrency: Number(args.concurrency) };

interface Build {
  label: string;
  url: string;
  child: ChildProcess;
  dataDir: string;
  opsPerSec: number[];
}

/** --env LABEL:NAME=VALUE, per label */
function envFor(label: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of args.env ?? []) {
    const m = /^([^:]+):([^=]+)=(.*)$/.exec(e);
    if (!m) throw new Error(`--env LABEL:NAME=VALUE, not ${e}`);
    if (m[1] === label) env[m[2] as string] = m[3] as string;
  }
  return env;
}

async function start(label: string, checkout: string): Promise<Build> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'custody-bench-durability-'));
  const port = await freePort();
  const child = spawn(path.join(checkout, 'bin/custody.js'), ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    env: {
      ...process.env,
      PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
      CUSTODY_LOG_LEVEL: 'warn',
      CUSTODY_ADMIN_PASSWORD: admin.password,
      CUSTODY_STORAGE_FSYNC: 'true',
      ...envFor(label),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${label}: the server exited with ${child.exitCode}`);
    try {
      if ([200, 401].includes((await fetch(`${url}/v2/`)).status)) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${label}: the server did not answer in 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { label, url, child, dataDir, opsPerSec: [] };
}

async function stop(build: Build): Promise<void> {
  if (build.child.exitCode === null) {
    const exited = new Promise((r) => build.child.once('exit', r));
    build.child.kill('SIGTERM');
    await exited;
  }
  await rm(build.dataDir, { recursive: true, force: true });
}

async function tokenFor(build: Build, repo: string): Promise<Auth> {
  const pool = new Pool(build.url);
  try {
    return await bearerAuth(pool, basicAuth(admin.username, admin.password), [`repository:${repo}:pull,push`]);
  } finally {
    await pool.close();
  }
}

/** Pushes the clients' blobs to one build; returns pushes per second. */
async function push(clients: Awaited<ReturnType<typeof prepareBlobs>>, build: Build, tag: string): Promise<number> {
  const repo = `bench/durability-${tag}`;
  const auth = await tokenFor(build, repo);
  const shares = Array.from({ length: clients.size }, (_, i) => Math.floor(plan.concurrency / clients.size) + (i < plan.concurrency % clients.size ? 1 : 0));
  const { latencies, seconds } = await clients.run((i) => ({ op: 'push', base: build.url, repo, concurrency: shares[i] ?? 1, auth }));
  return summarize('push', latencies, seconds).opsPerSec;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const checkouts = (args.checkout ?? []).map((c) => {
  const eq = c.indexOf('=');
  if (eq < 1) throw new Error(`--checkout LABEL=DIR, not ${c}`);
  return { label: c.slice(0, eq), dir: path.resolve(c.slice(eq + 1)) };
});
if (checkouts.length === 0) throw new Error('give at least one --checkout LABEL=DIR');

const spinners = Array.from({ length: Number(args.busy) }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
const builds: Build[] = [];
try {
  for (const c of checkouts) builds.push(await start(c.label, c.dir));
  process.stderr.write('warming up…\n');
  {
    const clients = await prepareBlobs({ ...plan, count: 300 });
    try {
      for (const b of builds) await push(clients, b, 'warm-up');
    } finally {
      await clients.close();
    }
  }
  const ratios: number[][] = builds.map(() => []);
  for (let round = 0; round < rounds; round++) {
    process.stderr.write(
      `round ${round + 1} of ${rounds}: ${plan.count} × 4 KiB at concurrency ${plan.concurrency}${spinners.length ? `, ${spinners.length} busy process(es)` : ''}…\n`,
    );
    const clients = await prepareBlobs(plan);
    try {
      const order = builds.map((_, i) => builds[(i + round) % builds.length] as Build);
      for (const b of order) b.opsPerSec.push(await push(clients, b, `r${round}`));
    } finally {
      await clients.close();
    }
    builds.forEach((b, i) => ratios[i]!.push(b.opsPerSec[round]! / builds[0]!.opsPerSec[round]!));
  }
  const rows = [['build', 'pushes/s (median)', 'rounds', `ratio to ${builds[0]!.label} (median of rounds)`]];
  builds.forEach((b, i) =>
    rows.push([b.label, median(b.opsPerSec).toFixed(1), b.opsPerSec.map((x) => x.toFixed(0)).join(' '), `${median(ratios[i]!).toFixed(3)}×`]),
  );
  console.log(`\n4 KiB pushes with storage.fsync on${spinners.length ? `, ${spinners.length} busy process(es)` : ''}:\n${table(rows)}\n`);
  if (args.json)
    await writeFile(
      args.json,
      JSON.stringify({ plan, busy: spinners.length, builds: builds.map((b, i) => ({ label: b.label, opsPerSec: b.opsPerSec, ratios: ratios[i] })) }, null, 2),
    );
} finally {
  for (const s of spinners) s.kill('SIGKILL');
  for (const b of builds) await stop(b);
}
