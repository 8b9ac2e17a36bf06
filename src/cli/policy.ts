/**
 * `custody policy …`: policies as code (issue 13). Apply, list, show and delete them; try one
 * before it decides (test, simulate); read the decision log; print the input document's schema.
 * The policy's text goes to the server as written (`{"source": …}`): the server parses and checks
 * it and keeps it, so `show` gives back what was applied, comments and all.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError, loggedIn, type Client } from './client.ts';
import { action, emit, seg, table, wholeNumber, withJson, type JsonOption } from './io.ts';

interface PolicyView {
  name: string;
  version: number;
  namespace: string | null;
  document: { engine?: string; mode?: string; actions?: string[]; description?: string };
  source: string;
  createdBy: string;
  createdAt: string;
  deleted?: boolean;
}

interface Denial {
  action: string;
  repository: string;
  reference: string;
  digest: string;
  message: string;
  identity?: string;
  at?: string;
}

interface Simulation {
  policy: string;
  artifacts: { evaluated: number; denied: Denial[] };
  recorded: { evaluated: number; denied: Denial[] };
  errors: (Omit<Denial, 'message'> & { error: string })[];
}

interface TestResult {
  deny: boolean;
  /** the rendered message a denied request is told */
  message?: string;
  /** the engine's own messages (OPA violation sets); empty for CEL */
  messages?: string[];
  /** set when the policy failed to evaluate; `deny` is then its failure mode */
  error?: string;
  input: unknown;
}

interface Decision {
  at: string;
  policy: string;
  version: number;
  mode: string;
  action: string;
  repository: string;
  reference: string;
  result: string;
  message: string;
  latencyMicros: number;
  actor: string;
  source: string;
  enforced: boolean;
}

