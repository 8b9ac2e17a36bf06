/**
 * The TUF publisher: keeps each namespace's root, targets, snapshot and timestamp current.
 *
 * A check compares the signed tags with the latest targets. When they differ it signs targets
 * N+1, then a snapshot naming it and a timestamp naming that; when they agree, any role with
 * less than half its lifetime left (or signed by a key the latest root no longer lists) gets a
 * new version, and what names it follows. A rotation adds root N+1 with a new key for one role,
 * signed by the old and the new root keys, and the same rule re-signs what that key signs.
 *
 * Every change is one publish() to the shared store; versions are unique there, so when two
 * replicas race the loser stores nothing, re-reads and starts over from the winner's state.
 */
import { isDeepStrictEqual } from 'node:util';
import { Root, Snapshot, Targets, Timestamp, type Key, type TargetFile } from '@tufjs/models';
import { tufRoles, type TufKeyRecord, type TufMetadataRecord, type TufRole, type TufStore } from '../../meta/tuf.ts';
import { BoundedMap } from '../../bounded-map.ts';
import { generateKey, signer, tufKey } from './keys.ts';
import { expiry, metaFileOf, parsePublished, seal, stale, type Published } from './metadata.ts';
import type { SignedTag, SignedTagSource } from './source.ts';
import { targetFiles } from './targets.ts';

export interface TufSettings {
  rootExpirySeconds: number;
  targetsExpirySeconds: number;
  snapshotExpirySeconds: number;
  timestampExpirySeconds: number;
}

export interface PublisherDeps {
  store: TufStore;
  source: SignedTagSource;
  settings: TufSettings;
  /** the clock metadata is signed by, ms since the epoch (injectable for tests) */
  now: () => number;
  /** whether a namespace exists; metadata (and keys) are only made for one that does */
  known: (namespace: string) => Promise<boolean>;
  log?: { warn(obj: object, msg: string): void };
}

export type TufState = { [R in TufRole]: Published<R> };

/** A role's metadata is re-checked at most this often, except timestamp.json which always is. */
const checkIntervalMs = 1000;
/** Old versions kept for clients in the middle of an update (root: every version, always). */
const keep = { targets: 100, snapshot: 100, timestamp: 10 } as const;
const attempts = 5;

interface Change {
  records: TufMetadataRecord[];
  keys: TufKeyRecord[];
  state: TufState;
}

export class TufPublisher {
  private readonly deps: PublisherDeps;
  private readonly settings: TufSettings;
  /** parsed versions by `namespace/role/version` (versions never change once published) */
  private readonly parsed = new BoundedMap<string, Published<TufRole>>(4000);
  /** when each namespace was last checked (monotonic ms) */
  private readonly checked = new BoundedMap<string, number>(10_000);
  /** the check or rotation running for a namespace; a check asked for meanwhile shares it */
  private readonly running = new Map<string, Promise<TufState | undefined>>();

  constructor(deps: PublisherDeps) {
    this.deps = deps;
    this.settings = deps.settings;
  }

  /**
   * The namespace's latest metadata, checked first: always with `fresh: 'now'` (what
   * timestamp.json asks), else at most once a second. Undefined when the namespace is unknown.
   */
  async current(namespace: string, fresh: 'now' | 'throttled'): Promise<TufState | undefined> {
    const last = this.checked.get(namespace);
    if (fresh === 'throttled' && last !== undefined && performance.now() - last < checkIntervalMs) {
      const state = await this.load(namespace);
      if (state) return state;
    }
    return this.exclusive(namespace, () => this.publish(namespace), true);
  }

  /** Gives a role a new key: root N+1 lists it, and what it signs is signed again. */
  async rotate(namespace: string, role: TufRole): Promise<TufState | undefined> {
    return this.exclusive(namespace, () => this.publish(namespace, role), false);
  }

  /** One stored version (for `<N>.<role>.json`); never creates anything. */
  async version(namespace: string, role: TufRole, version: number): Promise<TufMetadataRecord | undefined> {
    return this.deps.store.getVersion(namespace, role, version);
  }

  /** Runs one change per namespace at a time; a check may share one already running. */
  private async exclusive(namespace: string, run: () => Promise<TufState | undefined>, share: boolean): Promise<TufState | undefined> {
    for (;;) {
      const running = this.running.get(namespace);
      if (!running) break;
      if (share) return running;
      await running.catch(() => undefined);
    }
    const promise = run().finally(() => {
      if (this.running.get(namespace) === promise) this.running.delete(namespace);
    });
    this.running.set(namespace, promise);
    return promise;
  }

