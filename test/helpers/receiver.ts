/**
 * A webhook receiver for tests: an HTTP server on 127.0.0.1 that keeps every request it got
 * (headers and raw body, parsed as a CloudEvent by the cloudevents package) and answers with
 * what `answer` says. `stop()` closes the port (a receiver that is down: connection refused) and
 * `start()` opens the same port again.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HTTP, type CloudEvent } from 'cloudevents';
import { verify } from '../../src/insight/webhooks/envelope.ts';

export interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  /** the CloudEvent the cloudevents package reads from the request */
  event: CloudEvent<Record<string, unknown>>;
  /** what this receiver answered */
  status: number;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** answered with 2xx */
  accepted(): Received[];
  /** what to answer (default 204); `'hang'` never answers */
  answer: (r: Omit<Received, 'status'>) => number | 'hang';
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  let server: http.Server | undefined;
  let port = 0;
  const hanging = new Set<http.ServerResponse>();
  const receiver: Receiver = {
    url: '',
    received: [],
    accepted: () => receiver.received.filter((r) => r.status >= 200 && r.status < 300),
    answer: () => 204,
    async start() {
      server = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          const event = HTTP.toEvent({ headers: req.headers, body }) as CloudEvent<Record<string, unknown>>;
          const status = receiver.answer({ headers: req.headers, body, event });
          if (status === 'hang') {
            hanging.add(res);
            return;
          }
          receiver.received.push({ headers: req.headers, body, event, status });
          res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? '' : `refused with ${status}`);
        });
      });
      await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
      receiver.url = `http://127.0.0.1:${port}/hooks/custody`;
    },
    async stop() {
      for (const res of hanging) res.destroy();
      hanging.clear();
      const s = server;
      server = undefined;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
  await receiver.start();
  return receiver;
}

/** Whether a delivery's signature holds for the secret (and its timestamp is within 5 minutes of `nowSeconds`). */
export function signed(r: Received, secret: string, nowSeconds = Date.now() / 1000): boolean {
  const header = (name: string) => {
    const v = r.headers[name];
    return typeof v === 'string' ? v : undefined;
  };
  return verify(secret, { signature: header('custody-signature'), timestamp: header('custody-timestamp') }, r.body, nowSeconds);
}
