/** Who a request comes from, once its credentials are checked. */

export type Action = 'pull' | 'push' | 'delete' | 'manage';

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
  scopes?: Action[];
}

export const anonymous: Principal = { kind: 'anonymous', id: '', name: 'anonymous', admin: false };

export const allActions: readonly Action[] = ['pull', 'push', 'delete', 'manage'];
