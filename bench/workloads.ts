/**
 * The workloads, run from client threads (see worker.ts) so that the client is not what limits
 * the figures: blobs pushed then pulled, and manifest GETs by tag for a fixed time.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Pool } from 'undici';
import { bearerAuth, pushImage, type Auth } from './client.ts';
import { summarize, type Result } from './stats.ts';
import type { Command, Reply } from './worker.ts';

/** Splits n into `parts` nearly equal whole shares. */
export const shares = (n: number, parts: number) => Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));

export class Clients {
  private readonly workers: Worker[];

  /** Starts one client thread per core, or fewer when the concurrency is lower. */
  constructor(concurrency: number) {
    const count = Math.max(1, Math.min(concurrency, availableParallelism()));
    this.workers = Array.from({ length: count }, () => new Worker(new URL('./worker.ts', import.meta.url)));
  }

  get size(): number {
    return this.workers.length;
  }

  /** Sends each thread its command; resolves with all latencies and the wall time in seconds. */
  async run(commandFor: (i: number) => Command): Promise<{ latencies: number[]; seconds: number }> {
    const start = performance.now();
    const replies = await Promise.all(
      this.workers.map(
        (w, i) =>
          new Promise<Reply>((resolve, reject) => {
            w.once('message', (reply: Reply) => {
              w.off('error', reject);
              resolve(reply);
            });
            w.once('error', reject);
            w.postMessage(commandFor(i));
          }),
      ),
    );
    const seconds = (performance.now() - start) / 1000;
    const failed = replies.find((r): r is { error: string } => 'error' in r);
    if (failed) throw new Error(failed.error);
    return { latencies: replies.flatMap((r) => ('latencies' in r ? r.latencies : [])), seconds };
  }

  async close(): Promise<void> {
    await this.run(() => ({ op: 'close' }));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

export interface BlobPlan {
  label: string;
  size: number;
  count: number;
  concurrency: number;
}

/** Makes the blobs in the client threads; the same bytes then go to every registry. */
export async function prepareBlobs(plan: BlobPlan): Promise<Clients> {
  const clients = new Clients(plan.concurrency);
  const counts = shares(plan.count, clients.size);
  await clients.run((i) => ({ op: 'blobs', sizes: Array<number>(counts[i] ?? 0).fill(plan.size) }));
  return clients;
}

/** How the client talks to a registry: its URL and, for one that wants them, admin credentials. */
export interface Registry {
  url: string;
  /** Basic credentials of an account that may do everything; none for an open registry */
  credentials?: Auth;
}

/** What a docker client would send for a repository: a Bearer token from /token, or nothing. */
export async function authFor(registry: Registry, scopes: string[]): Promise<Auth> {
  if (!registry.credentials) return {};
  const pool = new Pool(registry.url);
  try {
    return await bearerAuth(pool, registry.credentials, scopes);
  } finally {
    await pool.close();
  }
}

/** Wraps one timed phase of a workload, e.g. to sample the server's memory and CPU while it runs. */
export type Around = (run: () => Promise<Result>) => Promise<Result>;
const unwrapped: Around = (run) => run();

/** Pushes every blob to the registry, then pulls each back; [push, pull]. */
export async function blobWorkload(clients: Clients, registry: Registry, plan: BlobPlan, around: Around = unwrapped): Promise<[Result, Result]> {
  const base = registry.url;
  const repo = `bench/${plan.label.replace(/\W+/g, '').toLowerCase()}-${Date.now()}`;
  const auth = await authFor(registry, [`repository:${repo}:pull,push`]);
  const loops = shares(plan.concurrency, clients.size);
  const bytes = plan.count * plan.size;
  const push = await around(async () => {
    const { latencies, seconds } = await clients.run((i) => ({ op: 'push', base, repo, concurrency: loops[i] ?? 1, auth }));
    return summarize(`${plan.label} push`, latencies, seconds, bytes);
  });
  const pull = await around(async () => {
    const { latencies, seconds } = await clients.run((i) => ({ op: 'pull', base, repo, concurrency: loops[i] ?? 1, auth }));
    return summarize(`${plan.label} pull`, latencies, seconds, bytes);
  });
  return [push, pull];
}

/**
 * Pushes one small image, then GETs its manifest by tag from `concurrency` loops for `seconds`.
 * `as`: 'anonymous' pulls without credentials (on Custody from a namespace that allows anonymous
 * read), 'bearer' with a token from /token as docker does.
 */
export async function manifestWorkload(registry: Registry, concurrency: number, seconds: number, as: 'anonymous' | 'bearer' = 'anonymous'): Promise<Result> {
  const base = registry.url;
  const namespace = as === 'anonymous' ? 'benchpublic' : 'bench';
  const repo = `${namespace}/manifest-${Date.now()}`;
  if (as === 'anonymous' && registry.credentials) await allowAnonymousRead(registry, namespace);
  const writer = await authFor(registry, [`repository:${repo}:pull,push`]);
  const pool = new Pool(base);
  const digest = await pushImage(pool, base, repo, randomBytes, writer).finally(() => pool.close());
  const auth = as === 'bearer' ? await authFor(registry, [`repository:${repo}:pull`]) : {};
  const clients = new Clients(concurrency);
  try {
    const loops = shares(concurrency, clients.size);
    const { latencies, seconds: took } = await clients.run((i) => ({ op: 'manifest', base, repo, digest, concurrency: loops[i] ?? 1, seconds, auth }));
    return summarize(as === 'anonymous' ? 'manifest GET by tag' : 'manifest GET by tag, bearer', latencies, took);
  } finally {
    await clients.close();
  }
}

/** GET /token with Basic credentials for one repository scope, as `docker login` and pulls do. */
export async function tokenWorkload(registry: Registry, concurrency: number, seconds: number): Promise<Result> {
  if (!registry.credentials) throw new Error('the token workload needs a registry with credentials');
  const path = `/token?service=custody&scope=${encodeURIComponent('repository:bench/app:pull,push')}`;
  const clients = new Clients(concurrency);
  try {
    const loops = shares(concurrency, clients.size);
    const { latencies, seconds: took } = await clients.run((i) => ({
      op: 'token',
      base: registry.url,
      path,
      concurrency: loops[i] ?? 1,
      seconds,
      auth: registry.credentials ?? {},
    }));
    return summarize('GET /token (Basic)', latencies, took);
  } finally {
    await clients.close();
  }
}

/** Custody only: lets anonymous callers pull from a namespace, through the management API. */
async function allowAnonymousRead(registry: Registry, namespace: string): Promise<void> {
  const res = await fetch(`${registry.url}/api/v1/namespaces/${namespace}`, {
    method: 'PUT',
    headers: { ...registry.credentials, 'content-type': 'application/json' },
    body: JSON.stringify({ anonymousRead: true }),
  });
  if (!res.ok) throw new Error(`PUT /api/v1/namespaces/${namespace}: ${res.status} ${(await res.text()).slice(0, 300)}`);
  // Each replica remembers role answers for a second.
  await new Promise((r) => setTimeout(r, 1100));
}
