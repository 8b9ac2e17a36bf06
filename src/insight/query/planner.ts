/**
 * From a parsed query to a plan the metadata store runs (src/meta/query.ts): names are looked up
 * in the catalog (an unknown one is an error at its position), types are checked, times become
 * milliseconds, and the caller's access becomes a WHERE term of the innermost SELECT, beside
 * the view's own filter and apart from everything the query says.
 *
 * Pipe stages fold into one SELECT while SQL allows it: a column a stage names is replaced by the
 * expression behind it, a WHERE after AGGREGATE is a HAVING, LIMITs combine. A stage that cannot
 * fold (a WHERE after a LIMIT, an AGGREGATE after an AGGREGATE) reads the SELECT so far as a
 * subquery.
 */
import type { AggregateFunction, BinaryOp, QueryExpr, QueryOrder, QuerySelect, QuerySource, ScalarFunction } from '../../meta/query.ts';
import type { Expr, Item, Query, Stage } from './ast.ts';
import { catalog, findTable, type CatalogTable, type ColumnType } from './catalog.ts';
import { QueryError, type Position } from './lexer.ts';
import { aggregateNames, hasAggregate } from './parser.ts';
import { parseTimestamp } from './time.ts';

/** Which namespaces the caller may read: every one (registry administrators), or these. */
export type QueryAccess = 'all' | readonly string[];

export interface PlanOptions {
  access: QueryAccess;
  /** ms since the epoch: what now() is */
  now: number;
  /** rows when the query sets no LIMIT */
  defaultRows: number;
  /** the most a LIMIT may ask */
  maxRows: number;
}

export interface PlannedQuery {
  plan: QuerySelect;
  columns: { name: string; type: ColumnType }[];
  /** the rows the caller may get: when the plan returns more (it asks for one more), the answer is truncated */
  rows: number;
  /** whether more rows than `rows` mean truncation (false when the query's own LIMIT decided) */
  capped: boolean;
}

/** The most values an IN list may hold. */
export const maxInList = 1000;
/** Namespaces matched as ranges of repository names; past this many, by their names. */
const rangeNamespaces = 16;

type Type = ColumnType | 'null';

interface Col {
  name: string;
  type: Type;
  expr: QueryExpr;
  /** made with an aggregate */
  aggregate?: boolean;
}

interface Typed {
  expr: QueryExpr;
  type: Type;
  aggregate: boolean;
}

interface Block {
  from: QuerySource;
  where: QueryExpr[];
  grouped: boolean;
  groupBy: QueryExpr[];
  having: QueryExpr[];
  columns: Col[];
  /** the columns before the last projection, which a plain SELECT's ORDER BY may name */
  input: Col[];
  /** the keys of the last grouping, for checking a plain ORDER BY on the input */
  keys?: Keys;
  orderBy: QueryOrder[];
  limit?: number;
  offset: number;
  /** what to call the columns in errors */
  label: string;
}

interface Scope {
  columns: Col[];
  /** a plain SELECT's ORDER BY and HAVING: the columns looked at when `columns` lacks one */
  fallback?: Col[];
  /** what aggregates read, and what a grouping checks against its keys (default: `columns`) */
  input?: Col[];
  label: string;
  aggregates: boolean;
  inAggregate: boolean;
  /** resolving against the input of a grouping: a column must be a key or inside an aggregate */
  keys?: Keys;
}

/** A grouping's keys: each key expression (as the input gives it) and what stands for it in the grouped SELECT. */
type Keys = Map<string, QueryExpr>;

const numeric = (t: Type) => t === 'integer' || t === 'number';
const key = (e: QueryExpr) => JSON.stringify(e);
const int = (value: number): QueryExpr => ({ kind: 'value', value, type: 'integer' });
const describeType = (t: Type) => (t === 'null' ? 'null' : t);

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0] as number;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const here = d[j] as number;
      d[j] = Math.min(here + 1, (d[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = here;
    }
  }
  return d[b.length] as number;
}

