/**
 * The query language (docs/insight.md, "Query language"): text in, columns and rows out. Parsed
 * here (parser.ts), planned against the catalog with the caller's access (planner.ts), run by
 * the metadata store read-only and within a time limit (src/meta/query.ts).
 */
import type { QueryStore, QueryValue } from '../../meta/query.ts';
import type { ColumnType } from './catalog.ts';
import { QueryError } from './lexer.ts';
import { parseQuery } from './parser.ts';
import { planQuery, type QueryAccess } from './planner.ts';

export { QueryError } from './lexer.ts';
export type { QueryAccess } from './planner.ts';
export { QueryDataError, QueryTimeoutError } from '../../meta/query.ts';

export interface QueryLimits {
  /** the longest query text, in characters */
  maxLength: number;
  /** rows when the query sets no LIMIT */
  defaultRows: number;
  /** the most rows a LIMIT may ask for */
  maxRows: number;
  /** how long a query may run */
  timeoutMs: number;
}

export const defaultQueryLimits: QueryLimits = { maxLength: 10_000, defaultRows: 1000, maxRows: 10_000, timeoutMs: 5000 };

export type Cell = string | number | boolean | null;

export interface QueryResult {
  columns: { name: string; type: ColumnType }[];
  rows: Cell[][];
  /** more rows matched than were returned, and the query set no LIMIT of its own */
  truncated: boolean;
}

/** A stored value as the answer shows it: times as ISO 8601, true and false for SQLite's 1 and 0. */
function cell(value: QueryValue, type: ColumnType): Cell {
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'timestamp': {
      const ms = Number(value);
      return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : null;
    }
    case 'boolean':
      return value === true || value === 1 || value === '1' || value === 't';
    case 'integer':
    case 'number':
    case 'interval':
      return typeof value === 'number' ? value : Number(value);
    case 'text':
      return typeof value === 'string' ? value : String(value);
  }
}

export interface RunOptions {
  access: QueryAccess;
  limits?: Partial<QueryLimits>;
  /** ms since the epoch, for now() (tests fix it) */
  now?: number;
}

/** Runs a query for a caller; throws QueryError (with the position), QueryTimeoutError or QueryDataError for the query's faults. */
export async function runQuery(store: QueryStore, text: string, options: RunOptions): Promise<QueryResult> {
  const limits = { ...defaultQueryLimits, ...options.limits };
  if (text.length > limits.maxLength) {
    const before = text.slice(0, limits.maxLength);
    const line = before.split('\n').length;
    throw new QueryError(
      { offset: limits.maxLength, line, column: limits.maxLength - before.lastIndexOf('\n') },
      `the query is ${text.length} characters long: at most ${limits.maxLength}`,
    );
  }
  if (text.trim() === '') throw new QueryError({ offset: 0, line: 1, column: 1 }, 'the query is empty: start with FROM or SELECT');
  const planned = planQuery(parseQuery(text), {
    access: options.access,
    now: options.now ?? Date.now(),
    defaultRows: limits.defaultRows,
    maxRows: limits.maxRows,
  });
  const raw = await store.run(planned.plan, { timeoutMs: limits.timeoutMs });
  const truncated = planned.capped && raw.length > planned.rows;
  const rows = (truncated ? raw.slice(0, planned.rows) : raw).map((r) => planned.columns.map((c, i) => cell(r[i] ?? null, c.type)));
  return { columns: planned.columns, rows, truncated };
}
