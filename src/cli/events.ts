/**
 * `custody events`: usage events newest first (`custody events [list]`), and their hourly or daily
 * rollups (`custody events rollups --period hour|day`). Registry administrators see everything; a
 * namespace's readers name their namespace (or a repository in it).
 */
import type { Command } from 'commander';
import { loggedIn } from './client.ts';
import { action, bytesText, emit, table, wholeNumber, withJson, type JsonOption } from './io.ts';

interface EventView {
  id: string;
  time: string;
  type: string;
  object: string;
  namespace: string;
  repository: string;
  digest: string;
  tag: string;
  actor: string;
  bytes: number;
  userAgent: string;
  source: string;
  status: number;
  result: string;
  detail: Record<string, unknown>;
}

interface RollupView {
  start: string;
  namespace: string;
  repository: string;
  type: string;
  object: string;
  count: number;
  bytes: number;
}

interface ListOptions extends JsonOption {
  type?: string;
  namespace?: string;
  repository?: string;
  since?: string;
  until?: string;
  before?: string;
  limit?: string;
}

interface RollupOptions extends JsonOption {
  period: string;
  namespace?: string;
  repository?: string;
  since?: string;
  until?: string;
}

/** `sha256:abcdef…` → `sha256:abcdef012345` (the table's width; --json has it whole). */
const short = (digest: string) => (digest.length > 19 ? digest.slice(0, 19) : digest);

/** What an event is about: repository and tag or digest, or for logins and tokens the scopes. */
function what(e: EventView): string {
  if (!e.repository) return Array.isArray(e.detail.scopes) ? (e.detail.scopes as string[]).join(' ') : '';
  return `${e.repository}${e.tag ? `:${e.tag}` : e.digest ? `@${short(e.digest)}` : ''}`;
}

export function registerEvents(program: Command): void {
  const events = program.command('events').description('usage events (pushes, pulls, deletes, logins, tokens, policy decisions) and their rollups');
  withJson(
    events
      .command('list', { isDefault: true })
      .description('show usage events, newest first')
      .option('--type <types>', 'only these types, comma-separated: push, pull, delete, login, token, decision')
      .option('--namespace <ns>', 'only this namespace (what its readers may see)')
      .option('--repository <name>', 'only this repository')
      .option('--since <time>', 'from this time on (ISO 8601, e.g. 2025-01-31T12:00:00Z)')
      .option('--until <time>', 'before this time (ISO 8601)')
      .option('--before <id>', 'events older than this id (to page on)')
      .option('--limit <n>', 'at most this many events, 1 to 500 (default 100)'),
  ).action(
    action(async (opts: ListOptions) => {
      const query = new URLSearchParams();
      for (const key of ['type', 'namespace', 'repository', 'since', 'until', 'before'] as const) {
        const value = opts[key];
        if (value !== undefined) query.set(key, value);
      }
      if (opts.limit !== undefined) query.set('limit', String(wholeNumber(opts.limit)));
      const data = await (await loggedIn()).call<{ events: EventView[]; next: string | null }>('GET', `/events?${query}`);
      emit(opts, data, () =>
        table(
          ['time', 'type', 'object', 'what', 'actor', 'bytes', 'result', 'status', 'source', 'client'],
          data.events.map((e) => [e.time, e.type, e.object, what(e), e.actor, e.bytes, e.result, e.status || '', e.source, e.userAgent]),
        ),
      );
      if (!opts.json && data.next !== null) console.error(`more: add --before ${data.next}`);
    }),
  );
  withJson(
    events
      .command('rollups')
      .description('show event counts and bytes per hour or per day')
      .requiredOption('--period <period>', 'hour or day')
      .option('--namespace <ns>', 'only this namespace (what its readers may see)')
      .option('--repository <name>', 'only this repository')
      .option('--since <time>', 'periods starting from this time (default: a day of hours, 31 days)')
      .option('--until <time>', 'periods starting before this time (default: now)'),
  ).action(
    action(async (opts: RollupOptions) => {
      const query = new URLSearchParams({ period: opts.period });
      for (const key of ['namespace', 'repository', 'since', 'until'] as const) {
        const value = opts[key];
        if (value !== undefined) query.set(key, value);
      }
      const data = await (await loggedIn()).call<{ rollups: RollupView[]; truncated: boolean }>('GET', `/usage/rollups?${query}`);
      emit(opts, data, () =>
        table(
          ['start', 'namespace', 'repository', 'type', 'object', 'count', 'bytes'],
          data.rollups.map((r) => [r.start, r.namespace, r.repository, r.type, r.object, r.count, bytesText(r.bytes)]),
        ),
      );
      if (!opts.json && data.truncated) console.error('more rollups than shown: ask for a shorter window (--since, --until)');
    }),
  );
}
