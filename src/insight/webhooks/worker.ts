/**
 * The delivery worker: every replica runs one; each webhook is delivered by the one replica that
 * holds its lease (meta.webhooks.acquireLeases). For each webhook it holds, it queues what the
 * webhook's filters accept from the feed, delivers the head of each repository's queue (a few
 * repositories at once, one event at a time per repository), and records each attempt: a success
 * removes the event, a failure schedules the next attempt after a backoff that doubles up to a
 * cap, and an event still failing after `giveUpAfterMs` in the queue is dropped and logged so.
 *
 * Nothing here can hang it: each attempt has a deadline (send.ts), outbound requests are bounded
 * per replica (`concurrency`) and per webhook (`perWebhook`), and a webhook's work stops when its
 * lease would run out before the next attempt could finish. A delivery whose result is recorded
 * after the lease moved on is not recorded (the new holder sends it again): receivers get each
 * event at least once, and exactly once while leases are not lost mid-attempt.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import type { UsageEvent } from '../../meta/insight.ts';
import type { DeliveryOutcome, QueuedEvent, Webhook, WebhookStore } from '../../meta/webhooks.ts';
import { repositoryMatcher } from './patterns.ts';
import type { Sender } from './send.ts';
import { Slots } from '../../slots.ts';

/** The envelope, with the cloudevents package, loaded at the first delivery: a server without webhooks never needs it. */
let envelopeModule: Promise<typeof import('./envelope.ts')> | undefined;
const loadEnvelope = () => (envelopeModule ??= import('./envelope.ts'));

export interface WebhookSettings {
  /** how often feeds and queues are looked at */
  pollMs: number;
  /** how long a lease lasts; renewed every third of it */
  leaseMs: number;
  /** one attempt's deadline (the sender's); a webhook's work stops this long before its lease ends */
  timeoutMs: number;
  /** outbound requests at once, per replica */
  concurrency: number;
  /** repositories delivered at once, per webhook */
  perWebhook: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** an event that has waited this long in the queue is dropped at its next failure */
  giveUpAfterMs: number;
  /** events queued per webhook at most; the feed waits beyond that */
  maxQueued: number;
  /** feed entries read per ingest */
  batch: number;
  keepDeliveriesMs: number;
  keepDeliveriesPerWebhook: number;
  /** the CloudEvents source is <registryUrl>/<repository> */
  registryUrl: string;
}

export interface WebhookWorkerDeps {
  store: WebhookStore;
  sender: Sender;
  log: FastifyBaseLogger;
  settings: WebhookSettings;
  now?: () => number;
  /** this replica's name in leases (default: host, pid and a random tag) */
  holder?: string;
}

/** The wait before attempt `failures + 1`, after `failures` failed ones. */
export function backoff(failures: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(failures - 1, 0), 40));
}

/** Whether a webhook wants an event: its type, a successful request, and a repository its patterns match. */
export function webhookFilter(w: Pick<Webhook, 'types' | 'repositories' | 'namespace'>): (e: UsageEvent) => boolean {
  const types = new Set<string>(w.types);
  const matches = repositoryMatcher(w.repositories);
  return (e) => e.namespace === w.namespace && types.has(e.type) && e.result === 'ok' && matches(e.repository);
}

export class WebhookWorker {
  readonly holder: string;
  /** deliveries made by this process, by outcome */
  readonly counts: Record<DeliveryOutcome, number> = { delivered: 0, failed: 0, dropped: 0 };
  private readonly store: WebhookStore;
  private readonly sender: Sender;
  private readonly log: FastifyBaseLogger;
  private readonly settings: WebhookSettings;
  private readonly now: () => number;
  private readonly slots: Slots;
  private webhooks = new Map<string, { webhook: Webhook; accept: (e: UsageEvent) => boolean }>();
  private leased = new Set<string>();
  /** the webhooks that existed at the last lease round */
  private seen = new Set<string>();
  private leaseUntil = 0;
  private nextLease = 0;
  private readonly working = new Map<string, Promise<void>>();
  /** webhooks whose last attempt failed, so that a failing receiver is logged once, not per attempt */
  private readonly failing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopping = false;

  constructor(deps: WebhookWorkerDeps) {
    this.store = deps.store;
    this.sender = deps.sender;
    this.log = deps.log;
    this.settings = deps.settings;
    this.now = deps.now ?? Date.now;
    this.holder = deps.holder ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
    this.slots = new Slots(deps.settings.concurrency);
  }

  start(): void {
    if (this.timer || this.stopping) return;
    // Every replica polls (not a scheduled job): deliveries are shared out by the per-webhook leases.
    const loop = () => {
      this.ticking = this.tick()
        .catch((err: unknown) => this.log.error({ err }, 'webhook delivery failed; trying again'))
        .finally(() => {
          this.ticking = undefined;
          if (!this.stopping) {
            this.timer = setTimeout(loop, this.settings.pollMs);
            this.timer.unref();
          }
        });
    };
    this.timer = setTimeout(loop, 0);
    this.timer.unref();
  }

  /** Lets the deliveries in flight finish (each within its deadline), then gives the leases up. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.ticking;
    await Promise.all(this.working.values());
    try {
      await this.store.releaseLeases(this.holder);
    } catch (err) {
      this.log.warn({ err }, 'could not give up the webhook leases; they run out by themselves');
    }
    this.sender.close();
  }

  /**
   * One pass: leases (every third of their life), the webhooks' settings, then the work of every
   * webhook held: queue from the feed and deliver until nothing is due. Resolves when that work is done.
   */
  async runOnce(): Promise<void> {
    await this.tick();
    await Promise.all(this.working.values());
  }

