/**
 * `custody cost`: what storage, egress and requests cost over a window, grouped by namespace,
 * team, repository or a namespace label (GET /api/v1/cost), as a table, JSON or CSV;
 * `custody cost export --focus`: the FinOps FOCUS CSV (GET /api/v1/cost/export); `custody budget`:
 * monthly budgets per namespace or team (/api/v1/budgets).
 */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError, loggedIn } from './client.ts';
import { action, emit, seg, table, withJson, type JsonOption } from './io.ts';
import { csv } from './query.ts';
import type { CostReport as Report } from '../insight/cost/report.ts';

interface BudgetView {
  scope: string;
  name: string;
  monthly: number;
  soft: number | null;
  updatedBy: string;
  updatedAt: string;
}

/** Money to the cent, quantities to four significant places: the table is for reading; JSON and CSV have every digit. */
const money = (n: number) => n.toFixed(2);
const quantity = (n: number) => (n === 0 ? '0' : Number(n.toPrecision(4)).toString());

function windowQuery(opts: { since?: string; until?: string; namespace?: string }): URLSearchParams {
  const q = new URLSearchParams();
  for (const key of ['since', 'until', 'namespace'] as const) if (opts[key] !== undefined) q.set(key, opts[key]);
  return q;
}

/** A non-negative amount of money; the server checks the rest (soft at most monthly). */
function amount(value: string, what: string): number {
  if (!/^\d+(\.\d+)?$/.test(value)) throw new CliError(`${what} is an amount such as 100 or 99.50, not ${value}`);
  return Number(value);
}

const scopeOf = (scope: string): 'namespace' | 'team' => {
  if (scope !== 'namespace' && scope !== 'team') throw new CliError(`a budget is for a namespace or a team, not ${scope}`);
  return scope;
};

export function registerCost(program: Command): void {
  const cost = program
    .command('cost')
    .description('what storage, egress and requests cost over a window (default: this month), grouped')
    .option('--since <time>', 'from this time (ISO 8601, e.g. 2026-11-01T00:00:00Z; default: the start of this month)')
    .option('--until <time>', 'before this time (ISO 8601; default: the end of this month)')
    .option('--by <grouping>', 'namespace, team, repository or label:KEY', 'namespace')
    .option('--namespace <ns>', 'only this namespace (what its admins may see)')
    .option('--output <format>', 'table, json or csv', 'table')
    .action(
      action(async (opts: { since?: string; until?: string; by: string; namespace?: string; output: string }) => {
        if (!['table', 'json', 'csv'].includes(opts.output)) throw new CliError(`--output is table, json or csv, not ${opts.output}`);
        const q = windowQuery(opts);
        q.set('by', opts.by);
        const report = await (await loggedIn()).call<Report>('GET', `/cost?${q}`);
        if (opts.output === 'json') return console.log(JSON.stringify(report, null, 2));
        const rows = [...report.rows.map((r) => ({ ...r, key: r.key })), { ...report.total, key: 'total' }];
        if (opts.output === 'csv') {
          const columns = [report.by, 'storageGbMonths', 'storageCost', 'egressGb', 'egressCost', 'pushes', 'pulls', 'requestsCost', 'cost', 'currency'];
          const cells = rows.map((r) => [
            r.key,
            r.storage.gbMonths,
            r.storage.cost,
            r.egress.gb,
            r.egress.cost,
            r.requests.push,
            r.requests.pull,
            r.requests.cost,
            r.cost,
            report.currency,
          ]);
          return console.log(csv({ columns: columns.map((name) => ({ name, type: '' })), rows: cells, truncated: false }));
        }
        console.log(`${report.since} to ${report.until}, in ${report.currency}`);
        console.log(
          table(
            [report.by, 'GB-months', 'storage', 'egress GB', 'egress', 'pushes', 'pulls', 'requests', 'total'],
            rows.map((r) => [
              r.key === '' ? '(none)' : r.key,
              quantity(r.storage.gbMonths),
              money(r.storage.cost),
              quantity(r.egress.gb),
              money(r.egress.cost),
              r.requests.push,
              r.requests.pull,
              money(r.requests.cost),
              money(r.cost),
            ]),
          ),
        );
      }),
    );

  cost
    .command('export')
    .description('the cost as FinOps FOCUS 1.x CSV: a row per repository, charge and day')
    .requiredOption('--focus', 'FOCUS CSV (the one format)')
    .option('--since <time>', 'from this time (ISO 8601; default: the start of this month)')
    .option('--until <time>', 'before this time (ISO 8601; default: the end of this month)')
    .option('--namespace <ns>', 'only this namespace')
    .option('-o, --file <file>', 'write it to this file instead of stdout')
    .action(
      action(async (opts: { since?: string; until?: string; namespace?: string; file?: string }) => {
        const q = windowQuery(opts);
        q.set('format', 'focus');
        const client = await loggedIn();
        const res = await client.send(`/api/v1/cost/export?${q}`, { headers: { accept: 'text/csv' } });
        const text = await res.text();
        if (!res.ok) throw client.failure(res, text);
        if (opts.file !== undefined) await writeFile(opts.file, text);
        else process.stdout.write(text);
      }),
    );

  const budget = program
    .command('budget')
    .description('monthly cost budgets per namespace or team: a soft threshold notifies, the hard one is ns.budget for policies');
  budget
    .command('set <scope> <name>')
    .description('set the budget of a namespace or a team (scope: namespace or team)')
    .requiredOption('--monthly <amount>', 'the hard monthly budget, in the price model’s currency')
    .option('--soft <amount>', 'a lower threshold that only notifies')
    .action(
      action(async (scope: string, name: string, opts: { monthly: string; soft?: string }) => {
        const body = { monthly: amount(opts.monthly, '--monthly'), ...(opts.soft !== undefined ? { soft: amount(opts.soft, '--soft') } : {}) };
        const b = await (await loggedIn()).call<BudgetView & { currency: string }>('PUT', `/budgets/${scopeOf(scope)}/${seg(name)}`, body);
        console.log(`budget of ${b.scope} ${b.name}: ${b.monthly} ${b.currency} a month${b.soft !== null ? `, notifying at ${b.soft}` : ''}`);
      }),
    );
  withJson(budget.command('list').description('every budget (registry administrators)')).action(
    action(async (opts: JsonOption) => {
      const data = await (await loggedIn()).call<{ currency: string; budgets: BudgetView[] }>('GET', '/budgets');
      emit(opts, data, () =>
        table(
          ['scope', 'name', `monthly (${data.currency})`, 'soft', 'updated by', 'updated'],
          data.budgets.map((b) => [b.scope, b.name, b.monthly, b.soft, b.updatedBy, b.updatedAt]),
        ),
      );
    }),
  );
  budget
    .command('delete <scope> <name>')
    .description('remove the budget of a namespace or a team')
    .action(
      action(async (scope: string, name: string) => {
        await (await loggedIn()).call('DELETE', `/budgets/${scopeOf(scope)}/${seg(name)}`);
        console.log(`removed the budget of ${scope} ${name}`);
      }),
    );
}
