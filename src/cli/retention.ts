/**
 * `custody retention …`: the retention rules of namespaces and repositories (set, show, list,
 * delete), runs started now (`run`, with `--dry-run` to see what would go) followed with a
 * progress bar to their end, and the run log (`runs`). A target is a namespace (`team`) or a
 * repository (`team/app`; `--repository` for a repository whose name has no slash). The rules'
 * text goes to the server as written, so `show` gives back what was set, comments and all.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError, loggedIn, type Client } from './client.ts';
import { action, bytesText, emit, seg, table, wholeNumber, withJson, type JsonOption } from './io.ts';

interface RulesView {
  kind: 'namespace' | 'repository';
  name: string;
  document: unknown;
  source: string;
  updatedBy: string;
  updatedAt: string;
}

interface Deletion {
  repository: string;
  kind: 'tag' | 'manifest';
  tag?: string;
  digest: string;
  rule: string;
  reason: string;
  draggedBy?: string;
  dragged?: string[];
  skipped?: string;
}

interface RunView {
  id: string;
  trigger: string;
  actor: string;
  scope: { kind: 'all' } | { kind: string; name: string };
  dryRun: boolean;
  status: 'running' | 'done' | 'failed';
  phase: string;
  progress: { done: number; total: number };
  startedAt: string;
  finishedAt: string | null;
  counts: {
    repositories: number;
    tagsDeleted: number;
    manifestsDeleted: number;
    vetoed: number;
    errors: number;
    bytes: number;
    blobs: number;
    manifestBytes: number;
  };
  error?: string;
  result?: {
    deletions: Deletion[];
    vetoed: { repository: string; kind: string; tag?: string; digest: string; message: string }[];
    errors: { repository: string; message: string }[];
    freed: { bytes: number; blobs: number; manifestBytes: number; estimate: boolean };
    truncated: boolean;
  };
}

/** `team` → a namespace, `team/app` → a repository (or any name with --repository); the path under /retention. */
function target(value: string, repository: boolean | undefined): { path: string; kind: 'namespace' | 'repository'; name: string } {
  if (value === '' || value.startsWith('/') || value.endsWith('/')) throw new CliError(`give a namespace (team) or a repository (team/app), not ${value}`);
  const kind = repository || value.includes('/') ? 'repository' : 'namespace';
  return {
    kind,
    name: value,
    path: kind === 'namespace' ? `/retention/namespaces/${seg(value)}` : `/retention/repositories/${value.split('/').map(seg).join('/')}`,
  };
}

