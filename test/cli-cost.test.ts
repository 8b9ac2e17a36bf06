/**
 * `custody cost`, `custody cost export --focus` and `custody budget` run as a user runs them: the
 * built CLI (`npm run build` first) against a listening server here, with pulls of a past month
 * seeded as events.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventId, type UsageEvent } from '../src/meta/insight.ts';
import { assertBuilt, runCli, type Run } from './helpers/cli.ts';
import { testAdmin } from './helpers/http.ts';
import { startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { tempDir } from './helpers/server.ts';
import { validateFocus } from './helpers/focus.ts';

let server: AccountsServer;
let home: string;

const custody = (args: string[], input?: string): Promise<Run> => runCli(home, args, input);
async function ok(args: string[], input?: string): Promise<string> {
  const r = await custody(args, input);
  expect(r.code, `custody ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

const october = ['--since', '2025-10-01T00:00:00Z', '--until', '2025-11-01T00:00:00Z'];
const pull = (at: number, namespace: string, bytes: number, source: string): UsageEvent => ({
  id: eventId(at),
  at,
  type: 'pull',
  object: 'blob',
  namespace,
  repository: `${namespace}/app`,
  digest: `sha256:${'d'.repeat(64)}`,
  tag: '',
  mediaType: '',
  actor: 'admin',
  actorKind: 'user',
  tokenId: '',
  bytes,
  userAgent: 'test',
  source,
  durationMicros: 1,
  status: 200,
  result: 'ok',
  detail: {},
});

beforeAll(async () => {
  assertBuilt('cost');
  home = await tempDir('custody-cli-cost-');
  server = await startWithAccounts({
    insight: { events: { enabled: false }, cost: { currency: 'USD', egress: { perGb: 0.09 }, requests: { pull: 0.5 } } },
  });
  await ok(['login', server.url, '-u', 'admin', '--password-stdin'], `${testAdmin.password}\n`);
  const at = Date.UTC(2025, 9, 12, 8);
  await server.meta.insight.recordEvents([
    pull(at, 'team', 5e9, '198.51.100.1'),
    pull(at + 1, 'team', 5e9, '198.51.100.1'),
    pull(at + 2, 'other', 1e9, '198.51.100.2'),
  ]);
  await server.accounts.upsertNamespace('team', { labels: { team: 'payments' } });
});
afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe('custody cost', () => {
  it('shows the cost per namespace as a table, JSON and CSV', async () => {
    const lines = (await ok(['cost', ...october])).trim().split('\n');
    expect(lines[0]).toBe('2025-10-01T00:00:00Z to 2025-11-01T00:00:00Z, in USD');
    expect(lines[1]).toMatch(/^NAMESPACE +GB-MONTHS +STORAGE +EGRESS GB +EGRESS +PUSHES +PULLS +REQUESTS +TOTAL$/);
    // 10 GB at 0.09 and 2 pulls at 0.50; 1 GB and 1 pull
    expect(lines[2]).toMatch(/^team +0 +0\.00 +10 +0\.90 +0 +2 +1\.00 +1\.90$/);
    expect(lines[3]).toMatch(/^other +0 +0\.00 +1 +0\.09 +0 +1 +0\.50 +0\.59$/);
    expect(lines[4]).toMatch(/^total .* 2\.49$/);
    const json = JSON.parse(await ok(['cost', ...october, '--by', 'team', '--output', 'json'])) as { by: string; rows: { key: string; cost: number }[] };
    expect(json.by).toBe('team');
    expect(json.rows.map((r) => [r.key, Number(r.cost.toFixed(6))])).toEqual([
      ['payments', 1.9],
      ['', 0.59],
    ]);
    const csv = (await ok(['cost', ...october, '--namespace', 'other', '--output', 'csv'])).trim().split('\r\n');
    expect(csv[0]).toBe('namespace,storageGbMonths,storageCost,egressGb,egressCost,pushes,pulls,requestsCost,cost,currency');
    expect(csv[1]).toMatch(/^other,0,0,1,0\.09,0,1,0\.5,0\.59\d*,USD$/);
  });

  it('exports FOCUS CSV to a file', async () => {
    const file = path.join(home, 'focus.csv');
    await ok(['cost', 'export', '--focus', ...october, '-o', file]);
    const rows = validateFocus(await readFile(file, 'utf8'));
    expect(rows.map((r) => [r.ResourceId, r.SkuPriceId, r.BilledCost])).toEqual([
      ['other/app', 'egress:default', '0.09'],
      ['other/app', 'requests:pull', '0.5'],
      ['team/app', 'egress:default', '0.9'],
      ['team/app', 'requests:pull', '1'],
    ]);
  });

  it('refuses a grouping it does not know with the server’s message', async () => {
    const r = await custody(['cost', '--by', 'colour']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/namespace, team, repository or label:<key>/);
    expect((await custody(['cost', '--output', 'xml'])).stderr).toMatch(/--output is table, json or csv/);
  });
});

describe('custody budget', () => {
  it('sets, lists and deletes budgets', async () => {
    expect(await ok(['budget', 'set', 'namespace', 'team', '--monthly', '100', '--soft', '80'])).toMatch(
      /budget of namespace team: 100 USD a month, notifying at 80/,
    );
    await ok(['budget', 'set', 'team', 'payments', '--monthly', '250.50']);
    const lines = (await ok(['budget', 'list'])).trim().split('\n');
    expect(lines[0]).toMatch(/^SCOPE +NAME +MONTHLY \(USD\) +SOFT +UPDATED BY +UPDATED$/);
    expect(lines[1]).toMatch(/^namespace +team +100 +80 +admin /);
    expect(lines[2]).toMatch(/^team +payments +250\.5 +- +admin /);
    const bad = await custody(['budget', 'set', 'namespace', 'team', '--monthly', '10', '--soft', '20']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/soft is at most monthly/);
    expect((await custody(['budget', 'set', 'namespace', 'team', '--monthly=-5'])).stderr).toMatch(/--monthly is an amount/);
    expect((await custody(['budget', 'set', 'robot', 'x', '--monthly', '5'])).stderr).toMatch(/a namespace or a team/);
    await ok(['budget', 'delete', 'team', 'payments']);
    const json = JSON.parse(await ok(['budget', 'list', '--json'])) as { budgets: { name: string }[] };
    expect(json.budgets.map((b) => b.name)).toEqual(['team']);
  });
});
