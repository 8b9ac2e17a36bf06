/** The PolicyStore on Kysely: the same queries on SQLite and PostgreSQL. */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Selectable } from 'kysely';
import type { DecisionFilter, DecisionRecord, NewPolicyVersion, PolicyStore, RecordedInput, StoredPolicy } from '../policy.ts';
import type { Database } from './schema.ts';

const toPolicy = (r: Selectable<Database['policies']>): StoredPolicy => ({
  name: r.name,
  version: r.version,
  namespace: r.namespace,
  document: JSON.parse(r.document) as unknown,
  source: r.source,
  createdBy: r.created_by,
  createdAt: r.created_at,
  deleted: r.deleted === 1,
});

const toDecision = (r: Selectable<Database['policy_decisions']>): DecisionRecord => ({
  at: r.at,
  policy: r.policy,
  version: r.version,
  mode: r.mode,
  action: r.action,
  repository: r.repository,
  reference: r.reference,
  result: r.result,
  message: r.message,
  latencyMicros: r.latency_micros,
  actor: r.actor,
  source: r.source,
  enforced: r.enforced === 1,
});

/** A page cursor: the time and id of the last row seen. */
const cursor = (at: number, id: string) => `${at}.${id}`;
function readCursor(value: string | undefined): { at: number; id: string } | undefined {
  if (!value) return undefined;
  const dot = value.indexOf('.');
  const at = Number(value.slice(0, dot));
  return dot > 0 && Number.isSafeInteger(at) ? { at, id: value.slice(dot + 1) } : undefined;
}

