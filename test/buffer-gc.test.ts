/**
 * The buffer pacer (src/server/buffer-gc.ts): streamed bytes reported to it get their dead buffers
 * freed after 4 MiB, long before V8 would collect them by itself. It needs the gc() that
 * --expose-gc gives at start, so each case runs in a Node process of its own, started with the
 * flags of bin/custody.js's #! line or without them; and the served process gets them.
 */
import { execFile, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { binNodeFlags } from '../bench/node-flags.ts';
import { projectRoot, tempDir } from './helpers/server.ts';
import { cleanEnv, spawnCustody } from './helpers/spawn.ts';

const pacer = pathToFileURL(path.join(projectRoot, 'src/server/buffer-gc.ts')).href;

/** Runs an ES module script in a fresh Node; returns what it printed as JSON. */
async function runNode(flags: string[], script: string): Promise<unknown> {
  const { stdout } = await promisify(execFile)(process.execPath, [...flags, '--input-type=module', '-e', script], { timeout: 30_000 });
  return JSON.parse(stdout) as unknown;
}

it('bin/custody.js starts Node with --expose-gc', () => {
  expect(binNodeFlags()).toContain('--expose-gc');
});

it('frees dead streamed buffers every 4 MiB reported, so that no more than ~8 MiB of them are held', async () => {
  const result = await runNode(
    binNodeFlags(),
    `
    import { getHeapStatistics } from 'node:v8';
    const { paceBufferGc } = await import(${JSON.stringify(pacer)});
    const reasons = [];
    const pacer = paceBufferGc((reason) => reasons.push(reason));
    const external = () => getHeapStatistics().external_memory;
    const before = external();
    let peak = 0;
    // Allocates and drops off-heap chunks of 64 KiB, as node:http does per socket read, reporting each.
    const stream = (count) => {
      for (let i = 0; i < count; i++) {
        const buffer = Buffer.allocUnsafeSlow(64 * 1024);
        buffer.fill(i);
        pacer?.streamed(buffer.byteLength);
        peak = Math.max(peak, external() - before);
      }
    };
    stream(60); // 3.75 MiB: nothing collected them yet
    const held = external() - before;
    // A young collection's dead buffers are released when the next one starts: with one every
    // 4 MiB, at most about 8 MiB are held.
    stream(16 * 64);
    pacer?.stop();
    console.log(JSON.stringify({ reasons, pacing: pacer !== undefined, held, peak }));
    `,
  );
  const MiB = 1024 * 1024;
  expect(result).toMatchObject({ reasons: [], pacing: true });
  const { held, peak } = result as { held: number; peak: number };
  expect(held).toBeGreaterThan(3 * MiB);
  expect(peak).toBeLessThan(9 * MiB);
});

it('says once why it cannot pace when Node was started without --expose-gc, and does nothing', async () => {
  const result = await runNode(
    [],
    `
    const { paceBufferGc } = await import(${JSON.stringify(pacer)});
    const reasons = [];
    const pacer = paceBufferGc((reason) => reasons.push(reason));
    console.log(JSON.stringify({ reasons, pacing: pacer !== undefined }));
    `,
  );
  expect(result).toEqual({ reasons: [expect.stringContaining('--expose-gc')], pacing: false });
});

it('the served process paces: no warning through bin/custody.js, one warning from the same dist on plain node', { timeout: 60_000 }, async () => {
  const dirs = [await tempDir(), await tempDir()];
  const bin = spawnCustody(['serve', '--listen', '127.0.0.1:0', '--data-dir', dirs[0]!], { env: { CUSTODY_ADMIN_PASSWORD: 'pacer-test-password' } });
  try {
    await bin.waitFor(/custody is serving/);
    expect(bin.output()).not.toContain('expose-gc');
  } finally {
    bin.child.kill('SIGTERM');
    await bin.exited;
  }
  const plain = spawn(process.execPath, [path.join(projectRoot, 'dist/cli/main.js'), 'serve', '--listen', '127.0.0.1:0', '--data-dir', dirs[1]!], {
    env: cleanEnv({ CUSTODY_ADMIN_PASSWORD: 'pacer-test-password' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  plain.stdout.on('data', (d: Buffer) => (output += d.toString()));
  plain.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise((resolve) => plain.once('close', resolve));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no warning in 20 s:\n${output}`)), 20_000);
      plain.stdout.on('data', () => {
        if (output.includes('expose-gc')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    // A while later, still once.
    await new Promise((r) => setTimeout(r, 300));
    expect(output.split('\n').filter((line) => line.includes('expose-gc'))).toHaveLength(1);
  } finally {
    plain.kill('SIGTERM');
    await exited;
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  }
});
