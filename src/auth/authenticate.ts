/**
 * Turning credentials into a Principal: a password or a personal/robot token sent with Basic, or
 * a JWT from /token sent as Bearer. Failed logins are counted per account and per source address
 * in the shared store and refused past a limit. Checks that would cost on every request are
 * cached briefly (a verified JWT until it expires, a verified password for a minute, whether a
 * principal still exists for a second) and forgotten when this replica changes an account.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { AccountStore } from '../meta/accounts.ts';
import type { KeyRing } from './keys.ts';
import { verifyPassword } from './passwords.ts';
import { allActions, anonymous, type Action, type Principal } from './principal.ts';
import { parseToken, secretMatches } from './secrets.ts';

export class AuthError extends Error {
  readonly status: 401 | 429;
  /** for Bearer challenges: RFC 6750's error code */
  readonly bearerError: 'invalid_token' | undefined;

  constructor(status: 401 | 429, message: string, bearerError?: 'invalid_token') {
    super(message);
    this.status = status;
    this.bearerError = bearerError;
  }
}

/** The repository accesses a JWT carries, as the Docker token spec writes them. */
export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

export interface BearerClaims {
  principal: Principal;
  access: TokenAccess[];
}

export interface AuthSettings {
  service: string;
  loginFailures: { max: number; maxPerAddress: number; windowSeconds: number };
}

export interface LoginEvent {
  principal: string;
  source: string;
  outcome: 'success' | 'failure';
  reason?: string;
}

const passwordCacheMs = 60_000;
const aliveCacheMs = 1000;

export class Authenticator {
  private readonly accounts: AccountStore;
  private readonly keys: KeyRing;
  private readonly settings: AuthSettings;
  private readonly onLogin: (event: LoginEvent) => void;
  /** HMAC(name, password) under a per-process key → the hash it matched; the password is never kept */
  private readonly passwords = new Map<string, { hash: string; until: number }>();
  private readonly cacheKey = randomBytes(32);
  /** password checks running now, by cache key and hash, so that the same credentials cost one */
  private readonly verifying = new Map<string, Promise<boolean>>();
  private readonly jwts = new Map<string, { claims: BearerClaims; until: number }>();
  private readonly alive = new Map<string, number>();

  constructor(accounts: AccountStore, keys: KeyRing, settings: AuthSettings, onLogin: (event: LoginEvent) => void) {
    this.accounts = accounts;
    this.keys = keys;
    this.settings = settings;
    this.onLogin = onLogin;
  }

  /**
   * Drops cached checks after an account, token or membership changes. Verified passwords stay:
   * each use compares against the user's current hash, so a new password or a deleted user
   * already ends them.
   */
  forget(): void {
    this.jwts.clear();
    this.alive.clear();
  }

  /** Basic credentials: a user's password, or a user's or robot's token. */
  async basic(username: string, password: string, source: string): Promise<Principal> {
    const limits = this.settings.loginFailures;
    const since = Date.now() - limits.windowSeconds * 1000;
    const limited = [
      { key: `account:${username}`, max: limits.max, what: 'this account' },
      { key: `source:${source}`, max: limits.maxPerAddress, what: 'this address' },
    ];
    for (const { key, max, what } of limited) {
      if ((await this.accounts.failuresSince(key, since)) >= max) throw new AuthError(429, `too many failed logins for ${what}; try again in a few minutes`);
    }
    const principal = await this.check(username, password, source);
    if (!principal) {
      await Promise.all(limited.map(({ key }) => this.accounts.recordFailure(key, Date.now())));
      this.onLogin({ principal: username.slice(0, 200), source, outcome: 'failure', reason: 'invalid username or password' });
      throw new AuthError(401, 'invalid username or password');
    }
    return principal;
  }

  private async check(username: string, password: string, source: string): Promise<Principal | undefined> {
    const token = parseToken(password);
    if (token) return this.tokenPrincipal(username, token, source);
    const user = await this.accounts.getUser({ name: username });
    if (!user?.passwordHash) return undefined;
    const cacheKey = createHmac('sha256', this.cacheKey).update(`${username}\0${password}`).digest('base64');
    const cached = this.passwords.get(cacheKey);
    if (!(cached && cached.hash === user.passwordHash && cached.until > Date.now())) {
      if (!(await this.verifyOnce(cacheKey, password, user.passwordHash))) return undefined;
      if (this.passwords.size > 10_000) this.passwords.clear();
      this.passwords.set(cacheKey, { hash: user.passwordHash, until: Date.now() + passwordCacheMs });
      this.onLogin({ principal: user.name, source, outcome: 'success' });
    }
    return { kind: 'user', id: user.id, name: user.name, admin: user.admin };
  }

