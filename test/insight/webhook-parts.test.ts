/** The parts of webhook delivery: repository patterns, the SSRF checks, the CloudEvent and its signature, and one HTTP attempt. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HTTP } from 'cloudevents';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPrivateAddress, privateHostProblem } from '../../src/insight/webhooks/address.ts';
import { envelope, sign, verify } from '../../src/insight/webhooks/envelope.ts';
import { patternProblem, repositoryMatcher } from '../../src/insight/webhooks/patterns.ts';
import { httpSender } from '../../src/insight/webhooks/send.ts';
import { urlProblem } from '../../src/insight/webhooks/settings.ts';
import { backoff, webhookFilter } from '../../src/insight/webhooks/worker.ts';
import { usageEvent } from '../suites/webhook-store.ts';

describe('repository patterns', () => {
  it('match within a segment with * and ?, across segments with **, and nothing outside the namespace', () => {
    const m = repositoryMatcher(['team/app-*', 'team/**/web', 'team/t?']);
    for (const yes of ['team/app-', 'team/app-1', 'team/web', 'team/a/b/web', 'team/t1']) expect(m(yes), yes).toBe(true);
    for (const no of ['team/app', 'team/app-1/x', 'team/webx', 'team/t12', 'teamx/app-1', 'other/app-1', 'team']) expect(m(no), no).toBe(false);
    const all = repositoryMatcher(['team/**']);
    expect(['team', 'team/a', 'team/a/b/c'].every(all)).toBe(true);
    expect(all('teamx/a')).toBe(false);
    // dots are literal, not "any character"
    expect(repositoryMatcher(['team/a.b'])('team/aXb')).toBe(false);
    expect(repositoryMatcher([])('team/a')).toBe(false);
  });

  it('refuse what is not a pattern of the namespace, saying why', () => {
    expect(patternProblem('team/**', 'team')).toBeUndefined();
    expect(patternProblem('team/app-*/x', 'team')).toBeUndefined();
    expect(patternProblem('other/**', 'team')).toMatch(/starts with the webhook's namespace/);
    expect(patternProblem('*/app', 'team')).toMatch(/starts with the webhook's namespace/);
    expect(patternProblem('team/a**', 'team')).toMatch(/'\*\*' stands alone/);
    expect(patternProblem('team//a', 'team')).toMatch(/empty path segment/);
    expect(patternProblem('team/A', 'team')).toMatch(/a pattern uses/);
    expect(patternProblem('team/(a|b)', 'team')).toMatch(/a pattern uses/);
    expect(patternProblem('', 'team')).toMatch(/1 to 255/);
    expect(patternProblem(`team/${'a'.repeat(300)}`, 'team')).toMatch(/1 to 255/);
  });

  it('match in linear time whatever the pattern', () => {
    const m = repositoryMatcher([`team/${'*a'.repeat(60)}b`]);
    const started = performance.now();
    expect(m(`team/${'a'.repeat(240)}`)).toBe(false);
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('the filter and the backoff', () => {
  it('a webhook wants successful events of its types, namespace and patterns', () => {
    const accept = webhookFilter({ namespace: 'team', types: ['push', 'delete'], repositories: ['team/app*'] });
    expect(accept(usageEvent())).toBe(true);
    expect(accept(usageEvent({ type: 'delete' }))).toBe(true);
    expect(accept(usageEvent({ type: 'pull' }))).toBe(false);
    expect(accept(usageEvent({ result: 'denied' }))).toBe(false);
    expect(accept(usageEvent({ repository: 'team/web' }))).toBe(false);
    expect(accept(usageEvent({ namespace: 'other', repository: 'team/app' }))).toBe(false);
  });

  it('doubles from the first wait up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 100, 10_000].map((n) => backoff(n, 1000, 10_000))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000]);
  });
});

describe('where webhooks may send', () => {
  it('knows loopback, private, link-local and mapped addresses', () => {
    for (const a of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      '::',
      'fd00::1',
      'fe80::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '64:ff9b::a9fe:a9fe',
    ])
      expect(isPrivateAddress(a), a).toBe(true);
    for (const a of ['93.184.216.34', '172.32.0.1', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8']) expect(isPrivateAddress(a), a).toBe(false);
    expect(privateHostProblem(new URL('http://localhost:8080/'))).toMatch(/this machine/);
    expect(privateHostProblem(new URL('http://[::1]/'))).toMatch(/loopback/);
    expect(privateHostProblem(new URL('https://hooks.example.com/'))).toBeUndefined();
  });

  it('refuses URLs that are not http(s), carry credentials, or point inside, unless private networks are allowed', () => {
    expect(urlProblem('https://hooks.example.com/x?y=1', false)).toBeUndefined();
    expect(urlProblem('ftp://hooks.example.com/', false)).toMatch(/http:\/\/ or https:\/\//);
    expect(urlProblem('file:///etc/passwd', false)).toMatch(/http:\/\/ or https:\/\//);
    expect(urlProblem('not a url', false)).toMatch(/not a URL/);
    expect(urlProblem('https://u:p@hooks.example.com/', false)).toMatch(/no user or password/);
    expect(urlProblem('http://127.0.0.1:9000/', false)).toMatch(/allowPrivateNetworks/);
    expect(urlProblem('http://169.254.169.254/latest/meta-data', false)).toMatch(/allowPrivateNetworks/);
    expect(urlProblem('http://127.0.0.1:9000/', true)).toBeUndefined();
  });
});

describe('the CloudEvent and its signature', () => {
  const e = usageEvent({ type: 'pull', tag: 'v1', detail: { note: 'x' } });

  for (const mode of ['structured', 'binary'] as const)
    it(`${mode} mode carries the event's attributes and fields, signed over the timestamp and body`, () => {
      const m = envelope(e, { mode, secret: 'a-secret-of-enough-length', registryUrl: 'https://registry.example.com', timestamp: 1_700_000_000 });
      const event = HTTP.toEvent({ headers: m.headers, body: m.body }) as import('cloudevents').CloudEvent<Record<string, unknown>>;
      expect(event).toMatchObject({
        specversion: '1.0',
        id: e.id,
        type: 'dev.custody.pull',
        source: 'https://registry.example.com/team/app',
        subject: 'v1',
        time: new Date(e.at).toISOString(),
        datacontenttype: 'application/json',
      });
      expect(event.data).toMatchObject({
        id: e.id,
        repository: 'team/app',
        digest: e.digest,
        tag: 'v1',
        bytes: 100,
        actor: 'alice',
        result: 'ok',
        detail: { note: 'x' },
      });
      if (mode === 'binary') expect(m.headers['ce-type']).toBe('dev.custody.pull');
      else expect(m.headers['content-type']).toMatch(/^application\/cloudevents\+json/);
      expect(m.headers['custody-timestamp']).toBe('1700000000');
      expect(m.headers['custody-signature']).toBe(sign('a-secret-of-enough-length', 1_700_000_000, m.body));
      const headers = { signature: m.headers['custody-signature'], timestamp: m.headers['custody-timestamp'] };
      expect(verify('a-secret-of-enough-length', headers, m.body, 1_700_000_010)).toBe(true);
      expect(verify('another-secret-entirely', headers, m.body, 1_700_000_010)).toBe(false);
      expect(verify('a-secret-of-enough-length', headers, `${m.body} `, 1_700_000_010)).toBe(false);
      // replayed later, or with another timestamp
      expect(verify('a-secret-of-enough-length', headers, m.body, 1_700_001_000)).toBe(false);
      expect(verify('a-secret-of-enough-length', { ...headers, timestamp: '1700000500' }, m.body, 1_700_000_500)).toBe(false);
    });

  it('a digest is the subject when there is no tag', () => {
    const m = envelope(usageEvent({ tag: '' }), { mode: 'binary', secret: 's'.repeat(16), registryUrl: 'http://r', timestamp: 1 });
    expect(m.headers['ce-subject']).toBe(`sha256:${'a'.repeat(64)}`);
  });
});

describe('one attempt over HTTP', () => {
  let server: http.Server;
  let base: string;
  const hanging: http.ServerResponse[] = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/ok') res.writeHead(202).end('thanks');
        else if (req.url === '/fail') res.writeHead(503).end('x'.repeat(10_000));
        else if (req.url === '/redirect') res.writeHead(302, { location: 'http://169.254.169.254/' }).end();
        else if (req.url === '/huge') {
          res.writeHead(200);
          const chunk = Buffer.alloc(64 * 1024, 'y');
          const more = () => {
            while (res.write(chunk));
          };
          res.on('drain', more);
          more();
        } else hanging.push(res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const message = { headers: { 'content-type': 'application/json' }, body: '{}' };

  it('a 2xx is a success with the start of the answer; other statuses, redirects and hangs are failures within the deadline', async () => {
    const sender = httpSender({ timeoutMs: 300, allowPrivateNetworks: true, userAgent: 'test', excerptChars: 100 });
    try {
      expect(await sender.send(`${base}/ok`, message)).toMatchObject({ ok: true, status: 202, error: '', response: 'thanks' });
      const failed = await sender.send(`${base}/fail`, message);
      expect(failed).toMatchObject({ ok: false, status: 503, error: 'HTTP 503' });
      expect(failed.response).toHaveLength(100);
      expect(await sender.send(`${base}/redirect`, message)).toMatchObject({
        ok: false,
        status: 302,
        error: expect.stringMatching(/redirects are not followed/),
      });
      const started = performance.now();
      expect(await sender.send(`${base}/hang`, message)).toMatchObject({ ok: false, status: 0, error: 'no answer within 300 ms' });
      expect(performance.now() - started).toBeLessThan(2000);
      // an endless answer is cut off, not read to its end
      expect(await sender.send(`${base}/huge`, message)).toMatchObject({ ok: true, status: 200 });
    } finally {
      sender.close();
    }
  });

  it('a closed port is a failure, and private addresses are refused when not allowed, by address and by name', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const open = httpSender({ timeoutMs: 1000, allowPrivateNetworks: true, userAgent: 'test' });
    const guarded = httpSender({ timeoutMs: 1000, allowPrivateNetworks: false, userAgent: 'test' });
    try {
      expect(await open.send(`http://127.0.0.1:${port}/`, message)).toMatchObject({ ok: false, status: 0, error: 'connection refused' });
      expect(await guarded.send(`${base}/ok`, message)).toMatchObject({
        ok: false,
        error: expect.stringMatching(/127\.0\.0\.1 is a loopback.*allowPrivateNetworks/),
      });
      const byName = await guarded.send(`${base.replace('127.0.0.1', 'localhost')}/ok`, message);
      expect(byName).toMatchObject({ ok: false, status: 0, error: expect.stringMatching(/localhost resolves to .*allowPrivateNetworks/) });
    } finally {
      open.close();
      guarded.close();
    }
  });
});
