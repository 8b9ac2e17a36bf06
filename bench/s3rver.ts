/**
 * `--storage s3`: S3 for a benchmark, s3rver (the S3-compatible server the tests use, a dev
 * dependency) keeping its objects in a temporary directory. It runs as a process of its own, so
 * that its CPU time can be read apart from Custody's and the benchmark's (cpuSeconds()), and is
 * stopped, its directory removed, at the end.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cpuSecondsOf } from './process-sample.ts';

/** The keys s3rver accepts. */
const credentials = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

export interface BenchS3 {
  pid: number;
  endpoint: string;
  /** the storage URL of a prefix in the bucket */
  url(prefix: string): string;
  /** what Custody (or openBlobStore in this process) needs in its environment: the credentials */
  env: Record<string, string>;
  /** s3rver's CPU seconds so far, user and kernel */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

const bucket = 'bench';

const script = `
import S3rver from 's3rver';
const server = new S3rver({ address: '127.0.0.1', port: 0, directory: process.argv[1], silent: true, configureBuckets: [{ name: '${bucket}' }] });
const address = await server.run();
process.stdout.write(JSON.stringify({ port: address.port }) + '\\n');
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
`;

export async function startBenchS3(): Promise<BenchS3> {
  const directory = await mkdtemp(path.join(tmpdir(), 'custody-bench-s3rver-'));
  // An ESM -e script resolves its imports from the working directory: the checkout's node_modules.
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, directory], {
    cwd: path.dirname(new URL(import.meta.url).pathname),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const port = await new Promise<number>((resolve, reject) => {
    let line = '';
    child.stdout.on('data', (d: Buffer) => {
      line += d.toString();
      const nl = line.indexOf('\n');
      if (nl >= 0) resolve((JSON.parse(line.slice(0, nl)) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code}:\n${output}`)));
    child.once('error', reject);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const pid = child.pid as number;
  return {
    pid,
    endpoint,
    url: (prefix) => `s3://${bucket}/${prefix}?region=us-east-1&endpoint=${encodeURIComponent(endpoint)}&forcePathStyle=true`,
    env: credentials,
    cpuSeconds: () => cpuSecondsOf(pid) ?? NaN,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}
