/**
 * The policy service's pull-path fast path (src/policy/service.ts): a decision whose input is
 * cached and whose policies all answer synchronously comes without a promise, found through the
 * request's shape instead of key strings. These check that it still does all the slow path did:
 * log audit-mode denials, refuse on enforced ones, record each distinct input once per hour,
 * follow a reloaded policy set, and hand over to a promise when an engine answers with one.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { DecisionRecord, RecordedInput, StoredPolicy } from '../../src/meta/policy.ts';
import type { CompiledPolicy, Outcome } from '../../src/policy/engine.ts';
import type { PolicyInput } from '../../src/policy/input-schema.ts';
import { PolicyService, type Answer, type Question } from '../../src/policy/service.ts';

const hour = 3600_000;
const digest = `sha256:${'a'.repeat(64)}`;
const content = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 2 },
    layers: [],
    annotations: { team: 'blue' },
  }),
);

function cel(name: string, deny: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, deny, actions: ['pull'], message: `${name} says no to {{ request.identity.name }}`, ...extra };
}

/** A service on a metadata store that holds only policies, and records what it is asked to write. */
async function service(docs: Record<string, unknown>[], options: { opa?: (doc: { name: string }) => CompiledPolicy } = {}) {
  let revision = 1;
  let stored: StoredPolicy[] = [];
  const setPolicies = (list: Record<string, unknown>[]) => {
    stored = list.map((document) => ({
      name: document.name as string,
      version: 1,
      namespace: null,
      document,
      source: '',
      createdBy: 'test',
      createdAt: 0,
      deleted: false,
    }));
    revision++;
  };
  setPolicies(docs);
  const signatures: string[] = [];
  const labels: Record<string, string> = {};
  const roles = ['reader'];
  const decisions: DecisionRecord[] = [];
  const inputs: RecordedInput[] = [];
  const bundleManifest = JSON.stringify({ layers: [{ digest: `sha256:${'b'.repeat(64)}`, size: 4 }] });
  const meta = {
    policy: {
      policyRevision: async () => revision,
      listPolicies: async () => stored,
      recordDecisions: async (d: DecisionRecord[]) => void decisions.push(...d),
      recordInputs: async (i: RecordedInput[]) => void inputs.push(...i),
      pruneDecisions: async () => {},
    },
    trust: {
      artifactsFor: async () => signatures.map((signer) => ({ kind: 'signature', format: 'cosign', signer, verified: true })),
      getSbom: async () => undefined,
    },
    accounts: {
      getNamespace: async () => ({ quotaBytes: 0, labels: { ...labels } }),
      teamsOf: async () => [],
      listTeams: async () => [],
      rolesIn: async () => [...roles],
    },
    storedBytes: async () => 0,
    cost: { getBudget: async () => undefined, usage: async () => [] },
    getManifest: async () => ({ content: Buffer.from(bundleManifest) }),
  };
  const blobs = { read: async () => Readable.from([Buffer.from('wasm')]) };
  const log = { info() {}, warn() {}, error() {}, debug() {} };
  const svc = new PolicyService({
    meta: meta as never,
    blobs: blobs as never,
    log: log as never,
    settings: { reloadMs: 3600_000, retentionMs: 3600_000, recordInputs: true },
    ...(options.opa ? { opa: async (doc) => options.opa!(doc) } : {}),
  });
  await svc.reload(true);
  return {
    svc,
    decisions,
    inputs,
    /** who has signed the artifact, as the trust store says (read again after two seconds) */
    signatures,
    /** the namespace's labels (read again after two seconds, or when namespaceChanged says so) */
    labels,
    /** the roles every identity has in the namespace (read again after five seconds) */
    roles,
    /** replaces the saved policies and reloads, as a save on any replica would */
    async apply(list: Record<string, unknown>[]) {
      setPolicies(list);
      await svc.reload();
    },
  };
}

const alice = { kind: 'user' as const, id: 'u1', name: 'alice', admin: false };
const bob = { kind: 'user' as const, id: 'u2', name: 'bob', admin: false };