/** " (did you mean x?)" when a known name is close. */
function suggest(name: string, known: string[]): string {
  let best: string | undefined;
  let bestDistance = name.length <= 3 ? 1 : 2;
  for (const k of known) {
    const dist = distance(name, k);
    if (dist <= bestDistance && (best === undefined || dist < bestDistance)) {
      best = k;
      bestDistance = dist;
    }
  }
  return best ? ` (did you mean ${best}?)` : '';
}

const scalarFunctions: Record<string, ScalarFunction> = { lower: 'lower', upper: 'upper', length: 'length', abs: 'abs', coalesce: 'coalesce' };
const functionNames = ['now', 'bucket', ...Object.keys(scalarFunctions), ...aggregateNames];

class Planner {
  private readonly options: PlanOptions;

  constructor(options: PlanOptions) {
    this.options = options;
  }

  plan(query: Query): PlannedQuery {
    const table = findTable(query.from.name);
    if (!table)
      throw new QueryError(
        query.from.at,
        `unknown table "${query.from.name}"${suggest(
          query.from.name,
          catalog.map((t) => t.name),
        )}: the tables are ${catalog.map((t) => t.name).join(', ')}`,
      );
    let block = this.base(table);
    for (const stage of query.stages) block = this.stage(block, stage);
    const capped = block.limit === undefined;
    const rows = block.limit ?? this.options.defaultRows;
    if (capped) block.limit = rows + 1;
    return { plan: this.toSelect(block), columns: block.columns.map((c) => ({ name: c.name, type: c.type === 'null' ? 'text' : c.type })), rows, capped };
  }

  private base(table: CatalogTable): Block {
    const columns = table.columns.map((c) => ({ name: c.name, type: c.type, expr: c.expr }));
    return {
      from: table.source,
      where: [...table.filter, this.accessFilter(table)].filter((e): e is QueryExpr => e !== undefined),
      grouped: false,
      groupBy: [],
      having: [],
      columns,
      input: columns,
      orderBy: [],
      offset: 0,
      label: `in ${table.name}`,
    };
  }

  /** The caller's namespaces, as a WHERE term nothing in the query can widen. */
  private accessFilter(table: CatalogTable): QueryExpr | undefined {
    const { access } = this.options;
    if (access === 'all') return undefined;
    if (access.length === 0) return { kind: 'binary', op: '=', left: int(1), right: int(0) };
    const names = access.map((ns): QueryExpr => ({ kind: 'value', value: ns, type: 'text' }));
    if ('column' in table.namespace) return { kind: 'in', arg: table.namespace.column, list: names, negated: false };
    const of: QueryExpr = { kind: 'namespaceOf', arg: table.namespace.repository };
    if (access.length > rangeNamespaces) return { kind: 'in', arg: of, list: names, negated: false };
    return names.map((n): QueryExpr => ({ kind: 'binary', op: '=', left: of, right: n })).reduce((left, right) => ({ kind: 'binary', op: 'or', left, right }));
  }

  private toSelect(b: Block): QuerySelect {
    return {
      from: b.from,
      where: b.where,
      groupBy: b.groupBy,
      having: b.having,
      select: b.columns.map((c) => c.expr),
      orderBy: b.orderBy,
      ...(b.limit !== undefined ? { limit: b.limit } : {}),
      ...(b.offset > 0 ? { offset: b.offset } : {}),
    };
  }

  /** The block so far as the subquery of a new one, its order kept where the outputs carry it. */
  private wrap(b: Block): Block {
    const columns = b.columns.map((c, index): Col => ({ ...c, expr: { kind: 'output', index } }));
    const outputs = new Map(b.columns.map((c, index) => [key(c.expr), index]));
    const orderBy: QueryOrder[] = [];
    for (const o of b.orderBy) {
      const index = outputs.get(key(o.expr));
      if (index === undefined) break;
      orderBy.push({ ...o, expr: { kind: 'output', index } });
    }
    return {
      from: { kind: 'subquery', query: this.toSelect(b) },
      where: [],
      grouped: false,
      groupBy: [],
      having: [],
      columns,
      input: columns,
      orderBy,
      offset: 0,
      label: b.label,
    };
  }

