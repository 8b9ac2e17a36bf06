/** The AccountStore on Kysely: the same queries on SQLite and PostgreSQL. */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Selectable } from 'kysely';
import type {
  AccountStore,
  AuditEvent,
  AuditQuery,
  FailureCount,
  Grant,
  Namespace,
  NamespaceSettings,
  PrincipalKind,
  Robot,
  Role,
  SigningKey,
  Team,
  TokenRecord,
  User,
} from '../accounts.ts';
import type { Database } from './schema.ts';

const toUser = (r: Selectable<Database['users']>): User => ({
  id: r.id,
  name: r.name,
  passwordHash: r.password_hash,
  admin: r.admin === 1,
  createdAt: r.created_at,
});
const toRobot = (r: Selectable<Database['robots']>): Robot => ({ id: r.id, name: r.name, namespace: r.namespace, createdAt: r.created_at });
const toNamespace = (
  r: Pick<Selectable<Database['namespaces']>, 'name' | 'anonymous_read' | 'created_at' | 'quota_bytes' | 'soft_quota_bytes' | 'labels' | 'collect_untagged'>,
): Namespace => ({
  name: r.name,
  anonymousRead: r.anonymous_read === 1,
  quotaBytes: Number(r.quota_bytes),
  softQuotaBytes: Number(r.soft_quota_bytes),
  labels: JSON.parse(r.labels) as Record<string, string>,
  collectUntagged: r.collect_untagged === 1,
  createdAt: r.created_at,
});
const toToken = (r: Selectable<Database['tokens']>): TokenRecord => ({
  id: r.id,
  ownerKind: r.owner_kind as TokenRecord['ownerKind'],
  ownerId: r.owner_id,
  name: r.name,
  secretHash: r.secret_hash,
  scopes: JSON.parse(r.scopes) as string[],
  expiresAt: r.expires_at,
  lastUsedAt: r.last_used_at,
  createdAt: r.created_at,
});

export class KyselyAccountStore implements AccountStore {
  private readonly db: Kysely<Database>;
  /** told of this process's writes to a namespace at once (the change feed tells the other replicas) */
  private readonly namespaceCache: { invalidate(namespace: string): void } | undefined;

  constructor(db: Kysely<Database>, namespaceCache?: { invalidate(namespace: string): void }) {
    this.db = db;
    this.namespaceCache = namespaceCache;
  }

  // Users, teams, robots

  async createUser(user: { name: string; passwordHash: string | null; admin: boolean }): Promise<User> {
    const row = { id: randomUUID(), name: user.name, password_hash: user.passwordHash, admin: user.admin ? 1 : 0, created_at: Date.now() };
    await this.db.insertInto('users').values(row).execute();
    return toUser(row);
  }

  async getUser(by: { id: string } | { name: string }): Promise<User | undefined> {
    const q = this.db.selectFrom('users').selectAll();
    const row = await ('id' in by ? q.where('id', '=', by.id) : q.where('name', '=', by.name)).executeTakeFirst();
    return row && toUser(row);
  }

  async listUsers(): Promise<User[]> {
    return (await this.db.selectFrom('users').selectAll().orderBy('name').execute()).map(toUser);
  }

  async setPassword(userId: string, passwordHash: string): Promise<void> {
    await this.db.updateTable('users').set({ password_hash: passwordHash }).where('id', '=', userId).execute();
  }

