/**
 * SIGKILL in the middle of a sweep (issue 14): a server holding thousands of unreferenced blobs is
 * killed while its collection deletes them, then started again on the same data directory.
 * Nothing referenced is lost, the restarted process takes the interrupted run over (same run,
 * resumed) and finishes it, and then nothing unreferenced is left: a dry run plans nothing, and
 * the blob store holds exactly the bytes of the blobs the surviving manifests name.
 */
import { rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, describe, expect, it } from 'vitest';
import { finishGc, getGcRun, noGarbage, startGc, storedBlobs, collect } from './helpers/gc.ts';
import { pushBlob, putManifest, request, sha256, types } from './helpers/http.ts';
import { startProcess, tempDir, type ProcessServer } from './helpers/server.ts';

const running: ProcessServer[] = [];
afterAll(async () => {
  for (const s of running) await s.kill('SIGKILL');
});

/**
 * Two blobs per sweep transaction and a beat every 200 ms: the blob phase is long, and its
 * progress is recorded often. No rests between batches for the test's requests (busyShare 1): the
 * process is in its sweeps when it is killed, not waiting between them.
 */
const gc = { graceSeconds: 0, intervalSeconds: 0, batchSize: 2, heartbeatSeconds: 0.2, busyShare: 1 };
const garbageBlobs = 3000;

interface Image {
  repo: string;
  tag: string;
  body: string;
  blobs: string[];
}

/** Runs `task` over `items`, `width` at a time. */
async function inParallel<T>(items: T[], width: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await task(items[next++] as T);
    }),
  );
}

async function pushImage(base: string, repo: string, tag: string, layers: string[]): Promise<Image> {
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, tag });
  const blobs = [await pushBlob(base, repo, config)];
  for (const l of layers) blobs.push(await pushBlob(base, repo, l));
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: types.manifest,
    config: { mediaType: types.config, digest: blobs[0], size: config.length },
    layers: layers.map((l, i) => ({ mediaType: types.layer, digest: blobs[i + 1], size: Buffer.byteLength(l) })),
  });
  const r = await putManifest(base, repo, tag, body);
  if (r.status !== 201) throw new Error(`PUT ${repo}:${tag}: ${r.status} ${r.body.toString()}`);
  return { repo, tag, body, blobs };
}

/** Every image's manifest and blobs, as pushed; the problems found. */
async function unserved(base: string, images: Image[]): Promise<string[]> {
  const problems: string[] = [];
  for (const image of images) {
    const m = await request(base, `/v2/${image.repo}/manifests/${image.tag}`, { headers: { accept: types.manifest } });
    if (m.status !== 200 || m.body.toString() !== image.body) problems.push(`${image.repo}:${image.tag}: ${m.status}`);
    for (const digest of image.blobs) {
      const r = await request(base, `/v2/${image.repo}/blobs/${digest}`);
      if (r.status !== 200 || sha256(r.body) !== digest) problems.push(`${image.repo}@${digest}: ${r.status}`);
    }
  }
  return problems;
}

