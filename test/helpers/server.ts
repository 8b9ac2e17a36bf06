/**
 * Servers for tests: `startProcess` runs the built `custody serve` as a child process on an
 * ephemeral loopback port (for real clients and kill tests); `startInProcess` listens with
 * buildApp() in this process (for what happens on the socket: streaming, cut connections, client
 * addresses, TLS, raw bytes); `startInjected` builds the same app and listens nowhere, its
 * requests answered by fastify's inject() (for what a handler answers: the fast default).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { validate } from '../../src/config/load.ts';
import { bootstrap, buildApp, type AppParts } from '../../src/server/app.ts';
import { forgetInjected, injectedBase, testAdmin } from './http.ts';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Node 24 from the node@24 dev dependency: the same runtime `npm start` uses. */
const nodeBinDir = path.join(projectRoot, 'node_modules/.bin');

export interface RunningServer {
  url: string;
  /** host:port, for clients that take a registry host */
  host: string;
  dataDir: string;
  stop(): Promise<void>;
}

export async function tempDir(prefix = 'custody-test-'): Promise<string> {
  return mkdtemp(path.join(tmpdir(), prefix));
}

export interface ProcessServer extends RunningServer {
  child: ChildProcess;
  /** everything the server logged so far */
  output(): string;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

export async function startProcess(options: { dataDir?: string; env?: Record<string, string>; args?: string[] } = {}): Promise<ProcessServer> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await tempDir());
  // The bin as installed: its #! line finds the project's Node 24 first on PATH, as npm scripts do.
  const child = spawn(path.join(projectRoot, 'bin/custody.js'), ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...(options.args ?? [])], {
    env: {
      ...process.env,
      PATH: `${nodeBinDir}${path.delimiter}${process.env.PATH ?? ''}`,
      CUSTODY_LOG_LEVEL: 'info',
      CUSTODY_ADMIN_PASSWORD: testAdmin.password,
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      // not left running: the caller never gets it to stop
      child.kill('SIGKILL');
      reject(new Error(`server did not start in 20 s:\n${output}`));
    }, 20_000);
    const look = () => {
      const m = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', look);
    child.stderr.on('data', look);
    void exited.then((code) => reject(new Error(`server exited with ${code}:\n${output}`)));
  });
  const kill = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    dataDir,
    child,
    output: () => output,
    kill,
    stop: async () => {
      await kill('SIGTERM');
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface InProcessServer extends RunningServer {
  app: FastifyInstance;
}

export interface InProcessOptions {
  dataDir?: string;
  config?: Record<string, unknown>;
  parts?: AppParts;
  /** false: listen on no port; the url is one that helpers/http.ts answers with inject() (default true) */
  listen?: boolean;
}

export async function startInProcess(options: InProcessOptions = {}): Promise<InProcessServer> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await tempDir());
  const config = validate({ dataDir, log: { level: 'warn' }, storage: { fsync: false }, auth: { adminPassword: testAdmin.password }, ...options.config });
  const app = await buildApp(config, options.parts);
  let url: string;
  if (options.listen === false) {
    await app.ready();
    url = injectedBase(app);
  } else {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('no address');
    url = `http://127.0.0.1:${address.port}`;
  }
  // the first admin, as `custody serve` makes it once listening
  await bootstrap(app);
  const stop = async () => {
    forgetInjected(url);
    await app.close();
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
  };
  return { url, host: new URL(url).host, dataDir, app, stop };
}

/** The app of startInProcess, answering through inject() instead of a port (see helpers/http.ts). */
export function startInjected(options: Omit<InProcessOptions, 'listen'> = {}): Promise<InProcessServer> {
  return startInProcess({ ...options, listen: false });
}
