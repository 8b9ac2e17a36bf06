/** insight.webhooks as the worker and the API use it, and the checks a webhook's settings must pass. */
import { hostname } from 'node:os';
import { parseListen, type Config } from '../../config/schema.ts';
import { privateHostProblem } from './address.ts';
import type { WebhookSettings } from './worker.ts';

export function webhookSettings(config: Config): WebhookSettings {
  const w = config.insight.webhooks;
  return {
    pollMs: w.pollSeconds * 1000,
    leaseMs: w.leaseSeconds * 1000,
    timeoutMs: w.timeoutSeconds * 1000,
    concurrency: w.concurrency,
    perWebhook: w.perWebhook,
    backoffInitialMs: w.backoff.initialSeconds * 1000,
    backoffMaxMs: w.backoff.maxSeconds * 1000,
    giveUpAfterMs: w.giveUpAfterSeconds * 1000,
    maxQueued: w.maxQueued,
    batch: 500,
    keepDeliveriesMs: w.deliveryLog.keepDays * 86_400_000,
    keepDeliveriesPerWebhook: w.deliveryLog.keepPerWebhook,
    registryUrl: registryUrl(config),
  };
}

/** Where receivers know the registry: insight.webhooks.registryUrl, else auth.realm's origin, else this host and the port listened on. */
export function registryUrl(config: Config): string {
  const configured = config.insight.webhooks.registryUrl ?? (config.auth.realm ? new URL(config.auth.realm).origin : undefined);
  if (configured) return configured.replace(/\/+$/, '');
  const { host, port } = parseListen(config.listen);
  const name = host === '0.0.0.0' || host === '::' || host === '' ? hostname() : host.includes(':') ? `[${host}]` : host;
  return `http://${name}:${port}`;
}

/** Why a webhook may not send to this URL, or undefined. */
export function urlProblem(raw: string, allowPrivateNetworks: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a URL: give it with http:// or https://';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `a webhook URL is http:// or https://, not ${url.protocol}//`;
  if (url.username !== '' || url.password !== '') return 'a webhook URL carries no user or password: the receiver checks the signature instead';
  if (url.hash !== '') return 'a webhook URL has no #fragment';
  const privateHost = allowPrivateNetworks ? undefined : privateHostProblem(url);
  if (privateHost) return `${privateHost}; webhooks may not reach this machine or private networks unless insight.webhooks.allowPrivateNetworks is set`;
  return undefined;
}
