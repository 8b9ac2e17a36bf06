/**
 * The policy service: holds the compiled policies every replica evaluates, decides a push, pull
 * or delete in the request, and keeps the decision log and the recorded inputs that `simulate`
 * replays. Policies live in meta.policy; each replica reloads when the store's revision moves,
 * so a policy saved on one replica decides on all of them within `reloadMs`.
 *
 * The pull path pays only for what applies: with no policy for the action and repository, a
 * decision is a map lookup. Otherwise the input is built with only the sections the applicable
 * policies read (src/policy/input.ts caches what does not change per request), a CEL policy's
 * outcome is reused while what it reads is the same (Recall, Memo), decisions are written to the
 * log in batches off the request, and an input is recorded once per identity, artifact and hour.
 */
import type { FastifyBaseLogger } from 'fastify';
import { BoundedMap } from '../bounded-map.ts';
import type { MetaStore } from '../meta/metastore.ts';
import type { DecisionRecord, StoredPolicy } from '../meta/policy.ts';
import type { PriceModel } from '../meta/cost.ts';
import type { BlobStore } from '../storage/blobstore.ts';
import { readPolicy, type OpaPolicyDocument, type PolicyDocument } from './document.ts';
import { PolicyRejected, type CompiledPolicy, type Outcome, type RequestField } from './engine.ts';
import { InputBuilder, inputKeys, type InputKeys, type Question } from './input.ts';
import { sections, type Action, type PolicyInput, type Section } from './input-schema.ts';
import { readBlobBytes } from './blob-bytes.ts';
import { DecisionLatency, type LatencyRing } from './latency.ts';
import { defaultBundleLimits } from './opa/index.ts';
import { scopeMatcher } from './scope.ts';
import { storedArtifacts, type StoredArtifact } from './stored.ts';
import { checkTemplate, renderTemplate } from './template.ts';

export type { Question } from './input.ts';

/** Compiles an OPA Wasm policy from its bundle's bytes (src/policy/opa/). */
export type OpaCompiler = (doc: OpaPolicyDocument, bundle: Uint8Array) => Promise<CompiledPolicy>;

export interface PolicySettings {
  /** how often a replica checks for changed policies */
  reloadMs: number;
  /** how long decisions and recorded inputs are kept */
  retentionMs: number;
  /** record decision inputs for simulate (one per identity, artifact and hour) */
  recordInputs: boolean;
}

export type Answer = { allowed: true } | { allowed: false; message: string };

interface Loaded {
  stored: StoredPolicy;
  doc: PolicyDocument;
  compiled: CompiledPolicy;
  applies: (namespace: string, repository: string) => boolean;
  /** where its engine's evaluation times go */
  latency: LatencyRing;
  /** its outcomes by input sections, for a policy whose outcome depends on them alone (see Recall) */
  recall: Recall | undefined;
  /** how its outcome for a request shape is kept and found again, for a pure policy that says what it reads (see Memo) */
  memo: Memo | undefined;
}

type Applicable = { policies: Loaded[]; reads: Set<Section> };

/**
 * What a decision works out from the shape of a request (action, repository, digest, tag and
 * who asks) rather than from the request itself: the cache keys of its input, the key its input
 * is recorded under, the hour it was last recorded in, and the policies that apply. A pull by
 * the same client of the same artifact finds it again by comparing those strings, without
 * building or hashing a key, which on the pull path cost more than evaluating five CEL policies.
 */
interface Shape {
  action: Action;
  repository: string;
  namespace: string;
  digest: string;
  tag: string | undefined;
  kind: string;
  id: string;
  name: string;
  keys: InputKeys;
  /** the recorded input's key (remember) */
  recordKey: string;
  /** the hour this shape's input was last recorded in (or found recorded) */
  recordedHour: number;
  /** the policy set `applicable` was worked out for */
  loaded: Loaded[] | undefined;
  applicable: Applicable | undefined;
  /** each applicable policy's last outcome for this shape, and what it was worked out from (Memo); dropped with `applicable` */
  kept: (Kept | undefined)[];
}

