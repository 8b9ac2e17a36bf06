/** The WebhookStore on Kysely: the same queries on SQLite and PostgreSQL (the outbox: ../webhooks.ts). */
import type { Kysely, Selectable } from 'kysely';
import type {
  Delivery,
  DeliveryOutcome,
  NewDelivery,
  QueuedEvent,
  Settlement,
  Webhook,
  WebhookChange,
  WebhookEventType,
  WebhookMode,
  WebhookStore,
} from '../webhooks.ts';
import type { Engine } from './migrations.ts';
import type { Database } from './schema.ts';
import type { UsageEvent } from '../insight.ts';
import { toEvent } from './insight.ts';

const chunkSize = 200;

type WebhookRow = Selectable<Database['webhooks']>;

const toWebhook = (r: WebhookRow): Webhook => ({
  id: r.id,
  namespace: r.namespace,
  url: r.url,
  secret: r.secret,
  types: JSON.parse(r.types) as WebhookEventType[],
  repositories: JSON.parse(r.repositories) as string[],
  mode: r.mode as WebhookMode,
  description: r.description,
  createdBy: r.created_by,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toDelivery = (r: Selectable<Database['webhook_deliveries']>): Delivery => ({
  id: r.id,
  webhookId: r.webhook_id,
  eventId: r.event_id,
  eventType: r.event_type,
  repository: r.repository,
  attempt: r.attempt,
  at: r.at,
  durationMs: r.duration_ms,
  status: r.status,
  outcome: r.outcome as DeliveryOutcome,
  error: r.error,
  response: r.response,
});

const toQueued = (r: Selectable<Database['webhook_queue']>): QueuedEvent => ({
  webhookId: r.webhook_id,
  seq: r.seq,
  event: JSON.parse(r.event) as UsageEvent,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  queuedAt: r.queued_at,
});

type EventRow = Selectable<Database['usage_events']>;

export class KyselyWebhookStore implements WebhookStore {
  private readonly db: Kysely<Database>;
  private readonly engine: Engine;

  constructor(db: Kysely<Database>, engine: Engine) {
    this.db = db;
    this.engine = engine;
  }

  async createWebhook(w: Webhook): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('webhooks')
        .values({
          id: w.id,
          namespace: w.namespace,
          url: w.url,
          secret: w.secret,
          types: JSON.stringify(w.types),
          repositories: JSON.stringify(w.repositories),
          mode: w.mode,
          description: w.description,
          created_by: w.createdBy,
          created_at: w.createdAt,
          updated_at: w.updatedAt,
        })
        .execute();
      const end = await tx
        .selectFrom('webhook_feed')
        .select((eb) => eb.fn.max('seq').as('seq'))
        .executeTakeFirst();
      await tx
        .insertInto('webhook_cursors')
        .values({ webhook_id: w.id, seq: Number(end?.seq ?? 0), holder: '', lease_until: 0 })
        .execute();
    });
  }

  async getWebhook(id: string): Promise<Webhook | undefined> {
    const row = await this.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toWebhook(row);
  }

  async listWebhooks(namespace?: string): Promise<Webhook[]> {
    let q = this.db.selectFrom('webhooks').selectAll();
    if (namespace !== undefined) q = q.where('namespace', '=', namespace);
    return (await q.orderBy('created_at').orderBy('id').execute()).map(toWebhook);
  }

  async updateWebhook(id: string, change: WebhookChange): Promise<Webhook | undefined> {
    const set: Partial<WebhookRow> = { updated_at: change.updatedAt };
    if (change.url !== undefined) set.url = change.url;
    if (change.secret !== undefined) set.secret = change.secret;
    if (change.types !== undefined) set.types = JSON.stringify(change.types);
    if (change.repositories !== undefined) set.repositories = JSON.stringify(change.repositories);
    if (change.mode !== undefined) set.mode = change.mode;
    if (change.description !== undefined) set.description = change.description;
    const row = await this.db.updateTable('webhooks').set(set).where('id', '=', id).returningAll().executeTakeFirst();
    return row && toWebhook(row);
  }

  async deleteWebhook(id: string): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const r = await tx.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst();
      await tx.deleteFrom('webhook_cursors').where('webhook_id', '=', id).execute();
      await tx.deleteFrom('webhook_queue').where('webhook_id', '=', id).execute();
      await tx.deleteFrom('webhook_deliveries').where('webhook_id', '=', id).execute();
      return r.numDeletedRows > 0n;
    });
  }

  async listDeliveries(webhookId: string, page: { limit: number; before?: number }): Promise<{ deliveries: Delivery[]; next?: number }> {
    let q = this.db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', webhookId);
    if (page.before !== undefined) q = q.where('id', '<', page.before);
    const rows = await q
      .orderBy('id', 'desc')
      .limit(page.limit + 1)
      .execute();
    const deliveries = rows.slice(0, page.limit).map(toDelivery);
    const last = deliveries.at(-1);
    return rows.length > page.limit && last ? { deliveries, next: last.id } : { deliveries };
  }

  async acquireLeases(holder: string, now: number, ttlMs: number, limit: number): Promise<string[]> {
    // The lease condition is in the outer WHERE too: on PostgreSQL a row another replica has just
    // leased is checked again after its lock is released, and then no longer matches.
    const candidates = this.db
      .selectFrom('webhook_cursors')
      .select('webhook_id')
      .where((eb) => eb.or([eb('holder', '=', holder), eb('lease_until', '<', now)]))
      .orderBy((eb) => eb.case().when('holder', '=', holder).then(0).else(1).end())
      .orderBy('webhook_id')
      .limit(limit);
    const rows = await this.db
      .updateTable('webhook_cursors')
      .set({ holder, lease_until: now + ttlMs })
      .where('webhook_id', 'in', candidates)
      .where((eb) => eb.or([eb('holder', '=', holder), eb('lease_until', '<', now)]))
      .returning('webhook_id')
      .execute();
    return rows.map((r) => r.webhook_id).sort();
  }

  async releaseLeases(holder: string): Promise<void> {
    await this.db.updateTable('webhook_cursors').set({ holder: '', lease_until: 0 }).where('holder', '=', holder).execute();
  }

  async ingest(
    webhookId: string,
    holder: string,
    options: { now: number; limit: number; maxQueued: number; accept: (event: UsageEvent) => boolean },
  ): Promise<{ read: number; queued: number }> {
    return this.db.transaction().execute(async (tx) => {
      let cursorQuery = tx
        .selectFrom('webhook_cursors as c')
        .innerJoin('webhooks as w', 'w.id', 'c.webhook_id')
        .select(['c.seq', 'w.namespace'])
        .where('c.webhook_id', '=', webhookId)
        .where('c.holder', '=', holder)
        .where('c.lease_until', '>', options.now);
      if (this.engine === 'postgres') cursorQuery = cursorQuery.forUpdate('c');
      const cursor = await cursorQuery.executeTakeFirst();
      if (!cursor) return { read: 0, queued: 0 };
      const waiting = await tx
        .selectFrom('webhook_queue')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('webhook_id', '=', webhookId)
        .executeTakeFirst();
      const room = Math.min(options.limit, options.maxQueued - Number(waiting?.n ?? 0));
      if (room <= 0) return { read: 0, queued: 0 };
      // The end of the feed first, then the entries up to it: every number below `top` has
      // committed (or never will), so a cursor moved to `top` skips nothing (see ../webhooks.ts).
      const end = await tx
        .selectFrom('webhook_feed')
        .select((eb) => eb.fn.max('seq').as('seq'))
        .executeTakeFirst();
      const top = Number(end?.seq ?? 0);
      if (top <= cursor.seq) return { read: 0, queued: 0 };
      const rows = await tx
        .selectFrom('webhook_feed as f')
        .leftJoin('usage_events as e', 'e.id', 'f.event_id')
        .select('f.seq')
        .selectAll('e')
        .where('f.namespace', '=', cursor.namespace)
        .where('f.seq', '>', cursor.seq)
        .where('f.seq', '<=', top)
        .orderBy('f.seq')
        .limit(room)
        .execute();
      const queue: Database['webhook_queue'][] = [];
      for (const r of rows) {
        // an event pruned before it was read is gone
        if (r.id === null) continue;
        const event = toEvent(r as EventRow);
        if (options.accept(event))
          queue.push({
            webhook_id: webhookId,
            seq: r.seq,
            repository: event.repository,
            event: JSON.stringify(event),
            attempts: 0,
            next_attempt_at: options.now,
            queued_at: options.now,
          });
      }
      for (let i = 0; i < queue.length; i += chunkSize)
        await tx
          .insertInto('webhook_queue')
          .values(queue.slice(i, i + chunkSize))
          .execute();
      const last = rows.at(-1);
      const moved = rows.length < room || !last ? top : last.seq;
      await tx.updateTable('webhook_cursors').set({ seq: moved }).where('webhook_id', '=', webhookId).execute();
      return { read: rows.length, queued: queue.length };
    });
  }

  async due(webhookId: string, now: number, limit: number): Promise<QueuedEvent[]> {
    const rows = await this.db
      .selectFrom('webhook_queue as q')
      .selectAll('q')
      .where('q.webhook_id', '=', webhookId)
      .where('q.next_attempt_at', '<=', now)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('webhook_queue as p')
              .select('p.seq')
              .whereRef('p.webhook_id', '=', 'q.webhook_id')
              .whereRef('p.repository', '=', 'q.repository')
              .whereRef('p.seq', '<', 'q.seq'),
          ),
        ),
      )
      .orderBy('q.seq')
      .limit(limit)
      .execute();
    return rows.map(toQueued);
  }

  async settle(queued: QueuedEvent, holder: string, now: number, settlement: Settlement, delivery: NewDelivery): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      let lease = tx
        .selectFrom('webhook_cursors')
        .select('webhook_id')
        .where('webhook_id', '=', queued.webhookId)
        .where('holder', '=', holder)
        .where('lease_until', '>', now);
      if (this.engine === 'postgres') lease = lease.forUpdate();
      if (!(await lease.executeTakeFirst())) return false;
      const row = await tx
        .selectFrom('webhook_queue')
        .select('attempts')
        .where('webhook_id', '=', queued.webhookId)
        .where('seq', '=', queued.seq)
        .executeTakeFirst();
      if (!row) return false;
      await tx
        .insertInto('webhook_deliveries')
        .values({
          webhook_id: queued.webhookId,
          event_id: queued.event.id,
          event_type: queued.event.type,
          repository: queued.event.repository,
          attempt: row.attempts + 1,
          at: delivery.at,
          duration_ms: Math.round(delivery.durationMs),
          status: delivery.status,
          outcome: delivery.outcome,
          error: delivery.error,
          response: delivery.response,
        })
        .execute();
      if (settlement.done) await tx.deleteFrom('webhook_queue').where('webhook_id', '=', queued.webhookId).where('seq', '=', queued.seq).execute();
      else
        await tx
          .updateTable('webhook_queue')
          .set({ attempts: row.attempts + 1, next_attempt_at: settlement.retryAt })
          .where('webhook_id', '=', queued.webhookId)
          .where('seq', '=', queued.seq)
          .execute();
      return true;
    });
  }

  async queued(): Promise<Map<string, number>> {
    const rows = await this.db
      .selectFrom('webhook_queue')
      .select(['webhook_id', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('webhook_id')
      .execute();
    return new Map(rows.map((r) => [r.webhook_id, Number(r.n)]));
  }

  async pruneDeliveries(before: number, keep: number): Promise<number> {
    let deleted = Number((await this.db.deleteFrom('webhook_deliveries').where('at', '<', before).executeTakeFirst()).numDeletedRows);
    for (const { id } of await this.db.selectFrom('webhooks').select('id').execute()) {
      const edge = await this.db
        .selectFrom('webhook_deliveries')
        .select('id')
        .where('webhook_id', '=', id)
        .orderBy('id', 'desc')
        .offset(keep)
        .limit(1)
        .executeTakeFirst();
      if (edge)
        deleted += Number(
          (await this.db.deleteFrom('webhook_deliveries').where('webhook_id', '=', id).where('id', '<=', edge.id).executeTakeFirst()).numDeletedRows,
        );
    }
    return deleted;
  }

  async pruneFeed(): Promise<number> {
    // Every cursor is past what it deletes; with no webhook at all, nothing will read the feed.
    const r = await this.db
      .deleteFrom('webhook_feed')
      .where('seq', '<=', (eb) =>
        eb.fn.coalesce(
          eb.selectFrom('webhook_cursors').select((s) => s.fn.min('seq').as('m')),
          eb.selectFrom('webhook_feed').select((s) => s.fn.max('seq').as('m')),
        ),
      )
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
