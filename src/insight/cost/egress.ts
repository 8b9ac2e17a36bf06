/**
 * The network rollup: reads the pull events after the cursor and adds the bytes each sent to a
 * configured network to that network's hour (meta.cost.addNetworkEgress), moving the cursor in the
 * same transaction, so of two replicas reading the same page one adds it.
 *
 * It reads only events older than `lagMs`: each replica writes its events in batches (every
 * insight.events.flushMs), so an event can be written a little after a later one from another
 * replica; reading behind that lag keeps the cursor from passing an event still to be written.
 */
import type { MetaStore } from '../../meta/metastore.ts';
import type { NetworkEgress } from '../../meta/cost.ts';
import { hourMs } from '../../meta/insight.ts';
import type { NetworkOf } from './networks.ts';

const pageSize = 5000;
export const egressLagMs = 60_000;

/** Rolls up the events up to `now - lagMs`; how many events it read. */
export async function rollUpNetworkEgress(meta: MetaStore, networkOf: NetworkOf, now: number, lagMs = egressLagMs): Promise<number> {
  let read = 0;
  for (;;) {
    const from = await meta.cost.egressCursor();
    const page = await meta.insight.eventsAfter(from, pageSize, { types: ['pull'], until: now - lagMs });
    const last = page.at(-1);
    if (!last) return read;
    const rows = new Map<string, NetworkEgress>();
    for (const e of page) {
      if (e.bytes <= 0) continue;
      const network = networkOf(e.source);
      if (network === undefined) continue;
      const start = Math.floor(e.at / hourMs) * hourMs;
      const key = `${start}\u0000${e.repository}\u0000${network}`;
      const row = rows.get(key);
      if (row) row.bytes += e.bytes;
      else rows.set(key, { start, namespace: e.namespace, repository: e.repository, network, bytes: e.bytes });
    }
    // another replica moved the cursor first: it added this page; read on from where it left
    if (await meta.cost.addNetworkEgress([...rows.values()], from, { at: last.at, id: last.id })) read += page.length;
    if (page.length < pageSize) return read;
  }
}
