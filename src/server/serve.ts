/**
 * `custody serve`: open the stores, bind the port, then create the first admin (so a start that
 * fails creates nothing and prints no password); on SIGTERM or SIGINT finish in-flight requests,
 * then exit; on SIGHUP read the TLS certificate again. A start-up failure is one line on stderr
 * naming the value and the setting it came from, and exit code 1.
 */
import type { Server } from 'node:https';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.ts';
import { setStreamedBytesListener } from '../storage/streamed.ts';
import { bootstrap, buildApp } from './app.ts';
import { paceBufferGc } from './buffer-gc.ts';
import { listen, openStores, StartupError, storesInUse } from './startup.ts';
import { describeCertificate, readTls, watchTls, type TlsReloader } from './tls.ts';

/** How long in-flight requests get to finish after SIGTERM before the process exits anyway. */
const drainMs = 30_000;

export async function serve(config: Config): Promise<void> {
  let app: FastifyInstance | undefined;
  let tls: TlsReloader | undefined;
  try {
    const stores = await openStores(config, {
      onIdleError: (err) => app?.log.warn({ err }, 'a pooled database connection failed while idle; a new one is opened when needed'),
      onFeedChange: (message, err) => app?.log.warn({ err }, message),
    });
    // Read once: the reloader compares later reads with exactly what is served.
    const files = await readTls(config);
    app = await buildApp(config, { ...stores, ...(files ? { tls: files } : {}) });
    await listen(app, config);
    await bootstrap(app);
    if (files) tls = watchTls(app.server as unknown as Server, config, app.log, files);
    app.log.info(
      { ...storesInUse(config), ...(files ? { tls: describeCertificate(files.cert) } : {}), trustedProxies: config.trustedProxies },
      'custody is serving',
    );
  } catch (err) {
    if (!(err instanceof StartupError)) throw err;
    console.error(`custody: ${err.message}`);
    await app?.close().catch(() => {});
    process.exit(1);
  }
  const running = app;
  // Request bodies streamed into blobs are counted by the pacer, which frees their dead buffers early.
  setStreamedBytesListener(paceBufferGc((reason) => running.log.warn(reason))?.streamed);
  let closing = false;
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    running.log.info({ signal }, 'finishing in-flight requests, then exiting');
    tls?.stop();
    setTimeout(() => {
      running.log.warn('requests still running after the drain period; exiting');
      process.exit(1);
    }, drainMs).unref();
    // Connections that go idle once their request is done would otherwise hold the close open
    // until the client drops them.
    setInterval(() => running.server.closeIdleConnections(), 100).unref();
    running.close().then(
      () => process.exit(0),
      (err: unknown) => {
        running.log.error({ err }, 'error while closing');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // With TLS, SIGHUP reads the certificate again; without, it ends the process as it always did.
  if (tls) process.on('SIGHUP', () => void tls.reload('SIGHUP'));
}