  private scope(b: Block, extra: Partial<Scope> = {}): Scope {
    return { columns: b.columns, label: b.label, aggregates: false, inAggregate: false, ...extra };
  }

  private stage(block: Block, stage: Stage): Block {
    let b = block;
    const limited = b.limit !== undefined || b.offset > 0;
    switch (stage.kind) {
      case 'where': {
        if (limited) b = this.wrap(b);
        const cond = this.boolean(this.resolve(stage.expr, this.scope(b)), stage.expr.at, 'WHERE');
        if (b.grouped) b.having.push(cond);
        else b.where.push(cond);
        return b;
      }
      case 'select':
      case 'extend': {
        const added = this.items(stage.items, this.scope(b), stage.kind === 'select' ? 'SELECT' : 'EXTEND');
        const columns = stage.kind === 'select' ? added : [...b.columns, ...added];
        this.unique(columns, stage.items, stage.kind === 'select' ? 0 : b.columns.length);
        return { ...b, columns, input: b.columns, label: `after ${stage.kind.toUpperCase()}` };
      }
      case 'aggregate': {
        if (b.grouped || limited) b = this.wrap(b);
        for (const item of stage.items)
          if (item.kind === 'star' || !hasAggregate(item.expr))
            throw new QueryError(
              item.kind === 'star' ? item.at : item.expr.at,
              'AGGREGATE takes aggregates (count, sum, min, max, avg): put plain columns in GROUP BY',
            );
        const g = this.grouping(b, (scope) => this.items(stage.groupBy, scope, 'GROUP BY'));
        b = g.block;
        const keys = g.keys;
        const keySet = g.map;
        const aggregates = this.items(stage.items, this.scope(b, { aggregates: true, keys: keySet }), 'AGGREGATE');
        const columns = [...keys, ...aggregates];
        if (columns.length === 0) throw new QueryError(stage.at, 'AGGREGATE needs an aggregate or a GROUP BY');
        this.unique(columns, [...stage.groupBy, ...stage.items], 0);
        return { ...b, grouped: true, groupBy: keys.map((k) => k.expr), columns, input: b.columns, keys: keySet, orderBy: [], label: 'after AGGREGATE' };
      }
      case 'groupSelect': {
        if (b.grouped || limited) b = this.wrap(b);
        const g = this.grouping(b, (scope) => stage.groupBy.map((item) => this.groupKey(item, stage.items, scope)));
        b = g.block;
        const keys = g.keys;
        const keySet = g.map;
        const grouped = this.scope(b, { aggregates: true, keys: keySet });
        const columns = this.items(stage.items, grouped, 'SELECT');
        this.unique(columns, stage.items, 0);
        const having = stage.having ? [this.boolean(this.resolve(stage.having, { ...grouped, fallback: columns }), stage.having.at, 'HAVING')] : [];
        return {
          ...b,
          grouped: true,
          groupBy: keys.map((k) => k.expr),
          having,
          columns,
          input: b.columns,
          keys: keySet,
          orderBy: [],
          label: 'in the SELECT list',
        };
      }
      case 'orderBy': {
        if (limited) b = this.wrap(b);
        const scope: Scope = stage.alsoInput
          ? { ...this.scope(b), fallback: b.input, input: b.input, ...(b.grouped ? { aggregates: true, keys: b.keys ?? new Map<string, QueryExpr>() } : {}) }
          : this.scope(b);
        const orderBy = stage.items.map((o) => {
          const t = this.resolve(o.expr, scope);
          return { expr: t.expr, desc: o.desc, text: t.type === 'text' };
        });
        return { ...b, orderBy };
      }
      case 'limit': {
        if (stage.limit !== Infinity && stage.limit > this.options.maxRows)
          throw new QueryError(stage.at, `LIMIT is at most ${this.options.maxRows} (the most rows one answer holds)`);
        const offset = b.offset + stage.offset;
        const fromLimit = stage.limit === Infinity ? undefined : stage.limit;
        const before = b.limit === undefined ? undefined : Math.max(0, b.limit - stage.offset);
        const limit = before === undefined ? fromLimit : fromLimit === undefined ? before : Math.min(before, fromLimit);
        return { ...b, offset, ...(limit !== undefined ? { limit } : {}) };
      }
    }
  }

