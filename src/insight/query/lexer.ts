/**
 * The query language's tokens: words (keywords and names, case-insensitive), numbers, 'strings'
 * (a quote doubled inside), operators, and `--` comments to the end of a line. Each token knows
 * its line and column (from 1), for the errors.
 */

export interface Position {
  offset: number;
  line: number;
  column: number;
}

export type TokenKind = 'word' | 'number' | 'string' | 'op' | 'end';

export interface Token extends Position {
  kind: TokenKind;
  /** as written; for a word, in lower case; for a string, its value without quotes */
  text: string;
}

/** A query that cannot be run, and where in its text the trouble is. */
export class QueryError extends Error {
  readonly line: number;
  readonly column: number;

  constructor(at: Position, message: string) {
    super(`line ${at.line}, column ${at.column}: ${message}`);
    this.name = 'QueryError';
    this.line = at.line;
    this.column = at.column;
  }
}

const operators = ['|>', '<=', '>=', '<>', '!=', '||', '(', ')', ',', '*', '+', '-', '/', '%', '=', '<', '>', '.', ';'];

/** What a token looks like in an error. */
export function describe(t: Token): string {
  if (t.kind === 'end') return 'the end of the query';
  if (t.kind === 'string') return `'${t.text}'`;
  return `"${t.text}"`;
}

export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let lineStart = 0;
  let i = 0;
  const at = (offset: number): Position => ({ offset, line, column: offset - lineStart + 1 });
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '\n') {
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '-' && text[i + 1] === '-') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    const start = at(i);
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < text.length && /[A-Za-z0-9_]/.test(text[j] as string)) j++;
      tokens.push({ kind: 'word', text: text.slice(i, j).toLowerCase(), ...start });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 64)) as RegExpExecArray;
      if (/[A-Za-z_]/.test(text[i + m[0].length] ?? '')) throw new QueryError(start, `"${text.slice(i, i + m[0].length + 1)}" is not a number`);
      tokens.push({ kind: 'number', text: m[0], ...start });
      i += m[0].length;
      continue;
    }
    if (c === "'") {
      let value = '';
      let j = i + 1;
      for (;;) {
        if (j >= text.length) throw new QueryError(start, 'this string has no closing quote');
        const d = text[j] as string;
        if (d === "'") {
          if (text[j + 1] === "'") {
            value += "'";
            j += 2;
            continue;
          }
          break;
        }
        if (d === '\n') {
          line++;
          lineStart = j + 1;
        }
        value += d;
        j++;
      }
      tokens.push({ kind: 'string', text: value, ...start });
      i = j + 1;
      continue;
    }
    if (c === '"') throw new QueryError(start, 'names are written without quotes; strings take single quotes');
    const op = operators.find((o) => text.startsWith(o, i));
    if (!op) throw new QueryError(start, `unexpected character ${JSON.stringify(c)}`);
    tokens.push({ kind: 'op', text: op === '!=' ? '<>' : op, ...start });
    i += op.length;
  }
  tokens.push({ kind: 'end', text: '', ...at(i) });
  return tokens;
}
