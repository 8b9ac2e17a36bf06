/**
 * Scale-out (issue 16): three `custody serve` processes on one PostgreSQL database and one S3
 * bucket (s3rver), behind a round-robin balancer (helpers/balancer.ts), so the requests of one
 * chunked upload land on different replicas. Clients push through it (monolithic and chunked,
 * small blobs and multipart-sized ones, layers shared between images), pull, delete manifests and
 * start garbage collections; in the middle one replica (the one running a collection, if one is
 * caught) is SIGKILLed and started again on its port.
 *
 * Afterwards every replica, asked directly, serves each acknowledged manifest (201) not deleted
 * since, by tag and by digest, and every blob it names, digests checked; each manifest whose
 * DELETE was acknowledged (202) is 404 on all of them. A write the kill interrupted was answered
 * 502 by the balancer or cut: the client did not count it, and whatever the replicas serve of it
 * has the right bytes. No replica but the killed one exited, and every collection finished.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../src/storage/s3/index.ts';
import { startBalancer, type Balancer } from './helpers/balancer.ts';
import type { GcRunView } from './helpers/gc.ts';
import { request, sha256, types, type Reply, type RequestOptions } from './helpers/http.ts';
import { done, Ledger } from './helpers/ledger.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { s3Credentials, startS3, type RunningS3 } from './helpers/s3.ts';
import { startProcess, tempDir, type ProcessServer } from './helpers/server.ts';

/** how long the clients push (CUSTODY_REPLICAS_LB_SECONDS to change it); the kill comes at 40 % of it */
const fireMs = Number(process.env.CUSTODY_REPLICAS_LB_SECONDS ?? 12) * 1000;
const workers = 8;
const graceMs = 3000;
/** runs only when asked (no schedule), in small batches (a run lasts long enough to be killed in), beating every half second: a killed owner's run is stale 1.5 s later */
const gcSettings = { graceSeconds: graceMs / 1000, intervalSeconds: 0, batchSize: 2, heartbeatSeconds: 0.5, busyShare: 1 };
const repos = ['lb/a', 'lb/b', 'lb/c'];
const MiB = 1024 * 1024;
/** the share of layers over the S3 store's part size (5 MiB): written to S3 as multipart uploads */
const bigShare = 0.03;

const havePostgres = await postgresAvailable();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(Math.random() * xs.length)];
const octets = { 'content-type': 'application/octet-stream' };

/** A request the balancer answered 502, or whose connection was cut (not acknowledged); for an upload: start it again. */
class Lost extends Error {}
/** A failure already recorded: the worker drops what it was doing. */
class Abort extends Error {}

interface Blob {
  digest: string;
  data: Buffer;
}

interface Image {
  repo: string;
  tag: string;
  digest: string;
  body: string;
  blobs: Blob[];
  /**
   * pushing: its PUT not answered yet; acked: PUT answered 201; unacked: every PUT lost or
   * refused; deleting: DELETE sent; deleted: DELETE answered 202; undecided: every DELETE lost
   */
  state: 'pushing' | 'acked' | 'unacked' | 'deleting' | 'deleted' | 'undecided';
}

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

/** The offset an upload's `Range: 0-<last>` says it is at ("0-0" is also what an empty upload answers; chunks here are never 1 byte). */
function offsetOf(range: string | undefined): number | undefined {
  const m = /^0-(\d+)$/.exec(range ?? '');
  if (!m) return undefined;
  return Number(m[1]) === 0 ? 0 : Number(m[1]) + 1;
}

type Style = 'post' | 'post-put' | 'post-patch-put' | 'chunked';

