/**
 * The delivery worker over a real store (SQLite) and a receiver on 127.0.0.1, with a clock the
 * test moves: what arrives, in which order, after failures, after an hour of downtime, and with
 * two workers sharing the store.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openMetaStore } from '../../src/meta/open.ts';
import type { MetaStore } from '../../src/meta/metastore.ts';
import type { Webhook } from '../../src/meta/webhooks.ts';
import { httpSender } from '../../src/insight/webhooks/send.ts';
import { WebhookWorker, type WebhookSettings } from '../../src/insight/webhooks/worker.ts';
import { signed, startReceiver, type Receiver } from '../helpers/receiver.ts';
import { usageEvent } from '../suites/webhook-store.ts';

const secret = 'a-secret-of-enough-length';
const log = pino({ level: 'silent' });
const settings: WebhookSettings = {
  pollMs: 50,
  leaseMs: 60_000,
  timeoutMs: 2000,
  concurrency: 8,
  perWebhook: 4,
  backoffInitialMs: 1000,
  backoffMaxMs: 60_000,
  giveUpAfterMs: 3 * 86_400_000,
  maxQueued: 10_000,
  batch: 500,
  keepDeliveriesMs: 7 * 86_400_000,
  keepDeliveriesPerWebhook: 10_000,
  registryUrl: 'https://registry.example.com',
};

let meta: MetaStore;
let receiver: Receiver;
let clock: number;
const now = () => clock;
const workers: WebhookWorker[] = [];

function worker(extra: Partial<WebhookSettings> = {}, holder?: string): WebhookWorker {
  const w = new WebhookWorker({
    store: meta.webhooks,
    sender: httpSender({ timeoutMs: extra.timeoutMs ?? settings.timeoutMs, allowPrivateNetworks: true, userAgent: 'test' }),
    log,
    settings: { ...settings, ...extra },
    now,
    ...(holder ? { holder } : {}),
  });
  workers.push(w);
  return w;
}

async function webhook(extra: Partial<Webhook> = {}): Promise<Webhook> {
  const w: Webhook = {
    id: crypto.randomUUID(),
    namespace: 'team',
    url: receiver.url,
    secret,
    types: ['push', 'pull', 'delete'],
    repositories: ['team/**'],
    mode: 'structured',
    description: '',
    createdBy: 'alice',
    createdAt: clock,
    updatedAt: clock,
    ...extra,
  };
  await meta.webhooks.createWebhook(w);
  return w;
}

/** Events of repositories team/r0 … team/r<repos-1>, numbered 0, 1, 2 … in the order recorded (tag n-<i>). */
let counter = 0;
async function happen(n: number, repos = 3, extra: Parameters<typeof usageEvent>[0] = {}): Promise<string[]> {
  const events = Array.from({ length: n }, () => {
    const i = counter++;
    return usageEvent({ at: clock, repository: `team/r${i % repos}`, tag: `n-${i}`, ...extra });
  });
  await meta.insight.recordEvents(events);
  return events.map((e) => e.id);
}

const tagsOf = (rs: { event: { data?: Record<string, unknown> } }[]) => rs.map((r) => String(r.event.data?.tag));
const perRepository = (rs: { event: { data?: Record<string, unknown> } }[]) => {
  const out = new Map<string, number[]>();
  for (const r of rs) {
    const repo = String(r.event.data?.repository);
    out.set(repo, [...(out.get(repo) ?? []), Number(String(r.event.data?.tag).slice(2))]);
  }
  return out;
};
const increasing = (ns: number[]) => ns.every((n, i) => i === 0 || n > (ns[i - 1] ?? -1));

beforeEach(async () => {
  clock = Date.UTC(2025, 0, 15, 10, 0, 0);
  counter = 0;
  meta = await openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-webhooks-')), 'custody.db'));
  receiver = await startReceiver();
});
afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop();
  await receiver.stop();
  await meta.close();
});

