/**
 * Webhooks, as buildApp makes them (it starts and stops the worker): the HTTP sender under insight.webhooks' limits, and the
 * delivery worker every replica runs (design: README.md beside this file).
 */
import { readFileSync } from 'node:fs';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../../config/schema.ts';
import type { WebhookStore } from '../../meta/webhooks.ts';
import { httpSender } from './send.ts';
import { webhookSettings } from './settings.ts';
import { WebhookWorker } from './worker.ts';

/** How figures are handed to /metrics (src/insight/metrics.ts MetricsRegistration), without depending on it. */
export interface WebhookMetricsRegistration {
  gauge(name: string, help: string, collect: () => number | Promise<number>): void;
  counter(
    name: string,
    help: string,
    collect: () => readonly { labels: Record<string, string>; value: number }[] | Promise<readonly { labels: Record<string, string>; value: number }[]>,
    labelNames?: readonly string[],
  ): void;
}

/** The package's version, for the User-Agent (the same path from src/ and from dist/). */
const version = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function startWebhooks(
  config: Config,
  deps: { store: WebhookStore; log: FastifyBaseLogger; now?: () => number; metrics?: WebhookMetricsRegistration },
): WebhookWorker {
  const settings = webhookSettings(config);
  const sender = httpSender({
    timeoutMs: settings.timeoutMs,
    allowPrivateNetworks: config.insight.webhooks.allowPrivateNetworks,
    userAgent: `custody-webhooks/${version}`,
  });
  const worker = new WebhookWorker({ store: deps.store, sender, log: deps.log, settings, ...(deps.now ? { now: deps.now } : {}) });
  if (deps.metrics) {
    deps.metrics.gauge('custody_webhook_queued_events', 'Events waiting for a successful webhook delivery, all webhooks of the registry', async () => {
      let total = 0;
      for (const n of (await deps.store.queued()).values()) total += n;
      return total;
    });
    deps.metrics.counter(
      'custody_webhook_deliveries_total',
      'Webhook delivery attempts made by this process, by outcome (delivered, failed: retried later, dropped: given up)',
      () => Object.entries(worker.counts).map(([outcome, value]) => ({ labels: { outcome }, value })),
      ['outcome'],
    );
  }
  return worker;
}
