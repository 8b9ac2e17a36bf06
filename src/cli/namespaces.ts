/** `custody namespace …`: namespaces, their settings and who holds which role in them. */
import type { Command } from 'commander';
import { CliError, loggedIn } from './client.ts';
import { action, bool, bytesText, emit, seg, table, withJson, type JsonOption } from './io.ts';

interface Namespace {
  name: string;
  anonymousRead: boolean;
  /** the hard quota (what policies read as ns.quotaBytes); 0: none */
  quotaBytes: number;
  softQuotaBytes: number;
  /** what policies read as ns.labels */
  labels: Record<string, string>;
  collectUntagged: boolean;
  /** null for a namespace that exists only because something was pushed to it */
  createdAt: string | null;
  created?: boolean;
}

interface Shown extends Namespace {
  grants: { kind: string; name: string; role: string }[];
}

/** GET /api/v1/namespaces/<ns>/usage (src/api/usage.ts) */
interface Usage {
  namespace: string;
  usedBytes: number;
  fairBlobBytes: number;
  physicalBlobBytes: number;
  manifestBytes: number;
  blobs: number;
  sharedBlobs: number;
  manifests: number;
  hardQuotaBytes: number;
  softQuotaBytes: number;
  overSoftQuota: boolean;
  overHardQuota: boolean;
  softExceededAt?: string | null;
}

interface RegistryUsage {
  namespaces: Usage[];
  totals: { physicalBlobBytes: number; fairBlobBytes: number; manifestBytes: number; usedBytes: number };
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

const showQuota = (bytes: number) => (bytes > 0 ? `${bytesText(bytes)}${bytes >= 1024 ? ` (${bytes} bytes)` : ''}` : 'none');
/** `used of quota (n %)`, or just the bytes when there is no quota. */
const ofQuota = (used: number, quota: number) =>
  quota > 0 ? `${bytesText(used)} of ${bytesText(quota)} (${((used / quota) * 100).toFixed(1)} %)` : 'no quota';

function showUsage(u: Usage): string {
  return [
    `namespace:      ${u.namespace}`,
    `used:           ${bytesText(u.usedBytes)} (${u.usedBytes} bytes): fair share of blobs + manifests`,
    `  blobs:        ${bytesText(u.fairBlobBytes)} fair share of ${u.blobs} blobs (${u.sharedBlobs} shared with other namespaces); ${bytesText(u.physicalBlobBytes)} counted in full`,
    `  manifests:    ${bytesText(u.manifestBytes)} in ${u.manifests} manifests`,
    `hard quota:     ${ofQuota(u.usedBytes, u.hardQuotaBytes)}${u.overHardQuota ? ', OVER: pushes that add bytes are refused' : ''}`,
    `soft quota:     ${ofQuota(u.usedBytes, u.softQuotaBytes)}${u.overSoftQuota ? `, OVER${u.softExceededAt ? ` since ${u.softExceededAt}` : ''}` : ''}`,
  ].join('\n');
}

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
          `soft quota:     ${showQuota(n.softQuotaBytes)}`,
          `labels:         ${showLabels(n.labels) || 'none'}`,
          `collect untagged manifests: ${n.collectUntagged ? 'yes' : 'no'}`,
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
      .option('--quota <size>', 'the hard quota: a push over it is refused (policies read it as ns.quotaBytes): bytes, or e.g. 10GiB, 500MB; 0 for none')
      .option('--soft-quota <size>', 'the soft quota: crossing it is logged and shown by custody namespace usage; 0 for none')
      .option('--collect-untagged <true|false>', 'let garbage collection remove untagged manifests that nothing reaches')
      .option('--label <key=value>', 'set a label policies read in ns.labels (KEY- removes one); repeatable, other labels stay', collect, []),
  ).action(
    action(async (ns: string, opts: JsonOption & { anonymousRead?: string; quota?: string; softQuota?: string; collectUntagged?: string; label: string[] }) => {
      const client = await loggedIn();
      const body: { anonymousRead?: boolean; quotaBytes?: number; softQuotaBytes?: number; collectUntagged?: boolean; labels?: Record<string, string> } = {};
      if (opts.anonymousRead !== undefined) body.anonymousRead = bool(opts.anonymousRead);
      if (opts.quota !== undefined) body.quotaBytes = byteSize(opts.quota);
      if (opts.softQuota !== undefined) body.softQuotaBytes = byteSize(opts.softQuota);
      if (opts.collectUntagged !== undefined) body.collectUntagged = bool(opts.collectUntagged);
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
          (n.softQuotaBytes > 0 ? `, soft quota ${showQuota(n.softQuotaBytes)}` : '') +
          (n.collectUntagged ? ', untagged manifests collected' : '') +
          (Object.keys(n.labels).length > 0 ? `, labels ${showLabels(n.labels)}` : ''),
      );
    }),
  );

  withJson(
    namespace
      .command('usage')
      .description("a namespace's storage, counted fairly, beside its quotas; without NS, every namespace (registry administrators)")
      .argument('[ns]'),
  ).action(
    action(async (ns: string | undefined, opts: JsonOption) => {
      const client = await loggedIn();
      if (ns !== undefined) {
        const u = await client.call<Usage>('GET', `/namespaces/${seg(ns)}/usage`);
        emit(opts, u, () => showUsage(u));
        return;
      }
      const r = await client.call<RegistryUsage>('GET', '/usage');
      emit(opts, r, () =>
        [
          table(
            ['namespace', 'used', 'fair blobs', 'blobs in full', 'manifests', 'hard quota', 'soft quota'],
            r.namespaces.map((u) => [
              u.namespace,
              u.usedBytes,
              u.fairBlobBytes,
              u.physicalBlobBytes,
              u.manifestBytes,
              u.hardQuotaBytes > 0 ? `${u.hardQuotaBytes}${u.overHardQuota ? ' OVER' : ''}` : '',
              u.softQuotaBytes > 0 ? `${u.softQuotaBytes}${u.overSoftQuota ? ' OVER' : ''}` : '',
            ]),
          ),
          '',
          `stored blobs: ${bytesText(r.totals.physicalBlobBytes)} (${r.totals.physicalBlobBytes} bytes, each once: the sum of the fair shares); manifests: ${bytesText(r.totals.manifestBytes)} (${r.totals.manifestBytes} bytes)`,
        ].join('\n'),
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
