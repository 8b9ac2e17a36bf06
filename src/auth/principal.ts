/** Who a request comes from, once its credentials are checked. */

export type Action = 'pull' | 'push' | 'delete' | 'manage';

/** What a personal or robot token may be limited to: the actions, and `metrics` (reading GET /metrics). */
export type Scope = Action | 'metrics';

export interface Principal {
  kind: 'user' | 'robot' | 'anonymous';
  /** the user or robot id; '' for anonymous */
  id: string;
  /** the user or robot name; 'anonymous' for anonymous */
  name: string;
  /** a registry administrator */
  admin: boolean;
  /** a robot's namespace: it may act nowhere else */
  namespace?: string;
  /** set when a personal or robot token was used: its id and the most it may do */
  tokenId?: string;
  scopes?: Scope[];
}

export const anonymous: Principal = { kind: 'anonymous', id: '', name: 'anonymous', admin: false };

export const allActions: readonly Action[] = ['pull', 'push', 'delete', 'manage'];

export const allScopes: readonly Scope[] = [...allActions, 'metrics'];

/**
 * Who may read /metrics when it is not open: an administrator (with a token, one that has the
 * manage or metrics scope), and a robot whose token has the metrics scope (which only an
 * administrator can give it).
 */
export function mayReadMetrics(p: Principal): boolean {
  if (!p.scopes) return p.admin;
  if (p.kind === 'robot') return p.scopes.includes('metrics');
  return p.admin && (p.scopes.includes('metrics') || p.scopes.includes('manage'));
}
