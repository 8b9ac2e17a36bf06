/**
 * For tests that race the garbage collector and judge a refusal by the grace period (gc-fire,
 * replicas-balancer). A Ledger records, per key, the requests that write a timestamp the GC
 * judges by (a link's created_at, a blob's touched_at). A write sets the timestamp to a time
 * within its request; the one in the row is the last committed one's. So after a write W
 * committed, the timestamp is at least the earliest start among W and the writes that may have
 * committed after it (those that ended after W began).
 */
export class Ledger {
  private readonly writes = new Map<string, Write[]>();

  begin(key: string): Write {
    const w: Write = { start: Date.now(), end: Infinity, ok: false };
    const list = this.writes.get(key);
    if (list) list.push(w);
    else this.writes.set(key, [w]);
    return w;
  }

  /** The least the timestamp can be after `anchor` committed. */
  boundAfter(key: string, anchor: Write): number {
    let bound = anchor.start;
    for (const w of this.writes.get(key) ?? []) if (w.end > anchor.start) bound = Math.min(bound, w.start);
    return bound;
  }

  /** The least the timestamp can be at `time`, judged from the last write acknowledged before it. */
  boundAt(key: string, time: number): number {
    const list = this.writes.get(key) ?? [];
    let anchor: Write | undefined;
    for (const w of list) if (w.ok && w.end <= time && (!anchor || w.end > anchor.end)) anchor = w;
    if (anchor) return this.boundAfter(key, anchor);
    return Math.min(...list.map((w) => w.start));
  }
}

export interface Write {
  start: number;
  end: number;
  ok: boolean;
}

export const done = (w: Write, ok: boolean) => {
  w.end = Date.now();
  w.ok = ok;
};
