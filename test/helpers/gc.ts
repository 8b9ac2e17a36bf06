/**
 * Garbage collection as tests drive it: a run started through /api/v1/gc and followed to its end,
 * and the blobs whose bytes an fs blob store holds (<root>/blobs/sha256/<2>/<hex>).
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { request } from './http.ts';

export interface GcCounts {
  manifests: number;
  links: number;
  blobs: number;
  bytes: number;
}

export interface GcRunView {
  id: string;
  state: 'running' | 'done' | 'failed';
  dryRun: boolean;
  phase: string;
  owner: string;
  resumed: number;
  startedAt: string;
  finishedAt: string | null;
  planned: GcCounts;
  done: GcCounts;
  error?: string;
}

export const noGarbage: GcCounts = { manifests: 0, links: 0, blobs: 0, bytes: 0 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** POST /api/v1/gc: the run started, or 409 when another is alive (here or on another replica). */
export async function startGc(base: string, dryRun: boolean): Promise<{ status: number; run?: GcRunView; body: string }> {
  const r = await request(base, '/api/v1/gc', { method: 'POST', body: JSON.stringify({ dryRun }), headers: { 'content-type': 'application/json' } });
  return { status: r.status, body: r.body.toString(), ...(r.status === 202 ? { run: r.json<GcRunView>() } : {}) };
}

export async function getGcRun(base: string, id: string): Promise<GcRunView> {
  const r = await request(base, `/api/v1/gc/runs/${id}`);
  if (r.status !== 200) throw new Error(`GET gc run ${id}: ${r.status} ${r.body.toString()}`);
  return r.json<GcRunView>();
}

/** Follows a run until it is no longer running. */
export async function finishGc(base: string, id: string, timeoutMs = 60_000): Promise<GcRunView> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const run = await getGcRun(base, id);
    if (run.state !== 'running') return run;
    if (Date.now() > until) throw new Error(`gc run ${id} still running after ${timeoutMs} ms: ${JSON.stringify(run)}`);
    await sleep(20);
  }
}

/** Starts a run (retrying while another is alive) and follows it to its end. */
export async function collect(base: string, dryRun: boolean, timeoutMs = 60_000): Promise<GcRunView> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const started = await startGc(base, dryRun);
    if (started.run) return finishGc(base, started.run.id, Math.max(1000, until - Date.now()));
    if (started.status !== 409) throw new Error(`POST /api/v1/gc: ${started.status} ${started.body}`);
    if (Date.now() > until) throw new Error(`no gc run could start in ${timeoutMs} ms: ${started.body}`);
    await sleep(50);
  }
}

/** The digests whose bytes an fs blob store rooted at `root` holds, each checked against its content. */
export async function storedBlobs(root: string): Promise<{ digests: Set<string>; corrupt: string[] }> {
  const dir = path.join(root, 'blobs', 'sha256');
  const digests = new Set<string>();
  const corrupt: string[] = [];
  let prefixes: string[];
  try {
    prefixes = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { digests, corrupt };
    throw err;
  }
  for (const prefix of prefixes) {
    for (const hex of await readdir(path.join(dir, prefix))) {
      const digest = `sha256:${hex}`;
      digests.add(digest);
      const actual = createHash('sha256')
        .update(await readFile(path.join(dir, prefix, hex)))
        .digest('hex');
      if (actual !== hex || !hex.startsWith(prefix)) corrupt.push(digest);
    }
  }
  return { digests, corrupt };
}
