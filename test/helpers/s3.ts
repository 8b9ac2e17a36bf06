/**
 * S3 for tests: s3rver (an S3-compatible server keeping objects in a temporary directory) on an
 * ephemeral loopback port, and a proxy in front of it that can answer some requests itself (S3's
 * 503 SlowDown, a cut connection), for the faults S3 has that s3rver does not.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';

/** The keys s3rver accepts (it checks signatures: any other key is InvalidAccessKeyId). */
export const s3Credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface RunningS3 {
  endpoint: string;
  port: number;
  directory: string;
  stop(): Promise<void>;
}

export async function startS3(buckets: string[]): Promise<RunningS3> {
  const directory = await mkdtemp(path.join(tmpdir(), 'custody-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: buckets.map((name) => ({ name })) });
  const address = await server.run();
  const sockets = new Set<Socket>();
  server.httpServer.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    port: address.port,
    directory,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** What the proxy does with one request: pass it on, answer it itself, or cut the connection. */
export type ProxyAction = 'pass' | 'slowdown' | 'cut' | { status: number; body: string };

export interface FaultProxy {
  endpoint: string;
  /** every request seen, as `METHOD path?query` */
  seen: string[];
  decide: (req: IncomingMessage) => ProxyAction;
  stop(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const to = new URL(target);
  const sockets = new Set<Socket>();
  const proxy: FaultProxy = { endpoint: '', seen: [], decide: () => 'pass', stop: async () => {} };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    proxy.seen.push(`${req.method} ${req.url}`);
    const action = proxy.decide(req);
    if (action === 'cut') {
      req.socket.destroy();
      return;
    }
    if (action !== 'pass') {
      const { status, body } =
        action === 'slowdown'
          ? {
              status: 503,
              body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
            }
          : action;
      req.resume();
      res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return proxy;
}
