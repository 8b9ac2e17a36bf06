/**
 * Policies on the pull path, for the benchmark's policy rows: five CEL policies, each reading a
 * different part of the input (the manifest, its trust facts and SBOM, the platforms, who asks
 * and when), scoped to the namespace the anonymous manifest GETs read, and none denying the
 * benchmark's image (a denial would fail the run: getManifest checks every answer).
 */
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
