/**
 * The query language's parser and planner on their own: what they accept, what they refuse and
 * where they say the trouble is, and what SQL a plan becomes (the access filter a term of its own,
 * the caller's text never an identifier). The same queries against real data on both engines are
 * in test/suites/query.ts.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalog } from '../src/insight/query/catalog.ts';
import { QueryError, runQuery } from '../src/insight/query/index.ts';
import { parseQuery } from '../src/insight/query/parser.ts';
import { planQuery, type QueryAccess } from '../src/insight/query/planner.ts';
import { parseInterval, parseTimestamp } from '../src/insight/query/time.ts';
import { likeToGlob, KyselyQueryStore } from '../src/meta/kysely/query.ts';
import { openMetaStore } from '../src/meta/open.ts';
import type { MetaStore } from '../src/meta/metastore.ts';

const now = Date.UTC(2025, 0, 31);
const plan = (text: string, access: QueryAccess = 'all') => planQuery(parseQuery(text), { access, now, defaultRows: 1000, maxRows: 10_000 });

/** The message of the QueryError the query gets. */
function refusal(text: string, access: QueryAccess = 'all'): string {
  try {
    plan(text, access);
  } catch (err) {
    if (err instanceof QueryError) return err.message;
    throw err;
  }
  throw new Error(`accepted: ${text}`);
}