  private async tick(): Promise<void> {
    const now = this.now();
    const all = await this.store.listWebhooks();
    // every third of a lease, and at once when a webhook appears that no lease round has seen
    if (now >= this.nextLease || all.some((w) => !this.seen.has(w.id))) {
      this.leased = new Set(await this.store.acquireLeases(this.holder, now, this.settings.leaseMs, 10_000));
      this.seen = new Set(all.map((w) => w.id));
      this.leaseUntil = now + this.settings.leaseMs;
      this.nextLease = now + this.settings.leaseMs / 3;
    }
    const current = new Map<string, { webhook: Webhook; accept: (e: UsageEvent) => boolean }>();
    for (const webhook of all) {
      if (!this.leased.has(webhook.id)) continue;
      const known = this.webhooks.get(webhook.id);
      current.set(webhook.id, known && known.webhook.updatedAt === webhook.updatedAt ? known : { webhook, accept: webhookFilter(webhook) });
    }
    this.webhooks = current;
    for (const id of current.keys()) {
      if (this.working.has(id) || this.stopping) continue;
      const work = this.work(id)
        .catch((err: unknown) => this.log.error({ err, webhook: id }, 'webhook delivery failed; trying again'))
        .finally(() => this.working.delete(id));
      this.working.set(id, work);
    }
  }

  /**
   * Prunes the delivery log (attempts past keepDeliveriesMs, or beyond each webhook's newest
   * keepDeliveriesPerWebhook) and the feed entries every cursor has passed. Shared tables: buildApp
   * schedules it once per interval across replicas, not in every replica's delivery loop.
   */
  async prune(): Promise<void> {
    await this.store.pruneDeliveries(this.now() - this.settings.keepDeliveriesMs, this.settings.keepDeliveriesPerWebhook);
    await this.store.pruneFeed();
  }

  /** Whether this replica may start an attempt of the webhook now: it holds the lease beyond the attempt's deadline. */
  private holds(id: string): boolean {
    return !this.stopping && this.leased.has(id) && this.webhooks.has(id) && this.now() + this.settings.timeoutMs * 2 < this.leaseUntil;
  }

  private async work(id: string): Promise<void> {
    for (;;) {
      const entry = this.webhooks.get(id);
      if (!entry || !this.holds(id)) return;
      const now = this.now();
      await this.store.ingest(id, this.holder, { now, limit: this.settings.batch, maxQueued: this.settings.maxQueued, accept: entry.accept });
      const heads = await this.store.due(id, now, this.settings.perWebhook);
      if (heads.length === 0) return;
      await Promise.all(heads.map((head) => this.deliver(entry.webhook, head)));
    }
  }

  private async deliver(webhook: Webhook, head: QueuedEvent): Promise<void> {
    await this.slots.take();
    try {
      if (!this.holds(webhook.id)) return;
      const at = this.now();
      const { envelope } = await loadEnvelope();
      const message = envelope(head.event, {
        mode: webhook.mode,
        secret: webhook.secret,
        registryUrl: this.settings.registryUrl,
        timestamp: Math.floor(at / 1000),
      });
      message.headers['custody-webhook-id'] = webhook.id;
      message.headers['custody-delivery-attempt'] = String(head.attempts + 1);
      const result = await this.sender.send(webhook.url, message);
      const end = this.now();
      const outcome: DeliveryOutcome = result.ok ? 'delivered' : end - head.queuedAt >= this.settings.giveUpAfterMs ? 'dropped' : 'failed';
      const settlement =
        outcome === 'failed'
          ? { done: false as const, retryAt: end + backoff(head.attempts + 1, this.settings.backoffInitialMs, this.settings.backoffMaxMs) }
          : { done: true as const };
      const recorded = await this.store.settle(head, this.holder, end, settlement, {
        at,
        durationMs: result.durationMs,
        status: result.status,
        outcome,
        error: result.error,
        response: result.response,
      });
      if (!recorded) {
        // another replica holds the lease now: it delivers from here on
        this.leased.delete(webhook.id);
        return;
      }
      this.counts[outcome]++;
      this.report(webhook, head, outcome, result.error, settlement);
    } finally {
      this.slots.give();
    }
  }

  private report(webhook: Webhook, head: QueuedEvent, outcome: DeliveryOutcome, error: string, settlement: { done: boolean; retryAt?: number }): void {
    const about = { webhook: webhook.id, namespace: webhook.namespace, event: head.event.id, repository: head.event.repository, attempt: head.attempts + 1 };
    if (outcome === 'delivered') {
      if (this.failing.delete(webhook.id)) this.log.info(about, 'webhook delivered again after failures');
      return;
    }
    if (outcome === 'dropped') {
      this.log.warn({ ...about, error }, 'webhook event dropped: it kept failing for longer than insight.webhooks.giveUpAfterSeconds');
      return;
    }
    if (!this.failing.has(webhook.id)) {
      this.failing.add(webhook.id);
      this.log.warn({ ...about, error, retryAt: settlement.retryAt }, 'webhook delivery failed; retrying with backoff');
    } else this.log.debug({ ...about, error }, 'webhook delivery failed again');
  }
}
