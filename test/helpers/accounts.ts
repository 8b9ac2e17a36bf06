/**
 * Accounts for access tests: a server whose metadata store the test holds, and helpers that
 * create users, teams, grants, robots and tokens in it directly.
 */
import path from 'node:path';
import type { AccountStore, Role } from '../../src/meta/accounts.ts';
import { hashPassword } from '../../src/auth/passwords.ts';
import { newTokenSecret } from '../../src/auth/secrets.ts';
import { openMetaStore } from '../../src/meta/open.ts';
import type { MetaStore } from '../../src/meta/metastore.ts';
import type { AppParts } from '../../src/server/app.ts';
import { request, type Reply } from './http.ts';
import { startInProcess, tempDir, type InProcessServer } from './server.ts';

export interface AccountsServer extends InProcessServer {
  accounts: AccountStore;
  /** the server's metadata store, for tests that set up or look at what the API does not show */
  meta: MetaStore;
}

/** `listen: false`: answered by inject(), on no port (see startInjected). */
export async function startWithAccounts(
  config: Record<string, unknown> = {},
  parts: Omit<AppParts, 'meta'> = {},
  options: { listen?: boolean } = {},
): Promise<AccountsServer> {
  const dataDir = await tempDir();
  const meta = await openMetaStore(path.join(dataDir, 'custody.db'));
  const server = await startInProcess({ dataDir, parts: { ...parts, meta }, config, ...options });
  return { ...server, accounts: meta.accounts, meta };
}

export async function createUser(accounts: AccountStore, name: string, password: string, grants: Record<string, Role> = {}): Promise<string> {
  const user = await accounts.createUser({ name, passwordHash: await hashPassword(password), admin: false });
  for (const [namespace, role] of Object.entries(grants)) await accounts.setGrant({ namespace, kind: 'user', principal: user.id, role });
  return user.id;
}

/** A robot with a role in its own namespace; returns its full name and a token for it. */
export async function createRobot(
  accounts: AccountStore,
  namespace: string,
  name: string,
  role: Role,
  scopes = ['pull', 'push', 'delete', 'manage'],
): Promise<{ name: string; token: string; tokenId: string }> {
  const robot = await accounts.createRobot(namespace, name);
  await accounts.setGrant({ namespace, kind: 'robot', principal: robot.id, role });
  const secret = newTokenSecret();
  await accounts.createToken({ id: secret.id, ownerKind: 'robot', ownerId: robot.id, name: 'test', secretHash: secret.hash, scopes, expiresAt: null });
  return { name: robot.name, token: secret.token, tokenId: secret.id };
}

/** A personal token for a user. */
export async function createUserToken(
  accounts: AccountStore,
  userId: string,
  options: { scopes?: string[]; expiresAt?: number | null } = {},
): Promise<{ token: string; tokenId: string }> {
  const secret = newTokenSecret();
  await accounts.createToken({
    id: secret.id,
    ownerKind: 'user',
    ownerId: userId,
    name: 'test',
    secretHash: secret.hash,
    scopes: options.scopes ?? ['pull', 'push', 'delete', 'manage'],
    expiresAt: options.expiresAt ?? null,
  });
  return { token: secret.token, tokenId: secret.id };
}

/** A JWT from GET /token for these scopes, got with Basic credentials (or none). */
export async function bearerToken(base: string, scopes: string[], credentials?: { username: string; password: string }): Promise<string> {
  const query = new URLSearchParams({ service: 'custody' });
  for (const s of scopes) query.append('scope', s);
  const headers: Record<string, string> = credentials
    ? { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` }
    : {};
  const r: Reply = await request(base, `/token?${query}`, { headers, auth: false });
  if (r.status !== 200) throw new Error(`token: ${r.status} ${r.body.toString()}`);
  return r.json<{ token: string }>().token;
}
