/**
 * POST /api/v1/query over HTTP: the answer's shape, the access matrix (a registry administrator
 * sees every namespace; a reader of team, a robot of team and a token of team only team's rows,
 * whatever the query says; anyone logged in sees a namespace open to anonymous reads; a token
 * without pull sees nothing; no credentials is a 401), and bad input as a 400 that says where.
 * The seeded data is test/suites/query.ts's; answered through inject().
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRobot, createUser, createUserToken, startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { basic, request, type Reply } from './helpers/http.ts';
import { seed } from './suites/query.ts';

let server: AccountsServer;
const reader = basic('reader', 'reader-password');
const nobody = basic('nobody', 'nobody-password');
let robot: string;
let pushOnlyToken: string;
let readerToken: string;

beforeAll(async () => {
  server = await startWithAccounts({}, {}, { listen: false });
  await seed(server.meta);
  const readerId = await createUser(server.accounts, 'reader', 'reader-password', { team: 'reader' });
  await createUser(server.accounts, 'nobody', 'nobody-password');
  const r = await createRobot(server.accounts, 'team', 'ci', 'writer');
  robot = basic(r.name, r.token);
  pushOnlyToken = basic('reader', (await createUserToken(server.accounts, readerId, { scopes: ['push'] })).token);
  readerToken = basic('reader', (await createUserToken(server.accounts, readerId, { scopes: ['pull'] })).token);
});
afterAll(() => server.stop());

const ask = (query: unknown, authorization?: string | false): Promise<Reply> =>
  request(server.url, '/api/v1/query', {
    method: 'POST',
    body: JSON.stringify(typeof query === 'string' ? { query } : query),
    headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
    ...(authorization === false ? { auth: false as const } : {}),
  });
const errorOf = (r: Reply) => r.json<{ error: { code: string; message: string } }>().error;

/** The seeded events only (a server may record its own as the test runs). */
const perNamespace = "FROM events |> WHERE time < timestamp '2025-02-01' |> AGGREGATE count() AS n GROUP BY namespace |> ORDER BY namespace";

