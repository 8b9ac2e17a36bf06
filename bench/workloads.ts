/**
 * The workloads, run from client threads (see worker.ts) so that the client is not what limits
 * the figures: blobs pushed then pulled, and manifest GETs by tag for a fixed time.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Pool } from 'undici';
import { pushImage } from './client.ts';
import { summarize, type Result } from './stats.ts';
import type { Command, Reply } from './worker.ts';

/** Splits n into `parts` nearly equal whole shares. */
const shares = (n: number, parts: number) => Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));

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
            w.once('message', resolve);
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
  await clients.run((i) => ({ op: 'blobs', count: counts[i] ?? 0, size: plan.size }));
  return clients;
}

/** Pushes every blob to the registry at `base`, then pulls each back; [push, pull]. */
export async function blobWorkload(clients: Clients, base: string, plan: BlobPlan): Promise<[Result, Result]> {
  const repo = `bench/${plan.label.replace(/\W+/g, '').toLowerCase()}-${Date.now()}`;
  const loops = shares(plan.concurrency, clients.size);
  const bytes = plan.count * plan.size;
  const push = await clients.run((i) => ({ op: 'push', base, repo, concurrency: loops[i] ?? 1 }));
  const pull = await clients.run((i) => ({ op: 'pull', base, repo, concurrency: loops[i] ?? 1 }));
  return [summarize(`${plan.label} push`, push.latencies, push.seconds, bytes), summarize(`${plan.label} pull`, pull.latencies, pull.seconds, bytes)];
}

/** Pushes one small image, then GETs its manifest by tag from `concurrency` loops for `seconds`. */
export async function manifestWorkload(base: string, concurrency: number, seconds: number): Promise<Result> {
  const repo = `bench/manifest-${Date.now()}`;
  const pool = new Pool(base);
  const digest = await pushImage(pool, base, repo, randomBytes).finally(() => pool.close());
  const clients = new Clients(concurrency);
  try {
    const loops = shares(concurrency, clients.size);
    const { latencies, seconds: took } = await clients.run((i) => ({ op: 'manifest', base, repo, digest, concurrency: loops[i] ?? 1, seconds }));
    return summarize('manifest GET by tag', latencies, took);
  } finally {
    await clients.close();
  }
}
