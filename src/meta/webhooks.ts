/**
 * What webhooks (src/insight/webhooks/) keep in the shared metadata store: each namespace's
 * webhooks, and the outbox their deliveries are made from.
 *
 * The outbox (migration 0012-webhooks; the design is in src/insight/webhooks/README.md):
 *
 * - **The feed.** A trigger on usage_events appends every push, pull and delete of a namespace
 *   that has a webhook to webhook_feed, numbered by a sequence in commit order: on PostgreSQL
 *   the trigger takes a transaction lock before it numbers, so no batch can commit a lower
 *   number after a reader has seen a higher one; SQLite has one writer at a time anyway. A
 *   reader that keeps the last number it read therefore never skips an event, however late (a
 *   long pull's event carries the time it began) or from whichever replica it was written.
 * - **Cursors.** Each webhook's position in the feed, and its lease: the one replica that
 *   delivers it until the lease runs out.
 * - **The queue.** The events that passed a webhook's filters, copied whole, waiting for a
 *   successful delivery. A repository's oldest queued event is its head; only heads are due, so
 *   a failing event holds back its repository's later events and no other repository's.
 * - **The log.** One row per attempt, aged out.
 */
import type { UsageEvent } from './insight.ts';

/** The events a webhook can be told of. */
export const webhookEventTypes = ['push', 'pull', 'delete'] as const;
export type WebhookEventType = (typeof webhookEventTypes)[number];

/** CloudEvents' HTTP modes: the whole event as JSON in the body, or attributes in ce-* headers. */
export type WebhookMode = 'structured' | 'binary';

export interface Webhook {
  id: string;
  namespace: string;
  /** http(s) */
  url: string;
  /** signs every delivery (HMAC-SHA256); stored as given, since signing needs it */
  secret: string;
  types: WebhookEventType[];
  /** repository name patterns (src/insight/webhooks/patterns.ts) */
  repositories: string[];
  mode: WebhookMode;
  description: string;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

export type WebhookChange = Partial<Pick<Webhook, 'url' | 'secret' | 'types' | 'repositories' | 'mode' | 'description'>> & { updatedAt: number };

/** An event waiting in a webhook's queue. */
export interface QueuedEvent {
  webhookId: string;
  /** its number in the feed: the order of delivery within a repository */
  seq: number;
  event: UsageEvent;
  /** failed attempts so far */
  attempts: number;
  nextAttemptAt: number;
  queuedAt: number;
}

export type DeliveryOutcome = 'delivered' | 'failed' | 'dropped';

export interface Delivery {
  /** increasing: newer attempts have larger ids */
  id: number;
  webhookId: string;
  eventId: string;
  eventType: string;
  repository: string;
  /** 1 for the first attempt */
  attempt: number;
  /** when the attempt began */
  at: number;
  durationMs: number;
  /** the HTTP status, 0 when there was no answer */
  status: number;
  /** delivered (2xx); failed (retried later); dropped (failed, and too old to retry) */
  outcome: DeliveryOutcome;
  error: string;
  /** the start of the response body */
  response: string;
}

export type NewDelivery = Omit<Delivery, 'id' | 'webhookId' | 'eventId' | 'eventType' | 'repository' | 'attempt'>;

/** What an attempt leaves: the event leaves the queue, or waits until retryAt. */
export type Settlement = { done: true } | { done: false; retryAt: number };

/** Webhooks as the API manages them, and their delivery logs. */
export interface WebhookConfigs {
  /** Creates the webhook with its cursor at the end of the feed: it is told of events from now on. */
  createWebhook(webhook: Webhook): Promise<void>;
  getWebhook(id: string): Promise<Webhook | undefined>;
  /** Every webhook, or a namespace's, by creation time. */
  listWebhooks(namespace?: string): Promise<Webhook[]>;
  /** The webhook after the change; undefined when there is none. */
  updateWebhook(id: string, change: WebhookChange): Promise<Webhook | undefined>;
  /** Deletes the webhook with its cursor, queue and log. */
  deleteWebhook(id: string): Promise<boolean>;
  /** Newest first; `before` is the `next` of the previous page. */
  listDeliveries(webhookId: string, page: { limit: number; before?: number }): Promise<{ deliveries: Delivery[]; next?: number }>;
}

/** The outbox a delivery worker works from; every write checks that the caller holds the lease. */
export interface WebhookOutbox {
  /**
   * Takes (or renews) until now + ttlMs the lease of every webhook that no other holder's valid
   * lease covers, up to `limit` of them; the ids this holder now leases.
   */
  acquireLeases(holder: string, now: number, ttlMs: number, limit: number): Promise<string[]>;
  releaseLeases(holder: string): Promise<void>;
  /**
   * Reads up to `limit` feed entries after the webhook's cursor, queues the events `accept`
   * takes and moves the cursor past all of them, in one transaction; nothing when the holder
   * does not hold the lease or the queue already holds `maxQueued` events.
   */
  ingest(
    webhookId: string,
    holder: string,
    options: { now: number; limit: number; maxQueued: number; accept: (event: UsageEvent) => boolean },
  ): Promise<{ read: number; queued: number }>;
  /** The head of each repository's queue whose next attempt is due, oldest first, at most `limit`. */
  due(webhookId: string, now: number, limit: number): Promise<QueuedEvent[]>;
  /**
   * Logs an attempt and applies its settlement, if the holder still holds the lease (else
   * nothing, and false: the new holder delivers it).
   */
  settle(queued: QueuedEvent, holder: string, now: number, settlement: Settlement, delivery: NewDelivery): Promise<boolean>;
  /** Queued events per webhook (those with none are left out). */
  queued(): Promise<Map<string, number>>;
  /** Deletes log rows older than `before`, and each webhook's beyond its newest `keep`; how many. */
  pruneDeliveries(before: number, keep: number): Promise<number>;
  /** Deletes the feed entries every cursor has passed; how many. */
  pruneFeed(): Promise<number>;
}

export interface WebhookStore extends WebhookConfigs, WebhookOutbox {}