describe('POST /api/v1/query', () => {
  it('answers columns with their types, rows, and whether the rows were cut', async () => {
    const r = await ask(
      "FROM pulls |> WHERE namespace = 'team' AND time > timestamp '2025-01-31' |> AGGREGATE sum(bytes) AS bytes, count() AS pulls GROUP BY repository |> ORDER BY bytes DESC |> LIMIT 10",
    );
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.json()).toEqual({
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
  });

  it('shows a registry administrator every namespace', async () => {
    expect((await ask(perNamespace)).json<{ rows: unknown[] }>().rows).toEqual([
      ['', 1],
      ['other', 2],
      ['team', 6],
      ['teamwork', 1],
    ]);
  });

  it("shows a reader of team, its robot and its tokens only team's rows, whatever the query says", async () => {
    const attempts = [
      perNamespace,
      "FROM events |> WHERE namespace = 'other' OR 1 = 1 |> AGGREGATE count() AS n GROUP BY namespace |> ORDER BY namespace",
      "SELECT namespace, count(*) AS n FROM events WHERE namespace IN ('other', 'teamwork', '') OR true GROUP BY namespace",
      "FROM events |> LIMIT 10000 |> WHERE NOT (namespace = 'team') OR namespace = 'team' |> AGGREGATE count() AS n GROUP BY namespace",
    ];
    for (const who of [reader, robot, readerToken])
      for (const query of attempts) {
        const r = await ask(query, who);
        expect(r.status, r.body.toString()).toBe(200);
        expect(r.json<{ rows: unknown[] }>().rows, query).toEqual([['team', 6]]);
      }
    for (const table of ['artifacts', 'tags', 'referrers', 'verdicts', 'components', 'policy_decisions', 'rollups']) {
      const all = (await ask(`FROM ${table} |> AGGREGATE count() AS n GROUP BY namespace |> ORDER BY namespace`)).json<{ rows: [string, number][] }>().rows;
      if (!['referrers', 'components'].includes(table))
        expect(
          all.some(([ns]) => ns !== 'team'),
          `${table} has rows of other namespaces to hide`,
        ).toBe(true);
      const seen = await ask(`FROM ${table} |> WHERE namespace <> 'team' OR namespace = 'team' OR 1 = 1 |> AGGREGATE count() AS n GROUP BY namespace`, reader);
      expect(seen.json<{ rows: unknown[] }>().rows, table).toEqual(all.filter(([ns]) => ns === 'team'));
    }
  });

  it('shows anyone logged in a namespace open to anonymous reads, and nothing to a token that may not pull', async () => {
    expect((await ask(perNamespace, nobody)).json<{ rows: unknown[] }>().rows).toEqual([]);
    await server.accounts.upsertNamespace('other', { anonymousRead: true });
    expect((await ask(perNamespace, nobody)).json<{ rows: unknown[] }>().rows).toEqual([['other', 2]]);
    expect((await ask(perNamespace, reader)).json<{ rows: unknown[] }>().rows).toEqual([
      ['other', 2],
      ['team', 6],
    ]);
    // a robot acts only in its own namespace
    expect((await ask(perNamespace, robot)).json<{ rows: unknown[] }>().rows).toEqual([['team', 6]]);
    expect((await ask(perNamespace, pushOnlyToken)).json<{ rows: unknown[] }>().rows).toEqual([]);
    await server.accounts.upsertNamespace('other', { anonymousRead: false });
  });

  it('wants credentials', async () => {
    const r = await ask(perNamespace, false);
    expect(r.status).toBe(401);
    expect(errorOf(r).code).toBe('UNAUTHORIZED');
  });

  it('answers a wrong query with a 400 that says where, never a 5xx', async () => {
    const cases: [string, string][] = [
      ['FROM pulls |> WHERE bites > 0', 'line 1, column 21: unknown column "bites" in pulls (did you mean bytes?)'],
      ['DELETE FROM usage_events', 'line 1, column 1: queries only read: DELETE is not part of the language'],
      ["FROM pulls |> WHERE actor = 'x'; DROP TABLE users", 'line 1, column 32: one query at a time: nothing may follow ";"'],
      ['FROM users', 'line 1, column 6: unknown table "users"'],
      ['FROM sqlite_master', 'line 1, column 6: unknown table "sqlite_master"'],
      ['SELECT * FROM pg_catalog.pg_tables', 'line 1, column 15: unknown table "pg_catalog.pg_tables"'],
      ['FROM pulls |> WHERE repository IN (SELECT name FROM users)', 'line 1, column 36: subqueries are not supported'],
      ['FROM pulls UNION FROM users', 'line 1, column 12: UNION is not supported'],
      [`FROM pulls |> WHERE ${'bytes > 0 AND '.repeat(1000)}true`, 'line 1, column 10001: the query is 14024 characters long: at most 10000'],
      ['FROM pulls |> LIMIT 20000', 'line 1, column 15: LIMIT is at most 10000'],
    ];
    for (const [query, message] of cases) {
      const r = await ask(query);
      expect(r.status, query.slice(0, 80)).toBe(400);
      expect(errorOf(r).code).toBe('INVALID');
      expect(errorOf(r).message.startsWith(message), `${query.slice(0, 80)}: ${errorOf(r).message}`).toBe(true);
    }
    for (const body of [{}, { query: 7 }, { query: 'FROM pulls', extra: true }]) {
      const r = await ask(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(errorOf(r).message).toMatch(/^invalid query request/);
    }
    const long = await ask({ query: 'x'.repeat(61_000) });
    expect([long.status, errorOf(long).message]).toEqual([400, 'invalid query request (query): at most 60 000 characters']);
    // past the management API's body limit: refused before it is read
    const huge = await ask({ query: 'x'.repeat(70_000) });
    expect([huge.status, errorOf(huge).code]).toEqual([413, 'TOO_LARGE']);
  });
});
