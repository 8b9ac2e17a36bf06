/**
 * GC under fire (issue 14): garbage collection runs back to back, with a grace period of one
 * second, while many clients push new images, push the same blobs and manifests again, mount
 * blobs across repositories, delete manifests, tags and blobs, and pull. Afterwards every
 * manifest acknowledged with a 201 and not deleted by the clients is served, with every blob it
 * names; and once the grace period has passed, one more run leaves nothing unreferenced: a dry
 * run's plan is empty and the blob store holds exactly the bytes of the blobs surviving manifests
 * name. On SQLite (one server), and on PostgreSQL with two replicas sharing the database and the
 * blob directory, clients on both and both collecting.
 *
 * A client may see a failure caused by the GC only where the grace period allows it: a manifest
 * PUT refused for a blob whose link is older than the grace period, an upload whose blob was
 * collected while it took longer than that, a blob DELETE of a link the GC removed. The ledger
 * below decides that from the requests' own times; every other failure, and any 5xx, fails the test.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collect, finishGc, noGarbage, startGc, storedBlobs, type GcRunView } from './helpers/gc.ts';
import { done, Ledger } from './helpers/ledger.ts';
import { request, sha256, types, type Reply, type RequestOptions } from './helpers/http.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { startInProcess, tempDir, type InProcessServer } from './helpers/server.ts';

const graceMs = 1000;
/** how long the clients push (CUSTODY_GC_FIRE_SECONDS to change it) */
const fireMs = Number(process.env.CUSTODY_GC_FIRE_SECONDS ?? 20) * 1000;
const workers = 24;
/** runs back to back and flat out: no rest between batches while requests are served (busyShare 1) */
const gcSettings = { graceSeconds: graceMs / 1000, intervalSeconds: 0, batchSize: 20, heartbeatSeconds: 1, busyShare: 1 };
const repos = ['fire/a', 'fire/b', 'fire/c', 'fire/d', 'tidy/a', 'tidy/b', 'tidy/c', 'tidy/d'];
/** `tidy` collects untagged manifests, `fire` does not */
const collecting = (repo: string) => repo.startsWith('tidy/');

const havePostgres = await postgresAvailable();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(Math.random() * xs.length)];

/** Readers and writers per key: the clients keep their own model exact (a push and a delete of one manifest never overlap). */
class Locks {
  private readonly held = new Map<string, { readers: number; writer: boolean; waiting: { write: boolean; go: () => void }[] }>();

  async hold<T>(keys: string[], write: boolean, body: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    for (const k of sorted) await this.lock(k, write);
    try {
      return await body();
    } finally {
      for (const k of sorted) this.unlock(k, write);
    }
  }

  private lock(key: string, write: boolean): Promise<void> {
    let l = this.held.get(key);
    if (!l) this.held.set(key, (l = { readers: 0, writer: false, waiting: [] }));
    const free = write ? !l.writer && l.readers === 0 : !l.writer;
    if (free && l.waiting.length === 0) {
      if (write) l.writer = true;
      else l.readers++;
      return Promise.resolve();
    }
    return new Promise((go) => l.waiting.push({ write, go }));
  }

  private unlock(key: string, write: boolean): void {
    const l = this.held.get(key);
    if (!l) return;
    if (write) l.writer = false;
    else l.readers--;
    for (let next = l.waiting[0]; next; next = l.waiting[0]) {
      if (next.write ? l.writer || l.readers > 0 : l.writer) break;
      l.waiting.shift();
      if (next.write) l.writer = true;
      else l.readers++;
      next.go();
    }
  }
}

interface Blob {
  digest: string;
  data: Buffer;
}

interface Image {
  repo: string;
  tag: string;
  digest: string;
  body: string;
  /** config first */
  blobs: Blob[];
  /** as the clients left it: never acknowledged, tagged, untagged (tag deleted or pushed by digest), deleted */
  state: 'never' | 'tagged' | 'untagged' | 'deleted';
}

/** Is this image to be served at the end? Untagged manifests go where the namespace collects them. */
const survives = (i: Image) => i.state === 'tagged' || (i.state === 'untagged' && !collecting(i.repo));

class Abort extends Error {}

function blob(data: Buffer | string): Blob {
  const buf = Buffer.from(data);
  return { digest: sha256(buf), data: buf };
}

