/**
 * Every artifact stored now, for a policy simulation (service.ts simulate): each repository a
 * scope admits, each of its tags, then each manifest no tag points at (pushed by digest, an
 * index's children, referrers), named by its digest as a client pulling or deleting it would
 * name it. Everything is listed a page at a time, so a registry of any size is walked in bounded
 * memory; a caller that has seen enough stops the walk by breaking out of its loop.
 */
import type { ManifestIndex, ManifestRecord } from '../meta/metastore.ts';
import { namespaceOf } from '../reference.ts';

export interface StoredArtifact {
  repository: string;
  namespace: string;
  record: ManifestRecord;
  /** undefined for a manifest no tag points at */
  tag?: string;
}

const repositoryPage = 100;
const page = 1000;

export async function* storedArtifacts(meta: ManifestIndex, applies: (namespace: string, repository: string) => boolean): AsyncGenerator<StoredArtifact> {
  for await (const repository of pages(
    (last) => meta.listRepositories({ n: repositoryPage, ...last }),
    repositoryPage,
    (r) => r,
  )) {
    const namespace = namespaceOf(repository);
    if (!applies(namespace, repository)) continue;
    for await (const tag of pages(
      (last) => meta.listTags(repository, { n: page, ...last }),
      page,
      (t) => t,
    )) {
      const record = await meta.getTaggedManifest(repository, tag);
      if (record) yield { repository, namespace, record, tag };
    }
    for await (const m of pages(
      (last) => meta.listManifests(repository, { n: page, ...last }),
      page,
      (m) => m.digest,
    )) {
      if (m.tagged) continue;
      const record = await meta.getManifest(repository, m.digest);
      if (record) yield { repository, namespace, record };
    }
  }
}

/** The items of a keyset-paged listing: `list` answers up to `size` items after `last`, named by `key`. */
async function* pages<T>(list: (last: { last?: string }) => Promise<T[]>, size: number, key: (item: T) => string): AsyncGenerator<T> {
  let last: string | undefined;
  for (;;) {
    const items = await list(last === undefined ? {} : { last });
    for (const item of items) {
      last = key(item);
      yield item;
    }
    if (items.length < size) return;
  }
}
