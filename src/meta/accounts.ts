/**
 * What the access controller and the management API keep in the shared metadata store: people,
 * teams, robots, their roles per namespace, tokens, the JWT signing keys and the audit log.
 * Everything a replica needs to decide lives here, so any replica decides the same way.
 */

export type Role = 'reader' | 'writer' | 'maintainer' | 'admin';
export const roles: readonly Role[] = ['reader', 'writer', 'maintainer', 'admin'];

export interface User {
  id: string;
  name: string;
  /** scrypt hash (see src/auth/passwords.ts); null for a user who logs in with tokens only */
  passwordHash: string | null;
  /** registry administrator: every namespace, every setting */
  admin: boolean;
  createdAt: number;
}

export interface Team {
  id: string;
  name: string;
}

export interface Robot {
  id: string;
  /** robot names are `<namespace>+<name>`, as other registries spell them */
  name: string;
  namespace: string;
  createdAt: number;
}

export type PrincipalKind = 'user' | 'team' | 'robot';

export interface Grant {
  namespace: string;
  kind: PrincipalKind;
  /** the user, team or robot id */
  principal: string;
  role: Role;
}

export interface Namespace {
  name: string;
  /** pull without logging in */
  anonymousRead: boolean;
  /**
   * the hard storage quota in bytes: a push over it is refused (src/lifecycle/quota.ts); policies
   * read it as ns.quotaBytes; 0 when none
   */
  quotaBytes: number;
  /** the soft quota in bytes: crossing it is logged and shown; 0 when none */
  softQuotaBytes: number;
  /** labels that policies read (ns.labels), e.g. team and cost-center */
  labels: Record<string, string>;
  /** garbage collection may remove untagged manifests that nothing reaches (docs/lifecycle.md) */
  collectUntagged: boolean;
  createdAt: number;
}

export interface TokenRecord {
  id: string;
  ownerKind: 'user' | 'robot';
  ownerId: string;
  name: string;
  /** sha256 hex of the secret; the secret itself is shown once and never stored */
  secretHash: string;
  /** the most this token may do: a subset of pull, push, delete, manage */
  scopes: string[];
  expiresAt: number | null;
  lastUsedAt: number | null;
  createdAt: number;
}

export interface SigningKey {
  kid: string;
  /** private JWK (JSON) */
  privateJwk: string;
  publicJwk: string;
  createdAt: number;
  /** the key new tokens are signed with; older keys still verify until they are retired */
  active: boolean;
  /** when a newer key took over signing; null for the active key */
  replacedAt: number | null;
}

export interface AuditEvent {
  id: number;
  time: number;
  /** who: a user or robot name, or 'anonymous' */
  actor: string;
  /** the client address */
  source: string;
  action: string;
  /** what it was done to: a repository, user, team, token… */
  target: string;
  outcome: 'success' | 'failure' | 'denied';
  detail: Record<string, unknown>;
}

export interface FailureCount {
  count: number;
  /** the time of the newest failure counted; null when there is none */
  last: number | null;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  target?: string;
  since?: number;
  until?: number;
  /** events with an id below this one (the paging cursor) */
  before?: number;
  limit: number;
}

export interface Principals {
  createUser(user: { name: string; passwordHash: string | null; admin: boolean }): Promise<User>;
  getUser(by: { id: string } | { name: string }): Promise<User | undefined>;
  listUsers(): Promise<User[]>;
  setPassword(userId: string, passwordHash: string): Promise<void>;
  deleteUser(userId: string): Promise<boolean>;
  countUsers(): Promise<number>;
  createTeam(name: string): Promise<Team>;
  getTeam(name: string): Promise<Team | undefined>;
  listTeams(): Promise<(Team & { members: string[] })[]>;
  deleteTeam(teamId: string): Promise<boolean>;
  addMember(teamId: string, userId: string): Promise<void>;
  removeMember(teamId: string, userId: string): Promise<boolean>;
  teamsOf(userId: string): Promise<string[]>;
  createRobot(namespace: string, name: string): Promise<Robot>;
  getRobot(by: { id: string } | { name: string }): Promise<Robot | undefined>;
  listRobots(namespace: string): Promise<Robot[]>;
  deleteRobot(robotId: string): Promise<boolean>;
}

export interface NamespaceSettings {
  anonymousRead?: boolean;
  quotaBytes?: number;
  softQuotaBytes?: number;
  labels?: Record<string, string>;
  collectUntagged?: boolean;
}

export interface Namespaces {
  upsertNamespace(name: string, settings: NamespaceSettings): Promise<Namespace>;
  getNamespace(name: string): Promise<Namespace | undefined>;
  listNamespaces(): Promise<Namespace[]>;
  setGrant(grant: Grant): Promise<void>;
  removeGrant(namespace: string, kind: PrincipalKind, principal: string): Promise<boolean>;
  listGrants(namespace: string): Promise<Grant[]>;
  /** every role that applies to these principals in a namespace */
  rolesIn(namespace: string, principals: { kind: PrincipalKind; id: string }[]): Promise<Role[]>;
  /** the namespaces where any of these principals has a grant, sorted */
  grantedNamespaces(principals: { kind: PrincipalKind; id: string }[]): Promise<string[]>;
}

export interface Tokens {
  createToken(token: Omit<TokenRecord, 'lastUsedAt' | 'createdAt'>): Promise<TokenRecord>;
  getToken(id: string): Promise<TokenRecord | undefined>;
  listTokens(ownerKind: 'user' | 'robot', ownerId: string): Promise<TokenRecord[]>;
  deleteToken(id: string): Promise<boolean>;
  touchToken(id: string, at: number): Promise<void>;
  signingKeys(): Promise<SigningKey[]>;
  /** adds a key; an active one replaces the active key as of its createdAt */
  addSigningKey(key: Omit<SigningKey, 'replacedAt'>): Promise<void>;
  /** deletes the inactive keys that a newer key replaced before this time; how many */
  retireSigningKeys(replacedBefore: number): Promise<number>;
}

export interface Audit {
  record(event: Omit<AuditEvent, 'id'>): Promise<void>;
  query(q: AuditQuery): Promise<AuditEvent[]>;
  pruneAudit(olderThan: number): Promise<number>;
  /** forgets failed logins older than a time (they only matter within the rate-limit window) */
  pruneFailures(olderThan: number): Promise<void>;
  /** failed logins for a key (an account at an address, or an address) since a time, and recording one */
  failuresSince(key: string, since: number): Promise<FailureCount>;
  recordFailure(key: string, at: number): Promise<void>;
  /** forgets the failed logins of every key that starts with this prefix; how many were forgotten */
  clearFailures(keyPrefix: string): Promise<number>;
}

export interface AccountStore extends Principals, Namespaces, Tokens, Audit {}