function errorOf(r: Reply): { code?: string; detail?: { digest?: string } } {
  try {
    return r.json<{ errors: { code?: string; detail?: { digest?: string } }[] }>().errors[0] ?? {};
  } catch {
    return {};
  }
}

/** The clients, what they were told, and what they saw fail. */
class Fire {
  readonly bases: string[];
  readonly images: Image[] = [];
  readonly links = new Ledger();
  readonly touches = new Ledger();
  readonly locks = new Locks();
  /** digests linked by an acknowledged upload or mount, per repository (and not deleted by a client since) */
  readonly linked = new Map<string, Set<string>>(repos.map((r) => [r, new Set()]));
  readonly common = Array.from({ length: 24 }, (_, i) => blob(`common layer ${i} ${randomBytes(200 + i * 40).toString('hex')}`));
  readonly counts = new Map<string, number>();
  /** failures the grace period explains */
  readonly allowed = new Map<string, number>();
  readonly violations: string[] = [];
  readonly serverErrors: string[] = [];
  readonly unexpected: string[] = [];
  requests = 0;
  /** ms, the longest a request took */
  slowest = 0;

  constructor(bases: string[]) {
    this.bases = bases;
  }

  count(what: string, map = this.counts): void {
    map.set(what, (map.get(what) ?? 0) + 1);
  }

  async send(path: string, options: RequestOptions = {}, base = pick(this.bases) as string): Promise<Reply> {
    let r: Reply;
    const start = Date.now();
    try {
      r = await request(base, path, options);
      this.slowest = Math.max(this.slowest, Date.now() - start);
    } catch (err) {
      this.unexpected.push(`${options.method ?? 'GET'} ${path}: ${String(err)}`);
      throw new Abort();
    }
    this.requests++;
    if (r.status >= 500) {
      this.serverErrors.push(`${options.method ?? 'GET'} ${path} on ${base}: ${r.status} ${r.body.toString().slice(0, 300)}`);
      throw new Abort();
    }
    return r;
  }

  unexpectedReply(what: string, r: Reply): never {
    this.unexpected.push(`${what}: ${r.status} ${r.body.toString().slice(0, 300)}`);
    throw new Abort();
  }

  /** A blob into a repository as a client would: HEAD first (mostly), a mount from where it is (sometimes), else an upload. False: it was collected meanwhile (allowed). */
  async pushBlob(repo: string, b: Blob): Promise<boolean> {
    if (Math.random() < 0.7) {
      const head = await this.send(`/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' });
      if (head.status === 200) return true;
      if (head.status !== 404) this.unexpectedReply(`HEAD ${repo}@${b.digest}`, head);
    }
    const from = pick([...this.linked].filter(([r, ds]) => r !== repo && ds.has(b.digest)).map(([r]) => r));
    let location: string | undefined;
    if (from !== undefined && Math.random() < 0.6) {
      const [link, touch] = [this.links.begin(`${repo} ${b.digest}`), this.touches.begin(b.digest)];
      const r = await this.send(`/v2/${repo}/blobs/uploads/?mount=${b.digest}&from=${from}`, { method: 'POST' });
      done(link, r.status === 201);
      done(touch, r.status === 201);
      if (r.status === 201) {
        this.count('mounts');
        this.relinked(repo, b.digest);
        return true;
      }
      if (r.status !== 202) this.unexpectedReply(`mount ${b.digest} from ${from}`, r);
      this.count('mounts answered with an upload');
      location = r.headers.location;
    }
    return this.upload(repo, b, location);
  }

  private async upload(repo: string, b: Blob, location?: string): Promise<boolean> {
    const style = location ? pick(['put', 'patch'] as const) : pick(['post', 'post', 'put', 'patch'] as const);
    if (!location && style !== 'post') {
      const r = await this.send(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      if (r.status !== 202) this.unexpectedReply(`start upload in ${repo}`, r);
      location = r.headers.location;
    }
    if (style === 'patch') {
      const r = await this.send(location as string, { method: 'PATCH', body: b.data, headers: { 'content-type': 'application/octet-stream' } });
      if (r.status !== 202) this.unexpectedReply(`PATCH ${location}`, r);
    }
    const [link, touch] = [this.links.begin(`${repo} ${b.digest}`), this.touches.begin(b.digest)];
    const r =
      style === 'post'
        ? await this.send(`/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
            method: 'POST',
            body: b.data,
            headers: { 'content-type': 'application/octet-stream' },
          })
        : await this.send(`${location}?digest=${b.digest}`, {
            method: 'PUT',
            ...(style === 'put' ? { body: b.data, headers: { 'content-type': 'application/octet-stream' } } : {}),
          });
    done(link, r.status === 201);
    done(touch, r.status === 201);
    if (r.status === 201) {
      this.count('blob uploads');
      this.relinked(repo, b.digest);
      return true;
    }
    if (errorOf(r).code === 'BLOB_UPLOAD_INVALID') {
      // The blob's row went while the bytes were written: only when it was touched longer than the grace period ago.
      const bound = this.touches.boundAfter(b.digest, touch);
      if (bound < touch.end - graceMs) {
        this.count('upload: blob collected during a write longer than the grace period', this.allowed);
        return false;
      }
      this.violations.push(`upload of ${b.digest} to ${repo} refused as collected, though touched ${touch.end - bound} ms before its end`);
      throw new Abort();
    }
    return this.unexpectedReply(`upload ${b.digest} to ${repo} (${style})`, r);
  }

