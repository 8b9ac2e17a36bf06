/**
 * `node bench/hostile-sbom.ts`: what a hostile SBOM referrer costs the server while the trust
 * worker judges it (issue 5a). It pushes SBOM layers of deeply nested JSON (`[[[…]]]`, 16 and
 * 64 MiB) and, for comparison, shallow ones (64 MiB of tiny components; 64 MiB of `[]`, the most
 * memory per byte JSON.parse can be made to take), each to a fresh server after a small SBOM
 * (judged first, not measured), and polls GET /healthz back to back until the verdict is stored.
 * It prints the longest gap between two healthz answers (the event loop's longest stall, as a
 * client sees it), the peak RSS of the server and of the processes it started (the trust
 * reader's child, which parses large documents), and the verdict's reason.
 *
 *   node bench/hostile-sbom.ts            every case
 *   node bench/hostile-sbom.ts --only 16  the cases whose label contains "16"
 */
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Pool, type Dispatcher } from 'undici';
import { pushBlob, pushImage, sha256, type Auth } from './client.ts';
import { sampleProcess } from './process-sample.ts';
import { startCustody } from './servers.ts';
import { fmt, table } from './stats.ts';

const { values: args } = parseArgs({ options: { only: { type: 'string' } } });
const MiB = 1024 * 1024;
const cyclonedx = 'application/vnd.cyclonedx+json';
const manifestType = 'application/vnd.oci.image.manifest.v1+json';

/** `[[[…]]]`, `size` bytes: each level is two bytes and one more level of JSON.parse's work. */
const nested = (size: number) => Buffer.from(`${'['.repeat(size / 2)}${']'.repeat(size / 2)}`);

/** A CycloneDX document of about `size` bytes of `{"name":"x"}` components: wide, not deep. */
function wide(size: number): Buffer {
  const head = '{"bomFormat":"CycloneDX","specVersion":"1.6","components":[';
  const item = '{"name":"x"},';
  const n = Math.floor((size - head.length - 2) / item.length);
  return Buffer.from(`${head}${item.repeat(n - 1)}{"name":"x"}]}`);
}

/** A CycloneDX document whose `x` holds about `size` bytes of `[]`: shallow, and the most objects per byte. */
const empties = (size: number) => Buffer.from(`{"bomFormat":"CycloneDX","specVersion":"1.6","x":[${'[],'.repeat(Math.floor(size / 3) - 20)}[]]}`);

const cases = [
  { label: '16 MiB nested', bytes: () => nested(16 * MiB) },
  { label: '64 MiB nested', bytes: () => nested(64 * MiB) },
  { label: '64 MiB wide (flat)', bytes: () => wide(64 * MiB) },
  { label: '64 MiB of []', bytes: () => empties(64 * MiB) },
].filter((c) => !args.only || c.label.includes(args.only));

async function put(pool: Pool, auth: Auth, path: string, body: string): Promise<void> {
  const res = await pool.request({ method: 'PUT', path, body, headers: { ...auth, 'content-type': manifestType } });
  await res.body.dump();
  if (res.statusCode !== 201) throw new Error(`PUT ${path}: ${res.statusCode}`);
}

async function pushSbom(pool: Pool, url: string, auth: Auth, repo: string, subject: string, data: Buffer): Promise<string> {
  const empty = { data: Buffer.from('{}'), digest: sha256('{}') };
  await pushBlob(pool, url, repo, empty, auth);
  await pushBlob(pool, url, repo, { data, digest: sha256(data) }, auth);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: manifestType,
    artifactType: cyclonedx,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: 2 },
    layers: [{ mediaType: cyclonedx, digest: sha256(data), size: data.length }],
    subject: { mediaType: manifestType, digest: subject, size: 0 },
  });
  await put(pool, auth, `/v2/${repo}/manifests/${sha256(body)}`, body);
  return sha256(body);
}

