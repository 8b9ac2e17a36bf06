/**
 * The policy decision of a manifest GET in this process, without HTTP: what the gate and the
 * policy service (src/oci/policy-gate.ts, src/policy/service.ts) cost the server's main thread per
 * pull, with no policy, with the benchmark's five CEL policies (and the same five made to read the
 * source address, pulled from two in turn, so that none is recalled or kept: service.ts, Recall
 * and Memo) and with its OPA Wasm policy (the
 * pool's workers apart), for an artifact whose input is cached, as every pull but the first of
 * the benchmark's is. `node bench/policy-path.ts [--seconds 3] [--concurrency 16]`.
 *
 * On a machine others share, the server's CPU per GET over HTTP moves by tens of microseconds
 * with the load; the CPU one thread spends on a loop of decisions moves far less, so this is
 * where a change to the decision path shows first. The store is a stub holding the policies
 * (the input's reads from it are cached after the first pull anyway).
 */
import { Readable } from 'node:stream';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { FastifyRequest } from 'fastify';
import type { StoredPolicy } from '../src/meta/policy.ts';
import type { RegistryContext } from '../src/oci/context.ts';
import { askPolicy } from '../src/oci/policy-gate.ts';
import { compileOpa, createOpaPool, type OpaPool } from '../src/policy/opa/index.ts';
import { PolicyService } from '../src/policy/service.ts';
import { buildModule } from '../test/policy/opa-wat.ts';
import { celPolicies } from './policies.ts';

const { values: args } = parseArgs({
  options: { seconds: { type: 'string', default: '3' }, concurrency: { type: 'string', default: '16' } },
});
const seconds = Number(args.seconds);
const concurrency = Number(args.concurrency);

const opaDoc = {
  name: 'bench-opa-no-sockets',
  engine: 'opa-wasm',
  bundle: { repository: 'benchpolicies/opa', digest: `sha256:${'d'.repeat(64)}` },
  entrypoint: 'custody/deny',
  scope: { namespaces: ['benchpublic'], repositories: ['**'] },
  actions: ['pull'],
  mode: 'enforce',
  message: 'bench',
};

/** A policy service on a store that holds `docs` and nothing else. */
async function serviceWith(docs: { name: string }[], pool: OpaPool): Promise<PolicyService> {
  const stored: StoredPolicy[] = docs.map((document) => ({
    name: document.name,
    version: 1,
    namespace: null,
    document,
    source: '',
    createdBy: 'bench',
    createdAt: 0,
    deleted: false,
  }));
  const wasm = await buildModule('no-wasi-sockets');
  const meta = {
    policy: {
      policyRevision: async () => 1,
      listPolicies: async () => stored,
      recordDecisions: async () => {},
      recordInputs: async () => {},
      pruneDecisions: async () => {},
    },
    trust: { artifactsFor: async () => [], getSbom: async () => undefined },
    accounts: { getNamespace: async () => undefined, teamsOf: async () => [], listTeams: async () => [], rolesIn: async () => [] },
    cost: { getBudget: async () => undefined },
    storedBytes: async () => 0,
    getManifest: async () => ({ content: Buffer.from(JSON.stringify({ layers: [{ digest: `sha256:${'e'.repeat(64)}`, size: wasm.byteLength }] })) }),
  };
  const blobs = { read: async () => Readable.from([Buffer.from(wasm)]) };
  const quiet = { info() {}, warn() {}, error() {}, debug() {} };
  const service = new PolicyService({
    meta: meta as never,
    blobs: blobs as never,
    log: quiet as never,
    settings: { reloadMs: 3600_000, retentionMs: 3600_000, recordInputs: true },
    opa: (doc, bundle) => compileOpa(doc, bundle, pool),
  });
  await service.reload(true);
  return service;
}

/** The benchmark's image manifest (bench/client.ts pushes one like it): an image config, one layer. */
const content = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 2 },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'b'.repeat(64)}`, size: 4096 }],
  }),
);

/** `addresses`: the source addresses pulls come from in turn (two defeat the outcome a policy reading one keeps per shape) */
async function measure(label: string, service: PolicyService, addresses = ['127.0.0.1']): Promise<void> {
  const ctx = { policy: service } as unknown as RegistryContext;
  const record = { digest: `sha256:${'a'.repeat(64)}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', content };
  // What a request brings: flat strings made anew each time (from a URL, a database row), the same values.
  const fresh = (s: string) => Buffer.from(s).toString('latin1');
  const reqs = addresses.map((ip) => ({ principal: undefined, headers: { 'user-agent': 'undici', accept: 'application/vnd.oci.image.manifest.v1+json' }, ip }));
  const query = new URLSearchParams();
  let turn = 0;
  const pull = () => {
    const m = { name: fresh('benchpublic/manifest-1'), ref: fresh('bench'), query };
    const req = reqs[turn++ % reqs.length];
    return askPolicy(ctx, req as unknown as FastifyRequest, 'pull', m, { ...record, digest: fresh(record.digest) }, m.ref);
  };
  const loop = async (until: number) => {
    let n = 0;
    while (performance.now() < until) {
      await pull();
      n++;
    }
    return n;
  };
  const run = async (ms: number) => {
    const until = performance.now() + ms;
    const main = process.threadCpuUsage();
    const all = process.cpuUsage();
    const counts = await Promise.all(Array.from({ length: concurrency }, () => loop(until)));
    return { n: counts.reduce((a, b) => a + b, 0), main: process.threadCpuUsage(main), all: process.cpuUsage(all) };
  };
  await run(500); // warm-up: the JIT, the input's caches
  const r = await run(seconds * 1000);
  const per = (u: NodeJS.CpuUsage) => ((u.user + u.system) / r.n).toFixed(2);
  const latency = Object.entries(service.latency.summary())
    .map(([engine, l]) => `${engine} p50 ${l.p50Micros} µs, p99 ${l.p99Micros} µs, ${l.evaluations} evaluations`)
    .join('; ');
  console.log(
    `${label.padEnd(16)} ${r.n} pulls: main thread ${per(r.main)} µs, whole process ${per(r.all)} µs per pull${latency ? `; ${latency}` : ''}; load ${loadavg()[0]?.toFixed(2)}`,
  );
  await service.stop();
}

const pool = createOpaPool({ size: 2 });
try {
  await measure('no policy', await serviceWith([], pool));
  await measure('5 CEL policies', await serviceWith(celPolicies, pool));
  // The same five, each also reading the source address, from two addresses in turn: none is
  // recalled by its sections nor kept for the shape (service.ts, Memo), all five are evaluated.
  const everyTime = celPolicies.map((p) => ({ ...p, name: `${p.name}-req`, deny: `(${p.deny}) || request.sourceAddress == "203.0.113.1"` }));
  await measure('5 CEL, request', await serviceWith(everyTime, pool), ['127.0.0.1', '127.0.0.2']);
  await measure('1 OPA policy', await serviceWith([opaDoc], pool));
} finally {
  await pool.close();
}