  /**
   * The keys of a grouping. A key that is not a plain column (bucket(time, interval '1 hour'),
   * bytes / 1000, an artifact's tag count) is computed by a subquery and grouped by as its
   * output: PostgreSQL would not see `(at / $1) * $2` in the SELECT list as the `(at / $5) * $6`
   * it groups by, each value being its own parameter.
   */
  private grouping(b: Block, resolveKeys: (scope: Scope) => Col[]): { block: Block; keys: Col[]; map: Keys } {
    const keys = resolveKeys(this.scope(b));
    if (keys.every((k) => k.expr.kind === 'column' || k.expr.kind === 'output'))
      return { block: b, keys, map: new Map(keys.map((k) => [key(k.expr), k.expr])) };
    const width = b.columns.length;
    const wrapped = this.wrap({ ...b, columns: [...b.columns, ...keys] });
    const visible = wrapped.columns.slice(0, width);
    const block = { ...wrapped, columns: visible, input: visible };
    const again = resolveKeys(this.scope(block));
    const map: Keys = new Map(again.map((k, i): [string, QueryExpr] => [key(k.expr), { kind: 'output', index: width + i }]));
    return { block, keys: keys.map((k, i) => ({ ...k, expr: { kind: 'output', index: width + i } })), map };
  }

  /** A plain GROUP BY item: an input expression, or the name or position of a SELECT output. */
  private groupKey(item: Item, select: Item[], input: Scope): Col {
    if (item.kind === 'star') throw new QueryError(item.at, 'GROUP BY * is not supported: name the columns');
    const e = item.expr;
    if (e.kind === 'number' && e.integer) {
      const target = select[e.value - 1];
      if (!target || target.kind === 'star') throw new QueryError(e.at, `GROUP BY ${e.value}: there is no such SELECT item`);
      return this.items([target], input, 'GROUP BY')[0] as Col;
    }
    if (e.kind === 'column' && !input.columns.some((c) => c.name === e.name)) {
      const target = select.find((s) => s.kind === 'expr' && s.alias?.name === e.name);
      if (target) return this.items([target], input, 'GROUP BY')[0] as Col;
    }
    return this.items([item], input, 'GROUP BY')[0] as Col;
  }

  private items(items: Item[], scope: Scope, where: string): Col[] {
    const out: Col[] = [];
    items.forEach((item, i) => {
      if (item.kind === 'star') {
        if (scope.keys) throw new QueryError(item.at, `* is not allowed in ${where}: name the columns`);
        out.push(...scope.columns);
        return;
      }
      const t = this.resolve(item.expr, scope);
      out.push({ name: item.alias?.name ?? this.nameOf(item.expr, i), type: t.type, expr: t.expr, aggregate: t.aggregate });
    });
    return out;
  }

  private nameOf(e: Expr, i: number): string {
    if (e.kind === 'column') return e.name;
    if (e.kind === 'call' && aggregateNames.has(e.name)) {
      const arg = e.args[0];
      return arg?.kind === 'column' ? `${e.name}_${arg.name}` : e.name;
    }
    return `col_${i + 1}`;
  }

