/** Builds the TUF publisher over the shared metadata store (buildApp wires it; see README.md). */
import type { MetaStore } from '../../meta/metastore.ts';
import { TufPublisher, type TufSettings } from './publish.ts';
import type { SignedTagSource } from './source.ts';

export { TufPublisher, type TufState } from './publish.ts';
export { parseTargetFile, type TargetRequest } from './targets.ts';
export { refreshAll, refreshInterval } from './refresh.ts';
export type { SignedTag, SignedTagSource } from './source.ts';

export interface TufOptions {
  source: SignedTagSource;
  settings: TufSettings;
  now: () => number;
  log?: { warn(obj: object, msg: string): void };
}

export function createTufPublisher(meta: MetaStore, options: TufOptions): TufPublisher {
  return new TufPublisher({ store: meta.tuf, ...options, known: (namespace) => namespaceKnown(meta, namespace) });
}

/** A namespace exists when it has settings, or a repository `<ns>` or `<ns>/…`. */
async function namespaceKnown(meta: MetaStore, namespace: string): Promise<boolean> {
  if ((await meta.accounts.getNamespace(namespace)) || (await meta.repositoryExists(namespace))) return true;
  // Every name that starts with `<ns>/` sorts right after `<ns>/`, before any other.
  const [next] = await meta.listRepositories({ n: 1, last: `${namespace}/` });
  return next?.startsWith(`${namespace}/`) ?? false;
}
