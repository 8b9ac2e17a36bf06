/**
 * A round-robin HTTP load balancer for tests, as small as a real one's forwarding rule: each
 * request goes to the next backend in turn (so the requests of one chunked upload land on
 * different replicas), with its method, path, headers and streamed body. A backend that refuses
 * the connection is skipped and the request tried on the next one; that is safe only because not
 * a byte of the request has been sent yet. A backend that fails once the request is on its way
 * (a replica killed mid-request) is not retried: the client gets 502, or, if the answer had begun,
 * a cut connection — a write it must not count as done.
 */
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Balancer {
  url: string;
  /** host:port of each backend, in turn order; assign one to re-register a replica elsewhere */
  backends: string[];
  /** what happened to the requests: forwarded per backend, on their way now per backend, refused connections skipped, 502s, cut answers */
  stats: { forwarded: Map<string, number>; inFlight: Map<string, number>; refused: number; badGateway: number; cut: number };
  stop(): Promise<void>;
}

/** Per-hop headers (RFC 9110 7.6.1): they describe one connection, so a proxy does not pass them on. */
const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !hopByHop.has(name)));
}

export async function startBalancer(backends: string[]): Promise<Balancer> {
  const sockets = new Set<Socket>();
  const stats: Balancer['stats'] = { forwarded: new Map(), inFlight: new Map(), refused: 0, badGateway: 0, cut: 0 };
  const add = (map: Map<string, number>, key: string, n: number) => map.set(key, (map.get(key) ?? 0) + n);
  const balancer: Balancer = { url: '', backends: [...backends], stats, stop: async () => {} };
  let turn = 0;

  // Marked `x-balancer`, so that a client tells the balancer's 502 from a backend's answer.
  const badGateway = (req: IncomingMessage, res: ServerResponse, message: string) => {
    stats.badGateway++;
    req.resume();
    const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message }] });
    res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-balancer': '502' }).end(body);
  };
  const cut = (res: ServerResponse) => {
    if (res.destroyed) return;
    stats.cut++;
    res.destroy();
  };

  const forward = (req: IncomingMessage, res: ServerResponse, tried: number) => {
    if (tried >= balancer.backends.length) return badGateway(req, res, 'no backend accepts connections');
    const target = balancer.backends[turn++ % balancer.backends.length] as string;
    const [host, port] = target.split(':') as [string, string];
    // A connection of its own per request: a refused connect then means nothing was sent.
    const upstream = request({ host, port: Number(port), method: req.method, path: req.url, headers: endToEnd(req.headers), agent: false });
    let connected = false;
    upstream.on('socket', (s) =>
      s.once('connect', () => {
        connected = true;
        add(stats.forwarded, target, 1);
        add(stats.inFlight, target, 1);
        res.once('close', () => add(stats.inFlight, target, -1));
        req.pipe(upstream);
      }),
    );
    upstream.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers));
      answer.pipe(res);
      answer.on('close', () => {
        if (!answer.complete) cut(res);
      });
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && err.code === 'ECONNREFUSED') {
        stats.refused++;
        return forward(req, res, tried + 1);
      }
      if (!res.headersSent) return badGateway(req, res, `backend ${target}: ${err.message}`);
      cut(res);
    });
    // The client gave up: so does the request to the backend.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
  };

  const server = createServer((req, res) => forward(req, res, 0));
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  balancer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  balancer.stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return balancer;
}
