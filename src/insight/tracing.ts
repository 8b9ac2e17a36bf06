/**
 * OpenTelemetry traces, on when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT
 * is set: a server span per request (its parent taken from a W3C `traceparent` header), with a
 * child span for each metadata and storage call made for it (the store wrappers of
 * instrument.ts), sent in batches as OTLP/HTTP JSON. The SDK is imported only then, so a server
 * without the variables loads none of it and pays nothing.
 *
 * The request's span is carried to the store calls in an AsyncLocalStorage of this module, not
 * in OpenTelemetry's global context: nothing global is registered, so two apps in one process
 * (tests) keep their own tracers. Work that no request started (GC, trust, policy flushes) makes
 * no spans.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFile } from 'node:fs/promises';
import type { Context, Span, Tracer } from '@opentelemetry/api';
import type { Sampler } from '@opentelemetry/sdk-trace';
import type { FastifyRequest } from 'fastify';
import type { CallProbe, Component } from './instrument.ts';
import type { Completed } from './requests.ts';

export interface RequestSpan {
  span: Span;
  context: Context;
}

export interface Tracing {
  /** where spans are sent */
  readonly endpoint: string;
  startRequest(req: FastifyRequest): RequestSpan;
  /** Runs the rest of the request (fastify's `done`) with its span as the current one. */
  within(span: RequestSpan, run: () => void): void;
  endRequest(span: RequestSpan, completed: Completed): void;
  /** child spans for store calls (instrument.ts) */
  readonly probe: CallProbe;
  /** Sends what is buffered and stops. */
  shutdown(): Promise<void>;
}

/** The URL spans go to, as the OTLP exporter specification reads the variables; undefined: tracing is off. */
export function tracesEndpoint(env: NodeJS.ProcessEnv): string | undefined {
  const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (specific) return specific;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!base) return undefined;
  return `${base.replace(/\/+$/, '')}/v1/traces`;
}

/** Starts tracing when the environment asks for it; undefined otherwise (nothing is imported). */
export async function startTracing(env: NodeJS.ProcessEnv = process.env): Promise<Tracing | undefined> {
  const endpoint = tracesEndpoint(env);
  if (endpoint === undefined) return undefined;
  try {
    new URL(endpoint);
  } catch {
    throw new Error(`OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is not a URL: ${JSON.stringify(endpoint)}`);
  }
  const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const [api, sdk, { OTLPTraceExporter }, resources, { W3CTraceContextPropagator }] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/core'),
  ]);
  // OTEL_RESOURCE_ATTRIBUTES (read by the SDK from the process) and OTEL_SERVICE_NAME override these.
  const resource = resources
    .resourceFromAttributes({ 'service.name': 'custody', 'service.version': version })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }))
    .merge(env.OTEL_SERVICE_NAME?.trim() ? resources.resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME.trim() }) : resources.emptyResource());
  const provider = new sdk.TracerProvider({
    resource,
    sampler: sampler(sdk, env),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: endpoint }) })],
  });
  const tracer: Tracer = provider.getTracer('custody', version);
  const propagator = new W3CTraceContextPropagator();
  const current = new AsyncLocalStorage<Context>();
  const { SpanKind, SpanStatusCode, ROOT_CONTEXT, defaultTextMapGetter, trace } = api;

  return {
    endpoint,
    startRequest(req) {
      const parent = propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
      const span = tracer.startSpan(
        req.method,
        {
          kind: SpanKind.SERVER,
          attributes: {
            'http.request.method': req.method,
            'url.path': (req.raw.url ?? '/').split('?', 1)[0] ?? '/',
            'url.scheme': req.protocol,
            'client.address': req.ip,
            ...(typeof req.headers['user-agent'] === 'string' ? { 'user_agent.original': req.headers['user-agent'].slice(0, 256) } : {}),
          },
        },
        parent,
      );
      return { span, context: trace.setSpan(parent, span) };
    },
    within(s, run) {
      current.run(s.context, run);
    },
    endRequest({ span }, done) {
      // The route is known once the router has matched: a template, never the URL.
      const route = done.route === 'unmatched' ? undefined : done.route;
      span.updateName(route ? `${done.method} ${route}` : done.method);
      if (route) span.setAttribute('http.route', route);
      span.setAttribute('http.response.status_code', done.status);
      if (done.repository !== undefined) span.setAttribute('custody.repository', done.repository);
      if (done.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
    probe: {
      start(component: Component, operation: string): Span | undefined {
        const context = current.getStore();
        if (!context || !trace.getSpan(context)?.isRecording()) return undefined;
        return tracer.startSpan(
          `${component} ${operation}`,
          { kind: SpanKind.INTERNAL, attributes: { 'custody.component': component, 'custody.operation': operation } },
          context,
        );
      },
      end(started: unknown, failed: boolean) {
        const span = started as Span | undefined;
        if (!span) return;
        if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      },
    },
    shutdown: () => provider.shutdown(),
  };
}

/** OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, as the SDK specification names them; default parentbased_always_on. */
function sampler(sdk: typeof import('@opentelemetry/sdk-trace'), env: NodeJS.ProcessEnv): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on').trim();
  const arg = Number(env.OTEL_TRACES_SAMPLER_ARG ?? '1');
  const ratio = Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1;
  switch (name) {
    case 'always_on':
      return new sdk.AlwaysOnSampler();
    case 'always_off':
      return new sdk.AlwaysOffSampler();
    case 'traceidratio':
      return new sdk.TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(ratio) });
    default:
      throw new Error(
        `OTEL_TRACES_SAMPLER ${JSON.stringify(name)} is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio`,
      );
  }
}
