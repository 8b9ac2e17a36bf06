/**
 * OpenTelemetry traces, received by a small OTLP/HTTP receiver this test starts on loopback: a
 * /v2 request with a `traceparent` becomes a server span in that trace, under that parent, with
 * child spans for its metadata and storage calls; spans are sent by the time the app has closed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tracesEndpoint } from '../src/insight/tracing.ts';
import { imageManifest, pushBlob, putManifest, request } from './helpers/http.ts';
import { startInProcess, type InProcessServer } from './helpers/server.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
}

interface Receiver {
  url: string;
  spans: OtlpSpan[];
  requests: { path: string; contentType: string | undefined }[];
  resources: unknown[];
  close(): Promise<void>;
}

/** Accepts POST /v1/traces with OTLP JSON and keeps the spans. */
async function startReceiver(): Promise<Receiver> {
  const spans: OtlpSpan[] = [];
  const requests: Receiver['requests'] = [];
  const resources: unknown[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', contentType: req.headers['content-type'] });
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        resourceSpans: { resource: unknown; scopeSpans: { spans: OtlpSpan[] }[] }[];
      };
      for (const rs of body.resourceSpans) {
        resources.push(rs.resource);
        for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, spans, requests, resources, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const attribute = (span: OtlpSpan, key: string) => {
  const v = span.attributes?.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue === undefined ? undefined : Number(v.intValue));
};

describe('traces', () => {
  let receiver: Receiver;
  let s: InProcessServer | undefined;
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const parentId = '00f067aa0ba902b7';
  const blobTrace = '0af7651916cd43dd8448eb211c80319c';

  beforeAll(async () => {
    receiver = await startReceiver();
    s = await startInProcess({ parts: { env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'custody-test' } } });
    const layer = await pushBlob(s.url, 'team/app', 'layer bytes');
    const m = await imageManifest(s.url, 'team/app', []);
    expect((await putManifest(s.url, 'team/app', 'v1', m.body)).status).toBe(201);
    const got = await request(s.url, '/v2/team/app/manifests/v1', { headers: { traceparent: `00-${traceId}-${parentId}-01` } });
    expect(got.status).toBe(200);
    expect((await request(s.url, `/v2/team/app/blobs/${layer}`, { headers: { traceparent: `00-${blobTrace}-${parentId}-01` } })).status).toBe(200);
    // closing the app sends what is buffered
    await s.stop();
    s = undefined;
  });
  afterAll(async () => {
    await s?.stop();
    await receiver.close();
  });

  it('sends OTLP/HTTP JSON to <endpoint>/v1/traces, as the service named by OTEL_SERVICE_NAME', () => {
    expect(receiver.requests.length).toBeGreaterThan(0);
    for (const r of receiver.requests) {
      expect(r.path).toBe('/v1/traces');
      expect(r.contentType).toMatch(/^application\/json/);
    }
    expect(JSON.stringify(receiver.resources)).toContain('custody-test');
  });

  it('makes a server span for a manifest GET in the trace of its traceparent, with child spans for the metadata calls', () => {
    const server = receiver.spans.find((sp) => sp.traceId === traceId && sp.kind === 2);
    expect(server, JSON.stringify(receiver.spans.map((sp) => [sp.name, sp.traceId]))).toBeDefined();
    if (!server) return;
    expect(server.parentSpanId).toBe(parentId);
    expect(server.name).toBe('GET /v2/:name/manifests/:reference');
    expect(attribute(server, 'http.route')).toBe('/v2/:name/manifests/:reference');
    expect(attribute(server, 'http.response.status_code')).toBe(200);
    const children = receiver.spans.filter((sp) => sp.parentSpanId === server.spanId);
    expect(children.every((c) => c.traceId === traceId)).toBe(true);
    expect(children.map((c) => c.name)).toContain('meta getTaggedManifest');
    // the credentials were checked against the accounts
    expect(children.some((c) => c.name.startsWith('meta accounts.'))).toBe(true);
  });

  it('makes child spans for the storage calls of a blob GET', () => {
    const server = receiver.spans.find((sp) => sp.traceId === blobTrace && sp.kind === 2);
    expect(server?.name).toBe('GET /v2/:name/blobs/:digest');
    const children = receiver.spans.filter((sp) => sp.parentSpanId === server?.spanId).map((c) => c.name);
    expect(children).toContain('storage openCopy');
    expect(children).toContain('meta blobInRepo');
  });

  it('gives requests without a traceparent a trace of their own, and background work none', () => {
    const roots = receiver.spans.filter((sp) => sp.parentSpanId === undefined || sp.parentSpanId === '');
    expect(roots.length).toBeGreaterThan(0);
    expect(roots.every((sp) => sp.kind === 2)).toBe(true);
  });
});

describe('the variables', () => {
  it('reads the traces endpoint as the OTLP exporter specification says', () => {
    expect(tracesEndpoint({})).toBeUndefined();
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe('http://collector:4318/v1/traces');
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toBe('http://collector:4318/v1/traces');
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:2/custom' })).toBe('http://b:2/custom');
  });

  it('refuses an endpoint that is no URL, or an unknown sampler, at start', async () => {
    await expect(startInProcess({ listen: false, parts: { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' } } })).rejects.toThrow(/not a URL/);
    await expect(
      startInProcess({ listen: false, parts: { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_TRACES_SAMPLER: 'sometimes' } } }),
    ).rejects.toThrow(/OTEL_TRACES_SAMPLER/);
  });
});