  /** Pushes an image's blobs and then its manifest, by tag or by digest. */
  async push(image: Image, byTag: boolean): Promise<void> {
    const keys = [`m ${image.repo} ${image.digest}`, ...image.blobs.map((b) => `b ${image.repo} ${b.digest}`)];
    await this.locks.hold(keys, false, async () => {
      for (const b of image.blobs) if (!(await this.pushBlob(image.repo, b))) return;
      const start = Date.now();
      const r = await this.send(`/v2/${image.repo}/manifests/${byTag ? image.tag : image.digest}`, {
        method: 'PUT',
        body: image.body,
        headers: { 'content-type': types.manifest },
      });
      const end = Date.now();
      if (r.status === 201) {
        if (r.headers['docker-content-digest'] !== image.digest) this.unexpectedReply(`PUT ${image.repo}:${image.tag} digest`, r);
        if (image.state === 'never') this.images.push(image);
        image.state = byTag || image.state === 'tagged' ? 'tagged' : 'untagged';
        this.count('manifests acknowledged');
        return;
      }
      const error = errorOf(r);
      const missing = error.detail?.digest;
      if (error.code === 'MANIFEST_BLOB_UNKNOWN' && missing !== undefined) {
        // The link went: only when it was made longer than the grace period before the PUT ended.
        const bound = this.links.boundAt(`${image.repo} ${missing}`, start);
        if (bound < end - graceMs) {
          this.count('manifest PUT: a blob link older than the grace period was collected', this.allowed);
          return;
        }
        this.violations.push(`PUT ${image.repo}:${image.tag} refused for ${missing}, linked at least ${end - bound} ms before the PUT ended`);
        throw new Abort();
      }
      this.unexpectedReply(`PUT ${image.repo}:${image.tag}`, r);
    });
  }

