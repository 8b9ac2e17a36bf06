/** Builds the access parts from the configuration: keys, authentication, roles, audit, /token. */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { originOf } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import type { AccountStore } from '../meta/accounts.ts';
import type { RateStore } from '../meta/rates.ts';
import { Auditor } from './audit.ts';
import { Authenticator } from './authenticate.ts';
import { bootstrapAdmin } from './bootstrap.ts';
import { TokenAccessController } from './controller.ts';
import { KeyRing } from './keys.ts';
import { RateLimiter, type RequestLimiter } from './rate-limit.ts';
import { SharedRateLimiter } from './shared-rates.ts';
import { Rbac } from './rbac.ts';
import { registerTokenRoute } from './token-route.ts';
import type { LoginEvent } from './authenticate.ts';
import type { TokenAnswer } from './token-route.ts';

export type { LoginEvent } from './authenticate.ts';
export type { TokenAnswer } from './token-route.ts';

/** Who hears of logins and /token answers besides the audit log (usage events). */
export interface AuthObserver {
  login(e: LoginEvent): void;
  token(answer: TokenAnswer): void;
}

export interface Auth {
  controller: TokenAccessController;
  authenticator: Authenticator;
  rbac: Rbac;
  keys: KeyRing;
  audit: Auditor;
  observer?: AuthObserver;
  /** forget every cached decision: call after changing an account, grant or token */
  changed(): void;
  /**
   * First start: creates the admin when the database has no user (see bootstrap.ts). Not part of
   * createAuth: `custody serve` calls it once its port is bound, so that a start that fails to
   * listen neither creates the admin nor prints a password nobody will see used.
   */
  bootstrap(): Promise<void>;
  /** ends the request limit's exchanges with the database: call before closing it */
  stop(): Promise<void>;
}

/** The stores auth keeps its state in. */
export interface AuthStores {
  accounts: AccountStore;
  /** request counts shared by replicas (used when `rates.shared`, see requestLimiter) */
  rates: RateStore;
}

/** `now`: the clock tokens, login failures and request rates are judged by (tests move it). */
export async function createAuth(
  config: Config,
  { accounts, rates }: AuthStores,
  log: FastifyBaseLogger,
  now: () => number = Date.now,
  observer?: AuthObserver,
): Promise<Auth> {
  const keys = new KeyRing(accounts, { tokenTtlSeconds: config.auth.tokenTtlSeconds, now });
  await keys.init();
  const audit = new Auditor(accounts, log, config.audit.retentionDays);
  const authenticator = new Authenticator(accounts, keys, { service: config.auth.service, loginFailures: config.auth.loginFailures, now }, (e) => {
    observer?.login(e);
    void audit.record({
      actor: e.principal,
      source: e.source,
      action: 'login',
      target: e.principal,
      outcome: e.outcome,
      detail: e.reason ? { reason: e.reason } : {},
    });
  });
  const rbac = new Rbac(accounts, now);
  const limiter = requestLimiter(config, rates, log, now);
  const controller = new TokenAccessController(authenticator, rbac, limiter, {
    service: config.auth.service,
    realm: config.auth.realm,
  });
  return {
    controller,
    authenticator,
    rbac,
    keys,
    audit,
    ...(observer ? { observer } : {}),
    changed: () => {
      authenticator.forget();
      rbac.forget();
    },
    bootstrap: () => bootstrapAdmin(accounts, log, config.auth.adminPassword, adminPasswordSetting(config)),
    stop: () => limiter.stop(),
  };
}

/**
 * auth.requestsPerSecond: counted with the other replicas when the database is one that several
 * share (PostgreSQL) and auth.shareRequestRates is on; else a token bucket in this process, which
 * is exact for a single server and costs nothing.
 */
function requestLimiter(config: Config, rates: RateStore, log: FastifyBaseLogger, now: () => number): RequestLimiter {
  const perSecond = config.auth.requestsPerSecond;
  if (perSecond <= 0 || !rates.shared || !config.auth.shareRequestRates) return new RateLimiter(perSecond, undefined, now);
  const shared = new SharedRateLimiter(rates, { perSecond }, log, now);
  shared.start();
  return shared;
}

/** Where the admin password came from, for the log: CUSTODY_ADMIN_PASSWORD or the config key. */
function adminPasswordSetting(config: Config): string {
  return originOf(config, 'auth.adminPassword') ?? 'CUSTODY_ADMIN_PASSWORD (auth.adminPassword)';
}

export function registerAuthRoutes(app: FastifyInstance, auth: Auth, config: Config): void {
  registerTokenRoute(app, {
    controller: auth.controller,
    rbac: auth.rbac,
    keys: auth.keys,
    service: config.auth.service,
    ttlSeconds: config.auth.tokenTtlSeconds,
    authenticate: (u, p, source, userAgent) => auth.authenticator.basic(u, p, source, userAgent),
    ...(auth.observer ? { observe: auth.observer.token.bind(auth.observer) } : {}),
  });
}
