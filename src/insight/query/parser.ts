/**
 * A recursive-descent parser for the query language (docs/insight.md, "Query language"): pipe
 * syntax (`FROM t |> WHERE … |> AGGREGATE … GROUP BY … |> ORDER BY … |> LIMIT n`) and a plain
 * `SELECT … FROM … WHERE … GROUP BY … HAVING … ORDER BY … LIMIT …`, which may go on with pipes.
 * It only reads: there is no statement but the query, no subquery, no UNION, no second statement.
 * What it refuses it names, with the position of the token where it stopped.
 */
import type { BinaryOperator, Expr, Item, OrderItem, Query, Stage } from './ast.ts';
import { describe, QueryError, tokenize, type Position, type Token } from './lexer.ts';
import { parseInterval, parseTimestamp } from './time.ts';

/** Deeper than this, an expression is refused (a guard for the parser's stack, not a need of real queries). */
export const maxDepth = 64;

const reserved = new Set([
  'select',
  'from',
  'where',
  'group',
  'by',
  'having',
  'order',
  'limit',
  'offset',
  'and',
  'or',
  'not',
  'in',
  'like',
  'is',
  'null',
  'true',
  'false',
  'as',
  'asc',
  'desc',
  'distinct',
  'between',
  'interval',
  'timestamp',
  'aggregate',
  'extend',
  'union',
  'join',
  'case',
  'exists',
]);

const writes = new Set([
  'insert',
  'update',
  'delete',
  'drop',
  'create',
  'alter',
  'truncate',
  'replace',
  'merge',
  'grant',
  'revoke',
  'attach',
  'pragma',
  'vacuum',
  'copy',
]);

export const aggregateNames = new Set(['count', 'sum', 'min', 'max', 'avg']);

class Parser {
  private readonly tokens: Token[];
  private i = 0;
  private depth = 0;

  constructor(text: string) {
    this.tokens = tokenize(text);
  }

  private get t(): Token {
    return this.tokens[this.i] as Token;
  }

  private next(): Token {
    const t = this.t;
    if (t.kind !== 'end') this.i++;
    return t;
  }

  private isWord(...words: string[]): boolean {
    return this.t.kind === 'word' && words.includes(this.t.text);
  }

  private isOp(...ops: string[]): boolean {
    return this.t.kind === 'op' && ops.includes(this.t.text);
  }

  private acceptWord(word: string): boolean {
    if (!this.isWord(word)) return false;
    this.i++;
    return true;
  }

  private acceptOp(op: string): boolean {
    if (!this.isOp(op)) return false;
    this.i++;
    return true;
  }

  private fail(what: string): never {
    throw new QueryError(this.t, `expected ${what}, found ${describe(this.t)}`);
  }

  private expectWord(word: string, what = word.toUpperCase()): void {
    if (!this.acceptWord(word)) this.fail(what);
  }

  private expectOp(op: string): void {
    if (!this.acceptOp(op)) this.fail(`"${op}"`);
  }

  query(): Query {
    const t = this.t;
    if (t.kind === 'word' && writes.has(t.text)) throw new QueryError(t, `queries only read: ${t.text.toUpperCase()} is not part of the language`);
    let query: Query;
    if (this.acceptWord('from')) query = { from: this.tableName(), stages: [] };
    else if (this.isWord('select')) query = this.select();
    else this.fail('FROM or SELECT');
    while (this.acceptOp('|>')) query.stages.push(this.stage());
    this.finish();
    return query;
  }

  private finish(): void {
    const t = this.t;
    if (t.kind === 'end') return;
    if (t.kind === 'op' && t.text === ';') {
      if (this.tokens[this.i + 1]?.kind === 'end') return; // one trailing ';' is harmless
      throw new QueryError(t, 'one query at a time: nothing may follow ";"');
    }
    if (this.isWord('union', 'intersect', 'except')) throw new QueryError(t, `${t.text.toUpperCase()} is not supported: run one query per table`);
    if (this.isWord('join')) throw new QueryError(t, 'JOIN is not supported: each query reads one table');
    this.fail('"|>" or the end of the query');
  }