  private async publish(namespace: string, rotate?: TufRole): Promise<TufState | undefined> {
    for (let attempt = 0; attempt < attempts; attempt++) {
      const now = this.deps.now();
      const state = await this.load(namespace);
      if (!state && !(await this.deps.known(namespace))) return undefined;
      const { files, skipped } = await this.desiredTargets(namespace);
      let change = state ? await this.plan(namespace, state, files, now, rotate) : this.initial(namespace, files, now);
      if (!state && rotate) change = await this.plan(namespace, change.state, files, now, rotate, change);
      if (change.records.length > 0 && !(await this.deps.store.publish(change.records, change.keys))) continue;
      // Said once per new targets version, not on every check.
      if (change.records.some((r) => r.role === 'targets')) {
        for (const { tag, why } of skipped)
          this.deps.log?.warn({ namespace, repository: tag.repository, tag: tag.tag, digest: tag.digest }, `signed tag left out of TUF targets: ${why}`);
      }
      this.remember(change.state);
      this.checked.set(namespace, performance.now());
      await this.prune(namespace, change.records);
      return change.state;
    }
    throw new Error(`TUF metadata of ${namespace} kept changing under this replica; gave up after ${attempts} attempts`);
  }

  /** The latest version of each role, parsed; undefined before the first publish. */
  private async load(namespace: string): Promise<TufState | undefined> {
    const versions = await this.deps.store.latestVersions(namespace);
    if (versions.root === undefined) return undefined;
    const entries = await Promise.all(
      tufRoles.map(async (role) => {
        const version = versions[role];
        const key = `${namespace}/${role}/${version}`;
        const hit = this.parsed.get(key);
        if (hit) return [role, hit] as const;
        const record = version === undefined ? undefined : await this.deps.store.getVersion(namespace, role, version);
        if (!record) throw new Error(`TUF metadata of ${namespace} has no ${role}`);
        return [role, parsePublished(role, record)] as const;
      }),
    );
    const state = Object.fromEntries(entries) as TufState;
    this.remember(state);
    return state;
  }

  private remember(state: TufState): void {
    for (const role of tufRoles) {
      const { record } = state[role];
      this.parsed.set(`${record.namespace}/${role}/${record.version}`, state[role]);
    }
  }

  /** The targets the signed tags call for, and the tags that cannot be targets. */
  private async desiredTargets(namespace: string): Promise<{ files: Record<string, TargetFile>; skipped: { tag: SignedTag; why: string }[] }> {
    const skipped: { tag: SignedTag; why: string }[] = [];
    const files = targetFiles(namespace, await this.deps.source.signedTags(namespace), (tag, why) => skipped.push({ tag, why }));
    return { files, skipped };
  }

  /** Version 1 of everything, with a new key per role. */
  private initial(namespace: string, files: Record<string, TargetFile>, now: number): Change {
    const pairs = Object.fromEntries(tufRoles.map((role) => [role, generateKey()])) as Record<TufRole, ReturnType<typeof generateKey>>;
    const keys = tufRoles.map((role): TufKeyRecord => ({ namespace, role, createdAt: now, ...pairs[role] }));
    const rootExpiry = expiry(now, this.settings.rootExpirySeconds);
    const root = rootWith(
      1,
      '1.0.31',
      rootExpiry.iso,
      Object.fromEntries(tufRoles.map((role) => [role, tufKey(pairs[role].publicKey)])) as Record<TufRole, Key>,
    );
    const sealed = seal(namespace, 'root', root, [signer(pairs.root)], { createdAt: now, expiresAt: rootExpiry.ms });
    const byId = new Map(keys.map((k) => [k.keyId, k]));
    const targets = this.signTargets(namespace, sealed.metadata.signed, byId, 1, files, now);
    const snapshot = this.signSnapshot(namespace, sealed.metadata.signed, byId, 1, targets.record, now);
    const timestamp = this.signTimestamp(namespace, sealed.metadata.signed, byId, 1, snapshot.record, now);
    const state: TufState = { root: sealed, targets, snapshot, timestamp };
    return { records: tufRoles.map((role) => state[role].record), keys, state };
  }

