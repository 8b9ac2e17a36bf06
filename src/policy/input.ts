/**
 * Builds the policy input document (input-schema.ts) for one decision, from the request and what
 * the stores know. Only the sections some applicable policy reads are built, and what does not
 * change per request is cached: a manifest's facts forever (a digest names the same bytes), its
 * trust facts and the namespace's for a couple of seconds (verdicts arrive after the push, from
 * any replica), who a principal is for a few. That is what keeps policies on the pull path cheap.
 */
import { BoundedMap } from '../bounded-map.ts';
import type { MetaStore } from '../meta/metastore.ts';
import { costOf, monthOf, pricesAnything, type PriceModel } from '../meta/cost.ts';
import type { TrustArtifact } from '../meta/trust.ts';
import type { BlobStore } from '../storage/blobstore.ts';
import { inputVersion, type Action, type PolicyInput, type Section } from './input-schema.ts';
import { readBlobBytes } from './blob-bytes.ts';
import { readWasmInterface } from './wasm-component.ts';

/** What the registry core says about the request being decided (src/oci/context.ts: PolicyQuestion). */
export interface Question {
  action: Action;
  repository: string;
  namespace: string;
  digest: string;
  tag?: string;
  /** the manifest's bytes and media type */
  manifest: { mediaType: string; content: Uint8Array };
  principal: { kind: 'user' | 'robot' | 'anonymous'; id: string; name: string; admin: boolean };
  tokenKind: PolicyInput['request']['tokenKind'];
  userAgent: string;
  sourceAddress: string;
  /** ms since the epoch */
  time: number;
}

const maxComponents = 10_000;

/** The keys a question's cached sections are found by (see InputBuilder.build). */
export interface InputKeys {
  /** the manifest's facts as pulled by this reference: repository, digest and tag */
  artifact: string;
  /** its trust facts: repository and digest */
  trust: string;
  /** who asks, in this namespace */
  identity: string;
}

export function inputKeys(q: Question): InputKeys {
  const trust = `${q.repository}@${q.digest}`;
  return { artifact: `${trust}:${q.tag ?? ''}`, trust, identity: `${q.principal.kind}:${q.principal.id}:${q.namespace}` };
}