/** Slots of the shape table (a power of two): a slot holds the last shape that fell in it. */
const shapeSlots = 1024;

const flushMs = 1000;
const allowed: Answer = Object.freeze({ allowed: true });
const maxQueued = 10_000;
const allSections: ReadonlySet<Section> = new Set(sections);

export class PolicyService {
  private readonly meta: MetaStore;
  private readonly blobs: BlobStore;
  private readonly log: FastifyBaseLogger;
  private readonly settings: PolicySettings;
  private readonly opa: OpaCompiler | undefined;
  private readonly now: () => number;
  private readonly inputs: InputBuilder;
  private policies: Loaded[] = [];
  private revision = -1;
  /** the policies that apply to `${action} ${repository}`, and the input sections they read, worked out once per loaded set */
  private applicable = new BoundedMap<string, Applicable>(8192);
  private readonly shapes: (Shape | undefined)[] = new Array<Shape | undefined>(shapeSlots).fill(undefined);
  private decisions: DecisionRecord[] = [];
  private recorded = new BoundedMap<string, true>(65_536);
  private pendingInputs: { key: string; hour: number; at: number; action: string; repository: string; input: PolicyInput }[] = [];
  private timers: NodeJS.Timeout[] = [];
  /** decisions not logged because the queue was full */
  private dropped = 0;
  private reloading: Promise<void> | undefined;
  /** how long evaluations take, per engine (GET /api/v1/policy-stats) */
  readonly latency = new DecisionLatency();

  private readonly onStop: (() => Promise<void>) | undefined;
  private readonly decided: ((record: DecisionRecord, q: Question) => void) | undefined;

  constructor(parts: {
    meta: MetaStore;
    blobs: BlobStore;
    log: FastifyBaseLogger;
    settings: PolicySettings;
    opa?: OpaCompiler;
    now?: () => number;
    /** the price model ns.costThisMonth is priced by (insight.cost) */
    cost?: PriceModel;
    /** run last when stopping (the OPA worker pool's close) */
    onStop?: () => Promise<void>;
    /** told of each decision the log records, with its question (usage events); must not throw */
    decided?: (record: DecisionRecord, q: Question) => void;
  }) {
    this.onStop = parts.onStop;
    this.decided = parts.decided;
    this.meta = parts.meta;
    this.blobs = parts.blobs;
    this.log = parts.log;
    this.settings = parts.settings;
    this.opa = parts.opa;
    this.now = parts.now ?? Date.now;
    this.inputs = new InputBuilder(parts.meta, parts.blobs, parts.cost);
  }

  async start(): Promise<void> {
    await this.reload();
    const every = (ms: number, run: () => Promise<unknown>, what: string) => {
      const t = setInterval(() => void run().catch((err: unknown) => this.log.error({ err }, what)), ms);
      t.unref();
      this.timers.push(t);
    };
    // Both local to this process: its copy of the policies, and the decisions it has buffered.
    // Pruning the shared log is prune(), which buildApp schedules once per interval across replicas.
    every(this.settings.reloadMs, () => this.reload(), 'policy reload failed');
    every(flushMs, () => this.flush(), 'writing the policy decision log failed');
  }

  /** Deletes logged decisions and recorded inputs past the retention; how many decisions went. */
  prune(): Promise<number> {
    return this.meta.policy.pruneDecisions(this.now() - this.settings.retentionMs);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.flush().catch((err: unknown) => this.log.error({ err }, 'writing the policy decision log failed'));
    await Promise.all(this.policies.map(async (p) => p.compiled.close?.()));
    await this.onStop?.();
  }