describe('SIGKILL in the middle of a sweep', () => {
  it('loses nothing referenced, and the restarted process finishes the interrupted run', { timeout: 240_000 }, async () => {
    const dataDir = await tempDir('custody-gc-crash-');
    const configFile = path.join(dataDir, 'custody.yaml');
    // YAML is a superset of JSON
    await writeFile(configFile, JSON.stringify({ storage: { fsync: false }, lifecycle: { gc } }));
    const args = ['--config', configFile];
    let server = await startProcess({ dataDir, args });
    running.push(server);

    // Kept: tagged images, a layer they all share, and one that is also unreferenced elsewhere.
    const images: Image[] = [];
    for (let i = 0; i < 10; i++) images.push(await pushImage(server.url, `keep/app${i % 3}`, `v${i}`, ['shared layer', `layer ${i}`, `more ${i}`]));
    await pushBlob(server.url, 'junk/loose', 'layer 3');
    // Garbage: blobs no manifest ever named, and the blobs of manifests deleted since.
    await inParallel(
      Array.from({ length: garbageBlobs }, (_, i) => i),
      8,
      async (i) => void (await pushBlob(server.url, `junk/r${i % 4}`, `unreferenced blob ${i}`)),
    );
    for (let i = 0; i < 40; i++) {
      const old = await pushImage(server.url, 'junk/old', `o${i}`, [`old layer ${i}`, 'shared layer']);
      const digest = sha256(old.body);
      expect((await request(server.url, `/v2/junk/old/manifests/${digest}`, { method: 'DELETE' })).status).toBe(202);
    }
    const referenced = new Set(images.flatMap((i) => i.blobs));
    expect((await storedBlobs(path.join(dataDir, 'blobs'))).digests.size).toBeGreaterThan(garbageBlobs);
    await new Promise((r) => setTimeout(r, 20)); // grace 0: what was written this millisecond is not yet before the cutoff

    // A run, killed once it has removed some of the blobs and not all; the process that takes it
    // over is killed the same way, up to three times.
    const started = await startGc(server.url, false);
    expect(started.status, started.body).toBe(202);
    const id = started.run?.id as string;
    const db = () => new DatabaseSync(path.join(dataDir, 'custody.db'), { readOnly: true });
    const file = (digest: string) => path.join(dataDir, 'blobs', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
    const kills: { seen: number; recorded: number; left: number; torn: number }[] = [];
    const killed = new Set<string>();
    let planned = noGarbage;
    for (let round = 0; round < 3; round++) {
      // progress made by this process: past what the last owner had recorded
      const from = kills.at(-1)?.recorded ?? 0;
      let seen = await getGcRun(server.url, id);
      while (seen.state === 'running' && !(seen.phase === 'blobs' && seen.done.blobs > from && !killed.has(seen.owner))) {
        await new Promise((r) => setTimeout(r, 5));
        seen = await getGcRun(server.url, id);
      }
      if (seen.state !== 'running') {
        expect(round, 'the first kill comes in the blob phase, before the run is done').toBeGreaterThan(0);
        break;
      }
      await server.kill('SIGKILL');
      killed.add(seen.owner);
      planned = seen.planned;
      expect(seen.done.blobs).toBeLessThan(seen.planned.blobs);

      // What the kill left: rows whose bytes went in the transaction it cut, and the rest still to do.
      const after = db();
      const left = after.prepare('select digest from blobs b where not exists (select 1 from repo_blobs l where l.digest = b.digest)').all() as {
        digest: string;
      }[];
      const run = after.prepare('select state, phase, done from gc_runs where id = ?').get(id) as { state: string; phase: string; done: string };
      after.close();
      expect(run).toMatchObject({ state: 'running', phase: 'blobs' });
      expect(left.length, 'the kill left blobs to sweep').toBeGreaterThan(0);
      const recorded = (JSON.parse(run.done) as { blobs: number }).blobs;
      kills.push({ seen: seen.done.blobs, recorded, left: left.length, torn: left.filter((b) => !existsSync(file(b.digest))).length });

      server = await startProcess({ dataDir, args });
      running.push(server);
      expect(await unserved(server.url, images), 'served after the restart').toEqual([]);
    }
    // The restarted process takes the run over once its heartbeat is three beats old, and finishes it.
    const resumed = await finishGc(server.url, id, 60_000);
    console.log(
      `SIGKILL mid-sweep: planned ${JSON.stringify(planned)}; ${kills.length} kills, at ${kills.map((k) => `${k.seen} blobs removed (${k.left} unlinked rows left, ${k.torn} of them with their bytes gone)`).join(', ')}; ` +
        `the run as finished: ${JSON.stringify(resumed.done)}, resumed ${resumed.resumed} times`,
    );
    expect(resumed).toMatchObject({ id, state: 'done', phase: 'done', resumed: kills.length });
    expect(killed.has(resumed.owner)).toBe(false);

    expect(await unserved(server.url, images), 'served after the resumed run').toEqual([]);
    expect((await collect(server.url, true)).planned, 'nothing left for another run').toEqual(noGarbage);
    const { digests: stored, corrupt } = await storedBlobs(path.join(dataDir, 'blobs'));
    expect(corrupt).toEqual([]);
    expect([...stored].sort()).toEqual([...referenced].sort());
    expect((await request(server.url, `/v2/junk/loose/blobs/${sha256('layer 3')}`, { method: 'HEAD' })).status).toBe(404);
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
});
