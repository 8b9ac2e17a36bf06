/**
 * Roles per namespace and what they allow. A user's roles come from grants to the user and to
 * the teams it belongs to; a robot's only from grants to it, and only in its own namespace;
 * anonymous may pull where the namespace allows anonymous read. A token narrows its owner's
 * actions to the token's scopes. Answers are cached for a second, and forgotten at once when
 * this replica changes a grant, so a change is seen by the next request.
 */
import type { AccountStore, Role } from '../meta/accounts.ts';
import { BoundedMap } from '../bounded-map.ts';
import { allActions, type Action, type Principal } from './principal.ts';

export const roleActions: Record<Role, readonly Action[]> = {
  reader: ['pull'],
  writer: ['pull', 'push'],
  maintainer: ['pull', 'push', 'delete'],
  admin: ['pull', 'push', 'delete', 'manage'],
};

const cacheMs = 1000;

export class Rbac {
  private readonly accounts: AccountStore;
  private readonly cache = new BoundedMap<string, { actions: Set<Action>; until: number }>(10_000);
  private readonly now: () => number;

  /** `now`: the clock the cache is judged by (tests move it). */
  constructor(accounts: AccountStore, now: () => number = Date.now) {
    this.accounts = accounts;
    this.now = now;
  }

  /** What the principal may do in a namespace. */
  async actions(principal: Principal, namespace: string): Promise<Set<Action>> {
    const key = `${principal.kind}:${principal.id}:${principal.tokenId ?? ''}:${namespace}`;
    const hit = this.cache.get(key);
    if (hit && hit.until > this.now()) return hit.actions;
    const actions = await this.compute(principal, namespace);
    this.cache.set(key, { actions, until: this.now() + cacheMs });
    return actions;
  }

  /**
   * Every namespace the principal may pull from, sorted; 'all' for a registry administrator (whose
   * token, if any, allows pulls). The candidates are the namespaces open to anonymous reads and
   * those granted to the principal (or its teams); actions() has the last word on each.
   */
  async readable(principal: Principal): Promise<'all' | string[]> {
    if (principal.admin && (!principal.scopes || principal.scopes.includes('pull'))) return 'all';
    const candidates = new Set<string>();
    for (const ns of await this.accounts.listNamespaces()) if (ns.anonymousRead) candidates.add(ns.name);
    for (const ns of await this.accounts.grantedNamespaces(await this.who(principal))) candidates.add(ns);
    const readable: string[] = [];
    for (const ns of [...candidates].sort()) if ((await this.actions(principal, ns)).has('pull')) readable.push(ns);
    return readable;
  }

  /** Drops every cached answer (after a grant, membership, user or robot changes). */
  forget(): void {
    this.cache.clear();
  }

  private async compute(principal: Principal, namespace: string): Promise<Set<Action>> {
    const allowed = new Set<Action>();
    if (principal.admin) for (const a of allActions) allowed.add(a);
    else if (principal.kind !== 'robot' || principal.namespace === namespace) {
      for (const role of await this.accounts.rolesIn(namespace, await this.who(principal))) for (const a of roleActions[role]) allowed.add(a);
      if ((await this.accounts.getNamespace(namespace))?.anonymousRead) allowed.add('pull');
    }
    if (principal.scopes) for (const a of [...allowed]) if (!principal.scopes.includes(a)) allowed.delete(a);
    return allowed;
  }

  /** Whom grants to the principal name: a user and its teams, or a robot. */
  private async who(principal: Principal): Promise<{ kind: 'user' | 'team' | 'robot'; id: string }[]> {
    if (principal.kind === 'user')
      return [{ kind: 'user', id: principal.id }, ...(await this.accounts.teamsOf(principal.id)).map((id) => ({ kind: 'team' as const, id }))];
    if (principal.kind === 'robot') return [{ kind: 'robot', id: principal.id }];
    return [];
  }
}
