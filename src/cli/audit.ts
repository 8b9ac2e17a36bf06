/** `custody audit`: the audit log, newest first (registry administrators). */
import type { Command } from 'commander';
import { loggedIn } from './client.ts';
import { action, emit, table, wholeNumber, withJson, type JsonOption } from './io.ts';

interface Event {
  id: number;
  time: string;
  actor: string;
  source: string;
  action: string;
  target: string;
  outcome: string;
  detail: Record<string, unknown>;
}

interface AuditOptions extends JsonOption {
  actor?: string;
  action?: string;
  target?: string;
  since?: string;
  until?: string;
  before?: string;
  limit?: string;
}

export function registerAudit(program: Command): void {
  withJson(
    program
      .command('audit')
      .description('show the audit log, newest first (registry administrators)')
      .option('--actor <name>', 'only what this user or robot did')
      .option('--action <action>', 'only this action, e.g. user.create, token.revoke, push')
      .option('--target <target>', 'only what was done to this')
      .option('--since <time>', 'from this time on (ISO 8601, e.g. 2025-01-31T12:00:00Z)')
      .option('--until <time>', 'before this time (ISO 8601)')
      .option('--before <id>', 'events older than this id (to page on)')
      .option('--limit <n>', 'at most this many events, 1 to 500 (default 100)'),
  ).action(
    action(async (opts: AuditOptions) => {
      const query = new URLSearchParams();
      for (const key of ['actor', 'action', 'target', 'since', 'until', 'before'] as const) {
        const value = opts[key];
        if (value !== undefined) query.set(key, value);
      }
      if (opts.limit !== undefined) query.set('limit', String(wholeNumber(opts.limit)));
      const data = await (await loggedIn()).call<{ events: Event[]; next: number | null }>('GET', `/audit?${query}`);
      emit(opts, data, () =>
        table(
          ['id', 'time', 'actor', 'action', 'target', 'outcome', 'source'],
          data.events.map((e) => [e.id, e.time, e.actor, e.action, e.target, e.outcome, e.source]),
        ),
      );
      if (!opts.json && data.next !== null) console.error(`more: add --before ${data.next}`);
    }),
  );
}
