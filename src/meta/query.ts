/**
 * Read-only queries over the metadata store, for the query language (src/insight/query/). The
 * language is parsed, checked against its catalog and planned up there; what comes down here is
 * a plan: a SELECT described as data, over a fixed set of tables and columns, with every value a
 * parameter. The store compiles the plan to its engine's SQL (src/meta/kysely/query.ts) and runs
 * it read-only, within a time limit. Nothing a caller writes is ever passed to SQL as text.
 *
 * A plan names physical tables and columns: the closed list below is all it can reach, and the
 * store refuses anything else, whatever the planner above it does.
 */

/** The tables and columns a plan may read (manifests' content and every account table are not among them). */
export const queryableColumns = {
  usage_events: [
    'id',
    'at',
    'type',
    'object',
    'namespace',
    'repository',
    'digest',
    'tag',
    'media_type',
    'actor',
    'actor_kind',
    'token_id',
    'bytes',
    'user_agent',
    'source',
    'duration_micros',
    'status',
    'result',
    'detail',
  ],
  usage_rollups: ['period', 'start', 'namespace', 'repository', 'type', 'object', 'count', 'bytes'],
  manifests: ['repo', 'digest', 'media_type', 'size', 'artifact_type', 'subject', 'created_at'],
  tags: ['repo', 'name', 'digest', 'updated_at'],
  artifact_pulls: ['repo', 'digest', 'last_pulled_at', 'pull_count'],
  trust_artifacts: ['repo', 'digest', 'subject', 'kind', 'format', 'via', 'status', 'verified', 'signer', 'code', 'reason', 'checked_at', 'created_at'],
  trust_sboms: ['repo', 'digest', 'format', 'spec_version', 'name'],
  policy_decisions: [
    'id',
    'at',
    'policy',
    'version',
    'mode',
    'action',
    'repository',
    'reference',
    'result',
    'message',
    'latency_micros',
    'actor',
    'source',
    'enforced',
  ],
} as const;

export type QueryTable = keyof typeof queryableColumns;
export type QueryColumn<T extends QueryTable = QueryTable> = T extends QueryTable ? (typeof queryableColumns)[T][number] : never;

/** A parameter's type: each value is sent as a parameter cast to it, so both engines read it alike. */
export type ParamType = 'text' | 'integer' | 'number' | 'boolean';
export type QueryValue = string | number | boolean | null;

export type BinaryOp = '=' | '<>' | '<' | '<=' | '>' | '>=' | 'and' | 'or' | '+' | '-' | '*' | '/' | '%' | '||';
export type ScalarFunction = 'lower' | 'upper' | 'length' | 'abs' | 'coalesce';
export type AggregateFunction = 'count' | 'sum' | 'min' | 'max' | 'avg';

export type QueryExpr =
  /** a column of a table of the source (the table itself, or a component's SBOM) */
  | { kind: 'column'; table: QueryTable; column: string }
  /** the n-th output of the subquery the block reads from */
  | { kind: 'output'; index: number }
  | { kind: 'value'; value: QueryValue; type: ParamType }
  | { kind: 'not'; arg: QueryExpr }
  | { kind: 'negate'; arg: QueryExpr }
  | { kind: 'isNull'; arg: QueryExpr; negated: boolean }
  | { kind: 'binary'; op: BinaryOp; left: QueryExpr; right: QueryExpr }
  | { kind: 'in'; arg: QueryExpr; list: QueryExpr[]; negated: boolean }
  /** `%` any run of characters, `_` any one, `\` takes the next one as it is; case-sensitive on both engines */
  | { kind: 'like'; arg: QueryExpr; pattern: string; negated: boolean }
  | { kind: 'call'; fn: ScalarFunction; args: QueryExpr[] }
  /**
   * sum is read back as a whole number (a float with `float`), avg as a float, on both engines;
   * `text`: min and max compare byte by byte
   */
  | { kind: 'aggregate'; fn: AggregateFunction; arg?: QueryExpr; distinct: boolean; float?: boolean; text?: boolean }
  /** whole-number division that yields null, not an error, for a zero divisor; times: floor(arg / size) * size */
  | { kind: 'bucket'; arg: QueryExpr; size: number }
  /** the namespace of a repository name: its first path segment */
  | { kind: 'namespaceOf'; arg: QueryExpr }
  /** a text field of the SBOM component a 'components' source is at */
  | { kind: 'componentField'; key: 'name' | 'version' | 'purl' | 'type' }
  /** the component's licenses, joined with ', ' ('' when none) */
  | { kind: 'componentLicenses' }
  /** a correlated lookup the catalog defines: one column's value (or 'count': how many) of the rows of `table` matching */
  | { kind: 'lookup'; table: QueryTable; value: string; match: [string, QueryExpr][] };

export type QuerySource =
  | { kind: 'table'; table: QueryTable }
  /** every component of every stored SBOM, beside its trust_sboms row */
  | { kind: 'components' }
  | { kind: 'subquery'; query: QuerySelect };

export interface QueryOrder {
  expr: QueryExpr;
  desc: boolean;
  /** a text key: compared byte by byte on both engines */
  text: boolean;
}

export interface QuerySelect {
  from: QuerySource;
  /** ANDed, each its own parenthesised term */
  where: QueryExpr[];
  groupBy: QueryExpr[];
  having: QueryExpr[];
  /** the outputs, in order */
  select: QueryExpr[];
  orderBy: QueryOrder[];
  limit?: number;
  offset?: number;
}

export interface QueryLimits {
  /** PostgreSQL: the statement timeout. SQLite: the scan stops with QueryTimeoutError once past it. */
  timeoutMs: number;
}

/** The query ran past its time limit and was stopped. */
export class QueryTimeoutError extends Error {
  readonly timeoutMs: number;

  constructor(timeoutMs: number) {
    super(`the query ran longer than ${timeoutMs} ms and was stopped`);
    this.name = 'QueryTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/** The engine refused a value the query computed (a sum past 64 bits, say). */
export class QueryDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueryDataError';
  }
}

export interface QueryStore {
  /** Runs the plan read-only: its rows, each the outputs in order, as the engine returned them. */
  run(plan: QuerySelect, limits: QueryLimits): Promise<QueryValue[][]>;
}