describe('the query language: errors with their position', () => {
  it('names an unknown column, where it is, and the column meant', () => {
    expect(refusal('FROM pulls |> WHERE bites > 0')).toBe('line 1, column 21: unknown column "bites" in pulls (did you mean bytes?)');
    expect(refusal("FROM pulls\n|> WHERE namespace = 'x'\n|> AGGREGATE count() AS n GROUP BY repository\n|> WHERE bytes > 1")).toBe(
      'line 4, column 10: unknown column "bytes" after AGGREGATE: the columns are repository, n',
    );
    expect(refusal('SELECT repositry FROM tags')).toBe('line 1, column 8: unknown column "repositry" in tags (did you mean repository?)');
  });

  it('names an unknown table, and lists the tables; other tables of the database are unknown ones', () => {
    expect(refusal('FROM pull')).toMatch(/^line 1, column 6: unknown table "pull" \(did you mean pulls\?\): the tables are events, pulls, /);
    for (const table of ['users', 'sqlite_master', 'pg_catalog.pg_tables', 'usage_events', 'manifests', 'tokens', 'signing_keys', 'information_schema.tables'])
      expect(refusal(`FROM ${table}`), table).toMatch(new RegExp(`^line 1, column 6: unknown table "${table.replace('.', '\\.')}"`));
    expect(refusal('SELECT * FROM users')).toMatch(/^line 1, column 15: unknown table "users"/);
  });

  it('refuses to write, and anything after the query', () => {
    expect(refusal('DELETE FROM pulls')).toBe('line 1, column 1: queries only read: DELETE is not part of the language');
    expect(refusal('drop table usage_events')).toBe('line 1, column 1: queries only read: DROP is not part of the language');
    expect(refusal("INSERT INTO tags VALUES ('a')")).toBe('line 1, column 1: queries only read: INSERT is not part of the language');
    expect(refusal('FROM pulls; DROP TABLE users')).toBe('line 1, column 11: one query at a time: nothing may follow ";"');
    expect(refusal("FROM pulls |> WHERE actor = 'x'; DELETE FROM usage_events")).toBe('line 1, column 32: one query at a time: nothing may follow ";"');
    // a doubled quote is a quote inside the string: the "injection" is one value compared with actor
    expect(plan("FROM pulls |> WHERE actor = 'x'' OR 1=1 --'").plan.where).toContainEqual({
      kind: 'binary',
      op: '=',
      left: { kind: 'column', table: 'usage_events', column: 'actor' },
      right: { kind: 'value', value: "x' OR 1=1 --", type: 'text' },
    });
    expect(refusal("FROM pulls |> WHERE actor = 'x")).toBe('line 1, column 29: this string has no closing quote');
    // a trailing ';' alone is harmless
    expect(plan('FROM pulls;').columns.length).toBeGreaterThan(0);
  });

  it('refuses subqueries, unions and joins by name', () => {
    expect(refusal('FROM pulls |> WHERE namespace IN (SELECT namespace FROM events)')).toBe('line 1, column 35: subqueries are not supported');
    expect(refusal('FROM (SELECT * FROM users)')).toBe('line 1, column 6: expected a table name, found "("');
    expect(refusal('SELECT * FROM pulls UNION SELECT * FROM users')).toBe('line 1, column 21: UNION is not supported: run one query per table');
    expect(refusal('SELECT * FROM pulls, users')).toBe('line 1, column 20: each query reads one table: there are no joins');
    expect(refusal('FROM pulls |> WHERE EXISTS (SELECT 1)')).toBe('line 1, column 21: subqueries are not supported');
  });

  it('says what it expected and found', () => {
    expect(refusal('FROM')).toBe('line 1, column 5: expected a table name, found the end of the query');
    expect(refusal('FROM pulls |> WHERE')).toBe('line 1, column 20: expected an expression, found the end of the query');
    expect(refusal('FROM pulls |> FILTER x')).toBe(
      'line 1, column 15: expected WHERE, SELECT, EXTEND, AGGREGATE, ORDER BY or LIMIT after "|>", found "filter"',
    );
    expect(refusal('FROM pulls |> WHERE (bytes > 1')).toBe('line 1, column 31: expected ")", found the end of the query');
    expect(refusal('FROM pulls |> LIMIT ten')).toBe('line 1, column 21: expected a whole number after LIMIT, found "ten"');
    expect(refusal('FROM pulls |> WHERE bytes > 1 bytes')).toBe('line 1, column 31: expected "|>" or the end of the query, found "bytes"');
    expect(refusal('FROM pulls |> WHERE actor = "alice"')).toBe('line 1, column 29: names are written without quotes; strings take single quotes');
    expect(refusal('FROM pulls |> WHERE bytes > 1 # 2')).toBe('line 1, column 31: unexpected character "#"');
    expect(refusal('')).toBe('line 1, column 1: expected FROM or SELECT, found the end of the query');
  });

  it('checks types, aggregates and groupings', () => {
    expect(refusal("FROM pulls |> WHERE bytes > 'a lot'")).toBe('line 1, column 29: > compares integer with text');
    expect(refusal('FROM pulls |> WHERE bytes')).toBe('line 1, column 21: WHERE needs a condition (true or false), not integer');
    expect(refusal('FROM pulls |> WHERE actor = NULL')).toBe('line 1, column 27: nothing is = NULL: use IS NULL or IS NOT NULL');
    expect(refusal('FROM pulls |> WHERE sum(bytes) > 1')).toBe(
      'line 1, column 21: sum() is an aggregate: use it in AGGREGATE (or a SELECT with GROUP BY), not here',
    );
    expect(refusal('FROM pulls |> AGGREGATE repository')).toBe(
      'line 1, column 25: AGGREGATE takes aggregates (count, sum, min, max, avg): put plain columns in GROUP BY',
    );
    expect(refusal('FROM pulls |> AGGREGATE sum(count())')).toBe('line 1, column 29: aggregates cannot nest');
    expect(refusal('FROM pulls |> AGGREGATE sum(actor)')).toBe('line 1, column 25: sum() adds numbers, not text');
    expect(refusal('SELECT repository, count(*) FROM pulls GROUP BY namespace')).toBe(
      'line 1, column 8: "repository" must be in GROUP BY or inside an aggregate (count, sum, min, max, avg)',
    );
    expect(refusal("FROM pulls |> WHERE time > '31 January'")).toBe(
      "line 1, column 28: '31 January' is not a time: use ISO 8601, like '2025-01-31' or '2025-01-31T12:00:00Z'",
    );
    expect(refusal("FROM pulls |> WHERE time > now() - interval '1 month'")).toBe(
      'line 1, column 45: months and years have no fixed length: use days or weeks',
    );
    expect(refusal('FROM pulls |> WHERE time + time > now()')).toBe('line 1, column 26: cannot apply + to timestamp and timestamp');
    expect(refusal('FROM pulls |> SELECT bytes, bytes')).toBe('line 1, column 29: two columns are named "bytes": name one with AS');
    expect(refusal('FROM pulls |> WHERE repository LIKE actor')).toBe("line 1, column 37: LIKE takes a quoted pattern, like 'team/%'");
    expect(refusal('FROM pulls |> SELECT frobnicate(bytes)')).toBe('line 1, column 22: unknown function frobnicate()');
    expect(refusal('FROM pulls |> SELECT lenght(actor)')).toBe('line 1, column 22: unknown function lenght() (did you mean length?)');
    expect(refusal('FROM pulls |> LIMIT 10001')).toBe('line 1, column 15: LIMIT is at most 10000 (the most rows one answer holds)');
  });

  it('bounds what a query may ask of the parser: its length, its nesting and its lists', async () => {
    const store = { run: async () => [] };
    const huge = `FROM pulls |> WHERE ${Array.from({ length: 2000 }, (_, i) => `bytes = ${i}`).join(' OR ')}`;
    await expect(runQuery(store, huge, { access: 'all' })).rejects.toThrow(/^line 1, column 10001: the query is \d+ characters long: at most 10000$/);
    const deep = `FROM pulls |> WHERE ${'('.repeat(100)}bytes > 1${')'.repeat(100)}`;
    expect(refusal(deep)).toMatch(/^line 1, column \d+: the expression nests more than 64 deep$/);
    const nots = `FROM pulls |> WHERE ${'NOT '.repeat(100)}true`;
    expect(refusal(nots)).toMatch(/nests more than 64 deep/);
    const list = `FROM pulls |> WHERE bytes IN (${Array.from({ length: 1001 }, (_, i) => i).join(',')})`;
    expect(refusal(list)).toBe('line 1, column 27: IN lists hold at most 1000 values');
    await expect(runQuery(store, '   ', { access: 'all' })).rejects.toThrow('line 1, column 1: the query is empty: start with FROM or SELECT');
  });
});

