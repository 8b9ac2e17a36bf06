/**
 * The one access question: given a request and the accesses it needs, grant, or answer with a
 * challenge. Every route asks it (the /v2 dispatcher, src/oci/dispatch.ts); none decides alone.
 */
import type { FastifyRequest } from 'fastify';

export type Action = 'pull' | 'push' | 'delete' | '*';

export interface Access {
  /** 'repository' with a repository name, or 'registry' with name 'catalog' */
  type: 'repository' | 'registry';
  name: string;
  actions: Action[];
}

export interface Identity {
  /** 'anonymous' when nobody logged in */
  subject: string;
}

export type Decision =
  | { granted: true; identity: Identity }
  | { granted: false; status: 401 | 403; message: string; challenge?: string };

export interface AccessController {
  authorize(request: FastifyRequest, accesses: Access[]): Promise<Decision>;
}

/**
 * Grants everything to everyone. It is the controller until accounts exist (issue: accounts and
 * access); `custody serve` says so in its log at start so nobody runs it unknowingly in the open.
 */
export class OpenAccess implements AccessController {
  async authorize(): Promise<Decision> {
    return { granted: true, identity: { subject: 'anonymous' } };
  }
}