  /** Loads the policies again if any changed (here or on another replica). */
  reload(force = false): Promise<void> {
    this.reloading ??= this.load(force).finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  private async load(force: boolean): Promise<void> {
    const revision = await this.meta.policy.policyRevision();
    if (!force && revision === this.revision) return;
    const loaded: Loaded[] = [];
    for (const stored of await this.meta.policy.listPolicies()) {
      try {
        const doc = readPolicy(stored.document);
        const compiled = await this.compile(doc);
        loaded.push({ stored, doc, compiled, applies: scopeMatcher(doc), ...this.measure(doc, compiled) });
      } catch (err) {
        // Saved policies were checked when saved; one that no longer compiles (its bundle was
        // deleted) must not take the others down. It fails as its failure mode says.
        this.log.error({ err, policy: stored.name, version: stored.version }, 'a policy could not be loaded');
        const message = err instanceof Error ? err.message : String(err);
        const failing: CompiledPolicy = {
          reads: new Set(),
          evaluate: () => {
            throw new Error(`the policy could not be loaded: ${message}`);
          },
        };
        const doc = stored.document as PolicyDocument;
        loaded.push({ stored, doc, compiled: failing, applies: safeScope(doc), latency: this.latency.ring(doc.engine), recall: undefined, memo: undefined });
      }
    }
    const old = this.policies;
    this.policies = loaded;
    this.applicable = new BoundedMap(8192);
    this.revision = revision;
    this.inputs.forget();
    await Promise.all(old.map(async (p) => p.compiled.close?.()));
  }

  /** Where a loaded policy's evaluation times go, and whether its outcomes can be recalled. */
  private measure(doc: PolicyDocument, compiled: CompiledPolicy): { latency: LatencyRing; recall: Recall | undefined; memo: Memo | undefined } {
    const cel = doc.engine === 'cel';
    return { latency: this.latency.ring(doc.engine), recall: cel ? Recall.for(compiled.reads) : undefined, memo: cel ? Memo.for(compiled) : undefined };
  }

  /**
   * Checks a policy as it would be saved: the document, its message, its code. The document's
   * own `namespace` must be the one given (undefined: registry-wide). Throws PolicyRejected.
   */
  async check(source: unknown): Promise<{ doc: PolicyDocument; compiled: CompiledPolicy }> {
    const doc = readPolicy(source);
    checkTemplate(doc.message);
    return { doc, compiled: await this.compile(doc) };
  }

  private async compile(doc: PolicyDocument): Promise<CompiledPolicy> {
    // loaded with the first CEL policy: cel-js is not needed by a server that has none
    if (doc.engine === 'cel') return (await import('./cel.ts')).compileCel(doc);
    if (!this.opa) throw new PolicyRejected('OPA Wasm policies are not available on this server');
    return this.opa(doc, await this.bundle(doc));
  }

  /** The bundle an OPA policy names: the one layer of a manifest pushed to this registry. */
  private async bundle(doc: OpaPolicyDocument): Promise<Uint8Array> {
    const { repository, digest } = doc.bundle;
    const manifest = await this.meta.getManifest(repository, digest);
    if (!manifest) throw new PolicyRejected(`bundle: no manifest ${digest} in repository ${repository}; push the bundle first`);
    const parsed = JSON.parse(Buffer.from(manifest.content).toString('utf8')) as { layers?: { digest?: string; size?: number }[] };
    const layer = parsed.layers?.length === 1 ? parsed.layers[0] : undefined;
    if (!layer?.digest || typeof layer.size !== 'number')
      throw new PolicyRejected('bundle: the manifest must have exactly one layer, the bundle (bundle.tar.gz or policy.wasm)');
    // the OPA engine's own limit (src/policy/opa/bundle.ts) is checked again on the bytes
    if (layer.size > defaultBundleLimits.compressedBytes) throw new PolicyRejected(`bundle: a bundle is at most ${defaultBundleLimits.compressedBytes} bytes`);
    const bytes = await readBlobBytes(this.blobs, layer.digest, layer.size + 1);
    if (!bytes) throw new PolicyRejected(`bundle: its layer ${layer.digest.slice(0, 80)} is not stored; push the bundle again`);
    return bytes;
  }

  /** A namespace's settings changed (quota, labels): its cached section is read again at the next decision on this replica. */
  namespaceChanged(namespace: string): void {
    this.inputs.forget(namespace);
  }

  /** The whole input document a request would be decided on (for `custody policy test`). */
  async input(q: Question): Promise<PolicyInput> {
    return this.inputs.build(q, allSections);
  }

  /** The shape of a request (see Shape): the one in its slot if it is the same, else a new one in its place. */
  private shapeOf(q: Question): Shape {
    const d = q.digest;
    const n = d.length;
    // A digest's last characters are hex of a hash: spread enough to pick a slot by.
    const slot =
      (d.charCodeAt(n - 1) * 961 +
        d.charCodeAt(n - 2) * 31 +
        d.charCodeAt(n - 3) +
        q.repository.length * 7 +
        (q.tag?.length ?? 0) * 3 +
        q.principal.name.length) &
      (shapeSlots - 1);
    const s = this.shapes[slot];
    const p = q.principal;
    if (
      s !== undefined &&
      s.digest === d &&
      s.repository === q.repository &&
      s.tag === q.tag &&
      s.action === q.action &&
      s.namespace === q.namespace &&
      s.kind === p.kind &&
      s.id === p.id &&
      s.name === p.name
    )
      return s;
    const shape: Shape = {
      action: q.action,
      repository: q.repository,
      namespace: q.namespace,
      digest: d,
      tag: q.tag,
      kind: p.kind,
      id: p.id,
      name: p.name,
      keys: inputKeys(q),
      recordKey: `${q.action} ${p.kind}:${p.name} ${q.repository}@${d} ${q.tag ?? ''}`,
      recordedHour: NaN,
      loaded: undefined,
      applicable: undefined,
      kept: [],
    };
    this.shapes[slot] = shape;
    return shape;
  }

  /** The policies that decide this action on this repository, and the input sections they read. */
  private policiesFor(q: Question, shape: Shape): Applicable {
    if (shape.loaded === this.policies && shape.applicable !== undefined) return shape.applicable;
    const key = `${q.action} ${q.repository}`;
    let found = this.applicable.get(key);
    if (!found) {
      const policies = this.policies.filter((p) => (p.doc.actions as string[]).includes(q.action) && p.applies(q.namespace, q.repository));
      found = { policies, reads: new Set(policies.flatMap((p) => [...p.compiled.reads])) };
      this.applicable.set(key, found);
    }
    shape.loaded = this.policies;
    shape.applicable = found;
    shape.kept = [];
    return found;
  }

  /**
   * Decides a request. Never throws: a failing policy is answered by its failure mode. The answer
   * comes at once, without a promise, when every input section the policies read is cached and
   * every engine answered synchronously (CEL always does): a pull of a cached artifact then costs
   * no await. OPA Wasm evaluations, and inputs still to be read, give a promise.
   */
  decide(q: Question): Answer | Promise<Answer> {
    const shape = this.shapeOf(q);
    this.remember(q, shape);
    const { policies, reads } = this.policiesFor(q, shape);
    if (policies.length === 0) return allowed;
    let built: PolicyInput | Promise<PolicyInput>;
    try {
      built = this.inputs.build(q, reads, shape.keys);
    } catch (err) {
      return this.unbuilt(policies, err);
    }
    if (built instanceof Promise)
      return built.then(
        (input) => this.evaluate(q, shape, policies, input),
        (err: unknown) => this.unbuilt(policies, err),
      );
    return this.evaluate(q, shape, policies, built);
  }

  /** The answer when the input could not be built: the first enforcing fail-closed policy refuses. */
  private unbuilt(policies: Loaded[], err: unknown): Answer {
    this.log.error({ err }, 'the policy input could not be built');
    const closed = policies.find((p) => p.doc.failure === 'closed' && p.doc.mode === 'enforce');
    return closed ? { allowed: false, message: `policy ${closed.doc.name} could not decide: the registry could not read what it needs` } : { allowed: true };
  }

  /**
   * A policy's outcome without evaluating it: the one kept for this request shape when the input
   * agrees with what it was worked out from (Memo), else the one recalled for these section
   * objects (Recall), which is then kept for the shape too.
   */
  private recalled(q: Question, shape: Shape, i: number, p: Loaded, input: PolicyInput): Outcome | undefined {
    const memo = p.memo;
    const kept = shape.kept[i];
    if (memo !== undefined && kept !== undefined && memo.matches(kept, input, q.time)) return kept.outcome;
    const recalled = p.recall?.get(input);
    if (recalled !== undefined && memo !== undefined) shape.kept[i] = memo.keep(input, q.time, recalled);
    return recalled;
  }

  /** An outcome evaluated: kept for the shape and by its sections, where the policy allows it. */
  private evaluated(q: Question, shape: Shape, i: number, p: Loaded, input: PolicyInput, outcome: Outcome): void {
    p.recall?.set(input, outcome);
    if (p.memo !== undefined) shape.kept[i] = p.memo.keep(input, q.time, outcome);
  }

  /** Evaluates the policies in order, synchronously until an engine answers with a promise. */
  private evaluate(q: Question, shape: Shape, policies: Loaded[], input: PolicyInput): Answer | Promise<Answer> {
    // One clock read between evaluations, not two around each: on the pull path it shows.
    const run: Run = { started: performance.now(), refusal: undefined };
    for (let i = 0; i < policies.length; i++) {
      const p = policies[i] as Loaded;
      const recalled = this.recalled(q, shape, i, p, input);
      if (recalled !== undefined) {
        this.settle(q, p, input, run, recalled, undefined, true);
        continue;
      }
      let evaluated: Outcome | Promise<Outcome>;
      try {
        evaluated = p.compiled.evaluate(input);
      } catch (err) {
        this.settle(q, p, input, run, undefined, failureOf(err));
        continue;
      }
      if (evaluated instanceof Promise) return this.evaluateRest(q, shape, policies, input, run, i, evaluated);
      this.evaluated(q, shape, i, p, input, evaluated);
      this.settle(q, p, input, run, evaluated, undefined);
    }
    return run.refusal === undefined ? allowed : { allowed: false, message: run.refusal };
  }

  /** The rest of `evaluate` from policy `from`, whose evaluation gave `pending`. */
  private async evaluateRest(
    q: Question,
    shape: Shape,
    policies: Loaded[],
    input: PolicyInput,
    run: Run,
    from: number,
    pending: Promise<Outcome>,
  ): Promise<Answer> {
    for (let i = from; i < policies.length; i++) {
      const p = policies[i] as Loaded;
      const recalled = i === from ? undefined : this.recalled(q, shape, i, p, input);
      if (recalled !== undefined) {
        this.settle(q, p, input, run, recalled, undefined, true);
        continue;
      }
      let outcome: Outcome | undefined;
      let failure: string | undefined;
      try {
        const evaluated = i === from ? pending : p.compiled.evaluate(input);
        if (evaluated instanceof Promise) outcome = await evaluated;
        else this.evaluated(q, shape, i, p, input, (outcome = evaluated));
      } catch (err) {
        failure = failureOf(err);
      }
      this.settle(q, p, input, run, outcome, failure);
    }
    return run.refusal === undefined ? allowed : { allowed: false, message: run.refusal };
  }

  /**
   * After one policy's evaluation: its latency, and, unless it is an enforcing policy that allowed,
   * its log entry. A recalled outcome is logged as an evaluated one is, with a latency of 0: it
   * was no evaluation, so it is not in the engine's latency figures, nor is the clock read for it
   * (the next evaluation's time includes the few lookups).
   */
  private settle(q: Question, p: Loaded, input: PolicyInput, run: Run, outcome: Outcome | undefined, failure: string | undefined, recalled = false): void {
    let micros = 0;
    if (!recalled) {
      const ended = performance.now();
      micros = (ended - run.started) * 1000;
      run.started = ended;
      p.latency.add(micros);
    }
    const denied = outcome ? outcome.deny : p.doc.failure === 'closed';
    // The common case, an enforcing policy that allows: nothing to say, nothing to log.
    if (!denied && failure === undefined && p.doc.mode === 'enforce') return;
    const message =
      failure !== undefined
        ? `policy ${p.doc.name} failed (${failure}); it fails ${p.doc.failure === 'closed' ? 'closed: the request is denied' : 'open: the request is allowed'}`
        : denied
          ? renderTemplate(p.doc.message, input, { name: p.doc.name, version: p.stored.version }, outcome?.deny ? outcome.messages : [])
          : '';
    const enforced = denied && p.doc.mode === 'enforce';
    if (enforced && run.refusal === undefined) run.refusal = message;
    const record: DecisionRecord = {
      at: q.time,
      policy: p.doc.name,
      version: p.stored.version,
      mode: p.doc.mode,
      action: q.action,
      repository: q.repository,
      reference: q.tag ?? q.digest,
      result: failure !== undefined ? 'error' : denied ? 'deny' : 'allow',
      message,
      latencyMicros: micros,
      actor: q.principal.name,
      source: q.sourceAddress,
      enforced,
    };
    this.queue(record);
    this.decided?.(record, q);
  }

  /** What waits to be written to the decision log, and what was dropped because too much waited (metrics). */
  get backlog(): { decisions: number; inputs: number; dropped: number } {
    return { decisions: this.decisions.length, inputs: this.pendingInputs.length, dropped: this.dropped };
  }

  private queue(record: DecisionRecord): void {
    if (this.decisions.length >= maxQueued) {
      this.dropped++;
      this.log.warn({ policy: record.policy }, 'the policy decision log is behind; a decision was not logged');
      return;
    }
    this.decisions.push(record);
    if (record.result !== 'allow')
      this.log.info({ policy: record.policy, result: record.result, action: record.action, repository: record.repository }, record.message);
  }

  /**
   * Records the input of a request once per action, identity, artifact and hour, off the request.
   * A shape remembers the hour it was recorded in, so a repeated pull builds no key and looks
   * nothing up; the first of a shape in an hour asks the recorded set, which other shapes (a slot
   * taken over meanwhile) may have filled.
   */
  private remember(q: Question, shape: Shape): void {
    if (!this.settings.recordInputs) return;
    const hour = Math.floor(q.time / 3600_000);
    if (shape.recordedHour === hour) return;
    shape.recordedHour = hour;
    const key = shape.recordKey;
    const seen = `${key} ${hour}`;
    if (this.recorded.get(seen)) return;
    this.recorded.set(seen, true);
    if (this.pendingInputs.length >= maxQueued) return;
    void Promise.resolve(this.inputs.build(q, allSections, shape.keys))
      .then((input) => this.pendingInputs.push({ key, hour, at: q.time, action: q.action, repository: q.repository, input }))
      .catch((err: unknown) => this.log.warn({ err }, 'a policy input could not be recorded'));
  }

  /** Writes queued decisions and inputs (every second, and when stopping). */
  async flush(): Promise<void> {
    const decisions = this.decisions.splice(0);
    const inputs = this.pendingInputs.splice(0);
    await this.meta.policy.recordDecisions(decisions);
    await this.meta.policy.recordInputs(inputs);
  }

  /**
   * Runs a policy that is not (or not yet) saved against the artifacts stored now (each tag, and
   * each manifest no tag points at, by digest), as if each were pushed, pulled or deleted now by
   * `asker`, and against the inputs recorded over the last `days`. Returns what it would deny,
   * and why.
   */
  async simulate(source: unknown, asker: Question['principal'], options: { days: number; limit: number }): Promise<Simulation> {
    const { doc, compiled } = await this.check(source);
    const policy = { name: doc.name, version: 0 };
    const result: Simulation = { policy: doc.name, artifacts: { evaluated: 0, denied: [] }, recorded: { evaluated: 0, denied: [] }, errors: [] };
    const judge = async (input: PolicyInput, where: SimulatedDenial['where']) => {
      try {
        const outcome = await compiled.evaluate(input);
        if (outcome.deny) return { ...where, message: renderTemplate(doc.message, input, policy, outcome.messages) };
      } catch (err) {
        result.errors.push({ ...where, error: err instanceof Error ? err.message : String(err) });
      }
      return undefined;
    };
    try {
      const applies = scopeMatcher(doc);
      const now = this.now();
      /** Decides one stored manifest for each of the policy's actions; false once the limit is reached. */
      const decideStored = async ({ repository, namespace, record, tag }: StoredArtifact): Promise<boolean> => {
        for (const action of doc.actions) {
          if (result.artifacts.evaluated >= options.limit) return false;
          const q: Question = {
            action,
            repository,
            namespace,
            digest: record.digest,
            ...(tag === undefined ? {} : { tag }),
            manifest: { mediaType: record.mediaType, content: record.content },
            principal: asker,
            tokenKind: 'jwt',
            userAgent: 'custody-simulate',
            sourceAddress: '',
            time: now,
          };
          result.artifacts.evaluated++;
          const denied = await judge(await this.inputs.build(q, compiled.reads), {
            action,
            repository,
            reference: tag ?? record.digest,
            digest: record.digest,
          });
          if (denied) result.artifacts.denied.push(denied);
        }
        return true;
      };
      for await (const stored of storedArtifacts(this.meta, applies)) if (!(await decideStored(stored))) break;
      let after: string | undefined;
      const since = now - options.days * 86400_000;
      while (result.recorded.evaluated < options.limit) {
        const page = await this.meta.policy.recordedInputs(since, { limit: 500, ...(after ? { after } : {}) });
        for (const r of page.inputs) {
          const input = r.input as PolicyInput;
          if (!(doc.actions as string[]).includes(r.action) || !applies(input.artifact.namespace, r.repository)) continue;
          if (result.recorded.evaluated >= options.limit) break;
          result.recorded.evaluated++;
          const denied = await judge(input, {
            action: r.action,
            repository: r.repository,
            reference: input.artifact.tag || input.artifact.digest,
            digest: input.artifact.digest,
            identity: input.request.identity.name,
            at: new Date(r.at).toISOString(),
          });
          if (denied) result.recorded.denied.push(denied);
        }
        if (!page.next) break;
        after = page.next;
      }
    } finally {
      await compiled.close?.();
    }
    return result;
  }
}

export interface SimulatedDenial {
  where: { action: string; repository: string; reference: string; digest: string; identity?: string; at?: string };
}
export interface Simulation {
  policy: string;
  artifacts: { evaluated: number; denied: (SimulatedDenial['where'] & { message: string })[] };
  recorded: { evaluated: number; denied: (SimulatedDenial['where'] & { message: string })[] };
  errors: (SimulatedDenial['where'] & { error: string })[];
}

/**
 * The outcomes of a CEL policy that reads nothing of the request section (who asks, from where,
 * when): it decides on the artifact, its trust facts, the namespace and the action alone, and CEL
 * has no clock, no randomness and no effects, so the same sections give the same outcome. The
 * input builder hands every pull of an artifact the same section objects while they are cached
 * (the artifact's facts for good, trust and namespace facts for two seconds), so an outcome is
 * kept by their identity, in a WeakMap on the first section the policy reads: it goes when the
 * builder drops the object, and a renewed trust or namespace object is a new key. Policies that
 * read the request are evaluated every time; so are OPA ones (their engine reads everything).
 */
class Recall {
  private readonly by: Section;
  private readonly artifact: boolean;
  private readonly trust: boolean;
  private readonly ns: boolean;
  private readonly outcomes = new WeakMap<object, { action: string; artifact: object; trust: object; ns: object; outcome: Outcome }>();