/** The request time as RFC 3339; requests that arrive in the same millisecond share the string. */
let lastTime = 0;
let lastIso = new Date(0).toISOString();
function isoTime(ms: number): string {
  if (ms !== lastTime) {
    lastTime = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}
/** The most of a Wasm layer read to find its imports: they come before the code. */
const maxWasmBytes = 16 * 1024 * 1024;
const trustTtlMs = 2000;
const identityTtlMs = 5000;
/** ns.costThisMonth is read again at most this often, on push too: it sums a month of usage */
export const costTtlMs = 60_000;

type Artifact = PolicyInput['artifact'];
/** A cached value, or the read that will give it; `value` is set once the read has resolved. */
type Stamped<T> = { at: number; value?: T; pending: Promise<T> };

/**
 * The cached value when it is fresh (or the read under way), else undefined. No closure is made
 * for the read on a hit, as passing one to a lookup would on every decision.
 */
function hit<T>(map: BoundedMap<string, Stamped<T>>, key: string, ttl: number, now: number): T | Promise<T> | undefined {
  const entry = map.get(key);
  if (entry === undefined || !(now - entry.at < ttl)) return undefined;
  return entry.value !== undefined ? entry.value : entry.pending;
}

export class InputBuilder {
  private readonly meta: MetaStore;
  private readonly blobs: BlobStore;
  private readonly artifacts = new BoundedMap<string, Stamped<Artifact>>(4096);
  private readonly trusts = new BoundedMap<string, Stamped<PolicyInput['trust']>>(4096);
  private readonly namespaces = new BoundedMap<string, Stamped<PolicyInput['ns']>>(1024);
  private readonly identities = new BoundedMap<string, Stamped<{ teams: string[]; roles: string[] }>>(4096);
  private readonly costs = new BoundedMap<string, Stamped<number>>(1024);
  private readonly model: PriceModel | undefined;

  /** `model`: the price model ns.costThisMonth is priced by; without one it is 0 */
  constructor(meta: MetaStore, blobs: BlobStore, model?: PriceModel) {
    this.meta = meta;
    this.blobs = blobs;
    this.model = model;
  }

  /**
   * The input, with the sections in `reads` built (the others empty but present). When every
   * section it needs is cached it is built at once, without a promise: the pull path's budget
   * is a few microseconds, and each await costs some. `keys` are the question's cache keys
   * (inputKeys), which the policy service keeps per request shape so that a pull builds and
   * hashes no key string.
   */
  build(q: Question, reads: ReadonlySet<Section>, keys: InputKeys = inputKeys(q)): PolicyInput | Promise<PolicyInput> {
    const fresh = q.action === 'push'; // a push decides on what it is about to change: no cache for the namespace
    const now = q.time;
    const artifact = reads.has('artifact')
      ? (hit(this.artifacts, keys.artifact, Infinity, now) ?? this.load(this.artifacts, keys.artifact, now, () => this.readArtifact(q)))
      : emptyArtifact(q);
    const trust = reads.has('trust')
      ? (hit(this.trusts, keys.trust, trustTtlMs, now) ?? this.load(this.trusts, keys.trust, now, () => this.trust(q)))
      : emptyTrust();
    const ns = reads.has('ns')
      ? (hit(this.namespaces, q.namespace, fresh ? 0 : trustTtlMs, now) ?? this.load(this.namespaces, q.namespace, now, () => this.namespace(q.namespace, now)))
      : emptyNamespace(q.namespace);
    const who = reads.has('request')
      ? (hit(this.identities, keys.identity, identityTtlMs, now) ?? this.load(this.identities, keys.identity, now, () => this.identity(q)))
      : undefined;
    if (artifact instanceof Promise || trust instanceof Promise || ns instanceof Promise || who instanceof Promise)
      return Promise.all([artifact, trust, ns, who]).then(([a, t, n, w]) => this.assemble(q, a, t, n, w));
    return this.assemble(q, artifact, trust, ns, who);
  }

  private assemble(
    q: Question,
    artifact: Artifact,
    trust: PolicyInput['trust'],
    ns: PolicyInput['ns'],
    who: { teams: string[]; roles: string[] } | undefined,
  ): PolicyInput {
    return {
      version: inputVersion,
      action: q.action,
      artifact,
      trust,
      ns,
      request: {
        repository: q.repository,
        identity: { name: q.principal.name, kind: q.principal.kind, admin: q.principal.admin, teams: who?.teams ?? [], roles: who?.roles ?? [] },
        tokenKind: q.tokenKind,
        userAgent: q.userAgent,
        sourceAddress: q.sourceAddress,
        time: isoTime(q.time),
      },
    };
  }

  /** Drops what is cached about a namespace (a setting changed) or everything. */
  forget(namespace?: string): void {
    if (namespace === undefined) {
      this.namespaces.clear();
      this.costs.clear();
      this.identities.clear();
      this.trusts.clear();
    } else this.namespaces.delete(namespace);
  }

  /** Starts the read of an entry that is missing or stale; everyone asking meanwhile shares it. */
  private load<T>(map: BoundedMap<string, Stamped<T>>, key: string, now: number, read: () => Promise<T>): Promise<T> {
    const entry: Stamped<T> = {
      at: now,
      pending: read().then((value) => {
        entry.value = value;
        return value;
      }),
    };
    map.set(key, entry);
    entry.pending.catch(() => map.delete(key));
    return entry.pending;
  }

  private async readArtifact(q: Question): Promise<Artifact> {
    const manifest = parseJson(q.manifest.content);
    const config = record(manifest.config);
    const layers = list(manifest.layers).map((l) => ({ mediaType: text(l.mediaType), digest: text(l.digest), size: num(l.size) }));
    const annotations = strings(manifest.annotations);
    const index = list(manifest.manifests);
    let labels: Record<string, string> = {};
    let created = annotations['org.opencontainers.image.created'] ?? '';
    let platforms = index.map((m) => platformOf(record(m.platform)));
    const configDigest = text(config.digest);
    if (isImageConfig(text(config.mediaType)) && num(config.size) <= 1024 * 1024) {
      const image = await this.readJsonBlob(configDigest);
      if (image) {
        labels = strings(record(image.config).Labels);
        created ||= text(image.created);
        platforms = [platformOf(image)];
      }
    }
    const size = q.manifest.content.byteLength + num(config.size) + layers.reduce((n, l) => n + l.size, 0);
    const wasmLayer = layers.find((l) => isWasm(l.mediaType));
    return {
      repository: q.repository,
      namespace: q.namespace,
      digest: q.digest,
      tag: q.tag ?? '',
      mediaType: q.manifest.mediaType,
      artifactType: text(manifest.artifactType) || text(config.mediaType),
      size: index.length > 0 ? q.manifest.content.byteLength : size,
      labels,
      annotations,
      created,
      platforms,
      layers,
      subject: text(record(manifest.subject).digest),
      wasm: wasmLayer ? await this.wasmOf(wasmLayer.digest) : { component: false, imports: [], exports: [], complete: false },
    };
  }

  private async readJsonBlob(digest: string): Promise<Record<string, unknown> | undefined> {
    const bytes = await this.readBlob(digest, 1024 * 1024);
    return bytes ? parseJson(bytes) : undefined;
  }

  private async wasmOf(digest: string): Promise<Artifact['wasm']> {
    const bytes = await this.readBlob(digest, maxWasmBytes);
    return bytes ? readWasmInterface(bytes) : { component: false, imports: [], exports: [], complete: false };
  }

  private readBlob(digest: string, limit: number): Promise<Uint8Array | undefined> {
    return readBlobBytes(this.blobs, digest, limit);
  }

  private async trust(q: Question): Promise<PolicyInput['trust']> {
    const attached = await this.meta.trust.artifactsFor(q.repository, q.digest);
    const signatures = attached.filter((a) => a.kind === 'signature').map(signatureOf);
    const attestations = attached.filter((a) => a.kind === 'attestation').map(attestationOf);
    const sbomArtifact = attached.find((a) => a.kind === 'sbom') ?? attached.find((a) => a.kind === 'attestation' && a.details?.sbom);
    const stored = sbomArtifact ? await this.meta.trust.getSbom(q.repository, sbomArtifact.digest) : undefined;
    if (!stored) return { signatures, attestations, sbom: emptySbom() };
    const components = (stored.components as Record<string, unknown>[]).slice(0, maxComponents).map((c) => ({
      name: text(c.name),
      version: text(c.version),
      purl: text(c.purl),
      licenses: Array.isArray(c.licenses) ? c.licenses.filter((l): l is string => typeof l === 'string') : [],
    }));
    const licenses = [...new Set(components.flatMap((c) => c.licenses))];
    return { signatures, attestations, sbom: { present: true, format: stored.format, componentCount: stored.components.length, licenses, components } };
  }

  private async namespace(name: string, now: number): Promise<PolicyInput['ns']> {
    const [settings, storedBytes, budget, costThisMonth] = await Promise.all([
      this.meta.accounts.getNamespace(name),
      this.meta.storedBytes(name),
      this.meta.cost.getBudget('namespace', name),
      this.costThisMonth(name, now),
    ]);
    return { name, storedBytes, quotaBytes: settings?.quotaBytes ?? 0, labels: settings?.labels ?? {}, budget: budget?.monthly ?? 0, costThisMonth };
  }

  /** The namespace's cost this month, cached for costTtlMs (a month of usage is several queries). */
  private costThisMonth(name: string, now: number): number | Promise<number> {
    const model = this.model;
    if (!model || !pricesAnything(model)) return 0;
    const month = monthOf(now);
    const cached = hit(this.costs, name, costTtlMs, now);
    // a cached figure of last month is not this month's
    if (cached !== undefined && monthOf(this.costs.get(name)!.at).start === month.start) return cached;
    return this.load(this.costs, name, now, () => costOf(this.meta.cost, model, { since: month.start, until: month.end, now }, [name]));
  }

  private async identity(q: Question): Promise<{ teams: string[]; roles: string[] }> {
    const p = q.principal;
    if (p.kind === 'anonymous') return { teams: [], roles: [] };
    const teamIds = p.kind === 'user' ? await this.meta.accounts.teamsOf(p.id) : [];
    const teams = teamIds.length > 0 ? (await this.meta.accounts.listTeams()).filter((t) => teamIds.includes(t.id)).map((t) => t.name) : [];
    const principals = [{ kind: p.kind, id: p.id } as const, ...teamIds.map((id) => ({ kind: 'team' as const, id }))];
    const roles = [...new Set(await this.meta.accounts.rolesIn(q.namespace, principals))];
    return { teams, roles };
  }
}

/** A keyless signer is stored as "SAN (issuer URL)": the input gives them apart. */
function signatureOf(a: TrustArtifact): PolicyInput['trust']['signatures'][number] {
  const keyless = a.signer ? /^(.*) \(issuer (.*)\)$/.exec(a.signer) : null;
  const verified = a.verified === true;
  return {
    format: a.format,
    signer: verified ? (keyless?.[1] ?? a.signer ?? '') : '',
    issuer: verified && keyless?.[2] && keyless[2] !== 'unknown' ? keyless[2] : '',
    verified,
    code: a.status === 'pending' ? 'pending' : (a.code ?? ''),
  };
}

function attestationOf(a: TrustArtifact): PolicyInput['trust']['attestations'][number] {
  const details = a.details ?? {};
  const provenance = record(details.provenance);
  const verified = a.verified === true;
  return {
    predicateType: text(details.predicateType),
    builderId: text(provenance.builderId),
    sourceRepository: text(provenance.sourceRepository),
    signer: verified ? (a.signer ?? '') : '',
    verified,
  };
}

const emptyArtifact = (q: Question): Artifact => ({
  repository: q.repository,
  namespace: q.namespace,
  digest: q.digest,
  tag: q.tag ?? '',
  mediaType: q.manifest.mediaType,
  artifactType: '',
  size: q.manifest.content.byteLength,
  labels: {},
  annotations: {},
  created: '',
  platforms: [],
  layers: [],
  subject: '',
  wasm: { component: false, imports: [], exports: [], complete: false },
});
const emptySbom = (): PolicyInput['trust']['sbom'] => ({ present: false, format: '', componentCount: 0, licenses: [], components: [] });
const emptyTrust = (): PolicyInput['trust'] => ({ signatures: [], attestations: [], sbom: emptySbom() });
const emptyNamespace = (name: string): PolicyInput['ns'] => ({ name, storedBytes: 0, quotaBytes: 0, labels: {}, budget: 0, costThisMonth: 0 });

const isImageConfig = (t: string) => t === 'application/vnd.oci.image.config.v1+json' || t === 'application/vnd.docker.container.image.v1+json';
const isWasm = (t: string) => t === 'application/wasm' || t.startsWith('application/vnd.wasm.');

function parseJson(bytes: Uint8Array): Record<string, unknown> {
  try {
    return record(JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')));
  } catch {
    return {};
  }
}
function record(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
function list(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.map(record) : [];
}
const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
/** A map of the string values; fromEntries defines own properties, so a `__proto__` key is a key like any other. */
function strings(v: unknown): Record<string, string> {
  return Object.fromEntries(Object.entries(record(v)).filter((e): e is [string, string] => typeof e[1] === 'string'));
}
const platformOf = (p: Record<string, unknown>) => ({ os: text(p.os), architecture: text(p.architecture), variant: text(p.variant) });
