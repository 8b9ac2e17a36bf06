/**
 * `custody query` as an operator runs it: the built CLI (`npm run build` first) against a
 * listening server here whose store holds test/suites/query.ts's data: a table, JSON and CSV,
 * the query from stdin, a cut answer said on stderr, and a wrong query's message with its position.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventId } from '../src/meta/insight.ts';
import { startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { assertBuilt, runCli, type Run } from './helpers/cli.ts';
import { testAdmin } from './helpers/http.ts';
import { tempDir } from './helpers/server.ts';
import { now, seed } from './suites/query.ts';

let server: AccountsServer;
let home: string;

const custody = (args: string[], input?: string): Promise<Run> => runCli(home, args, input);
async function ok(args: string[], input?: string): Promise<Run> {
  const r = await custody(args, input);
  expect(r.code, `custody ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r;
}

const example =
  "FROM pulls |> WHERE namespace = 'team' AND time > timestamp '2025-01-31' |> AGGREGATE sum(bytes) AS bytes, count() AS pulls GROUP BY repository |> ORDER BY bytes DESC";

beforeAll(async () => {
  assertBuilt('query');
  home = await tempDir('custody-cli-query-');
  server = await startWithAccounts();
  await seed(server.meta);
  await ok(['login', server.url, '-u', 'admin', '--password-stdin'], `${testAdmin.password}\n`);
});
afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe('custody query', () => {
  it('prints a table, JSON or CSV', async () => {
    expect((await ok(['query', example])).stdout).toBe('REPOSITORY  BYTES  PULLS\nteam/app    1540   3\nteam/web    300    1\n');
    expect(JSON.parse((await ok(['query', example, '--format', 'json'])).stdout)).toEqual({
      columns: [
        { name: 'repository', type: 'text' },
        { name: 'bytes', type: 'integer' },
        { name: 'pulls', type: 'integer' },
      ],
      rows: [
        ['team/app', 1540, 3],
        ['team/web', 300, 1],
      ],
      truncated: false,
    });
    expect((await ok(['query', example, '--json'])).stdout).toBe((await ok(['query', example, '--format', 'json'])).stdout);
    const csv = await ok(['query', 'FROM components |> SELECT name, version, licenses |> ORDER BY name', '--format', 'csv']);
    expect(csv.stdout).toBe('name,version,licenses\r\nbusybox,1.36,"GPL-2.0-only, bzip2-1.0.6"\r\nopenssl,3.0.1,Apache-2.0\r\nzlib,,\n');
  });

  it('reads the query from stdin with -, and says when there are no rows', async () => {
    expect((await ok(['query', '-'], `${example}\n`)).stdout).toContain('team/app    1540   3');
    expect((await ok(['query', "FROM pulls |> WHERE actor = 'nobody' |> SELECT time, bytes"])).stdout).toBe('no rows (columns: time, bytes)\n');
  });

  it('says on stderr when the answer was cut at the row limit', async () => {
    const many = Array.from({ length: 1001 }, (_, i) => ({
      id: eventId(now - 40 * 86_400_000 + i),
      at: now - 40 * 86_400_000 + i,
      type: 'pull' as const,
      object: 'blob' as const,
      namespace: 'bulk',
      repository: 'bulk/x',
      digest: '',
      tag: '',
      mediaType: '',
      actor: 'ci',
      actorKind: 'robot',
      tokenId: '',
      bytes: i,
      userAgent: '',
      source: '',
      durationMicros: 0,
      status: 200,
      result: 'ok' as const,
      detail: {},
    }));
    await server.meta.insight.recordEvents(many);
    const r = await ok(['query', "FROM pulls |> WHERE namespace = 'bulk' |> SELECT bytes", '--format', 'csv']);
    expect(r.stdout.split('\r\n')).toHaveLength(1001); // the header and 1000 rows
    expect(r.stderr).toBe('truncated at 1000 rows: add a LIMIT (at most 10000) or narrow the query\n');
    expect((await ok(['query', "FROM pulls |> WHERE namespace = 'bulk' |> SELECT bytes |> LIMIT 5"])).stderr).toBe('');
  });

  it('fails with the position of what is wrong', async () => {
    const r = await custody(['query', 'FROM pulls |> WHERE bites > 0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('custody: line 1, column 21: unknown column "bites" in pulls (did you mean bytes?)\n');
    const format = await custody(['query', 'FROM pulls', '--format', 'xml']);
    expect([format.code, format.stderr]).toEqual([1, 'custody: --format is table, json or csv, not xml\n']);
  });
});
