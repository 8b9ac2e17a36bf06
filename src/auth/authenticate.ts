/**
 * Turning credentials into a Principal: a password or a personal/robot token sent with Basic, or
 * a JWT from /token sent as Bearer. Failed logins are counted in the shared store per account at
 * one source address, and per address; past a limit each further attempt waits longer (429 with
 * Retry-After), so a guesser slows down without locking the account out for anyone else, and a
 * correct token is never refused. Checks that would cost on every request are cached briefly (a
 * verified JWT until it expires, a verified password for a minute, whether a principal still
 * exists for a second) and forgotten when this replica changes an account.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { AccountStore } from '../meta/accounts.ts';
import { BoundedMap } from '../bounded-map.ts';
import type { KeyRing } from './keys.ts';
import { decoyHash, verifyPassword } from './passwords.ts';
import { allScopes, anonymous, type Principal, type Scope } from './principal.ts';
import { parseToken, secretMatches } from './secrets.ts';

export class AuthError extends Error {
  readonly status: 401 | 429;
  /** for Bearer challenges: RFC 6750's error code */
  readonly bearerError: 'invalid_token' | undefined;
  /** for 429: seconds until the next attempt may succeed */
  readonly retryAfter: number | undefined;

  constructor(status: 401 | 429, message: string, options: { bearerError?: 'invalid_token'; retryAfter?: number } = {}) {
    super(message);
    this.status = status;
    this.bearerError = options.bearerError;
    this.retryAfter = options.retryAfter;
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
  /** failures allowed per account at an address, and per address, before attempts back off */
  loginFailures: { max: number; maxPerAddress: number; windowSeconds: number };
  /** the clock (tests move it); default Date.now */
  now?: () => number;
}

export interface LoginEvent {
  principal: string;
  source: string;
  outcome: 'success' | 'failure';
  reason?: string;
  /** who logged in (on success) and with what: a password, or a personal or robot token */
  kind?: 'user' | 'robot';
  via: 'password' | 'token';
  tokenId?: string;
  userAgent: string;
}

const passwordCacheMs = 60_000;
const aliveCacheMs = 1000;

/** The keys failed logins are counted under. Names are encoded: a Basic username can hold any byte. */
export const failureKeys = {
  account: (username: string) => `account:${encodeURIComponent(username)}|`,
  accountAt: (username: string, source: string) => `${failureKeys.account(username)}source:${source}`,
  source: (source: string) => `source:${source}`,
};

/**
 * After `free` failures in the window, the next attempt waits 1 s, then 2, 4, … up to the window:
 * a guesser gets a few dozen tries an hour, a person who mistyped waits seconds.
 */
export function backoffSeconds(failures: number, free: number, windowSeconds: number): number {
  return failures < free ? 0 : Math.min(2 ** Math.min(failures - free, 30), windowSeconds);
}

export class Authenticator {
  private readonly accounts: AccountStore;
  private readonly keys: KeyRing;
  private readonly settings: AuthSettings;
  private readonly onLogin: (event: LoginEvent) => void;
  /** HMAC(name, password) under a per-process key → the hash it matched; the password is never kept */
  private readonly passwords = new BoundedMap<string, { hash: string; until: number }>(10_000);
  private readonly cacheKey = randomBytes(32);
  /** password checks running now, by cache key and hash, so that the same credentials cost one */
  private readonly verifying = new Map<string, Promise<boolean>>();
  private readonly jwts = new BoundedMap<string, { claims: BearerClaims; until: number }>(10_000);
  private readonly alive = new BoundedMap<string, number>(10_000);
  private readonly now: () => number;