interface Row {
  label: string;
  stallMs: number;
  healthz: number;
  rssMiB: number;
  childRssMiB: number;
  reason: string;
}

/** Peak RSS, in MiB, of the processes `pid` started (summed), sampled every 20 ms until stopped. */
function sampleChildren(pid: number | undefined): { stop(): number } {
  let peak = 0;
  const read = () => {
    if (pid === undefined) return;
    let kib = 0;
    try {
      for (const task of readdirSync(`/proc/${pid}/task`)) {
        for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) {
          kib += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child}/status`, 'utf8'))?.[1] ?? 0);
        }
      }
    } catch {
      // a process ended while read: keep the peak so far
    }
    peak = Math.max(peak, kib / 1024);
  };
  const timer = setInterval(read, 20);
  return { stop: () => (clearInterval(timer), read(), peak) };
}

/** GET, once more on a reset: a server that stalled past its keep-alive timeout closes the connection a request was on. */
async function get(pool: Pool, path: string, auth: Auth = {}): Promise<Dispatcher.ResponseData> {
  try {
    return await pool.request({ method: 'GET', path, headers: auth });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') throw err;
    return pool.request({ method: 'GET', path, headers: auth });
  }
}

async function verdictOf(pool: Pool, auth: Auth, repo: string, digest: string): Promise<string> {
  for (;;) {
    const res = await get(pool, `/api/v1/repositories/${repo}/artifacts/${digest}`, auth);
    const view = (await res.body.json()) as { trust?: { status: string; reason: string } };
    if (view.trust?.status === 'done') return view.trust.reason;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function run(c: (typeof cases)[number]): Promise<Row> {
  const server = await startCustody();
  const pool = new Pool(server.url, { connections: 2 });
  const auth = server.credentials ?? {};
  try {
    const repo = 'bench/hostile';
    const subject = await pushImage(pool, server.url, repo, (n) => Buffer.alloc(n, 7), auth);
    // A small SBOM first: the first judgement loads the verifiers (~0.3 s, once per process), which is not what is measured.
    const warm = await pushSbom(pool, server.url, auth, repo, subject, Buffer.from('{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}'));
    await verdictOf(pool, auth, repo, warm);
    const data = c.bytes();
    const sample = sampleProcess(server.pid, 20);
    const children = sampleChildren(server.pid);
    const digest = await pushSbom(pool, server.url, auth, repo, subject, data);
    // healthz back to back on one connection while the other asks for the verdict every 100 ms
    let reason: string | undefined;
    const verdict = verdictOf(pool, auth, repo, digest).then((r) => (reason = r));
    let last = performance.now();
    let stallMs = 0;
    let healthz = 0;
    while (reason === undefined) {
      const h = await get(pool, '/healthz');
      await h.body.dump();
      const now = performance.now();
      stallMs = Math.max(stallMs, now - last);
      last = now;
      healthz++;
    }
    await verdict;
    const peak = sample.stop();
    return { label: c.label, stallMs, healthz, rssMiB: peak?.rss ?? 0, childRssMiB: children.stop(), reason: reason ?? '' };
  } finally {
    await pool.close();
    await server.stop();
  }
}

const rows: Row[] = [];
for (const c of cases) {
  const row = await run(c);
  rows.push(row);
  console.log(`${row.label}: longest stall ${fmt(row.stallMs, 0)} ms, peak RSS ${fmt(row.rssMiB, 0)} MiB (its children ${fmt(row.childRssMiB, 0)} MiB)`);
}
console.log(
  `\n${table([
    ['SBOM layer', 'longest healthz gap ms', 'healthz answered', 'server peak RSS MiB', 'its children MiB', 'verdict'],
    ...rows.map((r) => [r.label, fmt(r.stallMs, 0), String(r.healthz), fmt(r.rssMiB, 0), fmt(r.childRssMiB, 0), r.reason.slice(0, 90)]),
  ])}`,
);