  /** A new image: a config of its own and 1-3 layers, shared ones, another repository's (mounted), or new. */
  newImage(worker: number, seq: number): Image {
    const repo = pick(repos) as string;
    const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, fire: randomBytes(8).toString('hex') }));
    const layers: Blob[] = [];
    for (let n = 1 + Math.floor(Math.random() * 3); layers.length < n;) {
      const roll = Math.random();
      const other = roll < 0.7 ? pick(this.images.filter((i) => i.repo !== repo)) : undefined;
      const layer =
        roll < 0.45 ? pick(this.common) : other ? pick(other.blobs.slice(1)) : blob(randomBytes(64 + Math.floor(Math.random() * 4000)).toString('base64'));
      if (layer && !layers.some((l) => l.digest === layer.digest)) layers.push(layer);
    }
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      config: { mediaType: types.config, digest: config.digest, size: config.data.length },
      layers: layers.map((l) => ({ mediaType: types.layer, digest: l.digest, size: l.data.length })),
    });
    return { repo, tag: `w${worker}-${seq}`, digest: sha256(body), body, blobs: [config, ...layers], state: 'never' };
  }

  async deleteManifest(): Promise<void> {
    const image = pick(this.images.filter(survives));
    if (!image) return;
    await this.locks.hold([`m ${image.repo} ${image.digest}`], true, async () => {
      if (!survives(image)) return;
      const r = await this.send(`/v2/${image.repo}/manifests/${image.digest}`, { method: 'DELETE' });
      if (r.status !== 202) return this.violated(`DELETE ${image.repo}@${image.digest} (${image.state})`, r);
      image.state = 'deleted';
      this.count('manifest deletes');
    });
  }

  async deleteTag(): Promise<void> {
    const image = pick(this.images.filter((i) => i.state === 'tagged'));
    if (!image) return;
    await this.locks.hold([`m ${image.repo} ${image.digest}`], true, async () => {
      if (image.state !== 'tagged') return;
      const r = await this.send(`/v2/${image.repo}/manifests/${image.tag}`, { method: 'DELETE' });
      if (r.status !== 202) return this.violated(`DELETE ${image.repo}:${image.tag}`, r);
      image.state = 'untagged';
      this.count('tag deletes');
    });
  }

  /** Notes an acknowledged link, as the newest of its repository's. */
  private relinked(repo: string, digest: string): void {
    const linked = this.linked.get(repo);
    linked?.delete(digest);
    linked?.add(digest);
  }

  /** Deletes a repository's link to a blob that no manifest the clients still have there names (one of the newest: the GC has not taken it yet). */
  async deleteBlob(): Promise<void> {
    const repo = pick(repos) as string;
    const named = (d: string) => this.images.some((i) => i.repo === repo && i.state !== 'deleted' && i.blobs.some((b) => b.digest === d));
    const digest = pick([...(this.linked.get(repo) ?? [])].filter((d) => !named(d)).slice(-5));
    if (!digest) return;
    await this.locks.hold([`b ${repo} ${digest}`], true, async () => {
      if (named(digest) || !this.linked.get(repo)?.has(digest)) return;
      const start = Date.now();
      const r = await this.send(`/v2/${repo}/blobs/${digest}`, { method: 'DELETE' });
      this.linked.get(repo)?.delete(digest);
      if (r.status === 202) return this.count('blob deletes');
      const bound = this.links.boundAt(`${repo} ${digest}`, start);
      if (r.status === 404 && bound < Date.now() - graceMs) return this.count('blob DELETE: the link was already collected', this.allowed);
      this.violated(`DELETE ${repo}@${digest}, linked at least ${Date.now() - bound} ms before`, r);
    });
  }

  async pull(): Promise<void> {
    const image = pick(this.images.filter(survives));
    if (!image) return;
    await this.locks.hold([`m ${image.repo} ${image.digest}`], false, async () => {
      if (!survives(image)) return;
      const ref = image.state === 'tagged' && Math.random() < 0.7 ? image.tag : image.digest;
      const m = await this.send(`/v2/${image.repo}/manifests/${ref}`, { headers: { accept: types.manifest } });
      if (m.status !== 200 || m.body.toString() !== image.body) return this.violated(`GET ${image.repo}:${ref} (${image.state})`, m);
      const b = pick(image.blobs) as Blob;
      const r = await this.send(`/v2/${image.repo}/blobs/${b.digest}`);
      if (r.status !== 200 || sha256(r.body) !== b.digest) return this.violated(`GET ${image.repo}@${b.digest} of ${image.digest}`, r);
      this.count('pulls');
    });
  }

  private violated(what: string, r: Reply): void {
    this.violations.push(`${what}: ${r.status} ${r.body.toString().slice(0, 300)}`);
  }

  async worker(id: number, until: number): Promise<void> {
    for (let seq = 0; Date.now() < until; seq++) {
      const roll = Math.random();
      try {
        if (roll < 0.4) await this.push(this.newImage(id, seq), Math.random() < 0.9);
        else if (roll < 0.55) {
          // half of them an image the clients deleted or untagged: its links are unreferenced, and ageing
          const again = pick(Math.random() < 0.5 ? this.images.filter((i) => !survives(i)) : this.images);
          this.count('re-pushes');
          if (again) await this.push(again, Math.random() < 0.8);
        } else if (roll < 0.63) await this.deleteManifest();
        else if (roll < 0.71) await this.deleteTag();
        else if (roll < 0.79) await this.deleteBlob();
        else await this.pull();
      } catch (err) {
        if (!(err instanceof Abort)) this.unexpected.push(String((err as Error).stack ?? err));
      }
    }
  }
}