  constructor(accounts: AccountStore, keys: KeyRing, settings: AuthSettings, onLogin: (event: LoginEvent) => void) {
    this.accounts = accounts;
    this.keys = keys;
    this.settings = settings;
    this.onLogin = onLogin;
    this.now = settings.now ?? Date.now;
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
  async basic(username: string, password: string, source: string, userAgent = ''): Promise<Principal> {
    const token = parseToken(password);
    // A token's secret cannot be guessed, so a correct one is let in before any throttle.
    const byToken = token ? await this.tokenPrincipal(username, token, source, userAgent) : undefined;
    if (byToken) return byToken;
    const limits = this.settings.loginFailures;
    const now = this.now();
    const since = now - limits.windowSeconds * 1000;
    const counted = [
      { key: failureKeys.accountAt(username, source), free: limits.max, what: 'this account from this address' },
      { key: failureKeys.source(source), free: limits.maxPerAddress, what: 'this address' },
    ];
    const failures = await Promise.all(counted.map(async (c) => ({ ...c, ...(await this.accounts.failuresSince(c.key, since)) })));
    for (const f of failures) {
      const waitMs = f.last === null ? 0 : f.last + backoffSeconds(f.count, f.free, limits.windowSeconds) * 1000 - now;
      if (waitMs > 0) {
        const retryAfter = Math.ceil(waitMs / 1000);
        throw new AuthError(429, `too many failed logins for ${f.what}; try again in ${retryAfter} s`, { retryAfter });
      }
    }
    const principal = token ? undefined : await this.passwordPrincipal(username, password, source, userAgent);
    if (principal) {
      if ((failures[0]?.count ?? 0) > 0) await this.accounts.clearFailures(failureKeys.accountAt(username, source));
      return principal;
    }
    await Promise.all(counted.map(({ key }) => this.accounts.recordFailure(key, this.now())));
    this.onLogin({
      principal: username.slice(0, 200),
      source,
      outcome: 'failure',
      reason: 'invalid username or password',
      via: token ? 'token' : 'password',
      userAgent,
    });
    throw new AuthError(401, 'invalid username or password');
  }

  /**
   * A user's password. An unknown user, or one without a password, costs the same scrypt as a
   * wrong password, so the time taken does not tell which names exist.
   */
  private async passwordPrincipal(username: string, password: string, source: string, userAgent: string): Promise<Principal | undefined> {
    const user = await this.accounts.getUser({ name: username });
    const cacheKey = createHmac('sha256', this.cacheKey).update(`${username}\0${password}`).digest('base64');
    if (!user?.passwordHash) {
      await this.verifyOnce(cacheKey, password, decoyHash);
      return undefined;
    }
    const cached = this.passwords.get(cacheKey);
    if (!(cached && cached.hash === user.passwordHash && cached.until > this.now())) {
      if (!(await this.verifyOnce(cacheKey, password, user.passwordHash))) return undefined;
      this.passwords.set(cacheKey, { hash: user.passwordHash, until: this.now() + passwordCacheMs });
      this.onLogin({ principal: user.name, source, outcome: 'success', kind: 'user', via: 'password', userAgent });
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

  private async tokenPrincipal(username: string, token: { id: string; secret: string }, source: string, userAgent: string): Promise<Principal | undefined> {
    const record = await this.accounts.getToken(token.id);
    if (!record || !secretMatches(token.secret, record.secretHash)) return undefined;
    if (record.expiresAt !== null && record.expiresAt <= this.now()) return undefined;
    const owner = record.ownerKind === 'user' ? await this.accounts.getUser({ id: record.ownerId }) : await this.accounts.getRobot({ id: record.ownerId });
    if (!owner || owner.name !== username) return undefined;
    // last_used_at is for people reading the token list; a minute's precision spares a write per request.
    if (record.lastUsedAt === null || this.now() - record.lastUsedAt > 60_000) {
      await this.accounts.touchToken(record.id, this.now());
      this.onLogin({
        principal: owner.name,
        source,
        outcome: 'success',
        reason: `token ${record.name}`,
        kind: 'namespace' in owner ? 'robot' : 'user',
        via: 'token',
        tokenId: record.id,
        userAgent,
      });
    }
    const scopes = record.scopes.filter((s): s is Scope => (allScopes as readonly string[]).includes(s));
    if ('namespace' in owner) return { kind: 'robot', id: owner.id, name: owner.name, admin: false, namespace: owner.namespace, tokenId: record.id, scopes };
    return { kind: 'user', id: owner.id, name: owner.name, admin: owner.admin, tokenId: record.id, scopes };
  }

  /** A JWT from /token; throws AuthError(401, …, 'invalid_token') when it does not hold. */
  async bearer(jwt: string): Promise<BearerClaims> {
    const now = this.now();
    let entry = this.jwts.get(jwt);
    if (!entry || entry.until <= now) {
      let payload;
      try {
        payload = await this.keys.verify(jwt, this.settings.service);
      } catch (err) {
        throw new AuthError(401, `invalid token: ${(err as Error).message}`, { bearerError: 'invalid_token' });
      }
      const p = payload as {
        sub?: string;
        pk?: string;
        pid?: string;
        adm?: boolean;
        ns?: string;
        tid?: string;
        scp?: Scope[];
        access?: TokenAccess[];
        exp?: number;
      };
      const kind = p.pk === 'user' || p.pk === 'robot' ? p.pk : 'anonymous';
      const principal: Principal =
        kind === 'anonymous' ? anonymous : { kind, id: p.pid ?? '', name: p.sub ?? '', admin: p.adm === true, namespace: p.ns, tokenId: p.tid, scopes: p.scp };
      entry = { claims: { principal, access: Array.isArray(p.access) ? p.access : [] }, until: (p.exp ?? 0) * 1000 };
      this.jwts.set(jwt, entry);
    }
    if (!(await this.stillExists(entry.claims.principal)))
      throw new AuthError(401, 'the account or token behind this token no longer exists', { bearerError: 'invalid_token' });
    return entry.claims;
  }

  /**
   * A personal or robot token sent as Bearer (as Prometheus sends the credentials it is given):
   * the same as Basic credentials with the token's owner as the username.
   */
  async tokenBearer(value: string, source: string): Promise<Principal> {
    const token = parseToken(value);
    const record = token ? await this.accounts.getToken(token.id) : undefined;
    const owner =
      record && (record.ownerKind === 'user' ? await this.accounts.getUser({ id: record.ownerId }) : await this.accounts.getRobot({ id: record.ownerId }));
    if (!owner) throw new AuthError(401, 'invalid token: no such personal or robot token', { bearerError: 'invalid_token' });
    return this.basic(owner.name, value, source);
  }

  /** Deleted users and robots, and revoked or expired tokens, stop working on the next request. */
  private async stillExists(p: Principal): Promise<boolean> {
    if (p.kind === 'anonymous') return true;
    const key = `${p.kind}:${p.id}:${p.tokenId ?? ''}`;
    const until = this.alive.get(key);
    if (until !== undefined && until > this.now()) return true;
    const owner = p.kind === 'user' ? await this.accounts.getUser({ id: p.id }) : await this.accounts.getRobot({ id: p.id });
    if (!owner) return false;
    if (p.tokenId) {
      const token = await this.accounts.getToken(p.tokenId);
      if (!token || (token.expiresAt !== null && token.expiresAt <= this.now())) return false;
    }
    this.alive.set(key, this.now() + aliveCacheMs);
    return true;
  }
}