/** The file's text as written (stdin with `-`), so that `show` gives it back. */
async function readText(file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8').catch((err: Error) => Promise.reject(new CliError(`cannot read ${file}: ${err.message}`)));
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const scopeText = (s: RunView['scope']) => ('name' in s ? `${s.kind} ${s.name}` : 'every rule set');
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** What a finished run did, or would do: one line, then the deletions. */
export function describeRun(r: RunView): string {
  const c = r.counts;
  const seconds = r.finishedAt ? ((Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000).toFixed(1) : '?';
  const what = `${plural(c.tagsDeleted, 'tag')} and ${plural(c.manifestsDeleted, 'manifest')} in ${plural(c.repositories, 'repository', 'repositories')}`;
  const freed = `${bytesText(c.bytes)} in ${plural(c.blobs, 'blob')} (an estimate; garbage collection frees them)`;
  const lines = [
    r.status === 'failed'
      ? `retention run ${r.id} failed after ${seconds} s: ${r.error ?? 'no reason recorded'}`
      : r.dryRun
        ? `dry run ${r.id} over ${scopeText(r.scope)} (${seconds} s): ${what} would be deleted, freeing ${freed}`
        : `run ${r.id} over ${scopeText(r.scope)} (${seconds} s): deleted ${what}, freeing ${freed}`,
  ];
  if (c.vetoed > 0) lines.push(`${plural(c.vetoed, 'deletion')} vetoed by policy (kept)`);
  if (c.errors > 0) lines.push(`${plural(c.errors, 'error')}`);
  const result = r.result;
  if (!result) return lines.join('\n');
  if (result.deletions.length > 0)
    lines.push(
      '',
      table(
        ['repository', 'kind', 'tag or digest', 'rule', 'reason'],
        result.deletions.map((d) => [d.repository, d.kind, d.tag ?? d.digest, d.rule, d.skipped ? `skipped: ${d.skipped}` : d.reason]),
      ),
    );
  if (result.truncated) lines.push(`(only the first ${result.deletions.length} deletions are listed)`);
  if (result.vetoed.length > 0)
    lines.push(
      '',
      'vetoed by policy:',
      table(
        ['repository', 'kind', 'tag or digest', 'message'],
        result.vetoed.map((v) => [v.repository, v.kind, v.tag ?? v.digest, v.message]),
      ),
    );
  if (result.errors.length > 0)
    lines.push(
      '',
      'errors:',
      table(
        ['repository', 'error'],
        result.errors.map((e) => [e.repository, e.message]),
      ),
    );
  return lines.join('\n');
}

/** Polls a run until it ends, drawing its progress on a terminal (stderr); the finished run with its result. */
async function follow(client: Client, run: RunView, quiet: boolean): Promise<RunView> {
  // loaded here: only `run` draws a bar, and every other command starts without it
  const bar =
    quiet || !process.stderr.isTTY
      ? undefined
      : new (await import('cli-progress')).default.SingleBar({ format: ' {phase} [{bar}] {value}/{total}', stream: process.stderr, hideCursor: true });
  bar?.start(Math.max(1, run.progress.total), 0, { phase: run.phase });
  let current = run;
  try {
    while (current.status === 'running') {
      await new Promise((resolve) => setTimeout(resolve, 200));
      current = await client.call<RunView>('GET', `/retention/runs/${seg(run.id)}`);
      bar?.setTotal(Math.max(1, current.progress.total));
      bar?.update(current.progress.done, { phase: current.phase });
    }
  } finally {
    bar?.stop();
  }
  return current;
}

export function registerRetention(program: Command): void {
  const retention = program
    .command('retention')
    .description('retention rules per namespace and repository: which tags to keep, what to delete; run them now or see past runs');

  withJson(
    retention
      .command('set')
      .description('set the rules of a namespace or a repository (YAML or JSON; docs/lifecycle.md), replacing any it had')
      .argument('<target>', 'a namespace (team) or a repository (team/app)')
      .requiredOption('-f, --file <file>', 'the rules; - reads stdin')
      .option('--repository', 'the target is a repository even without a slash'),
  ).action(
    action(async (value: string, opts: JsonOption & { file: string; repository?: boolean }) => {
      const t = target(value, opts.repository);
      const saved = await (await loggedIn()).call<RulesView>('PUT', t.path, { source: await readText(opts.file) });
      emit(opts, saved, () => `retention rules of ${saved.kind} ${saved.name} set`);
    }),
  );

  withJson(
    retention
      .command('show')
      .description('print the rules of a namespace or repository as they were set (who set them goes to stderr)')
      .argument('<target>', 'a namespace (team) or a repository (team/app)')
      .option('--repository', 'the target is a repository even without a slash'),
  ).action(
    action(async (value: string, opts: JsonOption & { repository?: boolean }) => {
      const r = await (await loggedIn()).call<RulesView>('GET', target(value, opts.repository).path);
      if (opts.json) {
        emit(opts, r, () => '');
        return;
      }
      // stdout is the source alone, so `custody retention show team > team.yaml` gives a file to set again
      console.error(`# retention rules of ${r.kind} ${r.name}, set by ${r.updatedBy} at ${r.updatedAt}`);
      process.stdout.write(r.source.endsWith('\n') ? r.source : `${r.source}\n`);
    }),
  );

  retention
    .command('delete')
    .description('delete the rules of a namespace or repository (a repository then follows its namespace’s rules)')
    .argument('<target>', 'a namespace (team) or a repository (team/app)')
    .option('--repository', 'the target is a repository even without a slash')
    .action(
      action(async (value: string, opts: { repository?: boolean }) => {
        const t = target(value, opts.repository);
        await (await loggedIn()).call('DELETE', t.path);
        console.log(`deleted the retention rules of ${t.kind} ${t.name}`);
      }),
    );

  withJson(
    retention
      .command('list')
      .description('the rule sets you may manage: all of them (registry administrators), or a namespace’s and its repositories’')
      .option('--namespace <ns>', 'only this namespace and its repositories'),
  ).action(
    action(async (opts: JsonOption & { namespace?: string }) => {
      const query = opts.namespace === undefined ? '' : `?namespace=${seg(opts.namespace)}`;
      const data = await (await loggedIn()).call<{ rules: RulesView[] }>('GET', `/retention/rules${query}`);
      emit(opts, data, () =>
        data.rules.length === 0
          ? 'no retention rules'
          : table(
              ['kind', 'name', 'set by', 'at'],
              data.rules.map((r) => [r.kind, r.name, r.updatedBy, r.updatedAt]),
            ),
      );
    }),
  );

  withJson(
    retention
      .command('run')
      .description('run retention now over a namespace, a repository, or (registry administrators) every rule set; follows it to its end')
      .argument('[target]', 'a namespace (team) or a repository (team/app); none: every rule set')
      .option('--dry-run', 'only say what would be deleted, and the bytes it would free')
      .option('--repository', 'the target is a repository even without a slash')
      .option('--no-wait', 'start it and print its id, without following it'),
  ).action(
    action(async (value: string | undefined, opts: JsonOption & { dryRun?: boolean; repository?: boolean; wait: boolean }) => {
      const client = await loggedIn();
      const t = value === undefined ? undefined : target(value, opts.repository);
      const body = { dryRun: opts.dryRun === true, ...(t ? { [t.kind]: t.name } : {}) };
      const started = await client.call<RunView>('POST', '/retention/runs', body);
      if (!opts.wait) {
        emit(opts, started, () => `started ${started.dryRun ? 'dry run' : 'run'} ${started.id}; see it with custody retention runs ${started.id}`);
        return;
      }
      const finished = await follow(client, started, opts.json === true);
      emit(opts, finished, () => describeRun(finished));
      if (finished.status === 'failed') process.exitCode = 1;
    }),
  );

  withJson(
    retention
      .command('runs')
      .description('the run log, newest first; with an id, that run and everything it deleted (or would have)')
      .argument('[id]', 'a run id')
      .option('--namespace <ns>', "only this namespace's runs (namespace admins must give it)")
      .option('--limit <n>', 'at most this many, 1 to 500 (default 50)')
      .option('--before <cursor>', 'older runs (the next page, as printed)'),
  ).action(
    action(async (id: string | undefined, opts: JsonOption & { namespace?: string; limit?: string; before?: string }) => {
      const client = await loggedIn();
      if (id !== undefined) {
        const r = await client.call<RunView>('GET', `/retention/runs/${seg(id)}`);
        emit(opts, r, () => (r.status === 'running' ? `run ${r.id} is ${r.phase}: ${r.progress.done}/${r.progress.total}` : describeRun(r)));
        return;
      }
      const query = new URLSearchParams();
      if (opts.namespace !== undefined) query.set('namespace', opts.namespace);
      if (opts.limit !== undefined) query.set('limit', String(wholeNumber(opts.limit)));
      if (opts.before !== undefined) query.set('before', opts.before);
      const data = await client.call<{ runs: RunView[]; next?: string }>('GET', `/retention/runs?${query}`);
      emit(opts, data, () =>
        data.runs.length === 0
          ? 'no retention runs'
          : table(
              ['id', 'started', 'by', 'scope', 'dry run', 'status', 'tags', 'manifests', 'vetoed', 'frees', 'errors'],
              data.runs.map((r) => [
                r.id,
                r.startedAt,
                r.trigger === 'schedule' ? 'schedule' : r.actor,
                scopeText(r.scope),
                r.dryRun ? 'yes' : 'no',
                r.status,
                r.counts.tagsDeleted,
                r.counts.manifestsDeleted,
                r.counts.vetoed,
                bytesText(r.counts.bytes),
                r.counts.errors,
              ]),
            ),
      );
      if (!opts.json && data.next) console.error(`more: add --before ${data.next}`);
    }),
  );
}
