/**
 * The QueryStore on Kysely: a plan (src/meta/query.ts) becomes one SELECT built with Kysely's
 * query builder, the same compiler for both engines. Identifiers come only from the plan's closed
 * list of tables and columns (checked again here) and from names made here (c0, c1, … for outputs,
 * q0, q1, … for subqueries); every value is a parameter, cast to its type so that both engines
 * read it alike. Where the engines differ the compiler says so: LIKE (GLOB on SQLite, whose LIKE
 * ignores case), NULLs' place in an ordering, a repository's namespace, SBOM components (json_each,
 * jsonb_array_elements) and how a time limit is kept.
 *
 * Read-only and limited in time:
 * - PostgreSQL: a READ ONLY transaction with `statement_timeout` set for it (set_config(…, true)).
 * - SQLite (synchronous, on the caller's thread): `PRAGMA query_only` while it runs, and a check
 *   of the deadline in the scan's WHERE, about every thousandth row (custody_query_deadline,
 *   sqlite-dialect.ts): past it, the function throws and SQLite abandons the statement.
 */
import { sql, SelectQueryNode, type Expression, type Kysely, type RawBuilder, type SelectQueryBuilder, type SqlBool } from 'kysely';
import {
  QueryDataError,
  queryableColumns,
  QueryTimeoutError,
  type BinaryOp,
  type QueryExpr,
  type QueryLimits,
  type QuerySelect,
  type QueryStore,
  type QueryTable,
  type QueryValue,
} from '../query.ts';
import type { Engine } from './migrations.ts';
import type { Database } from './schema.ts';
import { DeadlinePassed } from './sqlite-dialect.ts';

// The builder sees the tables by name only: which table and column is allowed is the plan's closed list.
type AnyTables = Record<string, Record<string, unknown>>;
type Builder = SelectQueryBuilder<AnyTables, string, Record<string, unknown>>;
type Raw = RawBuilder<unknown>;

const binary: Record<BinaryOp, (l: Raw, r: Raw) => Raw> = {
  '=': (l, r) => sql`(${l} = ${r})`,
  '<>': (l, r) => sql`(${l} <> ${r})`,
  '<': (l, r) => sql`(${l} < ${r})`,
  '<=': (l, r) => sql`(${l} <= ${r})`,
  '>': (l, r) => sql`(${l} > ${r})`,
  '>=': (l, r) => sql`(${l} >= ${r})`,
  and: (l, r) => sql`(${l} and ${r})`,
  or: (l, r) => sql`(${l} or ${r})`,
  '+': (l, r) => sql`(${l} + ${r})`,
  '-': (l, r) => sql`(${l} - ${r})`,
  '*': (l, r) => sql`(${l} * ${r})`,
  // null for a zero divisor on both engines (PostgreSQL would fail the query)
  '/': (l, r) => sql`(${l} / nullif(${r}, 0))`,
  '%': (l, r) => sql`(${l} % nullif(${r}, 0))`,
  '||': (l, r) => sql`(${l} || ${r})`,
};

/** The plan's LIKE pattern (`%`, `_`, `\` escapes) as a GLOB pattern, which SQLite matches case-sensitively. */
export function likeToGlob(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    let c = pattern[i] as string;
    if (c === '\\' && i + 1 < pattern.length) {
      c = pattern[++i] as string;
      out += c === '*' || c === '?' || c === '[' ? `[${c}]` : c;
    } else if (c === '%') out += '*';
    else if (c === '_') out += '?';
    else out += c === '*' || c === '?' || c === '[' ? `[${c}]` : c;
  }
  return out;
}

function checkColumn(table: QueryTable, column: string): void {
  if (!Object.hasOwn(queryableColumns, table) || !(queryableColumns[table] as readonly string[]).includes(column))
    throw new Error(`query plan: ${table}.${column} is not queryable`);
}

class PlanCompiler {
  private readonly db: Kysely<AnyTables>;
  private readonly engine: Engine;
  private readonly deadline: number;
  private lookups = 0;

  constructor(db: Kysely<AnyTables>, engine: Engine, deadline: number) {
    this.db = db;
    this.engine = engine;
    this.deadline = deadline;
  }