function question(time: number, principal: Question['principal'] = alice, overrides: Partial<Question> = {}): Question {
  return {
    action: 'pull',
    // fresh strings each time, as a request's parsed URL and a database row give them
    repository: ['team', 'app'].join('/'),
    namespace: 'team',
    digest: `sha256:${'a'.repeat(64)}`,
    tag: ['v', '1'].join(''),
    manifest: { mediaType: 'application/vnd.oci.image.manifest.v1+json', content },
    principal,
    tokenKind: 'jwt',
    userAgent: 'test',
    sourceAddress: '127.0.0.1',
    time,
    ...overrides,
  };
}

describe('policy decisions on a cached input', () => {
  it('come without a promise once the input is cached, and answer as the first one did', async () => {
    const { svc } = await service([cel('no-red', 'artifact.annotations["team"] == "red"'), cel('not-bob', 'request.identity.name == "bob"')]);
    const first = svc.decide(question(hour));
    expect(first).toBeInstanceOf(Promise); // the artifact's facts and who asks are read first
    expect(await first).toEqual({ allowed: true });
    const again = svc.decide(question(hour + 1));
    expect(again).not.toBeInstanceOf(Promise);
    expect(again).toEqual({ allowed: true });
    // another identity: its roles are read once, then it is answered at once too
    expect(await svc.decide(question(hour + 2, bob))).toEqual({ allowed: false, message: 'not-bob says no to bob' });
    expect(svc.decide(question(hour + 3, bob))).toEqual({ allowed: false, message: 'not-bob says no to bob' });
    expect(svc.decide(question(hour + 4))).toEqual({ allowed: true });
    await svc.stop();
  });

  it('still log every audit-mode denial, and the enforced refusal, in order', async () => {
    const { svc, decisions } = await service([
      cel('audited', 'true', { mode: 'audit' }),
      cel('enforced', 'request.identity.name == "bob"'),
      cel('allows', 'false'),
      cel('dry', 'true', { mode: 'dry-run' }),
    ]);
    await svc.decide(question(hour));
    const cached = svc.decide(question(hour + 1, bob));
    const answer = cached instanceof Promise ? await cached : cached;
    expect(answer).toEqual({ allowed: false, message: 'enforced says no to bob' });
    expect(svc.decide(question(hour + 2, bob))).toEqual(answer); // cached now
    await svc.flush();
    const seen = decisions.map((d) => [d.policy, d.actor, d.result, d.enforced, d.at]);
    expect(seen).toEqual([
      ['audited', 'alice', 'deny', false, hour],
      ['dry', 'alice', 'deny', false, hour],
      ['audited', 'bob', 'deny', false, hour + 1],
      ['enforced', 'bob', 'deny', true, hour + 1],
      ['dry', 'bob', 'deny', false, hour + 1],
      ['audited', 'bob', 'deny', false, hour + 2],
      ['enforced', 'bob', 'deny', true, hour + 2],
      ['dry', 'bob', 'deny', false, hour + 2],
    ]);
    expect(decisions.every((d) => d.latencyMicros >= 0 && d.reference === 'v1' && d.repository === 'team/app')).toBe(true);
    const latency = svc.latency.summary();
    // four policies for alice, four for bob; bob's second pull is the same shape and finds all four kept
    expect(latency.cel?.evaluations).toBe(8);
    await svc.stop();
  });

  it('record each distinct input once per hour, however often it is decided', async () => {
    const { svc, inputs } = await service([cel('allows', 'false')]);
    const decideAll = async (qs: Question[]) => {
      for (const q of qs) {
        const a = svc.decide(q);
        if (a instanceof Promise) await a;
      }
      await new Promise((r) => setTimeout(r, 10)); // the recorded input is built off the request
      await svc.flush();
    };
    // alternating identities, and a tag pull beside a digest pull of the same manifest
    await decideAll([question(hour), question(hour + 1, bob), question(hour + 2), question(hour + 3, bob), question(hour + 4, alice, { tag: undefined })]);
    await decideAll([question(hour + 5), question(2 * hour - 1, bob), question(hour + 6, alice, { tag: undefined })]);
    // (in the order their inputs were built, which is not the order asked)
    const recorded = (from: number) =>
      inputs
        .slice(from)
        .map((i) => `${i.key} ${i.hour}`)
        .sort();
    expect(recorded(0)).toEqual([`pull user:alice team/app@${digest}  1`, `pull user:alice team/app@${digest} v1 1`, `pull user:bob team/app@${digest} v1 1`]);
    expect((inputs.find((i) => i.key.includes('bob'))?.input as PolicyInput).request.identity).toMatchObject({ name: 'bob', roles: ['reader'] });
    // the next hour: each once again
    await decideAll([question(2 * hour), question(2 * hour + 1), question(2 * hour + 2, bob)]);
    expect(recorded(3)).toEqual([`pull user:alice team/app@${digest} v1 2`, `pull user:bob team/app@${digest} v1 2`]);
    await svc.stop();
  });

  it('follow a reloaded policy set at once', async () => {
    const s = await service([cel('allows', 'false')]);
    await s.svc.decide(question(hour));
    expect(s.svc.decide(question(hour + 1))).toEqual({ allowed: true });
    await s.apply([cel('denies', 'true')]);
    const after = s.svc.decide(question(hour + 2));
    expect(after instanceof Promise ? await after : after).toEqual({ allowed: false, message: 'denies says no to alice' });
    await s.apply([]);
    expect(s.svc.decide(question(hour + 3))).toEqual({ allowed: true });
    await s.svc.stop();
  });

  it('hand over to a promise when an engine answers with one, keeping the order and the first refusal', async () => {
    const order: string[] = [];
    const asyncEngine = (doc: { name: string }): CompiledPolicy => ({
      reads: new Set(['artifact']),
      evaluate: async (): Promise<Outcome> => {
        order.push(doc.name);
        await new Promise((r) => setTimeout(r, 1));
        return doc.name === 'async-denies' ? { deny: true, messages: ['from the worker'] } : { deny: false };
      },
    });
    const opa = (name: string) => ({
      name,
      engine: 'opa-wasm',
      bundle: { repository: 'policies/b', digest: `sha256:${'d'.repeat(64)}` },
      entrypoint: 'custody/deny',
      actions: ['pull'],
      message: `${name} says no`,
    });
    const { svc, decisions } = await service(
      [cel('audited', 'true', { mode: 'audit' }), opa('async-denies'), cel('sync-denies', 'true'), opa('async-allows')],
      {
        opa: asyncEngine,
      },
    );
    await svc.decide(question(hour));
    const answer = svc.decide(question(hour + 1));
    expect(answer).toBeInstanceOf(Promise);
    const settled: Answer = await answer;
    expect(settled.allowed).toBe(false);
    expect(order).toEqual(['async-denies', 'async-allows', 'async-denies', 'async-allows']);
    await svc.flush();
    expect(decisions.filter((d) => d.at === hour + 1).map((d) => [d.policy, d.result, d.enforced])).toEqual([
      ['audited', 'deny', false],
      ['async-denies', 'deny', true],
      ['sync-denies', 'deny', true],
    ]);
    expect(settled).toEqual({ allowed: false, message: decisions.find((d) => d.policy === 'async-denies')?.message });
    expect(Object.keys(svc.latency.summary()).sort()).toEqual(['cel', 'opa-wasm']);
    await svc.stop();
  });

  it('a failing engine follows its failure mode on the fast path too', async () => {
    const throwing = (): CompiledPolicy => ({
      reads: new Set(['artifact']),
      evaluate: () => {
        throw new Error('trapped');
      },
    });
    const opa = (name: string, failure: string) => ({
      name,
      engine: 'opa-wasm',
      failure,
      bundle: { repository: 'policies/b', digest: `sha256:${'d'.repeat(64)}` },
      entrypoint: 'custody/deny',
      actions: ['pull'],
    });
    const open = await service([opa('fails-open', 'open')], { opa: throwing });
    await open.svc.decide(question(hour));
    expect(open.svc.decide(question(hour + 1))).toEqual({ allowed: true });
    const closed = await service([opa('fails-closed', 'closed')], { opa: throwing });
    await closed.svc.decide(question(hour));
    expect(closed.svc.decide(question(hour + 1))).toEqual({
      allowed: false,
      message: 'policy fails-closed failed (trapped); it fails closed: the request is denied',
    });
    await closed.svc.flush();
    await Promise.all([open.svc.stop(), closed.svc.stop()]);
  });

  it('recall the outcome of a CEL policy that reads nothing of the request, and evaluate those that do', async () => {
    const { svc, decisions, signatures } = await service([
      cel('blue-audited', 'artifact.annotations["team"] == "blue"', { mode: 'audit' }),
      cel('unsigned', '!trust.signatures.exists(s, s.verified && s.signer == "release@example.com")'),
      cel('not-bob', 'request.identity.name == "bob"'),
    ]);
    const decide = async (q: Question) => {
      const a = svc.decide(q);
      return a instanceof Promise ? await a : a;
    };
    expect(await decide(question(hour))).toEqual({ allowed: false, message: 'unsigned says no to alice' });
    expect(await decide(question(hour + 1))).toEqual({ allowed: false, message: 'unsigned says no to alice' });
    expect(await decide(question(hour + 2, bob))).toEqual({ allowed: false, message: 'unsigned says no to bob' });
    // two evaluations of the request-free policies (alice's, then none), two of not-bob (alice's
    // second pull is the same shape and agrees on request.identity.name: kept, not evaluated)
    expect(svc.latency.summary().cel?.evaluations).toBe(2 + 2);
    // the recalled audit denial is logged each time, as an evaluated one is
    await svc.flush();
    const audited = decisions.filter((d) => d.policy === 'blue-audited');
    expect(audited.map((d) => [d.actor, d.result, d.enforced])).toEqual([
      ['alice', 'deny', false],
      ['alice', 'deny', false],
      ['bob', 'deny', false],
    ]);
    // only the first was evaluated; the recalled ones took no evaluation
    expect(audited.map((d) => d.latencyMicros > 0)).toEqual([true, false, false]);
    // trust facts are read again after two seconds: a new signature is decided on then, not recalled
    signatures.push('release@example.com');
    expect(await decide(question(hour + 1000))).toEqual({ allowed: false, message: 'unsigned says no to alice' });
    expect(await decide(question(hour + 2500))).toEqual({ allowed: true });
    expect(await decide(question(hour + 2501, bob))).toEqual({ allowed: false, message: 'not-bob says no to bob' });
    // another action on the same artifact is decided anew
    const both = await service([cel('deletes-only', 'action == "delete" && artifact.tag == "v1"', { actions: ['pull', 'delete'] })]);
    expect(await both.svc.decide(question(hour))).toEqual({ allowed: true });
    expect(await both.svc.decide(question(hour + 1, alice, { action: 'delete' }))).toMatchObject({ allowed: false });
    expect(await both.svc.decide(question(hour + 2))).toEqual({ allowed: true });
    await Promise.all([svc.stop(), both.svc.stop()]);
  });

  describe('an outcome kept for a request shape', () => {
    const decide = async (svc: PolicyService, q: Question) => {
      const a = svc.decide(q);
      return a instanceof Promise ? await a : a;
    };
    const evaluations = (svc: PolicyService) => svc.latency.summary().cel?.evaluations ?? 0;

    it('is found again within the hour a policy reads of request.time, and not after', async () => {
      // denies during 01:00-01:59 UTC; the epoch's hour 1 is `hour`
      const { svc, decisions } = await service([cel('one-oclock', 'timestamp(request.time).getHours() == 1', { mode: 'audit' })]);
      await decide(svc, question(hour));
      await decide(svc, question(hour + 1));
      await decide(svc, question(2 * hour - 1));
      expect(evaluations(svc)).toBe(1);
      await decide(svc, question(2 * hour)); // 02:00: another hour, evaluated again
      await decide(svc, question(hour + 5)); // back in hour 1 (a clock set back): evaluated again
      expect(evaluations(svc)).toBe(3);
      await svc.flush();
      // every decision logged as before, the kept ones as recalled ones are (latency 0)
      expect(decisions.map((d) => [d.at, d.result, d.latencyMicros > 0])).toEqual([
        [hour, 'deny', true],
        [hour + 1, 'deny', false],
        [2 * hour - 1, 'deny', false],
        [2 * hour, 'allow', true],
        [hour + 5, 'deny', true],
      ]);
      await svc.stop();
    });

    it('is found again only at the same millisecond for a policy that reads request.time as it is', async () => {
      const { svc } = await service([cel('at-one', 'request.time == "1970-01-01T01:00:00.000Z"')]);
      expect(await decide(svc, question(hour))).toMatchObject({ allowed: false });
      expect(await decide(svc, question(hour))).toMatchObject({ allowed: false });
      expect(evaluations(svc)).toBe(1);
      expect(await decide(svc, question(hour + 1))).toEqual({ allowed: true });
      await svc.stop();
    });

    it('is not found for a request that differs in a field the policy reads', async () => {
      const { svc } = await service([
        cel('no-curl', 'request.userAgent == "curl"'),
        cel('admins-only', '!request.identity.admin'),
        cel('no-ip', 'request.sourceAddress == "203.0.113.7"'),
      ]);
      const admin = { ...alice, admin: true };
      expect(await decide(svc, question(hour, admin))).toEqual({ allowed: true });
      expect(await decide(svc, question(hour + 1, admin, { userAgent: 'curl' }))).toEqual({ allowed: false, message: 'no-curl says no to alice' });
      expect(await decide(svc, question(hour + 2, alice))).toEqual({ allowed: false, message: 'admins-only says no to alice' });
      expect(await decide(svc, question(hour + 3, admin, { sourceAddress: '203.0.113.7' }))).toEqual({ allowed: false, message: 'no-ip says no to alice' });
      expect(await decide(svc, question(hour + 4, admin))).toEqual({ allowed: true });
      // a field no policy reads (the token kind) changes nothing: all three kept
      const before = evaluations(svc);
      expect(await decide(svc, question(hour + 5, admin, { tokenKind: 'password' }))).toEqual({ allowed: true });
      expect(evaluations(svc)).toBe(before);
      await svc.stop();
    });

    it('is not found once the namespace settings changed', async () => {
      const { svc, labels } = await service([cel('frozen', '"frozen" in ns.labels')]);
      expect(await decide(svc, question(hour))).toEqual({ allowed: true });
      expect(await decide(svc, question(hour + 1))).toEqual({ allowed: true });
      labels.frozen = 'true';
      svc.namespaceChanged('team');
      expect(await decide(svc, question(hour + 2))).toEqual({ allowed: false, message: 'frozen says no to alice' });
      await svc.stop();
    });

    it('is not found once the roles of who asks were read again', async () => {
      const { svc, roles } = await service([cel('banned', '"banned" in request.identity.roles')]);
      expect(await decide(svc, question(hour))).toEqual({ allowed: true });
      roles.push('banned');
      expect(await decide(svc, question(hour + 1000))).toEqual({ allowed: true }); // who asks is cached five seconds, as before
      expect(await decide(svc, question(hour + 6000))).toEqual({ allowed: false, message: 'banned says no to alice' });
      await svc.stop();
    });

    it('is not found for a tag that moved to another manifest', async () => {
      const { svc } = await service([cel('no-red', 'artifact.annotations["team"] == "red"')]);
      expect(await decide(svc, question(hour))).toEqual({ allowed: true });
      const red = Buffer.from(
        JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [], annotations: { team: 'red' } }),
      );
      const moved = { digest: `sha256:${'f'.repeat(64)}`, manifest: { mediaType: 'application/vnd.oci.image.manifest.v1+json', content: red } };
      expect(await decide(svc, question(hour + 1, alice, moved))).toEqual({ allowed: false, message: 'no-red says no to alice' });
      expect(await decide(svc, question(hour + 2))).toEqual({ allowed: true });
      await svc.stop();
    });
  });
});