/** Collects back to back on one replica until told to stop; counts what it was told. */
async function collectLoop(base: string, stop: () => boolean, tally: { runs: GcRunView[]; conflicts: number; errors: string[] }): Promise<void> {
  for (let n = 1; !stop(); n++) {
    const started = await startGc(base, n % 5 === 0);
    if (started.status === 409) {
      tally.conflicts++;
      await sleep(20);
      continue;
    }
    if (!started.run) {
      tally.errors.push(`POST /api/v1/gc on ${base}: ${started.status} ${started.body}`);
      await sleep(100);
      continue;
    }
    tally.runs.push(await finishGc(base, started.run.id, 120_000));
  }
}

async function fire(servers: { url: string }[], blobRoot: string): Promise<void> {
  const [first] = servers;
  if (!first) throw new Error('no server');
  for (const [ns, collectUntagged] of [
    ['fire', false],
    ['tidy', true],
  ] as const) {
    const r = await request(first.url, `/api/v1/namespaces/${ns}`, {
      method: 'PUT',
      body: JSON.stringify({ collectUntagged }),
      headers: { 'content-type': 'application/json' },
    });
    expect(r.status, r.body.toString()).toBe(200);
  }
  const clients = new Fire(servers.map((s) => s.url));
  const tallies = servers.map(() => ({ runs: [] as GcRunView[], conflicts: 0, errors: [] as string[] }));
  const began = Date.now();
  let stopping = false;
  const gcLoops = servers.map((s, i) => collectLoop(s.url, () => stopping, tallies[i] as (typeof tallies)[number]));
  const until = began + fireMs;
  await Promise.all(Array.from({ length: workers }, (_, i) => clients.worker(i, until)));
  stopping = true;
  await Promise.all(gcLoops);
  const fired = Date.now() - began;

  const runs = tallies.flatMap((t) => t.runs);
  const real = runs.filter((r) => !r.dryRun);
  const swept = real.reduce((sum, r) => ({ manifests: sum.manifests + r.done.manifests, links: sum.links + r.done.links, blobs: sum.blobs + r.done.blobs }), {
    manifests: 0,
    links: 0,
    blobs: 0,
  });
  const survivors = clients.images.filter(survives);
  const seconds = runs.map((r) => (Date.parse(r.finishedAt ?? '') - Date.parse(r.startedAt)) / 1000).sort((a, b) => a - b);
  console.log(
    `GC under fire on ${servers.length} server(s), ${workers} clients for ${(fired / 1000).toFixed(1)} s: ${clients.requests} requests (slowest ${clients.slowest} ms); ` +
      `${JSON.stringify(Object.fromEntries(clients.counts))}; ${clients.images.length} images acknowledged, ${survivors.length} to survive; ` +
      `failures the grace period allows: ${JSON.stringify(Object.fromEntries(clients.allowed))}; ` +
      `GC: ${real.length} runs and ${runs.length - real.length} dry runs (${tallies.map((t) => t.runs.length).join(' + ')} by replica), ` +
      `${tallies.map((t) => t.conflicts).join(' + ')} answered 409, ` +
      `runs took ${seconds[Math.floor(seconds.length / 2)]} s (median) to ${seconds.at(-1)} s, swept ${JSON.stringify(swept)}`,
  );
  expect(clients.serverErrors, 'no 5xx').toEqual([]);
  expect(clients.unexpected, 'no failure the grace period does not explain').toEqual([]);
  expect(clients.violations, 'nothing acknowledged lost, nothing collected within the grace period').toEqual([]);
  expect(tallies.flatMap((t) => t.errors)).toEqual([]);
  expect(
    runs.filter((r) => r.state !== 'done'),
    'every run finished',
  ).toEqual([]);
  // the fire was real: the GC removed blobs while the clients pushed, many times over
  expect(clients.counts.get('manifests acknowledged') ?? 0).toBeGreaterThan(100);
  expect(real.length).toBeGreaterThanOrEqual(3);
  expect(swept.blobs).toBeGreaterThan(0);
  if (servers.length > 1) {
    for (const t of tallies) expect(t.runs.length, 'each replica collected').toBeGreaterThan(0);
    expect(
      tallies.reduce((sum, t) => sum + t.conflicts, 0),
      'one run at a time: a replica was told another runs',
    ).toBeGreaterThan(0);
  }

  // Everything acknowledged and not deleted is served, whole.
  const served = async () => {
    const missing: string[] = [];
    for (const image of survivors) {
      const m = await request(first.url, `/v2/${image.repo}/manifests/${image.digest}`, { headers: { accept: types.manifest } });
      if (m.status !== 200 || m.body.toString() !== image.body) missing.push(`${image.repo}@${image.digest}: ${m.status}`);
      if (image.state === 'tagged') {
        const t = await request(first.url, `/v2/${image.repo}/manifests/${image.tag}`, { method: 'HEAD', headers: { accept: types.manifest } });
        if (t.headers['docker-content-digest'] !== image.digest) missing.push(`${image.repo}:${image.tag}: ${t.status}`);
      }
      for (const b of image.blobs) {
        const r = await request(pick(servers)?.url ?? first.url, `/v2/${image.repo}/blobs/${b.digest}`);
        if (r.status !== 200 || sha256(r.body) !== b.digest) missing.push(`${image.repo}@${b.digest} of ${image.digest}: ${r.status}`);
      }
    }
    return missing;
  };
  expect(await served(), 'served after the fire').toEqual([]);

  // Past the grace period, one run removes everything unreferenced.
  await sleep(graceMs + 200);
  const last = await collect(first.url, false);
  expect(last.state).toBe('done');
  const plan = await collect(servers.at(-1)?.url ?? first.url, true);
  expect(plan.planned, 'nothing left for another run').toEqual(noGarbage);
  const referenced = new Set(survivors.flatMap((i) => i.blobs.map((b) => b.digest)));
  const { digests: stored, corrupt } = await storedBlobs(blobRoot);
  expect(corrupt).toEqual([]);
  expect(
    [...stored].filter((d) => !referenced.has(d)),
    'no unreferenced bytes',
  ).toEqual([]);
  expect(
    [...referenced].filter((d) => !stored.has(d)),
    'every referenced blob stored',
  ).toEqual([]);
  expect(await served(), 'served after the last run').toEqual([]);
  for (const image of clients.images.filter((i) => !survives(i))) {
    const r = await request(first.url, `/v2/${image.repo}/manifests/${image.digest}`, { method: 'HEAD', headers: { accept: types.manifest } });
    expect(r.status, `${image.repo}@${image.digest} (${image.state}) is gone`).toBe(404);
  }

  // Every run was recorded (a run taken over by another replica is one run).
  const recorded = (await request(first.url, '/api/v1/gc/runs?limit=100')).json<{ runs: GcRunView[] }>().runs;
  const ids = new Set(runs.map((r) => r.id));
  if (ids.size + 2 <= 100) expect(recorded.length).toBe(ids.size + 2);
  for (const r of recorded.slice(2)) expect(ids.has(r.id), `run ${r.id} is one the replicas started`).toBe(true);
}