/** The clients, through the balancer: what they were told, and what they saw go wrong. */
class Clients {
  readonly images: Image[] = [];
  /** blobs whose upload was acknowledged, by `repo digest` */
  readonly blobs = new Map<string, { repo: string; blob: Blob }>();
  readonly links = new Ledger();
  readonly touches = new Ledger();
  readonly common = Array.from({ length: 6 }, (_, i) => blob(`shared layer ${i} ${randomBytes(2000).toString('hex')}`));
  readonly counts = new Map<string, number>();
  /** refusals the grace period explains */
  readonly allowed = new Map<string, number>();
  readonly serverErrors: string[] = [];
  readonly unexpected: string[] = [];
  readonly violations: string[] = [];
  requests = 0;
  /** ms: the longest a request took, and all of them together */
  slowest = 0;
  busy = 0;

  private readonly base: string;

  constructor(base: string) {
    this.base = base;
  }

  count(what: string, map = this.counts): void {
    map.set(what, (map.get(what) ?? 0) + 1);
  }

  async send(what: string, path: string, options: RequestOptions = {}): Promise<Reply> {
    let r: Reply;
    const sent = Date.now();
    try {
      r = await request(this.base, path, options);
    } catch (err) {
      this.count('lost: connection cut');
      throw new Lost(`${what}: ${String(err)}`);
    }
    this.requests++;
    const took = Date.now() - sent;
    this.slowest = Math.max(this.slowest, took);
    this.busy += took;
    if (r.headers['x-balancer'] !== undefined) {
      this.count('lost: 502 from the balancer');
      throw new Lost(what);
    }
    if (r.status >= 500) {
      this.serverErrors.push(`${what}: ${r.status} ${r.body.toString().slice(0, 300)}`);
      throw new Abort();
    }
    return r;
  }

  unexpectedReply(what: string, r: Reply): never {
    this.unexpected.push(`${what}: ${r.status} ${JSON.stringify(r.headers.range ?? '')} ${r.body.toString().slice(0, 300)}`);
    throw new Abort();
  }

