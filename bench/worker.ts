/**
 * One client thread of the benchmark. A single Node thread hashing every byte it pulls could not
 * keep up with the server, so the load comes from as many threads as the machine has cores; each
 * holds its own share of the blobs and its own connections.
 */
import { randomBytes } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { Pool } from 'undici';
import { paceBufferGc } from '../src/server/buffer-gc.ts';
import { getManifest, getToken, makeBlobs, pullBlob, pushBlob, type Auth, type Blob } from './client.ts';

export type Command =
  | { op: 'blobs'; sizes: number[] }
  | { op: 'push' | 'pull'; base: string; repo: string; concurrency: number; auth: Auth }
  | { op: 'manifest'; base: string; repo: string; digest: string; concurrency: number; seconds: number; auth: Auth }
  | { op: 'token'; base: string; path: string; concurrency: number; seconds: number; auth: Auth }
  | { op: 'close' };

export type Reply = { latencies: number[] } | { error: string };

// A client pulling hundreds of MB/s gets a fresh 64 KiB buffer per socket read, as the server does
// on push, so it paces its collections the same way (pullBlob reports the bytes); without that,
// V8's full collections took a sixth of the client's CPU (1.35-1.55 against 1.13-1.17
// CPU-seconds per GiB pulled), CPU the servers then lacked on a 2-core machine. The gc() it needs
// comes with the bin's node flags, which run.ts starts this process with (node-flags.ts).
const pacer = paceBufferGc((reason) => console.error(reason));

let blobs: Blob[] = [];
const pools = new Map<string, Pool>();
const poolFor = (base: string, connections: number) => {
  const key = `${base} ${connections}`;
  let pool = pools.get(key);
  if (!pool) pools.set(key, (pool = new Pool(base, { connections, pipelining: 1 })));
  return pool;
};

/** Runs `task` over the items with at most `concurrency` at once; returns each latency in ms. */
async function pooled<T>(items: T[], concurrency: number, task: (item: T) => Promise<void>): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        const t = performance.now();
        await task(item);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return latencies;
}

async function loopFor(seconds: number, concurrency: number, task: () => Promise<void>): Promise<number[]> {
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now();
        await task();
        latencies.push(performance.now() - t);
      }
    }),
  );
  return latencies;
}

async function run(cmd: Command): Promise<number[]> {
  switch (cmd.op) {
    case 'blobs':
      blobs = cmd.sizes.flatMap((size) => makeBlobs(1, size, randomBytes));
      return [];
    case 'push': {
      const pool = poolFor(cmd.base, cmd.concurrency);
      return pooled(blobs, cmd.concurrency, (b) => pushBlob(pool, cmd.base, cmd.repo, b, cmd.auth));
    }
    case 'pull': {
      const pool = poolFor(cmd.base, cmd.concurrency);
      return pooled(blobs, cmd.concurrency, (b) => pullBlob(pool, cmd.repo, b, cmd.auth, pacer?.streamed));
    }
    case 'manifest': {
      const pool = poolFor(cmd.base, cmd.concurrency);
      return loopFor(cmd.seconds, cmd.concurrency, () => getManifest(pool, cmd.repo, cmd.digest, cmd.auth));
    }
    case 'token': {
      const pool = poolFor(cmd.base, cmd.concurrency);
      return loopFor(cmd.seconds, cmd.concurrency, () => getToken(pool, cmd.path, cmd.auth));
    }
    case 'close':
      await Promise.all([...pools.values()].map((p) => p.close()));
      pools.clear();
      blobs = [];
      return [];
  }
}

parentPort?.on('message', (cmd: Command) => {
  run(cmd).then(
    (latencies) => parentPort?.postMessage({ latencies } satisfies Reply),
    (err: unknown) => parentPort?.postMessage({ error: err instanceof Error ? err.message : String(err) } satisfies Reply),
  );
});
