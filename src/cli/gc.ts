/**
 * `custody gc [--dry-run]` starts a garbage collection through /api/v1/gc and follows it with a
 * progress bar to its end, then says what it freed and how long it took; `custody gc runs`
 * lists past runs. When a run is already going (here or on another replica), it follows that one.
 */
import type { Command } from 'commander';
import { CliError, loggedIn, type Client } from './client.ts';
import { action, bytesText, emit, table, wholeNumber, withJson, type JsonOption } from './io.ts';

interface Counts {
  manifests: number;
  links: number;
  blobs: number;
  bytes: number;
}

interface Run {
  id: string;
  state: 'running' | 'done' | 'failed';
  dryRun: boolean;
  phase: string;
  startedAt: string;
  finishedAt: string | null;
  resumed: number;
  planned: Counts;
  done: Counts;
  error?: string;
}

const steps = (c: Counts) => c.manifests + c.links + c.blobs;

function summary(run: Run): string {
  const seconds = run.finishedAt ? (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000 : 0;
  const c = run.dryRun ? run.planned : run.done;
  const what = `${c.blobs} blobs (${bytesText(c.bytes)}), ${c.links} blob links and ${c.manifests} untagged manifests`;
  if (run.state === 'failed') return `garbage collection ${run.id} failed after ${seconds.toFixed(1)} s: ${run.error ?? 'no reason recorded'}`;
  return run.dryRun
    ? `a collection now would free ${what} (dry run ${run.id}, ${seconds.toFixed(1)} s)`
    : `freed ${what} in ${seconds.toFixed(1)} s (run ${run.id})`;
}

/** Polls the run until it ends, drawing its progress on a terminal. */
async function follow(client: Client, run: Run, quiet: boolean): Promise<Run> {
  // loaded only here: `custody serve` registers this command too, and never draws a bar
  const bar =
    quiet || !process.stderr.isTTY
      ? undefined
      : new (await import('cli-progress')).default.SingleBar({
          format: ' {phase} [{bar}] {value}/{total} rows | {bytes} freed',
          stream: process.stderr,
          hideCursor: true,
        });
  bar?.start(Math.max(1, steps(run.planned)), 0, { phase: run.phase, bytes: bytesText(0) });
  let current = run;
  try {
    while (current.state === 'running') {
      await new Promise((resolve) => setTimeout(resolve, 200));
      current = await client.call<Run>('GET', `/gc/runs/${encodeURIComponent(run.id)}`);
      bar?.setTotal(Math.max(1, steps(current.planned)));
      bar?.update(steps(current.done), { phase: current.phase, bytes: bytesText(current.done.bytes) });
    }
  } finally {
    bar?.stop();
  }
  return current;
}

export function registerGc(program: Command): void {
  const gc = program
    .command('gc')
    .description('collect garbage now: blobs and untagged manifests nothing references (registry administrators)')
    .option('--dry-run', 'only say what a collection would free')
    .option('--json', 'print the finished run as JSON');
  gc.action(
    action(async (opts: { dryRun?: boolean; json?: boolean }) => {
      const client = await loggedIn();
      let run: Run;
      try {
        run = await client.call<Run>('POST', '/gc', { dryRun: opts.dryRun === true });
      } catch (err) {
        const id = err instanceof CliError ? /already running: run (\S+)/.exec(err.message)?.[1] : undefined;
        if (!id) throw err;
        console.error(`a garbage collection is already running (${id}); following it`);
        run = await client.call<Run>('GET', `/gc/runs/${encodeURIComponent(id)}`);
      }
      if (run.resumed > 0) console.error(`resuming run ${run.id}, interrupted in its ${run.phase} phase`);
      const finished = await follow(client, run, opts.json === true);
      if (opts.json) console.log(JSON.stringify(finished, null, 2));
      else console.log(summary(finished));
      if (finished.state === 'failed') process.exitCode = 1;
    }),
  );
  withJson(
    gc
      .command('runs')
      .description('list garbage collection runs, newest first')
      .option('--limit <n>', 'at most this many, 1 to 100 (default 20)')
      .option('--before <id>', 'runs older than this one (to page on)'),
  ).action(
    action(async (opts: JsonOption & { limit?: string; before?: string }) => {
      const query = new URLSearchParams();
      if (opts.limit !== undefined) query.set('limit', String(wholeNumber(opts.limit)));
      if (opts.before !== undefined) query.set('before', opts.before);
      const data = await (await loggedIn()).call<{ runs: Run[]; next?: string }>('GET', `/gc/runs?${query}`);
      emit(opts, data, () =>
        table(
          ['id', 'started', 'state', 'dry run', 'phase', 'blobs', 'freed', 'manifests'],
          data.runs.map((r) => {
            const c = r.dryRun ? r.planned : r.done;
            return [r.id, r.startedAt, r.state, r.dryRun ? 'yes' : 'no', r.phase, c.blobs, bytesText(c.bytes), c.manifests];
          }),
        ),
      );
      if (!opts.json && data.next) console.error(`more: add --before ${data.next}`);
    }),
  );
}