  private unique(columns: Col[], items: Item[], first: number): void {
    const seen = new Set<string>();
    columns.forEach((c, i) => {
      if (seen.has(c.name)) {
        const item = i >= first ? items[i - first] : undefined;
        const at = item ? (item.kind === 'star' ? item.at : (item.alias?.at ?? item.expr.at)) : { offset: 0, line: 1, column: 1 };
        throw new QueryError(at, `two columns are named "${c.name}": name one with AS`);
      }
      seen.add(c.name);
    });
  }

  private boolean(t: Typed, at: Position, what: string): QueryExpr {
    if (t.type !== 'boolean' && t.type !== 'null') throw new QueryError(at, `${what} needs a condition (true or false), not ${describeType(t.type)}`);
    return t.expr;
  }

  /** An expression's plan and type; in a grouping's scope, checked to use only keys and aggregates. */
  resolve(e: Expr, scope: Scope): Typed {
    if (scope.keys && !scope.inAggregate && e.kind !== 'column') {
      // an expression the grouping has as a key is fine whole (GROUP BY bucket(time, …) then SELECT bucket(time, …))
      const whole = this.tryResolve(e, { ...scope, keys: undefined });
      const stand = whole && scope.keys.get(key(whole.expr));
      if (whole && stand) return { ...whole, expr: stand };
    }
    switch (e.kind) {
      case 'column':
        return this.column(e.name, e.at, scope);
      case 'number':
        return { expr: { kind: 'value', value: e.value, type: e.integer ? 'integer' : 'number' }, type: e.integer ? 'integer' : 'number', aggregate: false };
      case 'string':
        return { expr: { kind: 'value', value: e.value, type: 'text' }, type: 'text', aggregate: false };
      case 'bool':
        return { expr: { kind: 'value', value: e.value, type: 'boolean' }, type: 'boolean', aggregate: false };
      case 'null':
        return { expr: { kind: 'value', value: null, type: 'text' }, type: 'null', aggregate: false };
      case 'interval':
        return { expr: int(e.ms), type: 'interval', aggregate: false };
      case 'timestamp':
        return { expr: int(e.ms), type: 'timestamp', aggregate: false };
      case 'unary': {
        const arg = this.resolve(e.arg, scope);
        if (e.op === 'not') return { expr: { kind: 'not', arg: this.boolean(arg, e.arg.at, 'NOT') }, type: 'boolean', aggregate: arg.aggregate };
        if (!numeric(arg.type) && arg.type !== 'interval' && arg.type !== 'null') throw new QueryError(e.at, `cannot negate ${describeType(arg.type)}`);
        return { expr: { kind: 'negate', arg: arg.expr }, type: arg.type, aggregate: arg.aggregate };
      }
      case 'binary':
        return this.binary(e, scope);
      case 'in': {
        if (e.list.length > maxInList) throw new QueryError(e.at, `IN lists hold at most ${maxInList} values`);
        const arg = this.resolve(e.arg, scope);
        const list = e.list.map((item) => this.comparable(arg, item, scope, 'IN'));
        return {
          expr: { kind: 'in', arg: arg.expr, list: list.map((l) => l.expr), negated: e.negated },
          type: 'boolean',
          aggregate: arg.aggregate || list.some((l) => l.aggregate),
        };
      }
      case 'like': {
        const arg = this.resolve(e.arg, scope);
        if (arg.type !== 'text' && arg.type !== 'null') throw new QueryError(e.at, `LIKE matches text, not ${describeType(arg.type)}`);
        if (e.pattern.kind !== 'string') throw new QueryError(e.pattern.at, "LIKE takes a quoted pattern, like 'team/%'");
        if (/(^|[^\\])(\\\\)*\\$/.test(e.pattern.value)) throw new QueryError(e.pattern.at, 'a LIKE pattern cannot end with a lone "\\"');
        return { expr: { kind: 'like', arg: arg.expr, pattern: e.pattern.value, negated: e.negated }, type: 'boolean', aggregate: arg.aggregate };
      }
      case 'isNull': {
        const arg = this.resolve(e.arg, scope);
        return { expr: { kind: 'isNull', arg: arg.expr, negated: e.negated }, type: 'boolean', aggregate: arg.aggregate };
      }
      case 'between': {
        const arg = this.resolve(e.arg, scope);
        const low = this.comparable(arg, e.low, scope, 'BETWEEN');
        const high = this.comparable(arg, e.high, scope, 'BETWEEN');
        const both: QueryExpr = {
          kind: 'binary',
          op: 'and',
          left: { kind: 'binary', op: '>=', left: arg.expr, right: low.expr },
          right: { kind: 'binary', op: '<=', left: arg.expr, right: high.expr },
        };
        return { expr: e.negated ? { kind: 'not', arg: both } : both, type: 'boolean', aggregate: arg.aggregate || low.aggregate || high.aggregate };
      }
      case 'call':
        return this.call(e, scope);
    }
  }

