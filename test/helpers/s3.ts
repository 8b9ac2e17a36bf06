/**
 * S3 for tests: s3rver (an S3-compatible server keeping objects in a temporary directory) on an
 * ephemeral loopback port, its overwrites made atomic as S3's are (atomicOverwrites), and a proxy
 * in front of it that can answer some requests itself (S3's 503 SlowDown, a cut connection), for
 * the faults S3 has that s3rver does not.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rename, rm } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver, { type S3rverObject, type S3rverStore } from 's3rver';

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
  atomicOverwrites(server.store);
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

/** The files s3rver keeps for one object (beside `<key>._S3rver_object`). */
const objectFiles = ['object', 'object.md5', 'metadata.json'];

/**
 * S3 replaces an object atomically: a reader sees the old bytes or the new ones. s3rver does not:
 * its PutObject truncates the file and answers before the bytes are flushed, and its CopyObject
 * (fs-extra's copy) unlinks the target first, so a GET racing a second upload of the same blob
 * found it short or missing (NoSuchKey), and a test judged the emulator, not Custody. Here both
 * write under a temporary key beside the object (listed by nobody: it has no `_S3rver_object`
 * until renamed) and rename its files into place, the object's first.
 */
function atomicOverwrites(store: S3rverStore): void {
  const copyObject = store.copyObject.bind(store);
  const temporary = (key: string) => `${key}.atomic-${randomBytes(6).toString('hex')}`;
  const moveInto = async (bucket: string, from: string, to: string) => {
    for (const file of objectFiles) {
      await rename(store.getResourcePath(bucket, from, file), store.getResourcePath(bucket, to, file)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT' || file === 'object') throw err;
      });
    }
  };

  store.putObject = async (object: S3rverObject) => {
    const key = temporary(object.key);
    const file = store.getResourcePath(object.bucket, key, 'object');
    const md5 = createHash('md5');
    let size = 0;
    // s3rver removes a directory its last object left: made again if it goes before the open
    let handle;
    for (let tries = 0; !handle; tries++) {
      await mkdir(path.dirname(file), { recursive: true });
      handle = await open(file, 'wx').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' && tries < 5 ? undefined : Promise.reject(err)));
    }
    const content = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    await pipeline(
      content,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          md5.update(chunk);
          size += chunk.length;
          yield chunk;
        }
      },
      handle.createWriteStream(),
    ).catch(async (err: unknown) => {
      await rm(file, { force: true });
      throw err;
    });
    const hex = md5.digest('hex');
    await store.putMetadata(object.bucket, key, object.metadata, hex);
    await moveInto(object.bucket, key, object.key);
    return { size, md5: hex };
  };

  store.copyObject = async (srcBucket, srcKey, destBucket, destKey, replacementMetadata) => {
    if (srcBucket === destBucket && srcKey === destKey) return copyObject(srcBucket, srcKey, destBucket, destKey, replacementMetadata);
    const key = temporary(destKey);
    await copyObject(srcBucket, srcKey, destBucket, key, replacementMetadata);
    await moveInto(destBucket, key, destKey);
    return store.getMetadata(destBucket, destKey);
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