  static for(reads: ReadonlySet<Section>): Recall | undefined {
    if (reads.has('request') || reads.size === 0) return undefined;
    return new Recall(reads);
  }

  private constructor(reads: ReadonlySet<Section>) {
    this.artifact = reads.has('artifact');
    this.trust = reads.has('trust');
    this.ns = reads.has('ns');
    this.by = this.artifact ? 'artifact' : this.trust ? 'trust' : 'ns';
  }

  get(input: PolicyInput): Outcome | undefined {
    const kept = this.outcomes.get(input[this.by]);
    if (
      kept === undefined ||
      kept.action !== input.action ||
      (this.artifact && kept.artifact !== input.artifact) ||
      (this.trust && kept.trust !== input.trust) ||
      (this.ns && kept.ns !== input.ns)
    )
      return undefined;
    return kept.outcome;
  }

  set(input: PolicyInput, outcome: Outcome): void {
    this.outcomes.set(input[this.by], { action: input.action, artifact: input.artifact, trust: input.trust, ns: input.ns, outcome });
  }
}

/** A policy's outcome for a request shape, and what of the input it was worked out from (Memo). */
interface Kept {
  artifact: object;
  trust: object;
  ns: object;
  /** the request fields the policy reads, in its memo's order */
  values: unknown[];
  /** floor(time / the memo's time bucket) */
  bucket: number;
  outcome: Outcome;
}

/**
 * The outcome of a pure policy (CEL) for one request shape (action, repository, digest, tag, who
 * asks), kept for the next request of that shape. It is found again when the input agrees on all
 * the policy reads: the same section objects for the sections it reads (the input builder renews
 * a trust or namespace object when it reads it again, after two seconds, or at once when a
 * namespace's settings change), the same values of the request fields it reads (teams and roles
 * the same lists: the builder renews them with who asks, after five seconds), and a time in the
 * same bucket (the compiler knows `timestamp(request.time).getHours()` changes on the hour: cel.ts,
 * requestReadsOf). A policy that reads the request to the millisecond, the source address or the
 * user agent is kept too, and found again only by a request that agrees on them. A new policy set
 * starts every shape afresh (policiesFor). What it saves is the evaluation alone: the decision is
 * logged as a recalled one (service.settle), the answer and its message are the same.
 */
class Memo {
  private readonly artifact: boolean;
  private readonly trust: boolean;
  private readonly ns: boolean;
  private readonly fields: RequestField[];
  private readonly timeBucketMs: number;

