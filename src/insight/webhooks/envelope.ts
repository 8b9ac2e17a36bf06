/**
 * What a webhook receives for an event: a CloudEvents 1.0 event (the `cloudevents` package's
 * HTTP binding, structured or binary mode) and its signature.
 *
 * The signature is HMAC-SHA256, keyed with the webhook's secret, of `<timestamp>.<body>`, where
 * the timestamp is the Custody-Timestamp header (Unix seconds when the attempt was made): the
 * header `Custody-Signature: sha256=<hex>`. A receiver computes the same over the raw body,
 * compares in constant time, and refuses a timestamp too far from its clock, so a delivery
 * captured on the way cannot be replayed later (docs/insight.md, "Verifying a delivery").
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CloudEvent, HTTP } from 'cloudevents';
import { eventJson, type UsageEvent } from '../../meta/insight.ts';
import type { WebhookMode } from '../../meta/webhooks.ts';

export const signatureHeader = 'custody-signature';
export const timestampHeader = 'custody-timestamp';

/** The CloudEvents type of an event: dev.custody.push, dev.custody.pull, dev.custody.delete. */
export const cloudEventType = (type: string): string => `dev.custody.${type}`;

/** The event's fields as the `data` of the CloudEvent: the API's view, with the address named for receivers. */
export function eventData(e: UsageEvent): Record<string, unknown> {
  const { source, ...rest } = eventJson(e);
  return { ...rest, clientAddress: source };
}

export interface Envelope {
  headers: Record<string, string>;
  body: string;
}

/**
 * The HTTP message for one attempt: `registryUrl` and the repository make the CloudEvent's
 * source; `timestamp` (Unix seconds) is signed with the body.
 */
export function envelope(e: UsageEvent, options: { mode: WebhookMode; secret: string; registryUrl: string; timestamp: number }): Envelope {
  const event = new CloudEvent({
    specversion: '1.0',
    id: e.id,
    type: cloudEventType(e.type),
    source: `${options.registryUrl}/${e.repository}`,
    time: new Date(e.at).toISOString(),
    subject: e.tag !== '' ? e.tag : e.digest,
    datacontenttype: 'application/json',
    data: eventData(e),
  });
  const message = options.mode === 'binary' ? HTTP.binary(event) : HTTP.structured(event);
  const body = typeof message.body === 'string' ? message.body : JSON.stringify(message.body);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) if (value !== undefined) headers[name.toLowerCase()] = String(value);
  headers[timestampHeader] = String(options.timestamp);
  headers[signatureHeader] = sign(options.secret, options.timestamp, body);
  return { headers, body };
}

/** `sha256=<hex>` of HMAC-SHA256(secret, `<timestamp>.<body>`). */
export function sign(secret: string, timestamp: number | string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`;
}

/**
 * What a receiver does (and the tests do): the signature matches the body and timestamp, and the
 * timestamp is within `toleranceSeconds` of `nowSeconds`.
 */
export function verify(
  secret: string,
  headers: { signature?: string; timestamp?: string },
  body: string | Buffer,
  nowSeconds: number,
  toleranceSeconds = 300,
): boolean {
  const { signature, timestamp } = headers;
  if (signature === undefined || timestamp === undefined || !/^\d{1,12}$/.test(timestamp)) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) return false;
  const want = Buffer.from(sign(secret, timestamp, body));
  const got = Buffer.from(signature);
  return got.length === want.length && timingSafeEqual(got, want);
}