  private tryResolve(e: Expr, scope: Scope): Typed | undefined {
    try {
      return this.resolve(e, scope);
    } catch (err) {
      if (err instanceof QueryError) return undefined;
      throw err;
    }
  }

  private column(name: string, at: Position, scope: Scope): Typed {
    const c = scope.columns.find((x) => x.name === name) ?? scope.fallback?.find((x) => x.name === name);
    if (!c) {
      const known = [...scope.columns, ...(scope.fallback ?? [])].map((x) => x.name);
      const hint = suggest(name, known);
      throw new QueryError(at, `unknown column "${name}" ${scope.label}${hint || `: the columns are ${[...new Set(known)].join(', ')}`}`);
    }
    if (scope.keys && !scope.inAggregate && (scope.input ?? scope.columns).includes(c)) {
      const stand = scope.keys.get(key(c.expr));
      if (!stand) throw new QueryError(at, `"${name}" must be in GROUP BY or inside an aggregate (count, sum, min, max, avg)`);
      return { expr: stand, type: c.type, aggregate: false };
    }
    return { expr: c.expr, type: c.type, aggregate: false };
  }

  /** `item` compared with `arg`: a quoted time beside a time is read as one. */
  private comparable(arg: Typed, item: Expr, scope: Scope, what: string): Typed {
    if (arg.type === 'timestamp' && item.kind === 'string') return { expr: int(parseTimestamp(item.value, item.at)), type: 'timestamp', aggregate: false };
    const t = this.resolve(item, scope);
    if (t.type === 'timestamp' && arg.type === 'text' && item.kind !== 'string') return t;
    if (!(t.type === arg.type || (numeric(t.type) && numeric(arg.type)) || t.type === 'null' || arg.type === 'null'))
      throw new QueryError(item.at, `${what} compares ${describeType(arg.type)} with ${describeType(t.type)}`);
    return t;
  }

