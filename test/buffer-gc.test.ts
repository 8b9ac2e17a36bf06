/**
 * The buffer pacer (src/server/buffer-gc.ts): streamed bytes reported to it get their dead buffers
 * freed after 4 MiB, long before V8 would collect them by itself, and a heap that grew 16 MiB since
 * the last full collection gets one. It needs the gc() that --expose-gc gives at start, so each
 * case runs in a Node process of its own, started with the flags of bin/custody.js's #! line or
 * without them; and the served process gets them.
 */
import { execFile, spawn } from 'node:child_process';
import { readFile, readlink, rm } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { binEnv, binNodeFlags } from '../bench/node-flags.ts';
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

it('bin/custody.js caps glibc at two malloc arenas, set before node starts', async () => {
  expect(binEnv()).toEqual({ MALLOC_ARENA_MAX: '2' });
  // What the served process really got: env(1) sets it, then execs node in the same process.
  const dir = await tempDir();
  // Not inherited from this process's environment: only the bin can have set it.
  const bin = spawnCustody(['serve', '--listen', '127.0.0.1:0', '--data-dir', dir], {
    env: { CUSTODY_ADMIN_PASSWORD: 'pacer-test-password', MALLOC_ARENA_MAX: undefined },
  });
  try {
    await bin.waitFor(/custody is serving/);
    const environ = (await readFile(`/proc/${bin.child.pid}/environ`, 'utf8')).split('\0');
    expect(environ).toContain('MALLOC_ARENA_MAX=2');
    expect(await readlink(`/proc/${bin.child.pid}/exe`)).toMatch(/\/node$/);
  } finally {
    bin.child.kill('SIGTERM');
    await bin.exited;
    await rm(dir, { recursive: true, force: true });
  }
});

it('runs a young collection for every 4 MiB reported, which frees the dead streamed buffers', async () => {
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
    const early = pacer?.collections();
    const held = external() - before;
    stream(16 * 64); // 64 MiB more: 67.75 MiB in all
    const collections = pacer?.collections();
    pacer?.stop();
    console.log(JSON.stringify({ reasons, pacing: pacer !== undefined, early, collections, held, peak }));
    `,
  );
  const MiB = 1024 * 1024;
  expect(result).toMatchObject({ reasons: [], pacing: true });
  const { early, collections, held, peak } = result as { early: object; collections: object; held: number; peak: number };
  // The work: one young collection per 4 MiB reported (the timer cannot run inside the loop).
  expect(early).toEqual({ minor: 0, major: 0 });
  expect(collections).toEqual({ minor: 16, major: 0 });
  expect(held).toBeGreaterThan(3 * MiB);
  // And that it frees them. How soon is up to V8's sweeper threads, which free a collection's dead
  // buffers when they get to it: 5-8 MiB were held at most on a quiet machine, 9.3 MiB once under
  // load, so the bound is loose. Without the pacer, V8 held 38 MiB at the peak of this loop.
  expect(peak).toBeLessThan(20 * MiB);
});

it('runs a full collection once 16 MiB more of the heap is in use than after the last one', async () => {
  const result = await runNode(
    binNodeFlags(),
    `
    import { getHeapStatistics } from 'node:v8';
    const { paceBufferGc } = await import(${JSON.stringify(pacer)});
    const used = () => getHeapStatistics().used_heap_size;
    const pacer = paceBufferGc(() => {});
    await new Promise((r) => setTimeout(r, 100)); // its first full collection, if the heap has slack
    // Objects that outlive two young collections, as those of requests in flight do when the pacer
    // collects every 4 MiB streamed, move to the old generation and stay there, dead, until a full
    // collection: here 24 MiB of them.
    let held = Array.from({ length: 24 * 1024 }, () => new Array(128).fill(0));
    gc({ type: 'minor' });
    gc({ type: 'minor' });
    const before = used();
    held = undefined;
    const deadline = Date.now() + 6000;
    while (used() > before - 16 * 1024 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    const collections = pacer?.collections();
    pacer?.stop();
    console.log(JSON.stringify({ freedMiB: (before - used()) / 1048576, collections }));
    `,
  );
  const { freedMiB, collections } = result as { freedMiB: number; collections: { major: number } };
  expect(collections.major).toBeGreaterThanOrEqual(1);
  expect(freedMiB).toBeGreaterThan(16);
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
