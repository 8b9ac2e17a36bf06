/**
 * The benchmark harness itself (`npm run bench -- --quick`): it starts Custody, runs every
 * workload with every digest checked, and writes figures. Not a timed test: it asserts only that
 * each workload ran and produced sane numbers, so that `npm run bench` keeps working.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');

it('runs every workload of the quick benchmark against a fresh Custody', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'custody-bench-smoke-'));
  try {
    const json = path.join(dir, 'result.json');
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(root, 'bench/run.ts'), '--quick', '--json', json], {
      cwd: root,
      timeout: 110_000,
    });
    expect(stdout).toContain('manifest GET by tag');
    const result = JSON.parse(await readFile(json, 'utf8')) as {
      rows: {
        custody: {
          workload: string;
          opsPerSec: number;
          mbPerSec?: number;
          p99: number;
          peakRssMiB?: number;
          serverCpuPercent?: number;
          serverCpuPerGiB?: number;
          clientCpuPercent?: number;
        };
      }[];
    };
    expect(result.rows.map((r) => r.custody.workload)).toEqual([
      '4 KiB push',
      '4 KiB pull',
      '1 MiB push',
      '1 MiB pull',
      '64 MiB push',
      '64 MiB pull',
      'manifest GET by tag',
      'manifest GET by tag, bearer',
      'GET /token (Basic)',
      'manifest GET by tag, 5 CEL policies',
      'manifest GET by tag, 1 OPA Wasm policy',
    ]);
    for (const { custody } of result.rows) {
      expect(custody.opsPerSec).toBeGreaterThan(0);
      expect(custody.p99).toBeGreaterThan(0);
      expect(custody.peakRssMiB).toBeGreaterThan(0);
      expect(custody.serverCpuPercent).toBeGreaterThanOrEqual(0);
      // blob workloads: the server's CPU time per GiB moved
      if (custody.mbPerSec !== undefined) expect(custody.serverCpuPerGiB).toBeGreaterThanOrEqual(0);
      expect(custody.clientCpuPercent).toBeGreaterThan(0);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('runs the soak: mixed rounds against a fresh Custody, its RSS sampled as they run', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'custody-bench-smoke-'));
  try {
    const json = path.join(dir, 'soak.json');
    // One round (the round under way is always finished): 100 blobs up to 64 MiB, pushed and pulled.
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(root, 'bench/run.ts'), '--soak', '1', '--json', json], {
      cwd: root,
      timeout: 110_000,
    });
    expect(stdout).toMatch(/soak: 1 rounds in \d+ s, 73 MiB pushed and pulled; server RSS peak \d+ MiB/);
    const { soak } = JSON.parse(await readFile(json, 'utf8')) as {
      soak: { rounds: number; samples: { t: number; rssMiB: number }[]; peakRssMiB: number; endRssMiB: number };
    };
    expect(soak.rounds).toBe(1);
    expect(soak.samples.length).toBeGreaterThan(0);
    for (const s of soak.samples) expect(s.rssMiB).toBeGreaterThan(0);
    expect(soak.peakRssMiB).toBeGreaterThanOrEqual(Math.max(...soak.samples.map((s) => s.rssMiB)));
    expect(soak.endRssMiB).toBeGreaterThan(0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('runs the trust benchmark: signed pushes with verification on and off, every signature verified', { timeout: 120_000 }, async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(root, 'bench/trust.ts'), '--count', '20', '--rounds', '1'], {
    cwd: root,
    timeout: 110_000,
  });
  expect(stdout).toMatch(/verification on +\d+\.\d/);
  expect(stdout).toMatch(/verification off +\d+\.\d/);
  expect(stdout).toMatch(/signed pushes\/s with verification on: \d+% of off/);
});
