/** `custody namespace …`: namespaces, their settings and who holds which role in them. */
import type { Command } from 'commander';
import { CliError, loggedIn } from './client.ts';
import { action, bool, emit, seg, table, withJson, type JsonOption } from './io.ts';

interface Namespace {
  name: string;
  anonymousRead: boolean;
  /** what policies read as ns.quotaBytes; 0: none */
  quotaBytes: number;
  /** what policies read as ns.labels */
  labels: Record<string, string>;
  /** null for a namespace that exists only because something was pushed to it */
  createdAt: string | null;
  created?: boolean;
}

interface Shown extends Namespace {
  grants: { kind: string; name: string; role: string }[];
}

const byteUnits: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** `10GiB`, `500MB`, `1.5TiB`, `1073741824` → bytes (KB, MB… are powers of 1000; KiB, MiB… of 1024). */
export function byteSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = byteUnits[(m?.[2] || 'b').toLowerCase()];
  // a bare number is bytes, and bytes are whole
  if (!m || unit === undefined || (!m[2] && m[1]?.includes('.')))
    throw new CliError(`give a size in bytes or with a unit (KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 10GiB, not ${value}`);
  // a fraction of a byte is rounded: 0.1 GB is 100000000 however floating point multiplies it
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new CliError(`${value} is too large`);
  return bytes;
}

/** 10737418240 → `10 GiB`; sizes that are no whole binary unit keep one decimal. */
function showBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (i < units.length - 1 && bytes >= 1024 ** (i + 1)) i++;
  const value = bytes / 1024 ** i;
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[i]}`;
}

const showQuota = (bytes: number) => (bytes > 0 ? `${showBytes(bytes)}${bytes >= 1024 ? ` (${bytes} bytes)` : ''}` : 'none');
const showLabels = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

/** `k=v` sets a label, `k-` removes it; the rest are kept. */
function changeLabels(labels: Record<string, string>, specs: string[]): Record<string, string> {
  const changed = { ...labels };
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq > 0) changed[spec.slice(0, eq)] = spec.slice(eq + 1);
    else if (eq === -1 && spec.length > 1 && spec.endsWith('-')) delete changed[spec.slice(0, -1)];
    else throw new CliError(`give --label as KEY=VALUE, or KEY- to remove it, not ${spec}`);
  }
  return changed;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerNamespaces(program: Command): void {
  const namespace = program.command('namespace').description('manage namespaces and roles in them');

  withJson(namespace.command('list').description('list the namespaces you may pull from (administrators: all)')).action(
    action(async (opts: JsonOption) => {
      const data = await (await loggedIn()).call<{ namespaces: Namespace[] }>('GET', '/namespaces');
      emit(opts, data, () =>
        table(
          ['name', 'anonymous read', 'created'],
          data.namespaces.map((n) => [n.name, n.anonymousRead ? 'yes' : 'no', n.createdAt ?? 'no (pushed to; custody namespace set to create it)']),
        ),
      );
    }),
  );

  withJson(namespace.command('show').description("a namespace's settings and roles").argument('<ns>')).action(
    action(async (ns: string, opts: JsonOption) => {
      const n = await (await loggedIn()).call<Shown>('GET', `/namespaces/${seg(ns)}`);
      emit(opts, n, () =>
        [
          `namespace:      ${n.name}`,
          `anonymous read: ${n.anonymousRead ? 'yes' : 'no'}`,
          `created:        ${n.createdAt}`,
          `quota:          ${showQuota(n.quotaBytes)}`,
          `labels:         ${showLabels(n.labels) || 'none'}`,
          '',
          n.grants.length === 0
            ? 'no roles granted'
            : table(
                ['kind', 'name', 'role'],
                n.grants.map((g) => [g.kind, g.name, g.role]),
              ),
        ].join('\n'),
      );
    }),
  );

  withJson(
    namespace
      .command('set')
      .description('create a namespace (registry administrators) or change its settings')
      .argument('<ns>')
      .option('--anonymous-read <true|false>', 'let anyone pull without logging in')
      .option('--quota <size>', 'what policies read as ns.quotaBytes: bytes, or e.g. 10GiB, 500MB; 0 for none')
      .option('--label <key=value>', 'set a label policies read in ns.labels (KEY- removes one); repeatable, other labels stay', collect, []),
  ).action(
    action(async (ns: string, opts: JsonOption & { anonymousRead?: string; quota?: string; label: string[] }) => {
      const client = await loggedIn();
      const body: { anonymousRead?: boolean; quotaBytes?: number; labels?: Record<string, string> } = {};
      if (opts.anonymousRead !== undefined) body.anonymousRead = bool(opts.anonymousRead);
      if (opts.quota !== undefined) body.quotaBytes = byteSize(opts.quota);
      if (opts.label.length > 0) {
        // the API replaces the labels whole; read them first so that --label changes only those it names
        const res = await client.send(`/api/v1/namespaces/${seg(ns)}`, { headers: { accept: 'application/json' } });
        const text = await res.text();
        if (!res.ok && res.status !== 404) throw client.failure(res, text);
        const current = res.ok ? (JSON.parse(text) as Namespace).labels : {};
        body.labels = changeLabels(current, opts.label);
      }
      const n = await client.call<Namespace>('PUT', `/namespaces/${seg(ns)}`, body);
      emit(
        opts,
        n,
        () =>
          `namespace ${n.name}: anonymous read ${n.anonymousRead ? 'on' : 'off'}` +
          (n.quotaBytes > 0 ? `, quota ${showQuota(n.quotaBytes)}` : '') +
          (Object.keys(n.labels).length > 0 ? `, labels ${showLabels(n.labels)}` : ''),
      );
    }),
  );

  namespace
    .command('grant')
    .description('give a user, team or robot a role in a namespace')
    .argument('<ns>')
    .argument('<kind>', 'user, team or robot')
    .argument('<name>', 'a robot by its short name or as <ns>+<name>')
    .argument('<role>', 'reader, writer, maintainer or admin')
    .action(
      action(async (ns: string, kind: string, name: string, role: string) => {
        await (await loggedIn()).call('PUT', `/namespaces/${seg(ns)}/grants/${seg(kind)}/${seg(name)}`, { role });
        console.log(`${kind} ${name} is ${role} in ${ns}`);
      }),
    );

  namespace
    .command('revoke')
    .description("remove a user's, team's or robot's role in a namespace")
    .argument('<ns>')
    .argument('<kind>', 'user, team or robot')
    .argument('<name>')
    .action(
      action(async (ns: string, kind: string, name: string) => {
        await (await loggedIn()).call('DELETE', `/namespaces/${seg(ns)}/grants/${seg(kind)}/${seg(name)}`);
        console.log(`${kind} ${name} has no role in ${ns} any more`);
      }),
    );
}