describe('the webhook worker', () => {
  it('delivers signed CloudEvents of what the filters accept, once each, in order per repository', async () => {
    const w = worker();
    const hook = await webhook({ types: ['push', 'delete'], repositories: ['team/r0', 'team/r1'] });
    await happen(9);
    await happen(3, 3, { type: 'pull' });
    await happen(2, 3, { type: 'push', namespace: 'other', repository: 'other/x' });
    await happen(3, 3, { type: 'delete', object: 'tag' });
    await happen(2, 3, { result: 'denied' });
    await w.runOnce();
    const got = receiver.received;
    // pushes and deletes of r0 and r1, successful, of team
    expect(got).toHaveLength(8);
    expect(got.every((r) => r.status === 204 && signed(r, secret, clock / 1000))).toBe(true);
    expect(got.every((r) => r.headers['custody-webhook-id'] === hook.id && r.headers['custody-delivery-attempt'] === '1')).toBe(true);
    expect(got.every((r) => r.headers['user-agent'] === 'test')).toBe(true);
    expect(new Set(got.map((r) => r.event.id)).size).toBe(8);
    expect(new Set(got.map((r) => r.event.type))).toEqual(new Set(['dev.custody.push', 'dev.custody.delete']));
    const order = perRepository(got);
    expect([...order.keys()].sort()).toEqual(['team/r0', 'team/r1']);
    expect(order.get('team/r0')).toEqual([0, 3, 6, 15]);
    expect(order.get('team/r1')).toEqual([1, 4, 7, 16]);
    expect(got[0]?.event.source).toBe('https://registry.example.com/team/r0');
    expect(w.counts).toEqual({ delivered: 8, failed: 0, dropped: 0 });
    // nothing is sent twice
    await w.runOnce();
    expect(receiver.received).toHaveLength(8);
    const log = await meta.webhooks.listDeliveries(hook.id, { limit: 100 });
    expect(log.deliveries).toHaveLength(8);
    expect(log.deliveries.every((d) => d.outcome === 'delivered' && d.status === 204 && d.attempt === 1)).toBe(true);
  });

  it('sends binary mode when asked, and a changed secret signs from then on', async () => {
    const w = worker();
    const hook = await webhook({ mode: 'binary' });
    await happen(1);
    await w.runOnce();
    expect(receiver.received[0]?.headers['ce-type']).toBe('dev.custody.push');
    expect(receiver.received[0]?.headers['content-type']).toBe('application/json');
    clock += 1;
    await meta.webhooks.updateWebhook(hook.id, { secret: 'the-rotated-secret-value', updatedAt: clock });
    await happen(1);
    await w.runOnce();
    expect(receiver.received).toHaveLength(2);
    expect(signed(receiver.received[1]!, 'the-rotated-secret-value', clock / 1000)).toBe(true);
    expect(signed(receiver.received[1]!, secret, clock / 1000)).toBe(false);
  });

  it('a failing repository waits with backoff and holds back only its own later events', async () => {
    const w = worker();
    const hook = await webhook();
    receiver.answer = (r) => (r.event.data?.repository === 'team/r1' ? 500 : 204);
    await happen(9);
    await w.runOnce();
    expect(perRepository(receiver.accepted())).toEqual(
      new Map([
        ['team/r0', [0, 3, 6]],
        ['team/r2', [2, 5, 8]],
      ]),
    );
    // r1's head was tried once; its later events were not sent
    expect(tagsOf(receiver.received.filter((r) => r.status === 500))).toEqual(['n-1']);
    // not due before the backoff: nothing more is sent
    clock += 999;
    await w.runOnce();
    expect(receiver.received.filter((r) => r.status === 500)).toHaveLength(1);
    clock += 1;
    await w.runOnce();
    expect(receiver.received.filter((r) => r.status === 500)).toHaveLength(2);
    // then 2 s, 4 s: the third attempt comes 2 s after the second
    clock += 1999;
    await w.runOnce();
    expect(receiver.received.filter((r) => r.status === 500)).toHaveLength(2);
    receiver.answer = () => 204;
    clock += 1;
    await w.runOnce();
    expect(perRepository(receiver.accepted()).get('team/r1')).toEqual([1, 4, 7]);
    const attempts = (await meta.webhooks.listDeliveries(hook.id, { limit: 100 })).deliveries.filter((d) => d.repository === 'team/r1');
    expect(attempts.map((d) => [d.attempt, d.outcome, d.status]).reverse()).toEqual([
      [1, 'failed', 500],
      [2, 'failed', 500],
      [3, 'delivered', 204],
      [1, 'delivered', 204],
      [1, 'delivered', 204],
    ]);
    expect(attempts.at(-1)).toMatchObject({ error: 'HTTP 500', response: 'refused with 500' });
    expect(w.counts).toEqual({ delivered: 9, failed: 2, dropped: 0 });
  });

  it('a receiver down for an hour gets everything afterwards, in order per repository, once each', async () => {
    const w = worker({ backoffMaxMs: 5 * 60_000 });
    await webhook();
    await receiver.stop();
    const sent: string[] = [];
    // an hour of events while nobody listens: a batch every 5 minutes, the worker trying all along
    for (let minute = 0; minute < 60; minute += 5) {
      sent.push(...(await happen(10, 4)));
      await w.runOnce();
      clock += 5 * 60_000;
    }
    expect(receiver.received).toHaveLength(0);
    expect(w.counts.failed).toBeGreaterThan(4);
    expect((await meta.webhooks.queued()).values().next().value).toBe(120);
    await receiver.start();
    // the longest wait is the backoff's cap
    clock += 5 * 60_000;
    await w.runOnce();
    expect(receiver.received).toHaveLength(120);
    expect(new Set(receiver.received.map((r) => r.event.id))).toEqual(new Set(sent));
    for (const [repo, order] of perRepository(receiver.received)) expect(increasing(order), repo).toBe(true);
    expect(await meta.webhooks.queued()).toEqual(new Map());
  });

  it('an attempt that hangs ends at its deadline and is tried again', async () => {
    const w = worker({ timeoutMs: 200, leaseMs: 60_000 });
    await webhook();
    let first = true;
    receiver.answer = () => {
      if (!first) return 204;
      first = false;
      return 'hang';
    };
    await happen(1);
    const started = performance.now();
    await w.runOnce();
    expect(performance.now() - started).toBeLessThan(2000);
    expect(receiver.accepted()).toHaveLength(0);
    clock += 1000;
    await w.runOnce();
    expect(receiver.accepted()).toHaveLength(1);
    expect(w.counts).toEqual({ delivered: 1, failed: 1, dropped: 0 });
  });

  it('drops an event that kept failing for longer than giveUpAfter, and goes on with the next', async () => {
    const w = worker({ giveUpAfterMs: 10_000, backoffMaxMs: 4000 });
    const hook = await webhook();
    receiver.answer = () => 503;
    await happen(2, 1);
    await w.runOnce();
    for (let i = 0; i < 4; i++) {
      clock += 4000;
      await w.runOnce();
    }
    const log = (await meta.webhooks.listDeliveries(hook.id, { limit: 100 })).deliveries;
    expect(log.filter((d) => d.outcome === 'dropped').length).toBeGreaterThanOrEqual(1);
    receiver.answer = () => 204;
    clock += 4000;
    await w.runOnce();
    // the first was dropped; the second (queued at the same time) too, or delivered now
    expect(w.counts.dropped + w.counts.delivered).toBe(2);
    expect(await meta.webhooks.queued()).toEqual(new Map());
  });

  it('two workers on one store: one holds the lease and delivers each event once; the other takes over when it stops', async () => {
    const a = worker({}, 'replica-a');
    const b = worker({}, 'replica-b');
    await webhook();
    await happen(6);
    await a.runOnce();
    await b.runOnce();
    await Promise.all([a.runOnce(), b.runOnce()]);
    expect(receiver.received).toHaveLength(6);
    expect(a.counts.delivered).toBe(6);
    expect(b.counts.delivered).toBe(0);
    await a.stop();
    await happen(3);
    clock += 30_000;
    await b.runOnce();
    expect(b.counts.delivered).toBe(3);
    expect(new Set(receiver.received.map((r) => r.event.id)).size).toBe(9);
  });

  it('refuses to deliver to a private address when private networks are not allowed, and logs why', async () => {
    const w = new WebhookWorker({
      store: meta.webhooks,
      sender: httpSender({ timeoutMs: 1000, allowPrivateNetworks: false, userAgent: 't' }),
      log,
      settings,
      now,
    });
    workers.push(w);
    const hook = await webhook();
    await happen(1);
    await w.runOnce();
    expect(receiver.received).toHaveLength(0);
    const [attempt] = (await meta.webhooks.listDeliveries(hook.id, { limit: 10 })).deliveries;
    expect(attempt).toMatchObject({ outcome: 'failed', status: 0, error: expect.stringMatching(/allowPrivateNetworks/) });
  });
});