  /**
   * One scrypt at a time per credentials. A client's first burst of requests (a pull of many
   * layers, a benchmark's 16 connections) all arrive before the first check is cached, and each
   * scrypt takes 16 MiB and ~50 ms of CPU; run side by side, they cost the server 100+ MiB of
   * resident memory that glibc kept afterwards.
   */
  private verifyOnce(cacheKey: string, password: string, hash: string): Promise<boolean> {
    const key = `${cacheKey}\0${hash}`;
    let pending = this.verifying.get(key);
    if (!pending) {
      pending = verifyPassword(password, hash).finally(() => this.verifying.delete(key));
      this.verifying.set(key, pending);
    }
    return pending;
  }

  private async tokenPrincipal(username: string, token: { id: string; secret: string }, source: string): Promise<Principal | undefined> {
    const record = await this.accounts.getToken(token.id);
    if (!record || !secretMatches(token.secret, record.secretHash)) return undefined;
    if (record.expiresAt !== null && record.expiresAt <= Date.now()) return undefined;
    const owner = record.ownerKind === 'user' ? await this.accounts.getUser({ id: record.ownerId }) : await this.accounts.getRobot({ id: record.ownerId });
    if (!owner || owner.name !== username) return undefined;
    // last_used_at is for people reading the token list; a minute's precision spares a write per request.
    if (record.lastUsedAt === null || Date.now() - record.lastUsedAt > 60_000) {
      await this.accounts.touchToken(record.id, Date.now());
      this.onLogin({ principal: owner.name, source, outcome: 'success', reason: `token ${record.name}` });
    }
    const scopes = record.scopes.filter((s): s is Action => (allActions as readonly string[]).includes(s));
    if ('namespace' in owner) return { kind: 'robot', id: owner.id, name: owner.name, admin: false, namespace: owner.namespace, tokenId: record.id, scopes };
    return { kind: 'user', id: owner.id, name: owner.name, admin: owner.admin, tokenId: record.id, scopes };
  }

  /** A JWT from /token; throws AuthError(401, …, 'invalid_token') when it does not hold. */
  async bearer(jwt: string): Promise<BearerClaims> {
    const now = Date.now();
    let entry = this.jwts.get(jwt);
    if (!entry || entry.until <= now) {
      let payload;
      try {
        payload = await this.keys.verify(jwt, this.settings.service);
      } catch (err) {
        throw new AuthError(401, `invalid token: ${(err as Error).message}`, 'invalid_token');
      }
      const p = payload as { sub?: string; pk?: string; pid?: string; adm?: boolean; ns?: string; tid?: string; scp?: Action[]; access?: TokenAccess[]; exp?: number };
      const kind = p.pk === 'user' || p.pk === 'robot' ? p.pk : 'anonymous';
      const principal: Principal = kind === 'anonymous' ? anonymous : { kind, id: p.pid ?? '', name: p.sub ?? '', admin: p.adm === true, namespace: p.ns, tokenId: p.tid, scopes: p.scp };
      entry = { claims: { principal, access: Array.isArray(p.access) ? p.access : [] }, until: (p.exp ?? 0) * 1000 };
      if (this.jwts.size > 10_000) this.jwts.clear();
      this.jwts.set(jwt, entry);
    }
    if (!(await this.stillExists(entry.claims.principal))) throw new AuthError(401, 'the account or token behind this token no longer exists', 'invalid_token');
    return entry.claims;
  }

  /** Deleted users and robots, and revoked or expired tokens, stop working on the next request. */
  private async stillExists(p: Principal): Promise<boolean> {
    if (p.kind === 'anonymous') return true;
    const key = `${p.kind}:${p.id}:${p.tokenId ?? ''}`;
    const until = this.alive.get(key);
    if (until !== undefined && until > Date.now()) return true;
    const owner = p.kind === 'user' ? await this.accounts.getUser({ id: p.id }) : await this.accounts.getRobot({ id: p.id });
    if (!owner) return false;
    if (p.tokenId) {
      const token = await this.accounts.getToken(p.tokenId);
      if (!token || (token.expiresAt !== null && token.expiresAt <= Date.now())) return false;
    }
    if (this.alive.size > 10_000) this.alive.clear();
    this.alive.set(key, Date.now() + aliveCacheMs);
    return true;
  }
}
