/** buildApp(config): wires the stores, the access controller and the routes. No route logic. */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { registerApi } from '../api/index.ts';
import { registerTufRoutes } from '../api/tuf-repository.ts';
import { createAuth, registerAuthRoutes } from '../auth/index.ts';
import { blobStoreOptions, databaseUrl, storageUrl, type Config } from '../config/schema.ts';
import type { MetaStore } from '../meta/metastore.ts';
import { openMetaStore } from '../meta/open.ts';
import type { RegistryContext } from '../oci/context.ts';
import { registerV2 } from '../oci/dispatch.ts';
import { expireUploads } from '../oci/expiry.ts';
import type { BlobStore } from '../storage/blobstore.ts';
import { openBlobStore } from '../storage/open.ts';
import { startTrust } from '../trust/index.ts';
import { startPolicies } from '../policy/index.ts';
import { GarbageCollector, gcSettings } from '../lifecycle/gc.ts';
import { Quotas } from '../lifecycle/quota.ts';
import { PullRecorder } from '../lifecycle/pulls.ts';
import { RetentionService } from '../lifecycle/retention.ts';
import { Scheduler } from '../lifecycle/schedule.ts';
import { EventRecorder, recorderSettings } from '../insight/events.ts';
import { decisionEvent, loginEvent, tokenEvent } from '../insight/sources.ts';
import { recordV2Events } from '../insight/v2-events.ts';
import { instrument, probes } from '../insight/instrument.ts';
import { Metrics } from '../insight/metrics.ts';
import { observeRequests } from '../insight/requests.ts';
import { startTracing } from '../insight/tracing.ts';
import { registerMetricsRoute } from '../api/metrics.ts';
import { startWebhooks } from '../insight/webhooks/index.ts';
import { CostService } from '../insight/cost/service.ts';
import { createTufPublisher, refreshAll, refreshInterval, type SignedTagSource } from '../trust/tuf/index.ts';
import { answerConnect, clientErrorHandler, frameworkErrors, installErrorHandlers } from './errors.ts';
import { readTls, type TlsFiles } from './tls.ts';

export interface AppParts {
  meta?: MetaStore;
  blobs?: BlobStore;
  /** which tags TUF publishes as targets (default: meta.trust, the tags with a verified signature) */
  signedTags?: SignedTagSource;
  /** the clock TUF metadata is signed by, and tokens and login failures judged by (tests move it); default Date.now */
  now?: () => number;
  /** the certificate and key to serve (default: read from tls.certificate and tls.key, if set) */
  tls?: TlsFiles;
  /** where the OTEL_* variables are read (tracing, docs/insight.md); default process.env */
  env?: NodeJS.ProcessEnv;
}

const bootstraps = new WeakMap<FastifyInstance, () => Promise<void>>();

/**
 * The first start's admin account (src/auth/bootstrap.ts), made after buildApp: `custody serve`
 * calls this once its port is bound, tests once they listen. The app answers no request before.
 */
export async function bootstrap(app: FastifyInstance): Promise<void> {
  const run = bootstraps.get(app);
  if (!run) throw new Error('bootstrap(app) takes an app from buildApp()');
  await run();
}

