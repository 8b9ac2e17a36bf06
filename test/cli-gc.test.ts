/**
 * `custody gc` as an operator runs it: the built CLI (`npm run build` first) against a listening
 * server in this process; a dry run, then a run that frees the bytes, with its progress bar on a
 * terminal and its summary; `custody gc runs`; a refusal for someone who is not an administrator.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, runCli, runOnTerminal, type Run } from './helpers/cli.ts';
import { imageManifest, putManifest, request, testAdmin } from './helpers/http.ts';
import { startInProcess, tempDir, type InProcessServer } from './helpers/server.ts';

let server: InProcessServer;
let home: string;

const custody = (args: string[], input?: string): Promise<Run> => runCli(home, args, input);
async function ok(args: string[], input?: string): Promise<string> {
  const r = await custody(args, input);
  expect(r.code, `custody ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

beforeAll(async () => {
  assertBuilt('gc');
  home = await tempDir('custody-cli-gc-');
  server = await startInProcess({
    config: { auth: { adminPassword: testAdmin.password }, lifecycle: { gc: { graceSeconds: 0, intervalSeconds: 0, batchSize: 1 } } },
  });
  await ok(['login', server.url, '-u', 'admin', '--password-stdin'], `${testAdmin.password}\n`);
  const kept = await imageManifest(server.url, 'ops/app', ['kept']);
  expect((await putManifest(server.url, 'ops/app', 'v1', kept.body)).status).toBe(201);
  const dropped = await imageManifest(server.url, 'ops/app', ['dropped-one', 'dropped-two']);
  expect((await putManifest(server.url, 'ops/app', 'v2', dropped.body)).status).toBe(201);
  expect((await request(server.url, `/v2/ops/app/manifests/${dropped.digest}`, { method: 'DELETE' })).status).toBe(202);
  await new Promise((resolve) => setTimeout(resolve, 5));
});
afterAll(() => server.stop());

describe('custody gc', () => {
  it('says in a dry run what a collection would free, and frees nothing', async () => {
    const out = await ok(['gc', '--dry-run']);
    expect(out).toMatch(/^a collection now would free 2 blobs \(22 B\), 2 blob links and 0 untagged manifests \(dry run \S+, \d+\.\d s\)\n$/);
    const finished = JSON.parse(await ok(['gc', '--dry-run', '--json'])) as { state: string; planned: { blobs: number } };
    expect(finished).toMatchObject({ state: 'done', planned: { blobs: 2 } });
  });

  it('frees it, with a progress bar on a terminal, and lists the runs', async () => {
    const run = await runOnTerminal(home, ['gc'], []);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toMatch(/\[[=-]+\] 4\/4 rows \| 22 B freed/);
    expect(run.output).toMatch(/freed 2 blobs \(22 B\), 2 blob links and 0 untagged manifests in \d+\.\d s \(run \S+\)/);
    const listed = JSON.parse(await ok(['gc', 'runs', '--json'])) as { runs: { dryRun: boolean; state: string; done: { bytes: number } }[] };
    expect(listed.runs.map((r) => [r.dryRun, r.state, r.done.bytes])).toEqual([
      [false, 'done', 22],
      [true, 'done', 0],
      [true, 'done', 0],
    ]);
    expect(await ok(['gc', 'runs'])).toMatch(/^ID\s+STARTED\s+STATE\s+DRY RUN.*\n\S+\s+\S+\s+done\s+no\s+done\s+2\s+22 B\s+0\n/);
    expect((await ok(['gc', '--dry-run'])).startsWith('a collection now would free 0 blobs (0 B)')).toBe(true);
  });

  it('is refused, with the reason, to someone who is not a registry administrator', async () => {
    const stranger = await tempDir('custody-cli-gc-stranger-');
    const created = await request(server.url, '/api/v1/users', {
      method: 'POST',
      body: JSON.stringify({ name: 'dev', password: 'dev-password-long' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(created.status, created.body.toString()).toBe(201);
    expect((await runCli(stranger, ['login', server.url, '-u', 'dev', '--password-stdin'], 'dev-password-long\n')).code).toBe(0);
    const r = await runCli(stranger, ['gc']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/admin|denied|not allowed|permission/i);
  });
});
