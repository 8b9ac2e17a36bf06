/** `custody query '…'`: the query language (docs/insight.md, "Query language") as a table, JSON or CSV. */
import type { Command } from 'commander';
import { CliError, loggedIn } from './client.ts';
import { action, readStdin, table } from './io.ts';

type Cell = string | number | boolean | null;

interface Result {
  columns: { name: string; type: string }[];
  rows: Cell[][];
  truncated: boolean;
}

/** RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled; null is empty. */
function csvField(c: Cell): string {
  if (c === null) return '';
  const s = String(c);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csv(result: Result): string {
  return [result.columns.map((c) => csvField(c.name)), ...result.rows.map((r) => r.map(csvField))].map((line) => line.join(',')).join('\r\n');
}

export function registerQuery(program: Command): void {
  program
    .command('query <query>')
    .description('run a query, e.g. custody query "FROM pulls |> AGGREGATE count() GROUP BY repository" (\'-\' reads it from stdin)')
    .option('--format <format>', 'table, json or csv', 'table')
    .option('--json', 'the same as --format json')
    .action(
      action(async (text: string, opts: { format: string; json?: boolean }) => {
        const format = opts.json ? 'json' : opts.format;
        if (!['table', 'json', 'csv'].includes(format)) throw new CliError(`--format is table, json or csv, not ${format}`);
        const query = text === '-' ? await readStdin() : text;
        const result = await (await loggedIn()).call<Result>('POST', '/query', { query });
        if (format === 'json') console.log(JSON.stringify(result, null, 2));
        else if (format === 'csv') console.log(csv(result));
        else
          console.log(
            result.rows.length === 0
              ? `no rows (columns: ${result.columns.map((c) => c.name).join(', ')})`
              : table(
                  result.columns.map((c) => c.name),
                  result.rows,
                ),
          );
        if (result.truncated) console.error(`truncated at ${result.rows.length} rows: add a LIMIT (at most 10000) or narrow the query`);
      }),
    );
}
