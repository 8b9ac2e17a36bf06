/** `custody serve`: listen, and on SIGTERM or SIGINT finish in-flight requests, then exit. */
import { parseListen, type Config } from '../config/schema.ts';
import { buildApp } from './app.ts';
import { paceBufferGc } from '../oci/buffer-gc.ts';

/** How long in-flight requests get to finish after SIGTERM before the process exits anyway. */
const drainMs = 30_000;

export async function serve(config: Config): Promise<void> {
  const app = await buildApp(config);
  const { host, port } = parseListen(config.listen);
  await app.listen({ host, port });
  paceBufferGc((reason) => app.log.warn(reason));
  let closing = false;
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'finishing in-flight requests, then exiting');
    setTimeout(() => {
      app.log.warn('requests still running after the drain period; exiting');
      process.exit(1);
    }, drainMs).unref();
    // Connections that go idle once their request is done would otherwise hold the close open
    // until the client drops them.
    setInterval(() => app.server.closeIdleConnections(), 100).unref();
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ err }, 'error while closing');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