  /** Uploads a blob, starting again (up to three times) when a request is lost; false: given up, or refused as the grace period allows. */
  async uploadBlob(repo: string, b: Blob): Promise<boolean> {
    const style = pick(['post', 'post-put', 'post-patch-put', 'chunked', 'chunked'] as const) as Style;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        return await this.uploadOnce(repo, b, style);
      } catch (err) {
        if (!(err instanceof Lost)) throw err;
        this.count('blob uploads started again after a lost request');
      }
    }
    return false;
  }

  private async uploadOnce(repo: string, b: Blob, style: Style): Promise<boolean> {
    if (style === 'post') {
      const post = () => this.send(`POST ${repo}?digest`, `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, { method: 'POST', body: b.data, headers: octets });
      return this.finish(repo, b, post, false);
    }
    const started = await this.send(`POST ${repo} upload`, `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    if (started.status !== 202) this.unexpectedReply(`POST ${repo} upload`, started);
    const location = started.headers.location as string;
    const finishing = `${location}?digest=${b.digest}`;
    if (style === 'post-put')
      return this.finish(repo, b, () => this.send(`PUT ${location}`, finishing, { method: 'PUT', body: b.data, headers: octets }), true);
    // chunked: 2-4 chunks with Content-Range; post-patch-put: one PATCH without
    const ends = style === 'chunked' ? cuts(b.data.length, 2 + Math.floor(Math.random() * 3)) : [b.data.length];
    let offset = 0;
    for (const end of ends) offset = await this.patch(location, b.data, offset, end, style === 'chunked');
    return this.finish(repo, b, () => this.send(`PUT ${location}`, finishing, { method: 'PUT' }), true);
  }

  /**
   * Sends bytes [from, to) as the upload's next chunk. After a lost PATCH it asks the upload where
   * it is (another replica answers) and goes on from there, as a resuming client does.
   */
  private async patch(location: string, data: Buffer, from: number, to: number, ranged: boolean): Promise<number> {
    for (let offset = from, tries = 0; ; tries++) {
      try {
        const r = await this.send(`PATCH ${location}`, location, {
          method: 'PATCH',
          body: data.subarray(offset, to),
          headers: { ...octets, ...(ranged ? { 'content-range': `${offset}-${to - 1}` } : {}) },
        });
        if (r.status !== 202 || offsetOf(r.headers.range) !== to) this.unexpectedReply(`PATCH ${location} ${offset}-${to - 1}`, r);
        return to;
      } catch (err) {
        if (!(err instanceof Lost) || tries >= 2) throw err;
      }
      const status = await this.send(`GET ${location}`, location);
      offset = offsetOf(status.headers.range) ?? -1;
      if (status.status !== 204 || (offset !== from && offset !== to)) this.unexpectedReply(`GET ${location} after a lost PATCH ${from}-${to - 1}`, status);
      this.count(offset === to ? 'lost PATCHes found stored' : 'lost PATCHes sent again');
      if (offset === to) return to;
    }
  }

  /**
   * The request that links the blob: acknowledged with 201, or refused as the grace period allows.
   * A lost PUT of an upload is sent again once; a 404 then says the upload ended (the lost PUT
   * got that far), and the client starts again.
   */
  private async finish(repo: string, b: Blob, finishing: () => Promise<Reply>, again: boolean): Promise<boolean> {
    for (let tries = 0; ; tries++) {
      // A lost request may have committed: it stays in the ledgers as never ended.
      const [link, touch] = [this.links.begin(`${repo} ${b.digest}`), this.touches.begin(b.digest)];
      let r: Reply;
      try {
        r = await finishing();
      } catch (err) {
        if (!(err instanceof Lost) || !again || tries > 0) throw err;
        this.count('lost PUTs sent again');
        continue;
      }
      done(link, r.status === 201);
      done(touch, r.status === 201);
      if (r.status === 201) {
        if (r.headers['docker-content-digest'] !== b.digest) this.unexpectedReply(`upload ${b.digest} to ${repo}: digest`, r);
        this.blobs.set(`${repo} ${b.digest}`, { repo, blob: b });
        this.count(b.data.length > 8 * MiB ? 'big blobs acknowledged' : 'blobs acknowledged');
        return true;
      }
      if (tries > 0 && errorOf(r).code === 'BLOB_UPLOAD_UNKNOWN') {
        this.count('lost PUTs whose upload had ended');
        throw new Lost(`PUT of ${b.digest} again`);
      }
      // The blob's row went while its bytes were written: only if it was touched longer than the grace period ago.
      if (errorOf(r).code === 'BLOB_UPLOAD_INVALID' && this.touches.boundAfter(b.digest, touch) < touch.end - graceMs) {
        this.count('upload: blob collected during a write longer than the grace period', this.allowed);
        return false;
      }
      return this.unexpectedReply(`upload ${b.digest} to ${repo}`, r);
    }
  }

  /** Pushes an image's blobs, then its manifest by tag (again, up to three times, when the PUT is lost). */
  async push(image: Image): Promise<void> {
    for (const b of image.blobs) if (!(await this.uploadBlob(image.repo, b))) return;
    this.images.push(image);
    for (let attempt = 0; attempt < 3; attempt++) {
      const start = Date.now();
      let r: Reply;
      try {
        r = await this.send(`PUT ${image.repo}:${image.tag}`, `/v2/${image.repo}/manifests/${image.tag}`, {
          method: 'PUT',
          body: image.body,
          headers: { 'content-type': types.manifest },
        });
      } catch (err) {
        if (!(err instanceof Lost)) throw err;
        image.state = 'unacked';
        continue;
      }
      if (r.status === 201) {
        if (r.headers['docker-content-digest'] !== image.digest) this.unexpectedReply(`PUT ${image.repo}:${image.tag} digest`, r);
        image.state = 'acked';
        this.count('manifests acknowledged');
        return;
      }
      image.state = 'unacked';
      const missing = errorOf(r).detail?.digest;
      // The link went: only when it was made longer than the grace period before the PUT ended.
      if (errorOf(r).code === 'MANIFEST_BLOB_UNKNOWN' && missing !== undefined) {
        const bound = this.links.boundAt(`${image.repo} ${missing}`, start);
        if (bound < Date.now() - graceMs) return this.count('manifest PUT: a blob link older than the grace period was collected', this.allowed);
        this.violations.push(`PUT ${image.repo}:${image.tag} refused for ${missing}, linked at least ${Date.now() - bound} ms before`);
        return;
      }
      this.unexpectedReply(`PUT ${image.repo}:${image.tag}`, r);
    }
  }

  /** A new image: its own config and 1-2 layers: shared, new, or (a few) over the S3 store's 5 MiB part size. */
  newImage(worker: number, seq: number): Image {
    const repo = pick(repos) as string;
    const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, lb: randomBytes(8).toString('hex') }));
    const layers: Blob[] = [];
    for (let n = 1 + Math.floor(Math.random() * 2); layers.length < n;) {
      const roll = Math.random();
      const layer =
        roll < 0.3 ? (pick(this.common) as Blob) : blob(randomBytes(roll < 1 - bigShare ? 1024 + Math.floor(Math.random() * 48 * 1024) : 8 * MiB + 17));
      if (!layers.some((l) => l.digest === layer.digest)) layers.push(layer);
    }
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      config: { mediaType: types.config, digest: config.digest, size: config.data.length },
      layers: layers.map((l) => ({ mediaType: types.layer, digest: l.digest, size: l.data.length })),
    });
    return { repo, tag: `w${worker}-${seq}`, digest: sha256(body), body, blobs: [config, ...layers], state: 'pushing' };
  }

  /** Deletes an acknowledged manifest by digest; a lost DELETE is sent again, and a 404 then says the lost one deleted it. */
  async deleteManifest(): Promise<void> {
    const image = pick(this.images.filter((i) => i.state === 'acked'));
    if (!image) return;
    image.state = 'deleting';
    for (let attempt = 0; attempt < 3; attempt++) {
      let r: Reply;
      try {
        r = await this.send(`DELETE ${image.repo}@${image.digest}`, `/v2/${image.repo}/manifests/${image.digest}`, { method: 'DELETE' });
      } catch (err) {
        if (!(err instanceof Lost)) throw err;
        continue;
      }
      if (r.status === 202 || (attempt > 0 && r.status === 404)) {
        image.state = 'deleted';
        return this.count('manifests deleted');
      }
      image.state = 'undecided';
      return this.unexpectedReply(`DELETE ${image.repo}@${image.digest}`, r);
    }
    image.state = 'undecided';
  }

  /** Pulls an acknowledged image by tag and one of its blobs; wrong bytes, or a 404 with no DELETE sent meanwhile, is a violation. */
  async pull(): Promise<void> {
    const image = pick(this.images.filter((i) => i.state === 'acked'));
    if (!image) return;
    const m = await this.send(`GET ${image.repo}:${image.tag}`, `/v2/${image.repo}/manifests/${image.tag}`, { headers: { accept: types.manifest } });
    if (!(m.status === 200 && m.body.toString() === image.body) && !(m.status === 404 && image.state !== 'acked')) {
      this.violations.push(`pull ${image.repo}:${image.tag} (${image.state}): ${m.status} ${m.body.toString().slice(0, 200)}`);
      return;
    }
    const b = pick(image.blobs) as Blob;
    const r = await this.send(`GET ${image.repo}@${b.digest}`, `/v2/${image.repo}/blobs/${b.digest}`);
    if (!(r.status === 200 && sha256(r.body) === b.digest) && !(r.status === 404 && image.state !== 'acked')) {
      this.violations.push(`pull ${image.repo}@${b.digest} of ${image.tag} (${image.state}): ${r.status} ${r.body.toString().slice(0, 200)}`);
      return;
    }
    this.count('pulls');
  }

  async worker(id: number, until: number): Promise<void> {
    for (let seq = 0; Date.now() < until; seq++) {
      const roll = Math.random();
      try {
        if (roll < 0.5) await this.push(this.newImage(id, seq));
        else if (roll < 0.62) await this.deleteManifest();
        else await this.pull();
      } catch (err) {
        if (!(err instanceof Abort) && !(err instanceof Lost)) this.unexpected.push(String((err as Error).stack ?? err));
      }
    }
  }
}

