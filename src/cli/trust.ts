/**
 * `custody trust …` and `custody artifact …`: a namespace's trust (docs/trust.md) and an
 * artifact's signatures, attestations and SBOMs with their verdicts.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError, loggedIn } from './client.ts';
import { action, emit, readStdin, seg, table, withJson, type JsonOption } from './io.ts';

interface TrustView {
  namespace: string;
  source: string;
  fingerprint?: string;
  reevaluating?: number;
  sigstore?: { publicKeys: { name: string }[]; identities: Record<string, string>[]; trustedRoot: Record<string, number> | null };
  notary?: { trustStores: { type: string; name: string; certificates: string[] }[]; trustPolicy?: { trustPolicies?: { name: string }[] } };
}

interface Referrer {
  digest: string;
  kind: string;
  format: string | null;
  status: string;
  verified: boolean | null;
  signer: string | null;
  reason?: string;
  /** the reason's code (docs/trust.md); null for verdicts stored before codes */
  code?: string | null;
}

interface ArtifactView {
  repository: string;
  digest: string;
  tags: string[];
  summary: Record<string, number>;
  referrers: Referrer[];
}

interface ComponentsView {
  sboms: { digest: string; format: string; specVersion: string; components: { name: string; version?: string; purl?: string; licenses: string[] }[] }[];
}

/** A repository name keeps its slashes; each component is encoded. */
const repoPath = (repo: string) => repo.split('/').map(seg).join('/');

const describeIdentity = (i: { identity?: string; identityPattern?: string; issuer?: string; issuerPattern?: string }) =>
  `${i.identity ?? i.identityPattern} (issuer ${i.issuer ?? i.issuerPattern})`;

function describeTrust(t: TrustView): string {
  const lines = [`namespace ${t.namespace}: trust from ${t.source}${t.reevaluating ? ` (judging ${t.reevaluating} artifacts again)` : ''}`];
  if (!t.sigstore || !t.notary) return lines.join('\n');
  const root = t.sigstore.trustedRoot;
  lines.push(`cosign keys:        ${t.sigstore.publicKeys.map((k) => k.name).join(', ') || 'none'}`);
  lines.push(`keyless identities: ${t.sigstore.identities.map(describeIdentity).join(', ') || 'none'}`);
  lines.push(`Sigstore root:      ${root ? `${root.certificateAuthorities} CAs, ${root.tlogs} logs, ${root.timestampAuthorities} TSAs` : 'none'}`);
  lines.push(`Notary stores:      ${t.notary.trustStores.map((s) => `${s.type}:${s.name} (${s.certificates.length})`).join(', ') || 'none'}`);
  lines.push(`Notary policies:    ${t.notary.trustPolicy?.trustPolicies?.map((p) => p.name).join(', ') ?? 'none'}`);
  return lines.join('\n');
}

async function readDocument(file: string): Promise<unknown> {
  const text =
    file === '-' ? await readStdin() : await readFile(file, 'utf8').catch((err: Error) => Promise.reject(new CliError(`cannot read ${file}: ${err.message}`)));
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CliError(`${file} is not JSON: ${(err as Error).message}`);
  }
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** Adds `name=file` public keys to the document's sigstore.publicKeys; the server checks them. */
async function addCosignKeys(document: unknown, keys: string[]): Promise<void> {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw new CliError('the trust document is not a JSON object');
  const doc = document as { sigstore?: { publicKeys?: unknown[] } };
  doc.sigstore ??= {};
  if (typeof doc.sigstore !== 'object' || doc.sigstore === null) throw new CliError("the trust document's sigstore is not an object");
  const publicKeys = (doc.sigstore.publicKeys ??= []);
  if (!Array.isArray(publicKeys)) throw new CliError("the trust document's sigstore.publicKeys is not a list");
  for (const spec of keys) {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new CliError(`give --cosign-key as NAME=FILE, not ${spec}`);
    const file = spec.slice(eq + 1);
    const pem = await readFile(file, 'utf8').catch((err: Error) => Promise.reject(new CliError(`cannot read ${file}: ${err.message}`)));
    // never send a private key to the server by mistake
    if (/PRIVATE KEY-----/.test(pem)) throw new CliError(`${file} is a private key: give its public key (openssl ec -in key.pem -pubout -out key.pub)`);
    publicKeys.push({ name: spec.slice(0, eq), pem });
  }
}