/** The file's text, byte for byte (stdin too: unlike readStdin, the last line break stays, so show gives back what was applied). */
async function readText(file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8').catch((err: Error) => Promise.reject(new CliError(`cannot read ${file}: ${err.message}`)));
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const shownName = (file: string) => (file === '-' ? 'stdin' : file);

/**
 * The policy's name, which the URL needs. Only the name is read here; everything else (and the
 * name's own rules) the server checks, so its messages are the ones the user sees. yaml is loaded
 * only by the commands that read a policy.
 */
async function nameOf(text: string, file: string): Promise<string> {
  const { parse } = await import('yaml');
  let value: unknown;
  try {
    // no aliases, as the server parses it (a billion laughs is a small YAML file)
    value = parse(text, { maxAliasCount: 0 });
  } catch (err) {
    throw new CliError(`${shownName(file)} is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  const name = value !== null && typeof value === 'object' ? (value as Record<string, unknown>).name : undefined;
  if (typeof name !== 'string' || name === '')
    throw new CliError(`${shownName(file)} names no policy: a policy document has a name field, e.g. name: require-cost-center`);
  return name;
}

/** `team/app:v1` or `team/app@sha256:…` → repository and reference. */
export function artifactRef(value: string): { repository: string; reference: string } {
  const at = value.indexOf('@');
  const colon = value.lastIndexOf(':');
  const split = at > 0 ? at : colon > value.lastIndexOf('/') ? colon : -1;
  const repository = value.slice(0, split);
  const reference = value.slice(split + 1);
  if (split <= 0 || reference === '') throw new CliError(`give --artifact as REPOSITORY:TAG or REPOSITORY@DIGEST, e.g. team/app:v1, not ${value}`);
  return { repository, reference };
}

const units: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `7d`, `1h`, `30m`, `45s`, `2w` → that long before now, as ISO 8601; anything else goes to the server as written. */
export function when(value: string, now = Date.now()): string {
  const relative = /^(\d+)([smhdw])$/.exec(value);
  if (!relative) return value;
  return new Date(now - Number(relative[1]) * (units[relative[2] as string] as number)).toISOString();
}

/** The policy in a request body: its text as written, for the server to parse. */
const policyOf = async (file: string) => ({ source: await readText(file) });

const denialRows = (denied: Denial[], recorded: boolean) =>
  denied.map((d) => [d.action, d.repository, d.reference, ...(recorded ? [d.identity, d.at] : [d.digest.slice(0, 19)]), d.message]);

function describeSimulation(s: Simulation, days: number): string {
  const would = (n: number) => (n === 1 ? '1 would be denied' : `${n} would be denied`);
  const lines = [`policy ${s.policy}, simulated; it decided nothing`, ''];
  lines.push(`stored artifacts: ${s.artifacts.evaluated} evaluated, ${would(s.artifacts.denied.length)}`);
  if (s.artifacts.denied.length > 0) lines.push(table(['action', 'repository', 'reference', 'digest', 'message'], denialRows(s.artifacts.denied, false)));
  lines.push('', `recorded inputs of the last ${days === 1 ? 'day' : `${days} days`}: ${s.recorded.evaluated} evaluated, ${would(s.recorded.denied.length)}`);
  if (s.recorded.denied.length > 0) lines.push(table(['action', 'repository', 'reference', 'identity', 'at', 'message'], denialRows(s.recorded.denied, true)));
  lines.push('', `errors: ${s.errors.length}`);
  if (s.errors.length > 0)
    lines.push(
      table(
        ['action', 'repository', 'reference', 'error'],
        s.errors.map((e) => [e.action, e.repository, e.reference, e.error]),
      ),
    );
  return lines.join('\n');
}

function describeTest(r: TestResult): string {
  if (r.error !== undefined) return `error: ${r.error}\nthe request would be ${r.deny ? 'denied (failure: closed)' : 'allowed (failure: open)'}`;
  if (!r.deny) return 'allow';
  const extra = (r.messages ?? []).filter((m) => m !== r.message);
  return [`deny: ${r.message ?? ''}`, ...extra.map((m) => `  - ${m}`)].join('\n');
}

interface DecisionOptions extends JsonOption {
  policy?: string;
  result?: string;
  action?: string;
  repository?: string;
  namespace?: string;
  since?: string;
  until?: string;
  limit?: string;
  before?: string;
  all?: boolean;
}

/** The decision log: one page, or with `all` every page (each of `limit`, default the server's largest). */
async function decisions(client: Client, opts: DecisionOptions): Promise<{ decisions: Decision[]; next?: string }> {
  const query = new URLSearchParams();
  for (const key of ['policy', 'result', 'action', 'repository', 'namespace'] as const) {
    const value = opts[key];
    if (value !== undefined) query.set(key, value);
  }
  if (opts.since !== undefined) query.set('since', when(opts.since));
  if (opts.until !== undefined) query.set('until', when(opts.until));
  const limit = opts.limit === undefined ? (opts.all ? 1000 : undefined) : wholeNumber(opts.limit);
  if (limit !== undefined) query.set('limit', String(limit));
  if (opts.before !== undefined) query.set('before', opts.before);
  const all: Decision[] = [];
  for (;;) {
    const page = await client.call<{ decisions: Decision[]; next?: string }>('GET', `/policy-decisions?${query}`);
    all.push(...page.decisions);
    if (!opts.all || !page.next) return { decisions: all, ...(page.next ? { next: page.next } : {}) };
    query.set('before', page.next);
  }
}

export function registerPolicy(program: Command): void {
  const policy = program.command('policy').description('policies that decide every push, pull and delete: apply, try, and read their decisions');

  withJson(
    policy
      .command('apply')
      .description('save a policy (YAML or JSON); saving one that exists makes a new version')
      .requiredOption('-f, --file <file>', 'the policy document; - reads stdin'),
  ).action(
    action(async (opts: JsonOption & { file: string }) => {
      const text = await readText(opts.file);
      const name = await nameOf(text, opts.file);
      const saved = await (await loggedIn()).call<PolicyView>('PUT', `/policies/${seg(name)}`, { source: text });
      emit(
        opts,
        saved,
        () => `policy ${saved.name} version ${saved.version} saved (mode ${saved.document.mode}${saved.namespace ? `, namespace ${saved.namespace}` : ''})`,
      );
    }),
  );

  withJson(policy.command('list').description('the policies in effect that you may manage')).action(
    action(async (opts: JsonOption) => {
      const data = await (await loggedIn()).call<{ policies: PolicyView[] }>('GET', '/policies');
      emit(opts, data, () =>
        data.policies.length === 0
          ? 'no policies'
          : table(
              ['name', 'version', 'namespace', 'engine', 'mode', 'actions', 'saved', 'by', 'description'],
              data.policies.map((p) => [
                p.name,
                p.version,
                p.namespace ?? '(registry)',
                p.document.engine,
                p.document.mode,
                p.document.actions?.join(','),
                p.createdAt,
                p.createdBy,
                p.document.description,
              ]),
            ),
      );
    }),
  );

  withJson(
    policy
      .command('show')
      .description('print a policy as it was applied (what it is and who saved it go to stderr), or its versions')
      .argument('<name>')
      .option('--version <n>', 'this version instead of the latest')
      .option('--versions', 'list every version, newest first (a deletion is a version too)'),
  ).action(
    action(async (name: string, opts: JsonOption & { version?: string; versions?: boolean }) => {
      const client = await loggedIn();
      if (opts.versions) {
        const data = await client.call<{ versions: PolicyView[] }>('GET', `/policies/${seg(name)}/versions`);
        emit(opts, data, () =>
          table(
            ['version', 'mode', 'saved', 'by', 'change'],
            data.versions.map((v) => [v.version, v.document.mode, v.createdAt, v.createdBy, v.deleted ? 'deleted' : v.version === 1 ? 'created' : 'changed']),
          ),
        );
        return;
      }
      const version = opts.version === undefined ? '' : `?version=${wholeNumber(opts.version)}`;
      const p = await client.call<PolicyView>('GET', `/policies/${seg(name)}${version}`);
      if (opts.json) {
        emit(opts, p, () => '');
        return;
      }
      // stdout is the source alone, so `custody policy show x > x.yaml` gives a file to apply again
      console.error(
        `# policy ${p.name} version ${p.version}${p.namespace ? ` in namespace ${p.namespace}` : ''}, ` +
          `${p.deleted ? 'deleted' : 'saved'} by ${p.createdBy} at ${p.createdAt}${p.deleted ? ': the source below is what it deleted' : ''}`,
      );
      process.stdout.write(p.source.endsWith('\n') ? p.source : `${p.source}\n`);
    }),
  );

  policy
    .command('delete')
    .description('delete a policy: it stops deciding at once; its versions stay (show --versions)')
    .argument('<name>')
    .action(
      action(async (name: string) => {
        await (await loggedIn()).call('DELETE', `/policies/${seg(name)}`);
        console.log(`deleted policy ${name}`);
      }),
    );

  withJson(
    policy
      .command('test')
      .description('decide once with a policy that need not be saved: on an input document, or on a stored artifact as if you requested it now')
      .requiredOption('-f, --file <file>', 'the policy document; - reads stdin')
      .option('--input <file>', 'a whole input document (JSON; see custody policy schema); - reads stdin')
      .option('--artifact <ref>', 'a stored artifact, REPOSITORY:TAG or REPOSITORY@DIGEST')
      .option('--action <action>', 'push, pull, delete or retention', 'pull')
      .option('--show-input', 'print the input document it decided on'),
  ).action(
    action(async (opts: JsonOption & { file: string; input?: string; artifact?: string; action: string; showInput?: boolean }) => {
      if ((opts.input === undefined) === (opts.artifact === undefined)) throw new CliError('give either --input FILE or --artifact REPOSITORY:TAG');
      if (opts.file === '-' && opts.input === '-') throw new CliError('only one of --file and --input can read stdin');
      const body: Record<string, unknown> = { policy: await policyOf(opts.file), action: opts.action };
      if (opts.artifact !== undefined) body.artifact = artifactRef(opts.artifact);
      else {
        const text = await readText(opts.input as string);
        let input: unknown;
        try {
          input = JSON.parse(text);
        } catch (err) {
          throw new CliError(`${shownName(opts.input as string)} is not JSON: ${(err as Error).message}`);
        }
        if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new CliError(`${shownName(opts.input as string)} is not a JSON object`);
        body.input = input;
      }
      const r = await (await loggedIn()).call<TestResult>('POST', '/policies/test', body);
      emit(opts, r, () => describeTest(r) + (opts.showInput ? `\n\n${JSON.stringify(r.input, null, 2)}` : ''));
    }),
  );

  withJson(
    policy
      .command('simulate')
      .description('what a policy would deny, from the artifacts stored now and the decision inputs recorded lately; it decides nothing')
      .requiredOption('-f, --file <file>', 'the policy document; - reads stdin')
      .option('--days <n>', 'recorded inputs of this many days back, 0 to 366', '7')
      .option('--limit <n>', 'evaluate at most this many artifacts, and as many recorded inputs (default 10000)'),
  ).action(
    action(async (opts: JsonOption & { file: string; days: string; limit?: string }) => {
      const days = wholeNumber(opts.days);
      const body = { policy: await policyOf(opts.file), days, ...(opts.limit === undefined ? {} : { limit: wholeNumber(opts.limit) }) };
      const s = await (await loggedIn()).call<Simulation>('POST', '/policies/simulate', body);
      emit(opts, s, () => describeSimulation(s, days));
    }),
  );

  withJson(
    policy
      .command('decisions')
      .description('the decision log, newest first: every denial, and every evaluation in audit or dry-run mode')
      .option('--policy <name>', 'only this policy')
      .option('--result <result>', 'deny, allow or error')
      .option('--action <action>', 'push, pull, delete or retention')
      .option('--repository <repo>', 'only this repository')
      .option('--namespace <ns>', "only this namespace's repositories")
      .option('--since <time>', 'from this time on: ISO 8601 (2026-01-31T12:00:00Z) or that long ago (30m, 1h, 7d, 2w)')
      .option('--until <time>', 'before this time, written as --since')
      .option('--limit <n>', 'at most this many per page, 1 to 1000 (default 100; with --all 1000)')
      .option('--before <cursor>', 'older than this cursor (the next page, as printed)')
      .option('--all', 'page through to the oldest'),
  ).action(
    action(async (opts: DecisionOptions) => {
      const data = await decisions(await loggedIn(), opts);
      emit(opts, data, () =>
        data.decisions.length === 0
          ? 'no decisions'
          : table(
              ['at', 'policy', 'mode', 'action', 'repository', 'reference', 'result', 'enforced', 'actor', 'message'],
              data.decisions.map((d) => [
                d.at,
                `${d.policy} v${d.version}`,
                d.mode,
                d.action,
                d.repository,
                d.reference,
                d.result,
                d.enforced ? 'yes' : 'no',
                d.actor,
                d.message,
              ]),
            ),
      );
      if (!opts.json && data.next) console.error(`more: add --before ${data.next}, or --all`);
    }),
  );

  policy
    .command('schema')
    .description('print the JSON Schema of the input document every policy decides on (no server needed)')
    .action(
      action(async () => {
        const { inputSchema } = await import('../policy/input-schema.ts');
        console.log(JSON.stringify(inputSchema, null, 2));
      }),
    );
}
