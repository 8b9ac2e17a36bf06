/**
 * Keeps every namespace's TUF metadata fresh without a client asking: a pass runs the same check
 * a timestamp.json request runs, for each namespace (new targets when signed tags changed; a new
 * timestamp or snapshot past half its lifetime). buildApp schedules it every refreshInterval, once
 * per interval across replicas (src/lifecycle/schedule.ts). Replicas racing for a version (a
 * request on one, the pass on another) are fine: the store keeps one and the others re-read it.
 */
import type { TufStore } from '../../meta/tuf.ts';
import type { TufPublisher } from './publish.ts';

/** One pass over every namespace; a namespace that fails is logged and the others go on. */
export async function refreshAll(publisher: TufPublisher, store: TufStore, log: { error(obj: object, msg: string): void }): Promise<void> {
  for (const namespace of await store.namespaces()) {
    try {
      await publisher.current(namespace, 'now');
    } catch (err) {
      log.error({ err, namespace }, 'TUF: background refresh failed');
    }
  }
}

/** A quarter of the timestamp's lifetime, at most an hour: several chances before it expires. */
export const refreshInterval = (timestampExpirySeconds: number): number => Math.min((timestampExpirySeconds * 1000) / 4, 3_600_000);