  async deleteUser(userId: string): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('team_members').where('user_id', '=', userId).execute();
      await tx.deleteFrom('grants').where('kind', '=', 'user').where('principal', '=', userId).execute();
      await tx.deleteFrom('tokens').where('owner_kind', '=', 'user').where('owner_id', '=', userId).execute();
      const r = await tx.deleteFrom('users').where('id', '=', userId).executeTakeFirst();
      return r.numDeletedRows > 0n;
    });
  }

  async countUsers(): Promise<number> {
    const row = await this.db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async createTeam(name: string): Promise<Team> {
    const row = { id: randomUUID(), name, created_at: Date.now() };
    await this.db.insertInto('teams').values(row).execute();
    return { id: row.id, name };
  }

  async getTeam(name: string): Promise<Team | undefined> {
    return this.db.selectFrom('teams').select(['id', 'name']).where('name', '=', name).executeTakeFirst();
  }

  async listTeams(): Promise<(Team & { members: string[] })[]> {
    const teams = await this.db.selectFrom('teams').select(['id', 'name']).orderBy('name').execute();
    const members = await this.db
      .selectFrom('team_members')
      .innerJoin('users', 'users.id', 'team_members.user_id')
      .select(['team_members.team_id', 'users.name'])
      .orderBy('users.name')
      .execute();
    return teams.map((t) => ({ ...t, members: members.filter((m) => m.team_id === t.id).map((m) => m.name) }));
  }

  async deleteTeam(teamId: string): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('team_members').where('team_id', '=', teamId).execute();
      await tx.deleteFrom('grants').where('kind', '=', 'team').where('principal', '=', teamId).execute();
      const r = await tx.deleteFrom('teams').where('id', '=', teamId).executeTakeFirst();
      return r.numDeletedRows > 0n;
    });
  }

  async addMember(teamId: string, userId: string): Promise<void> {
    await this.db
      .insertInto('team_members')
      .values({ team_id: teamId, user_id: userId })
      .onConflict((c) => c.doNothing())
      .execute();
  }

  async removeMember(teamId: string, userId: string): Promise<boolean> {
    const r = await this.db.deleteFrom('team_members').where('team_id', '=', teamId).where('user_id', '=', userId).executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  async teamsOf(userId: string): Promise<string[]> {
    return (await this.db.selectFrom('team_members').select('team_id').where('user_id', '=', userId).execute()).map((r) => r.team_id);
  }

  async createRobot(namespace: string, name: string): Promise<Robot> {
    const row = { id: randomUUID(), name: `${namespace}+${name}`, namespace, created_at: Date.now() };
    await this.db.insertInto('robots').values(row).execute();
    return toRobot(row);
  }

  async getRobot(by: { id: string } | { name: string }): Promise<Robot | undefined> {
    const q = this.db.selectFrom('robots').selectAll();
    const row = await ('id' in by ? q.where('id', '=', by.id) : q.where('name', '=', by.name)).executeTakeFirst();
    return row && toRobot(row);
  }

  async listRobots(namespace: string): Promise<Robot[]> {
    return (await this.db.selectFrom('robots').selectAll().where('namespace', '=', namespace).orderBy('name').execute()).map(toRobot);
  }

  async deleteRobot(robotId: string): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('grants').where('kind', '=', 'robot').where('principal', '=', robotId).execute();
      await tx.deleteFrom('tokens').where('owner_kind', '=', 'robot').where('owner_id', '=', robotId).execute();
      const r = await tx.deleteFrom('robots').where('id', '=', robotId).executeTakeFirst();
      return r.numDeletedRows > 0n;
    });
  }

  // Namespaces and grants

  async upsertNamespace(name: string, settings: NamespaceSettings): Promise<Namespace> {
    const existing = await this.getNamespace(name);
    const row = {
      name,
      anonymous_read: (settings.anonymousRead ?? existing?.anonymousRead ?? false) ? 1 : 0,
      quota_bytes: settings.quotaBytes ?? existing?.quotaBytes ?? 0,
      soft_quota_bytes: settings.softQuotaBytes ?? existing?.softQuotaBytes ?? 0,
      labels: JSON.stringify(settings.labels ?? existing?.labels ?? {}),
      collect_untagged: (settings.collectUntagged ?? existing?.collectUntagged ?? false) ? 1 : 0,
      created_at: existing?.createdAt ?? Date.now(),
    };
    await this.db
      .insertInto('namespaces')
      .values(row)
      .onConflict((c) =>
        c.column('name').doUpdateSet({
          anonymous_read: row.anonymous_read,
          quota_bytes: row.quota_bytes,
          soft_quota_bytes: row.soft_quota_bytes,
          // a changed soft quota is judged afresh: a namespace over the new one is logged again
          ...(row.soft_quota_bytes !== existing?.softQuotaBytes ? { soft_exceeded_at: null } : {}),
          labels: row.labels,
          collect_untagged: row.collect_untagged,
        }),
      )
      .execute();
    this.namespaceCache?.invalidate(name);
    return toNamespace(row);
  }

  async getNamespace(name: string): Promise<Namespace | undefined> {
    const row = await this.db.selectFrom('namespaces').selectAll().where('name', '=', name).executeTakeFirst();
    return row && toNamespace(row);
  }

  async listNamespaces(): Promise<Namespace[]> {
    return (await this.db.selectFrom('namespaces').selectAll().orderBy('name').execute()).map(toNamespace);
  }

  async setGrant(grant: Grant): Promise<void> {
    await this.db
      .insertInto('grants')
      .values({ namespace: grant.namespace, kind: grant.kind, principal: grant.principal, role: grant.role })
      .onConflict((c) => c.columns(['namespace', 'kind', 'principal']).doUpdateSet({ role: grant.role }))
      .execute();
  }

  async removeGrant(namespace: string, kind: PrincipalKind, principal: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom('grants')
      .where('namespace', '=', namespace)
      .where('kind', '=', kind)
      .where('principal', '=', principal)
      .executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  async listGrants(namespace: string): Promise<Grant[]> {
    const rows = await this.db.selectFrom('grants').selectAll().where('namespace', '=', namespace).orderBy('kind').orderBy('principal').execute();
    return rows.map((r) => ({ namespace: r.namespace, kind: r.kind as PrincipalKind, principal: r.principal, role: r.role as Role }));
  }

  async rolesIn(namespace: string, principals: { kind: PrincipalKind; id: string }[]): Promise<Role[]> {
    if (principals.length === 0) return [];
    const rows = await this.db
      .selectFrom('grants')
      .select('role')
      .where('namespace', '=', namespace)
      .where((eb) => eb.or(principals.map((p) => eb.and([eb('kind', '=', p.kind), eb('principal', '=', p.id)]))))
      .execute();
    return rows.map((r) => r.role as Role);
  }

  async grantedNamespaces(principals: { kind: PrincipalKind; id: string }[]): Promise<string[]> {
    if (principals.length === 0) return [];
    const rows = await this.db
      .selectFrom('grants')
      .select('namespace')
      .distinct()
      .where((eb) => eb.or(principals.map((p) => eb.and([eb('kind', '=', p.kind), eb('principal', '=', p.id)]))))
      .orderBy('namespace')
      .execute();
    return rows.map((r) => r.namespace);
  }

  // Tokens and signing keys

  async createToken(token: Omit<TokenRecord, 'lastUsedAt' | 'createdAt'>): Promise<TokenRecord> {
    const row = {
      id: token.id,
      owner_kind: token.ownerKind,
      owner_id: token.ownerId,
      name: token.name,
      secret_hash: token.secretHash,
      scopes: JSON.stringify(token.scopes),
      expires_at: token.expiresAt,
      last_used_at: null,
      created_at: Date.now(),
    };
    await this.db.insertInto('tokens').values(row).execute();
    return toToken(row);
  }

  async getToken(id: string): Promise<TokenRecord | undefined> {
    const row = await this.db.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toToken(row);
  }

  async listTokens(ownerKind: 'user' | 'robot', ownerId: string): Promise<TokenRecord[]> {
    const rows = await this.db
      .selectFrom('tokens')
      .selectAll()
      .where('owner_kind', '=', ownerKind)
      .where('owner_id', '=', ownerId)
      .orderBy('created_at')
      .execute();
    return rows.map(toToken);
  }

  async deleteToken(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom('tokens').where('id', '=', id).executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  async touchToken(id: string, at: number): Promise<void> {
    await this.db.updateTable('tokens').set({ last_used_at: at }).where('id', '=', id).execute();
  }

  async signingKeys(): Promise<SigningKey[]> {
    const rows = await this.db.selectFrom('signing_keys').selectAll().orderBy('created_at', 'desc').execute();
    return rows.map((r) => ({
      kid: r.kid,
      privateJwk: r.private_jwk,
      publicJwk: r.public_jwk,
      active: r.active === 1,
      createdAt: r.created_at,
      replacedAt: r.replaced_at === null ? null : Number(r.replaced_at),
    }));
  }

  async addSigningKey(key: Omit<SigningKey, 'replacedAt'>): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      if (key.active) await tx.updateTable('signing_keys').set({ active: 0, replaced_at: key.createdAt }).where('active', '=', 1).execute();
      await tx
        .insertInto('signing_keys')
        .values({
          kid: key.kid,
          private_jwk: key.privateJwk,
          public_jwk: key.publicJwk,
          active: key.active ? 1 : 0,
          created_at: key.createdAt,
          replaced_at: null,
        })
        .execute();
    });
  }

  async retireSigningKeys(replacedBefore: number): Promise<number> {
    const r = await this.db.deleteFrom('signing_keys').where('active', '=', 0).where('replaced_at', '<', replacedBefore).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  // Audit and login failures

  async record(event: Omit<AuditEvent, 'id'>): Promise<void> {
    await this.db
      .insertInto('audit_events')
      .values({
        time: event.time,
        actor: event.actor,
        source: event.source,
        action: event.action,
        target: event.target,
        outcome: event.outcome,
        detail: JSON.stringify(event.detail),
      })
      .execute();
  }

  async query(q: AuditQuery): Promise<AuditEvent[]> {
    let s = this.db.selectFrom('audit_events').selectAll();
    if (q.actor !== undefined) s = s.where('actor', '=', q.actor);
    if (q.action !== undefined) s = s.where('action', '=', q.action);
    if (q.target !== undefined) s = s.where('target', '=', q.target);
    if (q.since !== undefined) s = s.where('time', '>=', q.since);
    if (q.until !== undefined) s = s.where('time', '<', q.until);
    if (q.before !== undefined) s = s.where('id', '<', q.before);
    const rows = await s.orderBy('id', 'desc').limit(q.limit).execute();
    return rows.map((r) => ({ ...r, id: Number(r.id), outcome: r.outcome as AuditEvent['outcome'], detail: JSON.parse(r.detail) as Record<string, unknown> }));
  }

  async pruneAudit(olderThan: number): Promise<number> {
    const r = await this.db.deleteFrom('audit_events').where('time', '<', olderThan).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async pruneFailures(olderThan: number): Promise<void> {
    await this.db.deleteFrom('login_failures').where('time', '<', olderThan).execute();
  }

  async failuresSince(key: string, since: number): Promise<FailureCount> {
    const row = await this.db
      .selectFrom('login_failures')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.max('time').as('last')])
      .where('key', '=', key)
      .where('time', '>=', since)
      .executeTakeFirstOrThrow();
    return { count: Number(row.n), last: row.last === null ? null : Number(row.last) };
  }

  async recordFailure(key: string, at: number): Promise<void> {
    await this.db.insertInto('login_failures').values({ key, time: at }).execute();
  }

  async clearFailures(keyPrefix: string): Promise<number> {
    // substr, not LIKE: names may hold "_", which LIKE reads as a wildcard.
    const r = await this.db
      .deleteFrom('login_failures')
      .where(sql<string>`substr(key, 1, ${keyPrefix.length})`, '=', keyPrefix)
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
