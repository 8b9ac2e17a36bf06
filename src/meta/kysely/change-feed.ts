/**
 * The change feed behind the caches on PostgreSQL: one connection of its own that LISTENs on
 * `custody_manifests`, where triggers on `tags` and `manifests` (migration 0014-manifest-notify)
 * NOTIFY the repository of every row that changed, and on `custody_namespaces`, where a trigger on
 * `namespaces` (0018-namespace-notify) NOTIFYs the namespace: on commit, whichever replica or tool
 * wrote it. Each notification drops that key from its cache (manifest-cache.ts, namespace-cache.ts).
 *
 * The caches are live only while this connection is: when it fails, closes, or stops answering
 * the ping (a connection can die without a word, behind a NAT or a dead peer), they are suspended
 * and the feed reconnects with backoff; once it LISTENs again they resume, empty.
 */
import type pg from 'pg';

export const manifestChannel = 'custody_manifests';
export const namespaceChannel = 'custody_namespaces';
/** how the feed's connection shows in pg_stat_activity */
export const feedApplicationName = 'custody-manifest-feed';

/** What the feed keeps live: a cache that forgets a key when told, and all of it while the feed is down. */
export interface FedCache {
  invalidate(key: string): void;
  suspend(): void;
  resume(): void;
}

export interface ChangeFeedOptions {
  /** how often the connection is asked `select 1`, and how long an answer may take (ms) */
  pingMs?: number;
  /** told once per outage, and once the feed is back */
  log?: (message: string, err?: Error) => void;
}

export class ChangeFeed {
  private readonly connect: () => pg.Client;
  /** by channel */
  private readonly caches: Map<string, FedCache>;
  private readonly pingMs: number;
  private readonly log: (message: string, err?: Error) => void;
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryMs = 100;
  private closed = false;
  private down = false;

  constructor(connect: () => pg.Client, caches: Record<string, FedCache>, options: ChangeFeedOptions = {}) {
    this.connect = connect;
    this.caches = new Map(Object.entries(caches));
    this.pingMs = options.pingMs ?? 5000;
    this.log = options.log ?? (() => {});
  }

  /** Listens; resolves once the caches are live, or once the first attempt failed (it retries then). */
  async start(): Promise<void> {
    await this.listen();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.suspend();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private async listen(): Promise<void> {
    if (this.closed) return;
    const client = this.connect();
    this.client = client;
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('the connection closed')));
    client.on('notification', (n) => {
      if (n.payload !== undefined) this.caches.get(n.channel)?.invalidate(n.payload);
    });
    try {
      await client.connect();
      for (const channel of this.caches.keys()) await client.query(`listen ${channel}`);
    } catch (err) {
      this.lost(client, err as Error);
      return;
    }
    if (this.client !== client) return;
    for (const cache of this.caches.values()) cache.resume();
    this.retryMs = 100;
    if (this.down) this.log('the change feed listens again; the manifest and namespace caches are back');
    this.down = false;
    this.schedule(() => void this.ping(client), this.pingMs);
  }

  private async ping(client: pg.Client): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.query('select 1'),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer to a ping within ${this.pingMs} ms`)), this.pingMs))),
      ]);
    } catch (err) {
      return this.lost(client, err as Error);
    } finally {
      clearTimeout(timer);
    }
    if (this.client === client) this.schedule(() => void this.ping(client), this.pingMs);
  }

  /** Suspends the caches at once, drops the connection and tries again later. */
  private lost(client: pg.Client, err: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.suspend();
    clearTimeout(this.timer);
    void client.end().catch(() => {});
    if (this.closed) return;
    if (!this.down) this.log('the change feed lost its connection; manifest GETs and quota checks read the database until it is back', err);
    this.down = true;
    this.schedule(() => void this.listen(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 5000);
  }

  private suspend(): void {
    for (const cache of this.caches.values()) cache.suspend();
  }

  private schedule(run: () => void, ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(run, ms);
    this.timer.unref();
  }
}