export function registerTrust(program: Command): void {
  const trust = program.command('trust').description("a namespace's trust: cosign keys, keyless identities, Notary trust stores and policy");

  withJson(trust.command('show').description('the trust in effect for a namespace').argument('<ns>')).action(
    action(async (ns: string, opts: JsonOption) => {
      const t = await (await loggedIn()).call<TrustView>('GET', `/namespaces/${seg(ns)}/trust`);
      emit(opts, t, () => describeTrust(t));
    }),
  );

  withJson(
    trust
      .command('set')
      .description("replace a namespace's trust with a JSON document (see docs/trust.md), or with cosign public keys")
      .argument('<ns>')
      .option('--file <path>', 'the trust document; - for stdin')
      .option('--cosign-key <name=file>', "trust this cosign public key (PEM) under this name; repeatable, added to --file's keys", collect, []),
  ).action(
    action(async (ns: string, opts: JsonOption & { file?: string; cosignKey: string[] }) => {
      if (opts.file === undefined && opts.cosignKey.length === 0)
        throw new CliError('give the trust with --file FILE, or cosign keys with --cosign-key NAME=FILE');
      const document = opts.file === undefined ? {} : await readDocument(opts.file);
      if (opts.cosignKey.length > 0) await addCosignKeys(document, opts.cosignKey);
      const t = await (await loggedIn()).call<TrustView>('PUT', `/namespaces/${seg(ns)}/trust`, document);
      emit(opts, t, () => describeTrust(t));
    }),
  );

  withJson(trust.command('reset').description("drop the trust set through the API: the config file's applies again").argument('<ns>')).action(
    action(async (ns: string, opts: JsonOption) => {
      const t = await (await loggedIn()).call<TrustView>('DELETE', `/namespaces/${seg(ns)}/trust`);
      emit(opts, t, () => describeTrust(t));
    }),
  );

  const artifact = program.command('artifact').description("an artifact's signatures, attestations and SBOMs");

  withJson(artifact.command('show').description('what is attached to an artifact, with verdicts').argument('<repository>').argument('<digest>')).action(
    action(async (repo: string, digest: string, opts: JsonOption) => {
      const a = await (await loggedIn()).call<ArtifactView>('GET', `/repositories/${repoPath(repo)}/artifacts/${seg(digest)}`);
      emit(opts, a, () =>
        [
          `${a.repository}@${a.digest}${a.tags.length ? ` (${a.tags.join(', ')})` : ''}`,
          `${a.summary.verifiedSignatures} of ${a.summary.signatures} signatures verified, ${a.summary.attestations} attestations, ` +
            `${a.summary.sboms} SBOMs${a.summary.pending ? `, ${a.summary.pending} pending` : ''}`,
          '',
          a.referrers.length === 0
            ? 'nothing attached'
            : table(
                ['kind', 'format', 'verified', 'code', 'signer', 'reason', 'digest'],
                a.referrers.map((r) => [
                  r.kind,
                  r.format ?? '',
                  r.status === 'pending' ? 'pending' : r.verified === null ? '-' : r.verified ? 'yes' : 'NO',
                  r.code ?? '',
                  r.signer ?? '',
                  r.reason ?? '',
                  r.digest.slice(0, 19),
                ]),
              ),
        ].join('\n'),
      );
    }),
  );

  withJson(
    artifact.command('components').description('the components of the SBOMs attached to an artifact').argument('<repository>').argument('<digest>'),
  ).action(
    action(async (repo: string, digest: string, opts: JsonOption) => {
      const c = await (await loggedIn()).call<ComponentsView>('GET', `/repositories/${repoPath(repo)}/artifacts/${seg(digest)}/components`);
      const rows = c.sboms.flatMap((s) =>
        s.components.map((x) => [x.name, x.version ?? '', x.licenses.join(' '), x.purl ?? '', `${s.format} ${s.specVersion}`]),
      );
      emit(opts, c, () => (rows.length === 0 ? 'no SBOM attached' : table(['name', 'version', 'licenses', 'purl', 'sbom'], rows)));
    }),
  );
}