  /** What has to be signed anew, in the order a client reads it: root, targets, snapshot, timestamp. */
  private async plan(namespace: string, state: TufState, desired: Record<string, TargetFile>, now: number, rotate?: TufRole, base?: Change): Promise<Change> {
    const records: TufMetadataRecord[] = base ? [...base.records] : [];
    const newKeys: TufKeyRecord[] = base ? [...base.keys] : [];
    const oldRoot = state.root.metadata.signed;
    // Private keys are read only when something has to be signed.
    let known: Map<string, TufKeyRecord> | undefined;
    const keysFor = async (ids: string[]): Promise<Map<string, TufKeyRecord>> => {
      if (!known) {
        const all = new Set(Object.values(oldRoot.roles).flatMap((r) => r.keyIDs));
        known = new Map([...(await this.deps.store.keys(namespace, [...all])), ...newKeys].map((k) => [k.keyId, k]));
      }
      for (const k of newKeys) known.set(k.keyId, k);
      for (const id of ids) if (!known.has(id)) throw new Error(`TUF key ${id} of ${namespace} is missing from the store`);
      return known;
    };

    let root = state.root;
    if (rotate !== undefined || stale(root.record, now)) {
      const keys = Object.fromEntries(tufRoles.map((role) => [role, roleKey(oldRoot, role)])) as Record<TufRole, Key>;
      if (rotate !== undefined) {
        const pair = generateKey();
        newKeys.push({ namespace, role: rotate, createdAt: now, ...pair });
        keys[rotate] = tufKey(pair.publicKey);
      }
      const rootExpiry = expiry(now, this.settings.rootExpirySeconds);
      const next = rootWith(oldRoot.version + 1, oldRoot.specVersion, rootExpiry.iso, keys);
      // TUF: a new root is signed by a threshold of the old root keys and of the new ones.
      const signerIds = [...new Set([...roleKeys(oldRoot, 'root'), ...roleKeys(next, 'root')])];
      const byId = await keysFor(signerIds);
      root = seal(
        namespace,
        'root',
        next,
        signerIds.map((id) => signer(byId.get(id) as TufKeyRecord)),
        { createdAt: now, expiresAt: rootExpiry.ms },
      );
      records.push(root.record);
    }
    const current = root.metadata.signed;
    const outdated = <R extends TufRole>(p: Published<R>, role: R) =>
      stale(p.record, now) || roleKeys(current, role).some((id) => !(id in p.metadata.signatures));

    let targets = state.targets;
    const changed = !isDeepStrictEqual(targets.metadata.signed.toJSON().targets, Object.fromEntries(Object.entries(desired).map(([p, f]) => [p, f.toJSON()])));
    if (changed || outdated(targets, 'targets')) {
      targets = this.signTargets(namespace, current, await keysFor(roleKeys(current, 'targets')), targets.record.version + 1, desired, now);
      records.push(targets.record);
    }
    let snapshot = state.snapshot;
    if (targets !== state.targets || outdated(snapshot, 'snapshot')) {
      snapshot = this.signSnapshot(namespace, current, await keysFor(roleKeys(current, 'snapshot')), snapshot.record.version + 1, targets.record, now);
      records.push(snapshot.record);
    }
    let timestamp = state.timestamp;
    if (snapshot !== state.snapshot || outdated(timestamp, 'timestamp')) {
      timestamp = this.signTimestamp(namespace, current, await keysFor(roleKeys(current, 'timestamp')), timestamp.record.version + 1, snapshot.record, now);
      records.push(timestamp.record);
    }
    return { records, keys: newKeys, state: { root, targets, snapshot, timestamp } };
  }

  private signTargets(
    namespace: string,
    root: Root,
    keys: Map<string, TufKeyRecord>,
    version: number,
    files: Record<string, TargetFile>,
    now: number,
  ): Published<'targets'> {
    const e = expiry(now, this.settings.targetsExpirySeconds);
    return seal(namespace, 'targets', new Targets({ version, specVersion: root.specVersion, expires: e.iso, targets: files }), signers(root, 'targets', keys), {
      createdAt: now,
      expiresAt: e.ms,
    });
  }

  private signSnapshot(
    namespace: string,
    root: Root,
    keys: Map<string, TufKeyRecord>,
    version: number,
    targets: TufMetadataRecord,
    now: number,
  ): Published<'snapshot'> {
    const e = expiry(now, this.settings.snapshotExpirySeconds);
    const signed = new Snapshot({ version, specVersion: root.specVersion, expires: e.iso, meta: { 'targets.json': metaFileOf(targets) } });
    return seal(namespace, 'snapshot', signed, signers(root, 'snapshot', keys), { createdAt: now, expiresAt: e.ms });
  }

  private signTimestamp(
    namespace: string,
    root: Root,
    keys: Map<string, TufKeyRecord>,
    version: number,
    snapshot: TufMetadataRecord,
    now: number,
  ): Published<'timestamp'> {
    const e = expiry(now, this.settings.timestampExpirySeconds);
    const signed = new Timestamp({ version, specVersion: root.specVersion, expires: e.iso, snapshotMeta: metaFileOf(snapshot) });
    return seal(namespace, 'timestamp', signed, signers(root, 'timestamp', keys), { createdAt: now, expiresAt: e.ms });
  }

  /** Forgets versions no client needs any more (best effort: a failure only leaves them). */
  private async prune(namespace: string, published: TufMetadataRecord[]): Promise<void> {
    for (const r of published) {
      if (r.role === 'root' || r.version <= keep[r.role]) continue;
      try {
        await this.deps.store.prune(namespace, r.role, r.version - keep[r.role] + 1);
      } catch (err) {
        this.deps.log?.warn({ err, namespace, role: r.role }, 'could not prune old TUF metadata');
      }
    }
  }
}

const roleKeys = (root: Root, role: TufRole): string[] => root.roles[role]?.keyIDs ?? [];

/** Each role has one key (threshold 1). */
function roleKey(root: Root, role: TufRole): Key {
  const key = root.keys[roleKeys(root, role)[0] ?? ''];
  if (!key) throw new Error(`root ${root.version} has no ${role} key`);
  return key;
}

function rootWith(version: number, specVersion: string, expires: string, keys: Record<TufRole, Key>): Root {
  const root = new Root({ version, specVersion, expires, consistentSnapshot: true });
  for (const role of tufRoles) root.addKey(keys[role], role);
  return root;
}

function signers(root: Root, role: TufRole, keys: Map<string, TufKeyRecord>) {
  return roleKeys(root, role).map((id) => {
    const key = keys.get(id);
    if (!key) throw new Error(`no private key for TUF key ${id}`);
    return signer(key);
  });
}