describe('GC under fire', () => {
  it('on SQLite: nothing acknowledged is lost, nothing unreferenced outlives the grace period and one run', { timeout: 240_000 }, async () => {
    const server = await startInProcess({ config: { lifecycle: { gc: gcSettings } } });
    try {
      await fire([server], path.join(server.dataDir, 'blobs'));
    } finally {
      await server.stop();
    }
  });
});

describe.runIf(havePostgres)('GC under fire on two replicas', () => {
  const replicas: InProcessServer[] = [];
  let blobDir: string | undefined;
  afterAll(async () => {
    for (const r of replicas) await r.stop();
    await dropDatabases();
    if (blobDir) await rm(blobDir, { recursive: true, force: true });
  });

  it(
    'on PostgreSQL, both collecting: nothing acknowledged is lost, nothing unreferenced outlives the grace period and one run',
    { timeout: 240_000 },
    async () => {
      const url = await freshDatabase();
      blobDir = await tempDir('custody-gc-fire-');
      const blobs = path.join(blobDir, 'blobs');
      const config = { database: { url }, storage: { url: blobs, fsync: false }, lifecycle: { gc: gcSettings } };
      replicas.push(await startInProcess({ config }));
      replicas.push(await startInProcess({ config }));
      await fire(replicas, blobs);
    },
  );
});
