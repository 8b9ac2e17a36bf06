/**
 * `custody events` and `custody events rollups` run as a user runs them: the built CLI (`npm run
 * build` first) against a listening server here, whose pushes and pulls make the events shown.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, runCli, type Run } from './helpers/cli.ts';
import { imageManifest, putManifest, request, testAdmin } from './helpers/http.ts';
import { startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { tempDir } from './helpers/server.ts';

let server: AccountsServer;
let home: string;
let digest: string;

const custody = (args: string[], input?: string): Promise<Run> => runCli(home, args, input);
async function ok(args: string[], input?: string): Promise<string> {
  const r = await custody(args, input);
  expect(r.code, `custody ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

beforeAll(async () => {
  assertBuilt('events');
  home = await tempDir('custody-cli-events-');
  server = await startWithAccounts({ insight: { events: { flushMs: 50 } } });
  await ok(['login', server.url, '-u', 'admin', '--password-stdin'], `${testAdmin.password}\n`);
  const m = await imageManifest(server.url, 'team/app', ['cli events layer']);
  digest = m.digest;
  expect((await putManifest(server.url, 'team/app', 'v1', m.body)).status).toBe(201);
  for (let i = 0; i < 3; i++) expect((await request(server.url, '/v2/team/app/manifests/v1', { headers: { 'user-agent': 'cli-test/1' } })).status).toBe(200);
  // written in batches every 50 ms
  for (let i = 0; i < 100 && (await server.meta.insight.eventsAfter(undefined, 100, { types: ['pull'] })).length < 3; i++)
    await new Promise((r) => setTimeout(r, 50));
});
afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe('custody events', () => {
  it('lists events newest first as a table, and as JSON', async () => {
    const text = await ok(['events', '--namespace', 'team', '--type', 'pull']);
    const lines = text.trim().split('\n');
    expect(lines[0]).toMatch(/^TIME +TYPE +OBJECT +WHAT +ACTOR +BYTES +RESULT +STATUS +SOURCE +CLIENT$/);
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(/ pull +manifest +team\/app:v1 +admin +\d+ +ok +200 +127\.0\.0\.1 +cli-test\/1$/);
    const json = JSON.parse(await ok(['events', 'list', '--repository', 'team/app', '--type', 'push', '--json'])) as {
      events: { type: string; object: string; digest: string }[];
      next: string | null;
    };
    expect(json.events.map((e) => e.object).sort()).toEqual(['blob', 'blob', 'manifest']);
    expect(json.events.find((e) => e.object === 'manifest')?.digest).toBe(digest);
    expect(json.next).toBeNull();
  });

  it('pages with --limit and --before, saying how to go on', async () => {
    const first = await custody(['events', '--type', 'pull', '--limit', '2']);
    expect(first.code).toBe(0);
    const more = /more: add --before (\S+)/.exec(first.stderr);
    expect(more).not.toBeNull();
    const rest = await ok(['events', '--type', 'pull', '--before', more![1]!]);
    expect(rest.trim().split('\n')).toHaveLength(2);
  });

  it('shows rollups per hour, and refuses a bad period in one line', async () => {
    const text = await ok(['events', 'rollups', '--period', 'hour', '--namespace', 'team']);
    expect(text).toMatch(/^START +NAMESPACE +REPOSITORY +TYPE +OBJECT +COUNT +BYTES\n/);
    expect(text).toMatch(/ team +team\/app +pull +manifest +3 +\d+(\.\d)? (B|KiB)\n/);
    const bad = await custody(['events', 'rollups', '--period', 'week']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/period/);
  });
});
