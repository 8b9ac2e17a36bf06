/**
 * The servers a benchmark run may start: Custody itself (the built `custody serve`, defaults as
 * in production but for a temp data dir and warn-level logs) and the reference registry, Debian's
 * `docker-registry` (CNCF distribution 2.8). Both listen on loopback and are stopped at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { basicAuth } from './client.ts';
import type { Registry } from './workloads.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface Server extends Registry {
  pid: number | undefined;
  stop(): Promise<void>;
}

/** The admin password of the Custody the benchmark starts. */
const benchAdmin = { username: 'admin', password: 'bench-admin-password' };

/** A port no one listens on now, on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitReady(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${output()}`);
    try {
      if ([200, 401].includes((await fetch(`${url}/v2/`)).status)) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server at ${url} did not answer in 20 s:\n${output()}`);
}

async function launch(cmd: string, args: string[], dir: string, port: number, env: Record<string, string> = {}): Promise<Server> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.on('error', (err) => (output += `\n${err.message}`));
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, child, () => output || `(is ${cmd} installed?)`);
  return {
    url,
    pid: child.pid,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `dataDir`: a data directory prepared beforehand (removed on stop, as a fresh one is). */
export async function startCustody(extraEnv: Record<string, string> = {}, dataDir?: string): Promise<Server> {
  const dir = dataDir ?? (await mkdtemp(path.join(tmpdir(), 'custody-bench-')));
  const port = await freePort();
  const args = ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dir];
  // Run as installed, through the bin's #! line and its node flags, on the Node running this.
  const env = {
    CUSTODY_LOG_LEVEL: 'warn',
    CUSTODY_ADMIN_PASSWORD: benchAdmin.password,
    PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
    ...extraEnv,
  };
  const server = await launch(path.join(root, 'bin/custody.js'), args, dir, port, env);
  return { ...server, credentials: basicAuth(benchAdmin.username, benchAdmin.password) };
}

export async function startReference(): Promise<Server> {
  const dir = await mkdtemp(path.join(tmpdir(), 'custody-bench-reference-'));
  const config = path.join(dir, 'config.yml');
  const port = await freePort();
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${dir}/data`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  return launch('docker-registry', ['serve', config], dir, port);
}