/** `parts` chunk ends (exclusive) over `size` bytes, each chunk at least 2 bytes. */
function cuts(size: number, parts: number): number[] {
  const ends = new Set<number>([size]);
  while (ends.size < parts) ends.add(2 + 2 * Math.floor(Math.random() * ((size - 2) / 2)));
  return [...ends].sort((a, b) => a - b);
}

interface GcTally {
  started: number;
  conflicts: number;
  lost: number;
  takeovers: number;
  errors: string[];
}

/** Starts collections through the balancer back to back, every fourth a dry run, following each to its end. */
async function collectLoop(base: string, stop: () => boolean, tally: GcTally): Promise<void> {
  const json = { 'content-type': 'application/json' };
  const start = (dryRun: boolean) => request(base, '/api/v1/gc', { method: 'POST', body: JSON.stringify({ dryRun }), headers: json }).catch(() => undefined);
  for (let n = 1; !stop(); n++) {
    const started = await start(n % 4 === 0);
    if (!started || started.headers['x-balancer'] !== undefined) {
      tally.lost++;
      await sleep(50);
      continue;
    }
    if (started.status === 409) {
      tally.conflicts++;
      await sleep(50);
      continue;
    }
    if (started.status !== 202) {
      tally.errors.push(`POST /api/v1/gc: ${started.status} ${started.body.toString()}`);
      await sleep(100);
      continue;
    }
    tally.started++;
    const id = started.json<GcRunView>().id;
    for (;;) {
      await sleep(50);
      const r = await request(base, `/api/v1/gc/runs/${id}`).catch(() => undefined);
      if (!r || r.headers['x-balancer'] !== undefined) continue;
      const run = r.json<GcRunView & { heartbeatAt: string }>();
      if (run.state !== 'running') break;
      // Its owner was killed: a POST takes a run over once three beats are missed.
      if (Date.now() - Date.parse(run.heartbeatAt) > 3 * gcSettings.heartbeatSeconds * 1000 + 200) {
        const again = await start(false);
        if (again?.status === 202 && again.json<GcRunView>().id === id) tally.takeovers++;
      }
    }
  }
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

/** What one replica, asked directly, serves wrong: acknowledged writes missing or with other bytes, deleted manifests still there. */
async function servedWrong(base: string, clients: Clients): Promise<string[]> {
  const wrong: string[] = [];
  const get = (path: string) => request(base, path, { headers: { accept: types.manifest } });
  const named = new Set<string>();
  await inParallel(clients.images, 6, async (image) => {
    const byDigest = await get(`/v2/${image.repo}/manifests/${image.digest}`);
    const same = byDigest.status === 200 && byDigest.body.toString() === image.body && byDigest.headers['docker-content-digest'] === image.digest;
    if (image.state === 'acked') {
      if (!same) wrong.push(`${image.repo}@${image.digest} (acknowledged): ${byDigest.status}`);
      const byTag = await get(`/v2/${image.repo}/manifests/${image.tag}`);
      if (byTag.status !== 200 || byTag.body.toString() !== image.body) wrong.push(`${image.repo}:${image.tag} (acknowledged): ${byTag.status}`);
      for (const b of image.blobs) {
        named.add(`${image.repo} ${b.digest}`);
        const r = await request(base, `/v2/${image.repo}/blobs/${b.digest}`);
        if (r.status !== 200 || sha256(r.body) !== b.digest) wrong.push(`${image.repo}@${b.digest} of ${image.tag}: ${r.status}`);
      }
    } else if (image.state === 'deleted') {
      if (byDigest.status !== 404) wrong.push(`${image.repo}@${image.digest} (deleted): ${byDigest.status}`);
      const byTag = await get(`/v2/${image.repo}/manifests/${image.tag}`);
      if (byTag.status !== 404) wrong.push(`${image.repo}:${image.tag} (deleted): ${byTag.status}`);
    } else if (!same && byDigest.status !== 404) {
      // not acknowledged either way: there or not, but never other bytes
      wrong.push(`${image.repo}@${image.digest} (${image.state}): ${byDigest.status}`);
    }
  });
  // Blobs no surviving manifest names may have been collected: gone, or served whole.
  await inParallel(
    [...clients.blobs].filter(([key]) => !named.has(key)),
    6,
    async ([, { repo, blob: b }]) => {
      const r = await request(base, `/v2/${repo}/blobs/${b.digest}`);
      if (!(r.status === 404 || (r.status === 200 && sha256(r.body) === b.digest))) wrong.push(`${repo}@${b.digest} (unreferenced): ${r.status}`);
    },
  );
  return wrong;
}

/** Log lines at error level or above (pino: level ≥ 50). */
const errorLines = (output: string) => output.split('\n').filter((l) => /"level":(5|6)\d/.test(l));

describe.runIf(havePostgres)('three replicas on PostgreSQL and S3 behind a round-robin balancer', () => {
  let s3: RunningS3 | undefined;
  let balancer: Balancer | undefined;
  let db: pg.Client | undefined;
  const replicas: ProcessServer[] = [];
  afterAll(async () => {
    for (const r of replicas) await r?.kill('SIGKILL');
    await balancer?.stop();
    await db?.end();
    await s3?.stop();
    await dropDatabases();
  });

  it('serves every acknowledged write from every replica after one is SIGKILLed mid-load and restarted', { timeout: 180_000 }, async () => {
    const began = Date.now();
    s3 = await startS3(['registry']);
    const databaseUrl = await freshDatabase();
    const storageUrl = `s3://registry/custody?endpoint=${encodeURIComponent(s3.endpoint)}&forcePathStyle=true&region=us-east-1`;
    const configDir = await tempDir('custody-lb-');
    const configFile = path.join(configDir, 'custody.yaml');
    // YAML is a superset of JSON
    await writeFile(configFile, JSON.stringify({ lifecycle: { gc: gcSettings } }));
    const env = {
      CUSTODY_DATABASE_URL: databaseUrl,
      CUSTODY_STORAGE_URL: storageUrl,
      AWS_ACCESS_KEY_ID: s3Credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3Credentials.secretAccessKey,
    };
    const dataDirs = await Promise.all([0, 1, 2].map(() => tempDir('custody-lb-replica-')));
    const start = (i: number, port?: number) =>
      startProcess({ dataDir: dataDirs[i] as string, env, args: ['--config', configFile, ...(port ? ['--listen', `127.0.0.1:${port}`] : [])] });
    // started together, as a deployment does: they create the first admin once between them
    const starting = await Promise.allSettled([0, 1, 2].map(async (i) => (replicas[i] = await start(i))));
    for (const s of starting) if (s.status === 'rejected') throw s.reason;
    balancer = await startBalancer(replicas.map((r) => r.host));
    db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    const started = Date.now() - began;

    const clients = new Clients(balancer.url);
    const tally: GcTally = { started: 0, conflicts: 0, lost: 0, takeovers: 0, errors: [] };
    let stopping = false;
    const gcLoop = collectLoop(balancer.url, () => stopping, tally);
    const fireStart = Date.now();
    const until = fireStart + fireMs;
    const load = Promise.all(Array.from({ length: workers }, (_, i) => clients.worker(i, until)));

    // The kill, at 40 % of the load: of the replica running a collection's sweeps, with requests on
    // their way to it, if one is seen within 3 s; else of the second one, once two requests are on
    // their way to it (or half a second has passed).
    await sleep(fireMs * 0.4);
    const inFlight = (r: ProcessServer) => balancer?.stats.inFlight.get(r.host) ?? 0;
    let victim = 1;
    let caught: { id: string; phase: string } | undefined;
    for (const lookUntil = Date.now() + 3000; Date.now() < lookUntil && !caught; await sleep(2)) {
      const row = (await db.query<{ id: string; owner: string; phase: string }>("select id, owner, phase from gc_runs where state = 'running' and dry_run = 0"))
        .rows[0];
      const owner = row && row.phase !== 'plan' ? replicas.findIndex((r) => r.child.pid === Number(row.owner.split(':')[1])) : -1;
      if (row && owner >= 0 && inFlight(replicas[owner] as ProcessServer) > 0) [victim, caught] = [owner, { id: row.id, phase: row.phase }];
    }
    const killed = replicas[victim] as ProcessServer;
    for (const waitUntil = Date.now() + 500; !caught && Date.now() < waitUntil && inFlight(killed) < 2;) await sleep(2);
    const cutOff = inFlight(killed);
    const killedAt = Date.now() - fireStart;
    const port = Number(new URL(killed.url).port);
    process.kill(killed.child.pid as number, 'SIGKILL');
    expect(await killed.kill('SIGKILL')).toBeNull();
    expect(killed.child.signalCode).toBe('SIGKILL');
    // the caught run, if it did not finish first: left running by a dead owner, for another replica to take over
    const interrupted = caught
      ? (await db.query<{ id: string }>("select id from gc_runs where id = $1 and state = 'running' and owner like $2", [caught.id, `%:${killed.child.pid}:%`]))
          .rows[0]?.id
      : undefined;
    // started again on its port: the balancer's list stays as it was
    const restarted = await start(victim, port);
    replicas[victim] = restarted;
    const back = Date.now() - fireStart;

    await load;
    stopping = true;
    await gcLoop;
    const fired = Date.now() - fireStart;
    // a run left behind by a POST during the kill: let it finish
    for (let r = await request(restarted.url, '/api/v1/gc/runs'); ; r = await request(restarted.url, '/api/v1/gc/runs')) {
      const runs = r.json<{ runs: GcRunView[] }>().runs;
      if (!runs.some((run) => run.state === 'running')) break;
      await sleep(100);
    }

    const verifyStart = Date.now();
    const wrong = await Promise.all(replicas.map((r) => servedWrong(r.url, clients)));
    const verified = Date.now() - verifyStart;
    // every run, from the database (the API pages them)
    const runs = (
      await db.query<{ id: string; state: string; dry_run: number; resumed: number; done: string; error: string | null }>(
        'select id, state, dry_run, resumed, done, error from gc_runs',
      )
    ).rows;
    const swept = runs
      .filter((r) => r.dry_run === 0)
      .map((r) => JSON.parse(r.done) as { links: number; blobs: number })
      .reduce((sum, d) => ({ links: sum.links + d.links, blobs: sum.blobs + d.blobs }), { links: 0, blobs: 0 });
    const states = Object.fromEntries(['acked', 'unacked', 'deleted', 'undecided'].map((s) => [s, clients.images.filter((i) => i.state === s).length]));
    const bucket = new S3BlobStore({
      location: { bucket: 'registry', prefix: 'custody/', endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' },
      credentials: s3Credentials,
    });
    const partKeys: string[] = [];
    for await (const k of bucket.list('uploads/')) partKeys.push(k);
    bucket.close();
    const recordedParts = new Set((await db.query<{ key: string }>('select key from upload_parts')).rows.map((r) => r.key));
    const openUploads = new Set((await db.query<{ id: string }>('select id from uploads')).rows.map((r) => r.id));
    // parts of uploads that ended (those of open ones go when the upload ends or expires)
    const orphans = partKeys.filter((k) => !openUploads.has(k.split('/')[1] ?? ''));
    const unrecorded = partKeys.filter((k) => !recordedParts.has(k) && openUploads.has(k.split('/')[1] ?? '')).length;

    console.log(
      `3 replicas behind a balancer, ${workers} clients for ${(fired / 1000).toFixed(1)} s (replicas up in ${started} ms): ${clients.requests} requests (${Math.round(clients.busy / Math.max(1, clients.requests))} ms on average, slowest ${clients.slowest} ms), ` +
        `${JSON.stringify(Object.fromEntries(clients.counts))}; images ${JSON.stringify(states)}; ` +
        `refusals the grace period allows: ${JSON.stringify(Object.fromEntries(clients.allowed))}; ` +
        `replica ${victim} killed at ${killedAt} ms with ${cutOff} requests on their way to it${caught ? ` in the ${caught.phase} sweep of run ${caught.id}${interrupted ? ', which it interrupted' : ', which finished first'}` : ' (no collection caught in its sweeps)'}, serving again at ${back} ms; ` +
        `balancer: ${JSON.stringify({ forwarded: Object.fromEntries(balancer.stats.forwarded), refused: balancer.stats.refused, badGateway: balancer.stats.badGateway, cut: balancer.stats.cut })}; ` +
        `GC: ${tally.started} started, ${runs.length} runs (${runs.filter((r) => r.resumed > 0).length} resumed, ${tally.takeovers} taken over by a POST), ` +
        `${tally.conflicts} answered 409, swept ${JSON.stringify(swept)}; ` +
        `part objects in the bucket: ${partKeys.length} (${orphans.length} of uploads that ended, ${unrecorded} unrecorded in open uploads); verified in ${verified} ms; whole test ${((Date.now() - began) / 1000).toFixed(1)} s`,
    );
    for (const [i, r] of replicas.entries()) {
      const errors = errorLines(r.output());
      if (errors.length) console.log(`replica ${i} logged ${errors.length} errors:\n${errors.slice(0, 10).join('\n')}`);
    }
    const killedErrors = errorLines(killed.output());
    if (killedErrors.length) console.log(`the killed replica logged ${killedErrors.length} errors before its end:\n${killedErrors.slice(0, 10).join('\n')}`);

    expect(clients.serverErrors, 'no 5xx from a replica').toEqual([]);
    expect(clients.unexpected, 'no answer a client could not explain').toEqual([]);
    expect(clients.violations, 'nothing acknowledged missing while the clients pushed').toEqual([]);
    expect(tally.errors).toEqual([]);
    expect(orphans, 'no part object outlives its upload').toEqual([]);
    for (const [i, w] of wrong.entries()) expect(w, `replica ${i} serves every acknowledged write, and no deleted manifest`).toEqual([]);
    expect(
      replicas.map((r) => r.child.exitCode ?? r.child.signalCode),
      'no replica exited but the one killed',
    ).toEqual([null, null, null]);
    expect(
      runs.filter((r) => r.state !== 'done'),
      'every collection finished',
    ).toEqual([]);
    if (interrupted) expect(runs.find((r) => r.id === interrupted)?.resumed, 'the run the kill interrupted was taken over').toBeGreaterThan(0);
    // the load was real: writes on every replica, collections that removed something, a kill that cut requests off
    expect(clients.counts.get('manifests acknowledged') ?? 0).toBeGreaterThan(10);
    expect(states.deleted).toBeGreaterThan(0);
    expect(swept.blobs).toBeGreaterThan(0);
    for (const r of replicas) expect(balancer.stats.forwarded.get(r.host) ?? 0).toBeGreaterThan(10);
    expect(balancer.stats.refused, 'requests came while the replica was down').toBeGreaterThan(0);
  });
});
