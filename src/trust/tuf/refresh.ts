/**
 * Keeps every namespace's TUF metadata fresh without a client asking: every `everyMs` each
 * replica runs the same check a timestamp.json request runs (new targets when signed tags
 * changed; a new timestamp or snapshot past half its lifetime). Replicas racing for a version
 * are fine: the store keeps one and the others re-read it.
 */
import type { TufStore } from '../../meta/tuf.ts';
import type { TufPublisher } from './publish.ts';

export interface Refresher {
  /** one pass over every namespace (the timer runs it; tests call it) */
  runOnce(): Promise<void>;
  stop(): void;
}

export function startRefreshing(publisher: TufPublisher, store: TufStore, everyMs: number, log: { error(obj: object, msg: string): void }): Refresher {
  let running: Promise<void> | undefined;
  const runOnce = async () => {
    for (const namespace of await store.namespaces()) {
      try {
        await publisher.current(namespace, 'now');
      } catch (err) {
        log.error({ err, namespace }, 'TUF: background refresh failed');
      }
    }
  };
  const timer = setInterval(() => {
    running ??= runOnce()
      .catch((err: unknown) => log.error({ err }, 'TUF: cannot list namespaces to refresh'))
      .finally(() => (running = undefined));
  }, everyMs);
  timer.unref();
  return { runOnce, stop: () => clearInterval(timer) };
}

/** A quarter of the timestamp's lifetime, at most an hour: several chances before it expires. */
export const refreshInterval = (timestampExpirySeconds: number): number => Math.min((timestampExpirySeconds * 1000) / 4, 3_600_000);