export class KyselyPolicyStore implements PolicyStore {
  private readonly db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.db = db;
  }

  async putPolicy(p: NewPolicyVersion): Promise<StoredPolicy> {
    // Two replicas saving the same policy at once: the primary key refuses the second version
    // number, and it tries again with the next one.
    for (let attempt = 0; ; attempt++) {
      const last = await this.db
        .selectFrom('policies')
        .select((eb) => eb.fn.max('version').as('v'))
        .where('name', '=', p.name)
        .executeTakeFirst();
      const row = {
        name: p.name,
        version: Number(last?.v ?? 0) + 1,
        namespace: p.namespace,
        document: JSON.stringify(p.document),
        source: p.source,
        created_by: p.createdBy,
        created_at: Date.now(),
        deleted: 0,
      };
      try {
        await this.db.insertInto('policies').values(row).execute();
        return toPolicy(row);
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  }

  async getPolicy(name: string, version?: number): Promise<StoredPolicy | undefined> {
    let q = this.db.selectFrom('policies').selectAll().where('name', '=', name);
    q = version === undefined ? q.orderBy('version', 'desc').limit(1) : q.where('version', '=', version);
    const row = await q.executeTakeFirst();
    if (!row || (version === undefined && row.deleted === 1)) return undefined;
    return toPolicy(row);
  }

  async policyVersions(name: string): Promise<StoredPolicy[]> {
    return (await this.db.selectFrom('policies').selectAll().where('name', '=', name).orderBy('version', 'desc').execute()).map(toPolicy);
  }

  async listPolicies(): Promise<StoredPolicy[]> {
    const rows = await this.db
      .selectFrom('policies as p')
      .selectAll('p')
      .where('p.version', '=', (eb) =>
        eb
          .selectFrom('policies as q')
          .select((q) => q.fn.max('q.version').as('v'))
          .whereRef('q.name', '=', 'p.name'),
      )
      .where('p.deleted', '=', 0)
      .orderBy('p.name')
      .execute();
    return rows.map(toPolicy);
  }

  async deletePolicy(name: string, deletedBy: string): Promise<boolean> {
    const latest = await this.getPolicy(name);
    if (!latest) return false;
    await this.db
      .insertInto('policies')
      .values({
        name,
        version: latest.version + 1,
        namespace: latest.namespace,
        document: JSON.stringify(latest.document),
        source: latest.source,
        created_by: deletedBy,
        created_at: Date.now(),
        deleted: 1,
      })
      .execute();
    return true;
  }

  async policyRevision(): Promise<number> {
    // Versions only grow and rows are never removed, so their count moves with every change.
    const row = await this.db
      .selectFrom('policies')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  async recordDecisions(records: DecisionRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.db
      .insertInto('policy_decisions')
      .values(
        records.map((r) => ({
          id: randomUUID(),
          at: r.at,
          policy: r.policy,
          version: r.version,
          mode: r.mode,
          action: r.action,
          repository: r.repository,
          reference: r.reference,
          result: r.result,
          message: r.message,
          latency_micros: Math.round(r.latencyMicros),
          actor: r.actor,
          source: r.source,
          enforced: r.enforced ? 1 : 0,
        })),
      )
      .execute();
  }

  async queryDecisions(f: DecisionFilter, page: { limit: number; before?: string }): Promise<{ decisions: DecisionRecord[]; next?: string }> {
    let q = this.db.selectFrom('policy_decisions').selectAll();
    if (f.policy !== undefined) q = q.where('policy', '=', f.policy);
    if (f.result !== undefined) q = q.where('result', '=', f.result);
    if (f.action !== undefined) q = q.where('action', '=', f.action);
    if (f.repository !== undefined) q = q.where('repository', '=', f.repository);
    if (f.namespace !== undefined) {
      const ns = f.namespace;
      q = q.where(sql<boolean>`(repository = ${ns} or (repository >= ${`${ns}/`} and repository < ${`${ns}0`}))`);
    }
    if (f.since !== undefined) q = q.where('at', '>=', f.since);
    if (f.until !== undefined) q = q.where('at', '<', f.until);
    const before = readCursor(page.before);
    if (before) q = q.where((eb) => eb.or([eb('at', '<', before.at), eb.and([eb('at', '=', before.at), eb('id', '<', before.id)])]));
    const rows = await q
      .orderBy('at', 'desc')
      .orderBy('id', 'desc')
      .limit(page.limit + 1)
      .execute();
    const more = rows.length > page.limit;
    const shown = rows.slice(0, page.limit);
    const last = shown.at(-1);
    return { decisions: shown.map(toDecision), ...(more && last ? { next: cursor(last.at, last.id) } : {}) };
  }

  async pruneDecisions(cutoff: number): Promise<number> {
    const r = await this.db.deleteFrom('policy_decisions').where('at', '<', cutoff).executeTakeFirst();
    await this.db.deleteFrom('policy_inputs').where('at', '<', cutoff).execute();
    return Number(r.numDeletedRows);
  }

  async recordInputs(inputs: RecordedInput[]): Promise<void> {
    if (inputs.length === 0) return;
    await this.db
      .insertInto('policy_inputs')
      .values(inputs.map((i) => ({ key: i.key, hour: i.hour, at: i.at, action: i.action, repository: i.repository, input: JSON.stringify(i.input) })))
      .onConflict((c) => c.columns(['key', 'hour']).doNothing())
      .execute();
  }

  async recordedInputs(since: number, page: { limit: number; after?: string }): Promise<{ inputs: RecordedInput[]; next?: string }> {
    let q = this.db.selectFrom('policy_inputs').selectAll().where('at', '>=', since);
    const after = readCursor(page.after);
    if (after) q = q.where((eb) => eb.or([eb('at', '>', after.at), eb.and([eb('at', '=', after.at), eb('key', '>', after.id)])]));
    const rows = await q
      .orderBy('at')
      .orderBy('key')
      .limit(page.limit + 1)
      .execute();
    const shown = rows.slice(0, page.limit);
    const last = shown.at(-1);
    return {
      inputs: shown.map((r) => ({ key: r.key, hour: r.hour, at: r.at, action: r.action, repository: r.repository, input: JSON.parse(r.input) as unknown })),
      ...(rows.length > page.limit && last ? { next: cursor(last.at, last.key) } : {}),
    };
  }
}