  private tableName(): { name: string; at: Position } {
    const t = this.t;
    if (t.kind !== 'word' || reserved.has(t.text)) this.fail('a table name');
    if (this.isOp('(')) throw new QueryError(t, 'subqueries are not supported');
    let name = this.next().text;
    // a qualified name (pg_catalog.pg_tables, main.sqlite_master) is read whole, to be refused by name
    while (this.acceptOp('.')) {
      if (this.t.kind !== 'word') this.fail('a name after "."');
      name += `.${this.next().text}`;
    }
    if (this.isOp(',') || this.isWord('join')) throw new QueryError(this.t, 'each query reads one table: there are no joins');
    return { name, at: t };
  }

  private select(): Query {
    const at = this.next(); // SELECT
    const items = this.items();
    this.expectWord('from');
    const from = this.tableName();
    const stages: Stage[] = [];
    if (this.isWord('where')) stages.push({ kind: 'where', at: this.next(), expr: this.expr() });
    let groupBy: Item[] = [];
    if (this.isWord('group')) {
      this.next();
      this.expectWord('by', 'BY after GROUP');
      groupBy = this.items();
    }
    let having: Expr | undefined;
    if (this.acceptWord('having')) having = this.expr();
    const grouped = groupBy.length > 0 || having !== undefined || items.some((item) => item.kind === 'expr' && hasAggregate(item.expr));
    stages.push(grouped ? { kind: 'groupSelect', items, groupBy, ...(having ? { having } : {}), at } : { kind: 'select', items, at });
    if (this.isWord('order')) stages.push(this.orderBy(true));
    if (this.isWord('limit', 'offset')) stages.push(this.limit());
    return { from, stages };
  }

  private stage(): Stage {
    const at = this.t;
    if (this.acceptWord('where')) return { kind: 'where', expr: this.expr(), at };
    if (this.acceptWord('select')) return { kind: 'select', items: this.items(), at };
    if (this.acceptWord('extend')) return { kind: 'extend', items: this.items(), at };
    if (this.acceptWord('aggregate')) {
      const items = this.isWord('group') ? [] : this.items();
      let groupBy: Item[] = [];
      if (this.acceptWord('group')) {
        this.expectWord('by', 'BY after GROUP');
        groupBy = this.items();
      }
      return { kind: 'aggregate', items, groupBy, at };
    }
    if (this.isWord('order')) return this.orderBy(false);
    if (this.isWord('limit', 'offset')) return this.limit();
    if (this.isWord('from')) throw new QueryError(at, 'FROM only starts a query: each query reads one table');
    if (this.isWord('join', 'union')) throw new QueryError(at, `${at.text.toUpperCase()} is not supported: each query reads one table`);
    this.fail('WHERE, SELECT, EXTEND, AGGREGATE, ORDER BY or LIMIT after "|>"');
  }

  private orderBy(alsoInput: boolean): Stage {
    const at = this.next(); // ORDER
    this.expectWord('by', 'BY after ORDER');
    const items: OrderItem[] = [];
    do {
      const expr = this.expr();
      let desc = false;
      if (this.acceptWord('desc')) desc = true;
      else this.acceptWord('asc');
      items.push({ expr, desc });
    } while (this.acceptOp(','));
    return { kind: 'orderBy', items, alsoInput, at };
  }

  private limit(): Stage {
    const at = this.t;
    let limit = Infinity;
    if (this.acceptWord('limit')) limit = this.count('LIMIT');
    const offset = this.acceptWord('offset') ? this.count('OFFSET') : 0;
    return { kind: 'limit', limit, offset, at };
  }