export async function buildApp(config: Config, parts: AppParts = {}): Promise<FastifyInstance> {
  // Owner only: the database in it holds private keys.
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  // The logger exists only once the app does; a connection failing before that has no one to tell.
  const logger: { log?: FastifyBaseLogger } = {};
  const store =
    parts.meta ??
    (await openMetaStore(databaseUrl(config), {
      onIdleError: (err) => logger.log?.warn({ err }, 'a pooled database connection failed while idle; a new one is opened when needed'),
      manifestCacheMiB: config.database.manifestCacheMiB,
      onFeedChange: (message, err) => logger.log?.warn({ err }, message),
    }));
  const openedBlobs = parts.blobs ?? (await openBlobStore(storageUrl(config), blobStoreOptions(config)));
  // Metrics and traces wrap the stores once: every part below calls them through the wrappers.
  const metrics = config.insight.metrics.enabled ? new Metrics({ topNamespaces: config.insight.metrics.topNamespaces }) : undefined;
  const tracing = await startTracing(parts.env ?? process.env);
  const probe = metrics || tracing ? probes(...[metrics?.probe, tracing?.probe].filter((p) => p !== undefined)) : undefined;
  const meta = probe ? instrument(store, 'meta', probe) : store;
  const blobs = probe ? instrument(openedBlobs, 'storage', probe) : openedBlobs;
  const https = parts.tls ?? (await readTls(config));
  const app = Fastify({
    // HTTPS when tls.certificate and tls.key are set; serve.ts reloads a renewed certificate.
    ...(https ? { https } : {}),
    // X-Forwarded-For/-Proto/-Host are believed only from these peers (req.ip, req.protocol, req.host).
    ...(config.trustedProxies.length > 0 ? { trustProxy: config.trustedProxies } : {}),
    // Asynchronous log writes: a synchronous write per request cost ~8% of small-push throughput.
    logger: { level: config.log.level, stream: pino.destination({ dest: 1, sync: false }) },
    // Our own id for every request: a client's X-Request-Id would let it forge log lines; it is
    // logged in its own field instead.
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    // One log line per request, written when it completes (see below), instead of two.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { maxParamLength: 4096 },
    frameworkErrors,
    clientErrorHandler,
  });
  app.server.on('connect', answerConnect);
  logger.log = app.log;
  // First: the clock and the server span start before anything else runs.
  observeRequests(app, { ...(metrics ? { metrics } : {}), ...(tracing ? { tracing } : {}) });
  if (tracing) app.log.info({ endpoint: tracing.endpoint }, 'sending OpenTelemetry traces');
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  app.decorateRequest('principal', undefined);
  app.addHook('onResponse', async (req, reply) => {
    const clientRequestId = req.headers['x-request-id'];
    req.log.info(
      {
        method: req.method,
        url: req.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        remote: req.ip,
        actor: req.principal?.name,
        ...(typeof clientRequestId === 'string' ? { clientRequestId: clientRequestId.slice(0, 200) } : {}),
      },
      'request',
    );
  });
  installErrorHandlers(app);

  // usage events (docs/insight.md): the recorder writes them in batches; the sources only hand them over
  const events = config.insight.events.enabled ? new EventRecorder(meta.insight, app.log, recorderSettings(config), parts.now) : undefined;
  const clock = parts.now ?? Date.now;
  const auth = await createAuth(
    config,
    { accounts: meta.accounts, rates: meta.rates },
    app.log,
    parts.now,
    events && { login: (e) => events.record(loginEvent(e, clock())), token: (answer) => events.record(tokenEvent(answer)) },
  );
  // Requests wait until bootstrap(app) has run (serve calls it once the port is bound).
  let bootstrapped = false;
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  // A callback hook: once bootstrapped, a request passes without a promise.
  // When the last request arrived: garbage collection rests between its batches while requests come.
  let lastRequestAt = 0;
  app.addHook('onRequest', (_req, _reply, done) => {
    lastRequestAt = performance.now();
    if (bootstrapped) done();
    else opened.then(() => done(), done);
  });
  bootstraps.set(app, async () => {
    await auth.bootstrap();
    bootstrapped = true;
    open();
  });
  registerAuthRoutes(app, auth, config);
  const tuf = createTufPublisher(meta, { source: parts.signedTags ?? meta.trust, settings: config.tuf, now: parts.now ?? Date.now, log: app.log });
  registerTufRoutes(app, { publisher: tuf, manifests: meta, controller: auth.controller });
  const trust = await startTrust(config, { meta, blobs, log: app.log });
  const policy = await startPolicies(config, {
    meta,
    blobs,
    log: app.log,
    ...(parts.now ? { now: parts.now } : {}),
    ...(events ? { decided: (record, q) => events.record(decisionEvent(record, q)) } : {}),
  });
  const quota = new Quotas(meta, app.log, parts.now);
  const gc = new GarbageCollector({
    meta,
    blobs,
    log: app.log,
    settings: gcSettings(config),
    busy: () => performance.now() - lastRequestAt < 250,
    ...(parts.now ? { now: parts.now } : {}),
    ...(metrics ? { onRunEnded: metrics.gcRunEnded } : {}),
  });
  const pulls = new PullRecorder(meta.retention, app.log, parts.now ? { now: parts.now } : {});
  const retention = new RetentionService({
    meta,
    log: app.log,
    settings: { intervalMs: config.lifecycle.retention.intervalSeconds * 1000, keepRunsMs: config.lifecycle.retention.keepRunsDays * 86_400_000 },
    policy,
    audit: auth.audit,
    pulls,
    ...(trust ? { events: trust } : {}),
    ...(parts.now ? { now: parts.now } : {}),
  });
  const webhooks = startWebhooks(config, { store: meta.webhooks, log: app.log, ...(parts.now ? { now: parts.now } : {}), ...(metrics ? { metrics } : {}) });
  // cost (docs/insight.md, Cost): storage sampling, the network rollup, budget checks
  const cost = new CostService({
    meta,
    log: app.log,
    settings: config.insight.cost,
    keepDays: config.insight.rollups.retentionDays,
    ...(parts.now ? { now: parts.now } : {}),
  });
  registerApi(app, {
    meta,
    auth,
    tuf,
    policy,
    quota,
    gc,
    retention,
    webhooks: { allowPrivateNetworks: config.insight.webhooks.allowPrivateNetworks },
    cost: { model: cost.model, focus: config.insight.cost.focus, now: clock },
    ...(trust ? { trust } : {}),
  });
  const ctx: RegistryContext = {
    meta,
    blobs,
    limits: { manifestBytes: config.limits.manifestBytes },
    log: app.log,
    audit: auth.audit,
    policy,
    quota,
    pulls,
    ...(config.storage.redirect ? { redirect: true } : {}),
    ...(parts.now ? { now: parts.now } : {}),
    ...(trust ? { events: trust } : {}),
  };
  registerV2(app, ctx, auth.controller, events && ((v2) => recordV2Events(v2, events)));
  if (metrics) {
    metrics.watch({ meta, policy, gc, ...(trust ? { trust } : {}) });
    registerMetricsRoute(app, { metrics, controller: auth.controller, access: config.insight.metrics.access });
  }

  // Someone who opens the registry's address in a browser, or curls it, learns where to go.
  app.get('/', async () => ({
    service: 'custody',
    description: 'an OCI artifact registry (OCI Distribution 1.1)',
    endpoints: {
      registry: '/v2/',
      token: '/token',
      management: '/api/v1/',
      tuf: '/tuf/<namespace>/',
      health: '/healthz',
      ready: '/readyz',
      ...(metrics ? { metrics: '/metrics' } : {}),
    },
    docs: 'README.md and docs/ in the Custody repository: docs/api.md (/v2), docs/api-v1.md (/api/v1 and the custody CLI)',
  }));
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    try {
      await Promise.all([meta.ping(), blobs.ping()]);
      return { status: 'ready' };
    } catch (err) {
      app.log.warn({ err }, 'not ready');
      return reply.code(503).send({ status: 'unavailable', error: (err as Error).message });
    }
  });

  // The jobs on the shared stores: each runs on one replica per interval (src/lifecycle/schedule.ts).
  const jobs = new Scheduler({ leases: meta.leases, log: app.log, leaseMs: config.jobs.leaseSeconds * 1000, now: clock });
  const maxAge = config.uploads.expireAfterSeconds * 1000;
  const pruneMs = config.jobs.pruneSeconds * 1000;
  jobs.schedule('upload-expiry', Math.min(Math.max(maxAge / 2, 1000), 10 * 60 * 1000), () => expireUploads(ctx, maxAge));
  jobs.schedule('audit-prune', pruneMs, () => auth.audit.prune());
  jobs.schedule('policy-prune', pruneMs, () => policy.prune());
  if (events) jobs.schedule('events-prune', pruneMs, () => events.prune());
  jobs.schedule('webhook-prune', pruneMs, () => webhooks.prune());
  jobs.schedule('tuf-refresh', refreshInterval(config.tuf.timestampExpirySeconds), () => refreshAll(tuf, meta.tuf, app.log));
  // a new cluster's first collection comes an interval after it started, as it always did
  jobs.schedule('gc', gcSettings(config).intervalMs, () => gc.collect({ dryRun: false }), { startNextInterval: true });
  jobs.schedule('retention', retention.checkIntervalMs, () => retention.tick());
  jobs.schedule('cost-sample', config.insight.cost.sampleSeconds * 1000, () => cost.sample());
  jobs.schedule('cost-check', config.insight.cost.budgetCheckSeconds * 1000, () => cost.check());
  if (metrics)
    metrics.counter(
      'custody_scheduled_job_runs_total',
      'Runs of the scheduled jobs that this process did (each job runs on one replica per interval)',
      () => jobs.runs().map((j) => ({ labels: { job: j.job }, value: j.runs })),
      ['job'],
    );
  // What stays local to this process, on its own timers: writing its buffered pull counts and
  // events, delivering the webhooks it leases, the trust queue, policy reloads.
  gc.start();
  pulls.start();
  webhooks.start();
  events?.start();
  jobs.start();
  app.addHook('onClose', async () => {
    // GC and retention stop their runs at the next step; the scheduler waits for its runs to end.
    const jobsStopped = jobs.stop();
    await gc.stop();
    await retention.stop();
    await jobsStopped;
    await pulls.stop();
    // the request limit's exchanges, before the database closes
    await auth.stop();
    await trust?.stop();
    await policy.stop();
    // deliveries in flight end within their deadline
    await webhooks.stop();
    // last before the database closes: every request is done, and so is every decision
    await events?.stop();
    await meta.close();
    // Last: the spans of everything above are sent before the process ends.
    await tracing?.shutdown().catch((err: unknown) => app.log.warn({ err }, 'could not send the last traces'));
  });
  return app;
}