describe('the query language: times, patterns and names', () => {
  const at = { offset: 0, line: 1, column: 1 };
  it('reads intervals and times', () => {
    expect(parseInterval('7 days', at)).toBe(7 * 86_400_000);
    expect(parseInterval('1 hour 30 minutes', at)).toBe(5_400_000);
    expect(parseInterval('90s', at)).toBe(90_000);
    expect(parseInterval('1.5 h', at)).toBe(5_400_000);
    expect(() => parseInterval('seven days', at)).toThrow(QueryError);
    expect(() => parseInterval('7 fortnights', at)).toThrow('"fortnights" is not a unit');
    expect(parseTimestamp('2025-01-31', at)).toBe(Date.UTC(2025, 0, 31));
    expect(parseTimestamp('2025-01-31T12:30:00Z', at)).toBe(Date.UTC(2025, 0, 31, 12, 30));
    expect(parseTimestamp('2025-01-31 12:30', at)).toBe(Date.UTC(2025, 0, 31, 12, 30));
    expect(parseTimestamp('2025-01-31T12:30:00+02:00', at)).toBe(Date.UTC(2025, 0, 31, 10, 30));
    expect(parseTimestamp('2025-01-31T12:30:00.250Z', at)).toBe(Date.UTC(2025, 0, 31, 12, 30, 0, 250));
    expect(() => parseTimestamp('2025-02-30', at)).toThrow('not a valid time');
    expect(() => parseTimestamp('yesterday', at)).toThrow('is not a time');
  });

  it("turns LIKE's pattern into SQLite's GLOB, with GLOB's own characters taken as they are", () => {
    expect(likeToGlob('team/%')).toBe('team/*');
    expect(likeToGlob('a_c')).toBe('a?c');
    expect(likeToGlob('a\\_c\\%')).toBe('a_c%');
    expect(likeToGlob('x*y?[z]')).toBe('x[*]y[?][[]z]');
  });

  it('folds now() - interval into one number, and names unnamed outputs', () => {
    const p = plan("FROM pulls |> WHERE time > now() - interval '7 days' |> AGGREGATE count(), sum(bytes), max(time) - min(time) GROUP BY repository");
    expect(p.plan.where).toContainEqual({
      kind: 'binary',
      op: '>',
      left: { kind: 'column', table: 'usage_events', column: 'at' },
      right: { kind: 'value', value: now - 7 * 86_400_000, type: 'integer' },
    });
    expect(p.columns.map((c) => c.name)).toEqual(['repository', 'count', 'sum_bytes', 'col_3']);
    expect(p.columns.map((c) => c.type)).toEqual(['text', 'integer', 'integer', 'interval']);
  });
});