  private binary(e: Extract<Expr, { kind: 'binary' }>, scope: Scope): Typed {
    if (e.op === 'and' || e.op === 'or') {
      const l = this.resolve(e.left, scope);
      const r = this.resolve(e.right, scope);
      const what = e.op.toUpperCase();
      return {
        expr: { kind: 'binary', op: e.op, left: this.boolean(l, e.left.at, what), right: this.boolean(r, e.right.at, what) },
        type: 'boolean',
        aggregate: l.aggregate || r.aggregate,
      };
    }
    if (['=', '<>', '<', '<=', '>', '>='].includes(e.op)) {
      if (e.left.kind === 'null' || e.right.kind === 'null') throw new QueryError(e.at, `nothing is ${e.op} NULL: use IS NULL or IS NOT NULL`);
      // a quoted time on either side of a time
      let l: Typed;
      let r: Typed;
      if (e.left.kind === 'string') {
        r = this.resolve(e.right, scope);
        l = this.comparable(r, e.left, scope, e.op);
      } else {
        l = this.resolve(e.left, scope);
        r = this.comparable(l, e.right, scope, e.op);
      }
      return { expr: { kind: 'binary', op: e.op as BinaryOp, left: l.expr, right: r.expr }, type: 'boolean', aggregate: l.aggregate || r.aggregate };
    }
    const l = this.resolve(e.left, scope);
    const r = this.resolve(e.right, scope);
    const type = this.arithmetic(e.op, l.type, r.type, e.at);
    // now() - interval '7 days' is one number by the time it reaches SQL (an index range bound)
    if (
      l.expr.kind === 'value' &&
      r.expr.kind === 'value' &&
      typeof l.expr.value === 'number' &&
      typeof r.expr.value === 'number' &&
      ['+', '-', '*'].includes(e.op)
    ) {
      const value = e.op === '+' ? l.expr.value + r.expr.value : e.op === '-' ? l.expr.value - r.expr.value : l.expr.value * r.expr.value;
      if (Number.isSafeInteger(value) || type === 'number')
        return { expr: { kind: 'value', value, type: type === 'number' ? 'number' : 'integer' }, type, aggregate: false };
    }
    return { expr: { kind: 'binary', op: e.op as BinaryOp, left: l.expr, right: r.expr }, type, aggregate: l.aggregate || r.aggregate };
  }

  private arithmetic(op: string, l: Type, r: Type, at: Position): Type {
    if (l === 'null') return r;
    if (r === 'null') return l;
    if (op === '||') {
      if (l === 'text' && r === 'text') return 'text';
    } else if (numeric(l) && numeric(r)) {
      if (op === '%' && (l !== 'integer' || r !== 'integer')) throw new QueryError(at, '% takes whole numbers');
      return l === 'integer' && r === 'integer' ? 'integer' : 'number';
    } else if (op === '+' && ((l === 'timestamp' && r === 'interval') || (l === 'interval' && r === 'timestamp'))) return 'timestamp';
    else if (op === '-' && l === 'timestamp' && r === 'interval') return 'timestamp';
    else if (op === '-' && l === 'timestamp' && r === 'timestamp') return 'interval';
    else if ((op === '+' || op === '-') && l === 'interval' && r === 'interval') return 'interval';
    else if ((op === '*' && ((l === 'interval' && numeric(r)) || (numeric(l) && r === 'interval'))) || (op === '/' && l === 'interval' && numeric(r)))
      return 'interval';
    throw new QueryError(at, `cannot apply ${op} to ${describeType(l)} and ${describeType(r)}`);
  }

