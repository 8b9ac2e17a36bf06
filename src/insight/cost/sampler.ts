/**
 * One sampling of storage: every repository's fair bytes now, recorded as a tick (meta.cost).
 *
 * A repository's fair bytes are its namespace's fair share of the blobs, as quotas count it
 * (meta.quota: a blob k namespaces link counts size/k to each), handed to the namespace's
 * repositories in proportion to the bytes each links counted in full, plus its own manifests. In
 * whole bytes: each gets the floor of its proportion and the bytes left over go one each to the
 * first repositories by name, so a namespace's repositories add up to exactly its quota figure.
 */
import type { MetaStore } from '../../meta/metastore.ts';
import type { RepositoryBytes, StorageSample } from '../../meta/cost.ts';
import { namespaceOf } from '../../reference.ts';

/** The fair bytes of each repository of one namespace, given the namespace's fair blob bytes. */
export function splitNamespace(namespace: string, fairBlobBytes: number, repositories: RepositoryBytes[]): StorageSample[] {
  const full = repositories.reduce((n, r) => n + r.blobBytes, 0);
  const shares = repositories.map((r) => (full > 0 ? Math.floor((fairBlobBytes * r.blobBytes) / full) : 0));
  let left = full > 0 ? fairBlobBytes - shares.reduce((a, b) => a + b, 0) : 0;
  // repositoryBytes() comes sorted by name: the leftover bytes go to the first that link any
  for (let i = 0; left > 0 && i < shares.length; i++) {
    if (repositories[i]!.blobBytes === 0) continue;
    shares[i]! += 1;
    left -= 1;
  }
  return repositories.map((r, i) => ({ namespace, repository: r.repository, bytes: shares[i]! + r.manifestBytes }));
}

/** Every repository's fair bytes now. */
export async function fairRepositoryBytes(meta: MetaStore): Promise<StorageSample[]> {
  const [registry, repositories] = await Promise.all([meta.quota.registryUsage(), meta.cost.repositoryBytes()]);
  const fair = new Map(registry.namespaces.map((n) => [n.namespace, n.fairBlobBytes]));
  const byNamespace = new Map<string, RepositoryBytes[]>();
  for (const r of repositories) {
    const ns = namespaceOf(r.repository);
    byNamespace.set(ns, [...(byNamespace.get(ns) ?? []), r]);
  }
  return [...byNamespace].flatMap(([ns, repos]) => splitNamespace(ns, fair.get(ns) ?? 0, repos));
}

/** Samples storage and records it as the tick at `at`; false when another replica's tick is as recent. */
export async function sampleStorage(meta: MetaStore, at: number): Promise<boolean> {
  return meta.cost.recordSample(at, await fairRepositoryBytes(meta));
}
