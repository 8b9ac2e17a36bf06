/**
 * Policies on the pull path, for the benchmark's policy rows: five CEL policies, each reading a
 * different part of the input (the manifest, its trust facts and SBOM, the platforms, who asks
 * and when), scoped to the namespace the anonymous manifest GETs read, and none denying the
 * benchmark's image (a denial would fail the run: getManifest checks every answer).
 */
import { createHash } from 'node:crypto';
import type { Registry } from './workloads.ts';

const scope = { namespaces: ['benchpublic'], repositories: ['**'] };

export const celPolicies = [
  { name: 'bench-blocked-annotation', deny: '"org.example/blocked" in artifact.annotations && artifact.annotations["org.example/blocked"] == "true"' },
  { name: 'bench-signer', deny: 'trust.signatures.exists(s, s.verified && s.signer == "mallory@example.com")' },
  { name: 'bench-license', deny: 'trust.sbom.licenses.exists(l, l in ["SSPL-1.0", "AGPL-3.0-only"])' },
  {
    name: 'bench-platform',
    deny: 'artifact.platforms.exists(p, p.os == "windows") || artifact.mediaType.startsWith("application/vnd.docker.distribution.manifest.v1")',
  },
  { name: 'bench-who-when', deny: 'request.identity.name == "mallory" || timestamp(request.time).getHours() > 24' },
].map((p) => ({ ...p, scope, actions: ['pull'], mode: 'enforce', message: 'bench' }));

async function api(registry: Registry, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${registry.url}/api/v1${path}`, {
    method,
    headers: { ...registry.credentials, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} /api/v1${path}: ${res.status} ${text.slice(0, 300)}`);
  return text ? (JSON.parse(text) as unknown) : undefined;
}

/** Runs `run` with these policies saved (Custody applies a saved policy at once), and removes them after. */
export async function withPolicies<T>(registry: Registry, docs: { name: string }[], run: () => Promise<T>): Promise<T> {
  for (const doc of docs) await api(registry, 'PUT', `/policies/${doc.name}`, doc);
  try {
    return await run();
  } finally {
    for (const doc of docs) await api(registry, 'DELETE', `/policies/${doc.name}`);
  }
}

export interface EngineLatency {
  evaluations: number;
  p50Micros: number;
  p99Micros: number;
  maxMicros: number;
}

/** How long the server's last 4096 evaluations per engine took (GET /api/v1/policy-stats). */
export async function decisionLatency(registry: Registry): Promise<Record<string, EngineLatency>> {
  return ((await api(registry, 'GET', '/policy-stats')) as { latency: Record<string, EngineLatency> }).latency;
}

/**
 * One OPA Wasm policy on the same pull path: a module built from WAT at run time (as the tests
 * build theirs; no opa binary here) that searches the input for a wasi:sockets import, pushed to
 * the registry as a bundle and named by digest, as an operator would.
 */
export async function opaPolicies(registry: Registry): Promise<Record<string, unknown>[]> {
  const { buildModule, bundle } = await import('../test/policy/opa-wat.ts');
  const layer = Buffer.from(bundle(await buildModule('no-wasi-sockets')));
  const repo = 'benchpolicies/opa';
  const digestOf = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const put = async (path: string, method: string, body: Buffer | string, type: string) => {
    const res = await fetch(`${registry.url}${path}`, {
      method,
      headers: { ...registry.credentials, 'content-type': type },
      body: typeof body === 'string' ? body : new Uint8Array(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${(await res.text()).slice(0, 300)}`);
  };
  for (const blob of [layer, '{}']) await put(`/v2/${repo}/blobs/uploads/?digest=${digestOf(blob)}`, 'POST', blob, 'application/octet-stream');
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: 'application/vnd.openpolicyagent.bundle',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf('{}'), size: 2 },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(layer), size: layer.length }],
  });
  await put(`/v2/${repo}/manifests/v1`, 'PUT', manifest, 'application/vnd.oci.image.manifest.v1+json');
  return [
    {
      name: 'bench-opa-no-sockets',
      engine: 'opa-wasm',
      bundle: { repository: repo, digest: digestOf(manifest) },
      entrypoint: 'custody/deny',
      scope,
      actions: ['pull'],
      mode: 'enforce',
      message: 'bench',
    },
  ];
}