  /** A block; `depth` names its subquery source q<depth>. */
  block(q: QuerySelect, depth: number): Builder {
    const alias = `q${depth}`;
    let b: Builder;
    if (q.from.kind === 'subquery') b = this.db.selectFrom(this.block(q.from.query, depth + 1).as(alias));
    else if (q.from.kind === 'components') {
      const list = sql.ref('trust_sboms.components');
      const elements = this.engine === 'sqlite' ? sql`json_each(${list})` : sql`jsonb_array_elements(cast(${list} as jsonb))`;
      b = this.db.selectFrom(['trust_sboms', elements.as('comp')]);
    } else {
      checkColumn(q.from.table, queryableColumns[q.from.table][0]);
      b = this.db.selectFrom(q.from.table);
    }
    const e = (x: QueryExpr) => this.expr(x, alias);
    const where = q.where.map(e);
    // SQLite cannot be interrupted from another thread here: the scan itself looks at the clock
    if (this.engine === 'sqlite' && q.from.kind !== 'subquery') where.push(sql`(random() % 1024 <> 0 or custody_query_deadline(${this.deadline}))`);
    if (where.length > 0) b = b.where(sql<SqlBool>`${sql.join(where, sql` and `)}`);
    if (q.groupBy.length > 0) b = b.groupBy(q.groupBy.map(e));
    if (q.having.length > 0) b = b.having(sql<SqlBool>`${sql.join(q.having.map(e), sql` and `)}`);
    b = b.select(q.select.map((x, i) => e(x).as(`c${i}`)));
    for (const o of q.orderBy) {
      let key: Expression<unknown> = e(o.expr);
      if (o.text && this.engine === 'postgres') key = sql`${key} collate "C"`;
      // NULLs sort first ascending, last descending, on both engines (SQLite's default)
      b = b.orderBy(key, (ob) => (o.desc ? ob.desc().nullsLast() : ob.asc().nullsFirst()));
    }
    if (q.limit !== undefined) b = b.limit(q.limit);
    if (q.offset !== undefined && q.offset > 0) {
      if (q.limit === undefined) b = b.limit(this.engine === 'sqlite' ? -1 : null);
      b = b.offset(q.offset);
    }
    return b;
  }

  expr(x: QueryExpr, alias: string): Raw {
    const e = (y: QueryExpr) => this.expr(y, alias);
    switch (x.kind) {
      case 'column':
        checkColumn(x.table, x.column);
        return sql`${sql.ref(`${x.table}.${x.column}`)}`;
      case 'output':
        return sql`${sql.ref(`${alias}.c${x.index}`)}`;
      case 'value':
        return this.value(x.value, x.type);
      case 'not':
        return sql`(not ${e(x.arg)})`;
      case 'negate':
        return sql`(- ${e(x.arg)})`;
      case 'isNull':
        return x.negated ? sql`(${e(x.arg)} is not null)` : sql`(${e(x.arg)} is null)`;
      case 'binary': {
        const range = this.namespaceRange(x);
        return range ?? binary[x.op](e(x.left), e(x.right));
      }
      case 'in': {
        const list = sql.join(x.list.map(e));
        return x.negated ? sql`(${e(x.arg)} not in (${list}))` : sql`(${e(x.arg)} in (${list}))`;
      }
      case 'like': {
        const arg = e(x.arg);
        if (this.engine === 'sqlite') {
          const glob = this.value(likeToGlob(x.pattern), 'text');
          return x.negated ? sql`(${arg} not glob ${glob})` : sql`(${arg} glob ${glob})`;
        }
        const pattern = this.value(x.pattern, 'text');
        return x.negated ? sql`(${arg} not like ${pattern})` : sql`(${arg} like ${pattern})`;
      }
      case 'call': {
        const [a = sql`null`] = x.args.map(e);
        switch (x.fn) {
          case 'lower':
            return sql`lower(${a})`;
          case 'upper':
            return sql`upper(${a})`;
          case 'length':
            return sql`length(${a})`;
          case 'abs':
            return sql`abs(${a})`;
          case 'coalesce':
            return sql`coalesce(${sql.join(x.args.map(e))})`;
        }
        throw new Error('query plan: unknown function');
      }
      case 'aggregate':
        return this.aggregate(x, e);
      case 'bucket': {
        const size = this.value(x.size, 'integer');
        return sql`((${e(x.arg)} / ${size}) * ${size})`;
      }
      case 'namespaceOf': {
        const a = e(x.arg);
        return this.engine === 'postgres'
          ? sql`split_part(${a}, '/', 1)`
          : sql`(case when instr(${a}, '/') > 0 then substr(${a}, 1, instr(${a}, '/') - 1) else ${a} end)`;
      }
      case 'componentField': {
        const value = sql.ref('comp.value');
        return this.engine === 'sqlite' ? sql`json_extract(${value}, ${this.value(`$.${x.key}`, 'text')})` : sql`(${value} ->> ${this.value(x.key, 'text')})`;
      }
      case 'componentLicenses':
        return this.engine === 'sqlite'
          ? sql`coalesce((select group_concat(l.value, ', ') from json_each(${sql.ref('comp.value')}, '$.licenses') as l), '')`
          : sql`coalesce((select string_agg(l.value, ', ' order by l.ord) from jsonb_array_elements_text(${sql.ref('comp.value')} -> 'licenses') with ordinality as l(value, ord)), '')`;
      case 'lookup':
        return this.lookup(x, e);
    }
  }

  private value(v: QueryValue, type: 'text' | 'integer' | 'number' | 'boolean'): Raw {
    if (v === null) return sql`null`;
    switch (type) {
      case 'text':
        return sql`cast(${String(v)} as text)`;
      case 'integer':
        return sql`cast(${Math.trunc(Number(v))} as bigint)`;
      case 'number':
        return sql`cast(${Number(v)} as double precision)`;
      case 'boolean':
        return sql`cast(${v === true} as boolean)`;
    }
  }

