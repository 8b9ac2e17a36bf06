/**
 * A receiver that goes away: pushes and pulls go on through /v2 while it is down, and once it is
 * back it gets every one of them, once, in order per repository. The backoff's cap is 0.2 s here
 * (insight.webhooks.backoff.maxSeconds) so that "down for an hour" takes seconds; the worker
 * test (test/insight/webhook-worker.test.ts) moves a clock through a real hour with a 5-minute cap.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { imageManifest, putManifest, request, type Reply } from './helpers/http.ts';
import { startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { signed, startReceiver, type Receiver } from './helpers/receiver.ts';

let server: AccountsServer;
let receiver: Receiver;

const api = (method: string, path: string, body?: unknown): Promise<Reply> =>
  request(server.url, `/api/v1${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });

beforeAll(async () => {
  receiver = await startReceiver();
  server = await startWithAccounts(
    {
      insight: {
        events: { flushMs: 50 },
        webhooks: { allowPrivateNetworks: true, pollSeconds: 0.05, timeoutSeconds: 2, backoff: { initialSeconds: 0.02, maxSeconds: 0.2 } },
      },
    },
    {},
    { listen: false },
  );
  await api('PUT', '/namespaces/team', {});
});
afterAll(async () => {
  await server?.stop();
  await receiver?.stop();
});

it('a receiver that was down gets everything afterwards, in order per repository, exactly once', async () => {
  const created = (await api('POST', '/namespaces/team/webhooks', { url: receiver.url, types: ['push', 'pull'], repositories: ['team/svc-*'] })).json<{
    id: string;
    secret: string;
  }>();
  await receiver.stop();
  const repos = ['team/svc-a', 'team/svc-b', 'team/svc-c'];
  const started = Date.now();
  let round = 0;
  // about two seconds of pushes and pulls while the receiver is down
  while (Date.now() - started < 2000 || round < 4) {
    for (const repo of repos) {
      const image = await imageManifest(server.url, repo, [`layer ${repo} ${round}`]);
      expect((await putManifest(server.url, repo, `r${round}`, image.body)).status).toBe(201);
      expect((await request(server.url, `/v2/${repo}/manifests/r${round}`)).status).toBe(200);
    }
    round++;
  }
  // and something the webhook does not want
  const elsewhere = await imageManifest(server.url, 'team/other', ['unwanted']);
  await putManifest(server.url, 'team/other', 'x', elsewhere.body);
  await new Promise((r) => setTimeout(r, 300));
  expect(receiver.received).toHaveLength(0);
  const failed = (await api('GET', `/namespaces/team/webhooks/${created.id}/deliveries?limit=500`)).json<{
    deliveries: { outcome: string; error: string }[];
  }>();
  expect(failed.deliveries.length).toBeGreaterThan(3);
  expect(failed.deliveries.every((d) => d.outcome === 'failed' && d.error === 'connection refused')).toBe(true);

  await receiver.start();
  const wanted = (await server.meta.insight.eventsAfter(undefined, 10_000, { namespaces: ['team'], types: ['push', 'pull'] })).filter(
    (e) => e.result === 'ok' && e.repository.startsWith('team/svc-'),
  );
  expect(wanted.length).toBe(round * repos.length * 4);
  for (let i = 0; i < 300 && receiver.received.length < wanted.length; i++) await new Promise((r) => setTimeout(r, 50));
  // a little longer: nothing more may come
  await new Promise((r) => setTimeout(r, 500));
  const got = receiver.received;
  expect(got.every((r) => r.status === 204 && signed(r, created.secret))).toBe(true);
  expect(got.map((r) => r.event.id).sort()).toEqual(wanted.map((e) => e.id).sort());
  expect(new Set(got.map((r) => r.event.id)).size).toBe(got.length);
  for (const repo of repos) {
    // the manifests of each repository arrive in the order they were pushed, each push before its pull
    const seen = got
      .filter((r) => r.event.data?.repository === repo && r.event.data?.object === 'manifest')
      .map((r) => `${String(r.event.data?.type)} ${String(r.event.subject)}`);
    expect(seen).toEqual(Array.from({ length: round }, (_, k) => [`push r${k}`, `pull r${k}`]).flat());
  }
  expect((await api('GET', `/namespaces/team/webhooks/${created.id}`)).json<{ queued: number }>().queued).toBe(0);
});
