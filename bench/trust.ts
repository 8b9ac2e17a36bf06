/**
 * `npm run bench:trust`: what verification costs the push path (issue 4). It pushes images, each
 * with a cosign signature attached as an OCI 1.1 referrer, at concurrency 4 against Custody with
 * trust verification on and then off, and prints signed pushes per second and their latency. With
 * verification on it also waits until every signature has its verdict, and prints how long that
 * took after the last push and verdicts per second overall.
 *
 *   npm run bench:trust                 300 signed images per run, 3 rounds per mode
 *   npm run bench:trust -- --count 50 --rounds 1   a quick run (the tests use one to check the harness)
 */
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { sha256, type Auth } from './client.ts';
import { startCustody, type Server } from './servers.ts';
import { fmt, summarize, table, type Result } from './stats.ts';

const { values: args } = parseArgs({
  options: { count: { type: 'string', default: '300' }, concurrency: { type: 'string', default: '4' }, rounds: { type: 'string', default: '3' } },
});
const count = Number(args.count);
const rounds = Number(args.rounds);
const concurrency = Number(args.concurrency);
const manifestType = 'application/vnd.oci.image.manifest.v1+json';
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();

async function put(pool: Pool, auth: Auth, path: string, body: Buffer | string, contentType: string, method = 'PUT'): Promise<void> {
  const res = await pool.request({ method, path, body, headers: { ...auth, 'content-type': contentType } });
  await res.body.dump();
  if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`${method} ${path}: ${res.statusCode}`);
}

const blob = (pool: Pool, auth: Auth, repo: string, data: Buffer | string) =>
  put(pool, auth, `/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, data, 'application/octet-stream', 'POST');

/** One signed push: an image (config, layer, manifest) and its cosign signature referrer. */
async function pushSigned(pool: Pool, auth: Auth, repo: string, i: number): Promise<string> {
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, i });
  const layer = randomBytes(4096);
  await blob(pool, auth, repo, config);
  await blob(pool, auth, repo, layer);
  const image = JSON.stringify({
    schemaVersion: 2,
    mediaType: manifestType,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: Buffer.byteLength(config) },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
  });
  await put(pool, auth, `/v2/${repo}/manifests/v${i}`, image, manifestType);
  const digest = sha256(image);
  const payload = JSON.stringify({
    critical: { identity: { 'docker-reference': repo }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' },
    optional: null,
  });
  await blob(pool, auth, repo, payload);
  await blob(pool, auth, repo, '{}');
  const signature = JSON.stringify({
    schemaVersion: 2,
    mediaType: manifestType,
    artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 },
    layers: [
      {
        mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
        digest: sha256(payload),
        size: Buffer.byteLength(payload),
        annotations: { 'dev.cosignproject.cosign/signature': sign('sha256', Buffer.from(payload), key.privateKey).toString('base64') },
      },
    ],
    subject: { mediaType: manifestType, digest, size: Buffer.byteLength(image) },
  });
  await put(pool, auth, `/v2/${repo}/manifests/${sha256(signature)}`, signature, manifestType);
  return digest;
}

async function run(server: Server, label: string, verify: boolean): Promise<{ push: Result; settleMs?: number; verdictsPerSecond?: number }> {
  const pool = new Pool(server.url, { connections: concurrency });
  const auth = server.credentials ?? {};
  const repo = 'bench/signed';
  if (verify)
    await put(pool, auth, '/api/v1/namespaces/bench/trust', JSON.stringify({ sigstore: { publicKeys: [{ name: 'bench', pem }] } }), 'application/json');
  const digests: string[] = [];
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) {
        const t = performance.now();
        digests[i] = await pushSigned(pool, auth, repo, i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const pushedAt = performance.now();
  const push = summarize(label, latencies, (pushedAt - started) / 1000);
  if (!verify) {
    await pool.close();
    return { push };
  }
  for (const digest of digests) {
    for (;;) {
      const res = await pool.request({ method: 'GET', path: `/api/v1/repositories/${repo}/artifacts/${digest}`, headers: auth });
      const view = (await res.body.json()) as { summary: { pending: number; verifiedSignatures: number } };
      if (view.summary.pending === 0) {
        if (view.summary.verifiedSignatures !== 1) throw new Error(`${digest}: signature not verified`);
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const settled = performance.now();
  await pool.close();
  return { push, settleMs: settled - pushedAt, verdictsPerSecond: count / ((settled - started) / 1000) };
}

type Run = { label: string; push: Result; settleMs?: number; verdictsPerSecond?: number };
const modes = [
  ['verification on', true],
  ['verification off', false],
] as const;
// Rounds alternate which mode goes first; the median round of each mode is shown, since disk
// flushes on a shared machine move single runs by ±40%.
const runs = new Map<string, Run[]>(modes.map(([label]) => [label, []]));
for (let round = 0; round < rounds; round++) {
  for (const [label, verify] of round % 2 === 0 ? modes : [...modes].reverse()) {
    const server = await startCustody(verify ? {} : { CUSTODY_TRUST_ENABLED: 'false' });
    try {
      const run1 = { label, ...(await run(server, label, verify)) };
      runs.get(label)?.push(run1);
      console.log(`round ${round + 1}, ${label}: ${fmt(run1.push.opsPerSec)} signed pushes/s`);
    } finally {
      await server.stop();
    }
  }
}
const median = (list: Run[]) => [...list].sort((a, b) => a.push.opsPerSec - b.push.opsPerSec)[Math.floor(list.length / 2)]!;
const results = modes.map(([label]) => median(runs.get(label) ?? []));

console.log(`\n${count} signed images (image + cosign signature referrer), concurrency ${concurrency}, median of ${rounds} rounds\n`);
console.log(
  table([
    ['run', 'signed pushes/s', 'p50 ms', 'p99 ms', 'all verdicts after last push', 'verdicts/s'],
    ...results.map((r) => [
      r.label,
      fmt(r.push.opsPerSec),
      fmt(r.push.p50),
      fmt(r.push.p99),
      r.settleMs === undefined ? '-' : `${fmt(r.settleMs, 0)} ms`,
      fmt(r.verdictsPerSecond),
    ]),
  ]),
);
const on = results[0]?.push.opsPerSec ?? 0;
const off = results[1]?.push.opsPerSec ?? 1;
console.log(`\nsigned pushes/s with verification on: ${fmt((on / off) * 100, 0)}% of off`);