  private count(what: string): number {
    const t = this.t;
    if (t.kind !== 'number' || !/^[0-9]+$/.test(t.text)) this.fail(`a whole number after ${what}`);
    this.next();
    const n = Number(t.text);
    if (!Number.isSafeInteger(n)) throw new QueryError(t, `${what} is too large`);
    return n;
  }

  private items(): Item[] {
    const items: Item[] = [];
    do {
      if (this.isOp('*')) {
        items.push({ kind: 'star', at: this.next() });
        continue;
      }
      const expr = this.expr();
      if (this.acceptWord('as') || (this.t.kind === 'word' && !reserved.has(this.t.text))) {
        const t = this.t;
        if (t.kind !== 'word' || reserved.has(t.text)) this.fail('a name after AS');
        this.next();
        items.push({ kind: 'expr', expr, alias: { name: t.text, at: t } });
      } else items.push({ kind: 'expr', expr });
    } while (this.acceptOp(','));
    return items;
  }

  expr(): Expr {
    if (++this.depth > maxDepth) throw new QueryError(this.t, `the expression nests more than ${maxDepth} deep`);
    try {
      return this.or();
    } finally {
      this.depth--;
    }
  }

  private or(): Expr {
    let left = this.and();
    while (this.isWord('or')) {
      const at = this.next();
      left = { kind: 'binary', op: 'or', left, right: this.and(), at };
    }
    return left;
  }

  private and(): Expr {
    let left = this.not();
    while (this.isWord('and')) {
      const at = this.next();
      left = { kind: 'binary', op: 'and', left, right: this.not(), at };
    }
    return left;
  }

  private not(): Expr {
    if (this.isWord('not')) {
      const at = this.next();
      return { kind: 'unary', op: 'not', arg: this.nested(() => this.not()), at };
    }
    return this.comparison();
  }

  private comparison(): Expr {
    const left = this.concat();
    const at = this.t;
    if (this.isOp('=', '<>', '<', '<=', '>', '>=')) {
      const op = this.next().text as BinaryOperator;
      return { kind: 'binary', op, left, right: this.concat(), at };
    }
    if (this.acceptWord('is')) {
      const negated = this.acceptWord('not');
      this.expectWord('null', 'NULL after IS');
      return { kind: 'isNull', arg: left, negated, at };
    }
    const negated = this.isWord('not') && this.tokens[this.i + 1]?.kind === 'word' && ['in', 'like', 'between'].includes(this.tokens[this.i + 1]?.text ?? '');
    if (negated) this.next();
    if (this.acceptWord('in')) {
      this.expectOp('(');
      if (this.isWord('select', 'from')) throw new QueryError(this.t, 'subqueries are not supported');
      const list: Expr[] = [];
      do list.push(this.expr());
      while (this.acceptOp(','));
      this.expectOp(')');
      return { kind: 'in', arg: left, list, negated, at };
    }
    if (this.acceptWord('like')) return { kind: 'like', arg: left, pattern: this.concat(), negated, at };
    if (this.acceptWord('between')) {
      const low = this.concat();
      this.expectWord('and', 'AND in BETWEEN');
      return { kind: 'between', arg: left, low, high: this.concat(), negated, at };
    }
    return left;
  }

  private concat(): Expr {
    let left = this.additive();
    while (this.isOp('||')) {
      const at = this.next();
      left = { kind: 'binary', op: '||', left, right: this.additive(), at };
    }
    return left;
  }

  private additive(): Expr {
    let left = this.multiplicative();
    while (this.isOp('+', '-')) {
      const at = this.next();
      left = { kind: 'binary', op: at.text as BinaryOperator, left, right: this.multiplicative(), at };
    }
    return left;
  }

  private multiplicative(): Expr {
    let left = this.unary();
    while (this.isOp('*', '/', '%')) {
      const at = this.next();
      left = { kind: 'binary', op: at.text as BinaryOperator, left, right: this.unary(), at };
    }
    return left;
  }