describe('the query language: the SQL a plan becomes', () => {
  let meta: MetaStore;
  let store: KyselyQueryStore;
  beforeAll(async () => {
    meta = await openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-query-sql-')), 'custody.db'));
    store = meta.query as KyselyQueryStore;
  });
  afterAll(() => meta.close());

  it('keeps the access filter a term of its own, beside the view and the query', () => {
    const { sql, parameters } = store.compile(plan("FROM pulls |> WHERE namespace = 'other' OR 1 = 1", ['team']).plan);
    expect(sql).toMatch(
      /where \("usage_events"\."type" = cast\(\? as text\)\) and \("usage_events"\."namespace" in \(cast\(\? as text\)\)\) and \(\(.* or .*\)\)/,
    );
    expect(parameters.slice(0, 3)).toEqual(['pull', 'team', 'other']);
    // by repository: a range that a namespace's name cannot widen ('0' follows '/')
    const tags = store.compile(plan('FROM tags', ['team']).plan);
    expect(tags.sql).toContain(
      'where ("tags"."repo" = cast(? as text) or ("tags"."repo" >= cast(? as text) and "tags"."repo" < cast(? as text))) and (random()',
    );
    expect(tags.parameters.slice(0, 3)).toEqual(['team', 'team/', 'team0']);
  });

  it("never writes the caller's text into the SQL: names are the catalog's, outputs c0, c1, …, values parameters", () => {
    const text = 'FROM pulls |> EXTEND \'x"; drop table users; --\' AS "evil" |> SELECT repository AS robert_drop_tables, bytes AS evil_alias';
    expect(() => plan(text)).toThrow(QueryError); // quoted names do not exist
    const p = plan("FROM pulls |> EXTEND 'x\"); drop table users; --' AS payload |> SELECT repository AS robert_drop_tables, payload");
    const { sql, parameters } = store.compile(p.plan);
    expect(sql).not.toMatch(/drop|robert|payload/i);
    expect(parameters).toContain('x"); drop table users; --');
    expect(p.columns.map((c) => c.name)).toEqual(['robert_drop_tables', 'payload']);
  });

  it('compiles every table of the catalog to one SELECT that SQLite accepts', async () => {
    for (const t of catalog) {
      const r = await runQuery(meta.query, `FROM ${t.name}`, { access: ['team'] });
      expect(r.columns.map((c) => c.name)).toEqual(t.columns.map((c) => c.name));
    }
  });
});

describe('the query language: docs/insight.md', () => {
  it('lists every table and every column of the catalog, with its type, in the order of the catalog', async () => {
    const doc = await readFile(new URL('../docs/insight.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Query language'), doc.indexOf('### Access', doc.indexOf('## Query language')));
    for (const t of catalog) {
      const heading = section.split('\n').findIndex((line) => line.startsWith('#### ') && line.includes(`\`${t.name}\``));
      expect(heading, t.name).toBeGreaterThan(0);
      expect(section).toContain(`- \`${t.name}\`: ${t.doc}`);
      const rows = section
        .split('\n')
        .slice(heading)
        .filter((line) => line.startsWith('| `'));
      const documented = rows.slice(0, t.columns.length).map((line) => line.split(' | ').slice(0, 2).join(' | '));
      expect(documented, t.name).toEqual(t.columns.map((c) => `| \`${c.name}\` | ${c.type}`));
    }
  });
});