  private call(e: Extract<Expr, { kind: 'call' }>, scope: Scope): Typed {
    const arity = (n: number) => {
      if (e.args.length !== n) throw new QueryError(e.at, `${e.name}() takes ${n === 0 ? 'no arguments' : n === 1 ? 'one argument' : `${n} arguments`}`);
    };
    if ((e.star || e.distinct) && !aggregateNames.has(e.name)) throw new QueryError(e.at, `${e.star ? '*' : 'DISTINCT'} belongs in count(), not ${e.name}()`);
    if (aggregateNames.has(e.name)) return this.aggregate(e, scope);
    switch (e.name) {
      case 'now':
        arity(0);
        return { expr: int(this.options.now), type: 'timestamp', aggregate: false };
      case 'bucket': {
        arity(2);
        const arg = this.resolve(e.args[0] as Expr, scope);
        const size = e.args[1] as Expr;
        if (arg.type !== 'timestamp') throw new QueryError(e.at, 'bucket() takes a time and an interval');
        if (size.kind !== 'interval' || size.ms <= 0)
          throw new QueryError(size.at, "bucket() takes a fixed interval as its second argument, like interval '1 hour'");
        return { expr: { kind: 'bucket', arg: arg.expr, size: size.ms }, type: 'timestamp', aggregate: arg.aggregate };
      }
      case 'lower':
      case 'upper':
      case 'length': {
        arity(1);
        const arg = this.resolve(e.args[0] as Expr, scope);
        if (arg.type !== 'text' && arg.type !== 'null') throw new QueryError(e.at, `${e.name}() takes text, not ${describeType(arg.type)}`);
        return {
          expr: { kind: 'call', fn: scalarFunctions[e.name] as ScalarFunction, args: [arg.expr] },
          type: e.name === 'length' ? 'integer' : 'text',
          aggregate: arg.aggregate,
        };
      }
      case 'abs': {
        arity(1);
        const arg = this.resolve(e.args[0] as Expr, scope);
        if (!numeric(arg.type) && arg.type !== 'interval') throw new QueryError(e.at, `abs() takes a number, not ${describeType(arg.type)}`);
        return { expr: { kind: 'call', fn: 'abs', args: [arg.expr] }, type: arg.type, aggregate: arg.aggregate };
      }
      case 'coalesce': {
        if (e.args.length === 0) throw new QueryError(e.at, 'coalesce() takes at least one argument');
        const first = this.resolve(e.args[0] as Expr, scope);
        const rest = e.args.slice(1).map((a) => this.comparable(first, a, scope, 'coalesce()'));
        const all = [first, ...rest];
        const type = all.find((a) => a.type !== 'null')?.type ?? 'null';
        return { expr: { kind: 'call', fn: 'coalesce', args: all.map((a) => a.expr) }, type, aggregate: all.some((a) => a.aggregate) };
      }
    }
    throw new QueryError(e.at, `unknown function ${e.name}()${suggest(e.name, functionNames)}`);
  }

  private aggregate(e: Extract<Expr, { kind: 'call' }>, scope: Scope): Typed {
    const fn = e.name as AggregateFunction;
    if (!scope.aggregates) throw new QueryError(e.at, `${fn}() is an aggregate: use it in AGGREGATE (or a SELECT with GROUP BY), not here`);
    if (scope.inAggregate) throw new QueryError(e.at, 'aggregates cannot nest');
    if (e.star && fn !== 'count') throw new QueryError(e.at, `${fn}(*) is not a thing: name a column`);
    if (fn === 'count' && (e.star || e.args.length === 0)) {
      if (e.distinct) throw new QueryError(e.at, 'count(distinct …) needs a column');
      return { expr: { kind: 'aggregate', fn, distinct: false }, type: 'integer', aggregate: true };
    }
    if (e.args.length !== 1) throw new QueryError(e.at, `${fn}() takes one argument`);
    const arg = this.resolve(e.args[0] as Expr, { columns: scope.input ?? scope.columns, label: scope.label, aggregates: true, inAggregate: true });
    const base = { kind: 'aggregate' as const, fn, arg: arg.expr, distinct: e.distinct };
    switch (fn) {
      case 'count':
        return { expr: base, type: 'integer', aggregate: true };
      case 'sum':
      case 'avg':
        if (!numeric(arg.type) && arg.type !== 'interval') throw new QueryError(e.at, `${fn}() adds numbers, not ${describeType(arg.type)}`);
        if (fn === 'avg') return { expr: base, type: 'number', aggregate: true };
        return { expr: { ...base, ...(arg.type === 'number' ? { float: true } : {}) }, type: arg.type, aggregate: true };
      case 'min':
      case 'max':
        if (arg.type === 'boolean') throw new QueryError(e.at, `${fn}() of true and false is not supported: count them instead`);
        return { expr: { ...base, ...(arg.type === 'text' ? { text: true } : {}) }, type: arg.type, aggregate: true };
    }
  }
}

/** Plans a parsed query for a caller; a QueryError says what is wrong and where. */
export function planQuery(query: Query, options: PlanOptions): PlannedQuery {
  return new Planner(options).plan(query);
}