  private unary(): Expr {
    if (this.isOp('-')) {
      const at = this.next();
      return { kind: 'unary', op: '-', arg: this.nested(() => this.unary()), at };
    }
    if (this.acceptOp('+')) return this.nested(() => this.unary());
    return this.primary();
  }

  private nested(parse: () => Expr): Expr {
    if (++this.depth > maxDepth) throw new QueryError(this.t, `the expression nests more than ${maxDepth} deep`);
    try {
      return parse();
    } finally {
      this.depth--;
    }
  }

  private primary(): Expr {
    const t = this.t;
    if (t.kind === 'number') {
      this.next();
      const integer = /^[0-9]+$/.test(t.text);
      const value = Number(t.text);
      if (integer && !Number.isSafeInteger(value)) throw new QueryError(t, `${t.text} is too large for a whole number`);
      if (!Number.isFinite(value)) throw new QueryError(t, `${t.text} is out of range`);
      return { kind: 'number', value, integer, at: t };
    }
    if (t.kind === 'string') {
      this.next();
      return { kind: 'string', value: t.text, at: t };
    }
    if (this.acceptOp('(')) {
      if (this.isWord('select', 'from')) throw new QueryError(this.t, 'subqueries are not supported');
      const inner = this.expr();
      this.expectOp(')');
      return inner;
    }
    if (t.kind !== 'word') this.fail('an expression');
    switch (t.text) {
      case 'true':
      case 'false':
        this.next();
        return { kind: 'bool', value: t.text === 'true', at: t };
      case 'null':
        this.next();
        return { kind: 'null', at: t };
      case 'interval':
      case 'timestamp': {
        this.next();
        const s = this.t;
        if (s.kind !== 'string')
          this.fail(`a quoted ${t.text === 'interval' ? "duration after INTERVAL, like '7 days'" : "time after TIMESTAMP, like '2025-01-31T12:00:00Z'"}`);
        this.next();
        return t.text === 'interval' ? { kind: 'interval', ms: parseInterval(s.text, s), at: t } : { kind: 'timestamp', ms: parseTimestamp(s.text, s), at: t };
      }
      case 'case':
        throw new QueryError(t, 'CASE is not supported');
      case 'exists':
        throw new QueryError(t, 'subqueries are not supported');
    }
    if (reserved.has(t.text)) this.fail('an expression');
    this.next();
    if (this.acceptOp('(')) return this.call(t);
    if (this.isOp('.')) throw new QueryError(t, 'columns are named without their table: each query reads one table');
    return { kind: 'column', name: t.text, at: t };
  }

  private call(name: Token): Expr {
    const call = { kind: 'call' as const, name: name.text, args: [] as Expr[], distinct: false, star: false, at: name as Position };
    if (this.acceptOp(')')) return call;
    if (this.acceptOp('*')) call.star = true;
    else {
      call.distinct = this.acceptWord('distinct');
      do call.args.push(this.expr());
      while (this.acceptOp(','));
    }
    this.expectOp(')');
    return call;
  }
}

export function hasAggregate(e: Expr): boolean {
  switch (e.kind) {
    case 'call':
      return aggregateNames.has(e.name) || e.args.some(hasAggregate);
    case 'unary':
      return hasAggregate(e.arg);
    case 'binary':
      return hasAggregate(e.left) || hasAggregate(e.right);
    case 'in':
      return hasAggregate(e.arg) || e.list.some(hasAggregate);
    case 'like':
      return hasAggregate(e.arg) || hasAggregate(e.pattern);
    case 'isNull':
      return hasAggregate(e.arg);
    case 'between':
      return hasAggregate(e.arg) || hasAggregate(e.low) || hasAggregate(e.high);
    default:
      return false;
  }
}

/** Parses a query; a QueryError says where it went wrong. */
export function parseQuery(text: string): Query {
  return new Parser(text).query();
}
