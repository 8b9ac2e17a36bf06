/** What the parser makes of a query: every node keeps the position of the token it starts at. */
import type { Position } from './lexer.ts';

export type Expr =
  | { kind: 'column'; name: string; at: Position }
  | { kind: 'number'; value: number; integer: boolean; at: Position }
  | { kind: 'string'; value: string; at: Position }
  | { kind: 'bool'; value: boolean; at: Position }
  | { kind: 'null'; at: Position }
  /** `interval '7 days'`, in ms */
  | { kind: 'interval'; ms: number; at: Position }
  /** `timestamp '2025-01-31T12:00:00Z'`, in ms */
  | { kind: 'timestamp'; ms: number; at: Position }
  | { kind: 'unary'; op: 'not' | '-'; arg: Expr; at: Position }
  | { kind: 'binary'; op: BinaryOperator; left: Expr; right: Expr; at: Position }
  | { kind: 'in'; arg: Expr; list: Expr[]; negated: boolean; at: Position }
  | { kind: 'like'; arg: Expr; pattern: Expr; negated: boolean; at: Position }
  | { kind: 'isNull'; arg: Expr; negated: boolean; at: Position }
  | { kind: 'between'; arg: Expr; low: Expr; high: Expr; negated: boolean; at: Position }
  /** `count(*)` has `star`; `count(distinct x)` has `distinct` */
  | { kind: 'call'; name: string; args: Expr[]; distinct: boolean; star: boolean; at: Position };

export type BinaryOperator = '=' | '<>' | '<' | '<=' | '>' | '>=' | 'and' | 'or' | '+' | '-' | '*' | '/' | '%' | '||';

/** An item of a SELECT, EXTEND, AGGREGATE or GROUP BY list; `*` is all the columns there are. */
export type Item = { kind: 'expr'; expr: Expr; alias?: { name: string; at: Position } } | { kind: 'star'; at: Position };

export interface OrderItem {
  expr: Expr;
  desc: boolean;
}

export type Stage =
  | { kind: 'where'; expr: Expr; at: Position }
  | { kind: 'select'; items: Item[]; at: Position }
  | { kind: 'extend'; items: Item[]; at: Position }
  | { kind: 'aggregate'; items: Item[]; groupBy: Item[]; at: Position }
  /** `alsoInput`: a plain SELECT's ORDER BY, which may name its outputs and the columns of its input */
  | { kind: 'orderBy'; items: OrderItem[]; alsoInput: boolean; at: Position }
  | { kind: 'limit'; limit: number; offset: number; at: Position }
  /** a plain `SELECT … GROUP BY … HAVING …` (or one with aggregates and no GROUP BY): one grouped projection */
  | { kind: 'groupSelect'; items: Item[]; groupBy: Item[]; having?: Expr; at: Position };

export interface Query {
  from: { name: string; at: Position };
  stages: Stage[];
}