  static for(compiled: CompiledPolicy): Memo | undefined {
    return compiled.request === undefined ? undefined : new Memo(compiled.reads, [...compiled.request.fields], compiled.request.timeBucketMs);
  }

  private constructor(reads: ReadonlySet<Section>, fields: RequestField[], timeBucketMs: number) {
    this.artifact = reads.has('artifact');
    this.trust = reads.has('trust');
    this.ns = reads.has('ns');
    // the time is compared by its bucket, not as a field
    this.fields = fields.filter((f) => f !== 'time');
    this.timeBucketMs = fields.includes('time') ? timeBucketMs : 0;
  }

  private bucket(time: number): number {
    return this.timeBucketMs === 0 ? 0 : Math.floor(time / this.timeBucketMs);
  }

  matches(kept: Kept, input: PolicyInput, time: number): boolean {
    if ((this.artifact && kept.artifact !== input.artifact) || (this.trust && kept.trust !== input.trust) || (this.ns && kept.ns !== input.ns)) return false;
    if (kept.bucket !== this.bucket(time)) return false;
    const fields = this.fields;
    for (let i = 0; i < fields.length; i++) if (kept.values[i] !== requestField(input, fields[i] as RequestField)) return false;
    return true;
  }

  keep(input: PolicyInput, time: number, outcome: Outcome): Kept {
    return {
      artifact: input.artifact,
      trust: input.trust,
      ns: input.ns,
      values: this.fields.map((f) => requestField(input, f)),
      bucket: this.bucket(time),
      outcome,
    };
  }
}

/** A request field's value as Memo compares it: strings and booleans by value, teams and roles by the list. */
function requestField(input: PolicyInput, field: RequestField): unknown {
  const r = input.request;
  switch (field) {
    case 'repository':
      return r.repository;
    case 'identity.name':
      return r.identity.name;
    case 'identity.kind':
      return r.identity.kind;
    case 'identity.admin':
      return r.identity.admin;
    case 'identity.teams':
      return r.identity.teams;
    case 'identity.roles':
      return r.identity.roles;
    case 'tokenKind':
      return r.tokenKind;
    case 'userAgent':
      return r.userAgent;
    case 'sourceAddress':
      return r.sourceAddress;
    case 'time':
      return r.time;
  }
}

/** Where an evaluation has got to: when the last one ended, and the first enforced refusal. */
interface Run {
  started: number;
  refusal: string | undefined;
}

const failureOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

function safeScope(doc: PolicyDocument): (namespace: string, repository: string) => boolean {
  try {
    return scopeMatcher(doc);
  } catch {
    return () => true;
  }
}