  private aggregate(x: Extract<QueryExpr, { kind: 'aggregate' }>, e: (y: QueryExpr) => Raw): Raw {
    if (x.fn === 'count' && x.arg === undefined) return sql`count(*)`;
    let arg = x.arg ? e(x.arg) : sql`null`;
    if (x.text && this.engine === 'postgres') arg = sql`${arg} collate "C"`;
    const a = x.distinct ? sql`distinct ${arg}` : arg;
    switch (x.fn) {
      case 'count':
        return sql`count(${a})`;
      // PostgreSQL sums whole numbers as numeric and averages as numeric (pg reads both as
      // strings): cast back, so both engines answer a number
      case 'sum':
        return x.float ? sql`cast(sum(${a}) as double precision)` : sql`cast(sum(${a}) as bigint)`;
      case 'avg':
        return sql`cast(avg(${a}) as double precision)`;
      case 'min':
        return sql`min(${a})`;
      case 'max':
        return sql`max(${a})`;
    }
  }

  private lookup(x: Extract<QueryExpr, { kind: 'lookup' }>, e: (y: QueryExpr) => Raw): Raw {
    const alias = `lookup${this.lookups++}`;
    if (x.value !== 'count') checkColumn(x.table, x.value);
    const conditions = x.match.map(([column, outer]) => {
      checkColumn(x.table, column);
      return sql`${sql.ref(`${alias}.${column}`)} = ${e(outer)}`;
    });
    const value = x.value === 'count' ? sql`count(*)` : sql.ref(`${alias}.${x.value}`);
    return sql`(select ${value} from ${sql.table(x.table)} as ${sql.id(alias)} where ${sql.join(conditions, sql` and `)})`;
  }

  /** `namespace = 'x'` over a repository column: a range the repository index can serve. */
  private namespaceRange(x: Extract<QueryExpr, { kind: 'binary' }>): Raw | undefined {
    if (x.op !== '=' || x.left.kind !== 'namespaceOf' || x.left.arg.kind !== 'column' || x.right.kind !== 'value' || typeof x.right.value !== 'string')
      return undefined;
    checkColumn(x.left.arg.table, x.left.arg.column);
    const c = sql.ref(`${x.left.arg.table}.${x.left.arg.column}`);
    const ns = x.right.value;
    // '0' follows '/': every name below `<ns>/`, and none of another namespace that starts alike
    return sql`(${c} = ${this.value(ns, 'text')} or (${c} >= ${this.value(`${ns}/`, 'text')} and ${c} < ${this.value(`${ns}0`, 'text')}))`;
  }
}

function isPgError(err: unknown): err is { code: string; message: string } {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' && 'severity' in err;
}

export class KyselyQueryStore implements QueryStore {
  private readonly db: Kysely<Database>;
  private readonly engine: Engine;

  constructor(db: Kysely<Database>, engine: Engine) {
    this.db = db;
    this.engine = engine;
  }

  /** The SQL and parameters a plan compiles to (for tests and the docs' examples). */
  compile(plan: QuerySelect, deadline = 0): { sql: string; parameters: readonly unknown[] } {
    const compiled = new PlanCompiler(this.db as unknown as Kysely<AnyTables>, this.engine, deadline).block(plan, 0).compile();
    // the only statement this store runs for a plan: one SELECT
    if (!SelectQueryNode.is(compiled.query)) throw new Error('query plan: not a SELECT');
    return compiled;
  }

  async run(plan: QuerySelect, limits: QueryLimits): Promise<QueryValue[][]> {
    const compiled = new PlanCompiler(this.db as unknown as Kysely<AnyTables>, this.engine, Date.now() + limits.timeoutMs).block(plan, 0).compile();
    if (!SelectQueryNode.is(compiled.query)) throw new Error('query plan: not a SELECT');
    const width = plan.select.length;
    const rows = await this.execute(compiled, limits).catch((err: unknown) => {
      if (err instanceof DeadlinePassed || (isPgError(err) && err.code === '57014')) throw new QueryTimeoutError(limits.timeoutMs);
      // a data exception (an overflowing sum, say): the query's fault, not the server's
      if (isPgError(err) && err.code.startsWith('22')) throw new QueryDataError(err.message);
      if (err instanceof Error && /integer overflow|too big|too large/i.test(err.message)) throw new QueryDataError(err.message);
      throw err;
    });
    return rows.map((r) => Array.from({ length: width }, (_, i) => r[`c${i}`] as QueryValue));
  }

  private async execute(compiled: Parameters<Kysely<Database>['executeQuery']>[0], limits: QueryLimits): Promise<Record<string, unknown>[]> {
    if (this.engine === 'postgres')
      return this.db
        .transaction()
        .setAccessMode('read only')
        .execute(async (tx) => {
          await sql`select set_config('statement_timeout', ${String(limits.timeoutMs)}, true)`.execute(tx);
          return (await tx.executeQuery<Record<string, unknown>>(compiled)).rows;
        });
    // SQLite has one connection: held for the query, read-only meanwhile
    return this.db.connection().execute(async (c) => {
      await sql`pragma query_only = 1`.execute(c);
      try {
        return (await c.executeQuery<Record<string, unknown>>(compiled)).rows;
      } finally {
        await sql`pragma query_only = 0`.execute(c);
      }
    });
  }
}
