/**
 * /api/v1/namespaces/<ns>/tuf: what a namespace's TUF repository holds (versions, key ids,
 * expiries), and key rotation by the namespace's admins. The metadata itself is under /tuf/<ns>/.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { TufPublisher, TufState } from '../trust/tuf/index.ts';
import { tufRoles } from '../meta/tuf.ts';
import { access, authorize, iso, namespaceName, recorded, type ApiContext } from './context.ts';
import { notFound, parse } from './errors.ts';

const rotateBody = z.strictObject({ role: z.enum(['root', 'targets', 'snapshot', 'timestamp'], 'use root, targets, snapshot or timestamp') });

type NsParams = { Params: { ns: string } };

export function view(namespace: string, state: TufState) {
  const root = state.root.metadata.signed;
  const roles = Object.fromEntries(
    tufRoles.map((role) => {
      const { record, metadata } = state[role];
      return [
        role,
        {
          version: record.version,
          expires: iso(record.expiresAt),
          signedAt: iso(record.createdAt),
          keyIds: root.roles[role]?.keyIDs ?? [],
          signatures: Object.keys(metadata.signatures),
        },
      ];
    }),
  );
  return {
    namespace,
    consistentSnapshot: root.consistentSnapshot,
    metadataUrl: `/tuf/${namespace}/`,
    targetsUrl: `/tuf/${namespace}/targets/`,
    targets: Object.keys(state.targets.metadata.signed.targets).length,
    roles,
  };
}

/** The routes, given the publisher (registered in index.ts's list like every resource). */
export function tufApi(publisher: TufPublisher): (api: FastifyInstance, ctx: ApiContext) => void {
  return (api, ctx) => {
    api.get<NsParams>('/namespaces/:ns/tuf', async (req, reply) => {
      const ns = parse(namespaceName, req.params.ns, 'namespace name');
      await authorize(ctx, req, reply, [{ type: 'repository', name: ns, actions: ['pull'] }]);
      const state = await publisher.current(ns, 'throttled');
      if (!state) throw notFound(`no namespace ${ns}`);
      return view(ns, state);
    });

    api.post<NsParams>('/namespaces/:ns/tuf/rotate', async (req, reply) => {
      const ns = parse(namespaceName, req.params.ns, 'namespace name');
      await authorize(ctx, req, reply, [access.manage(ns)]);
      const { role } = parse(rotateBody, req.body, 'rotation');
      const state = await publisher.rotate(ns, role);
      if (!state) throw notFound(`no namespace ${ns}`);
      const keyId = state.root.metadata.signed.roles[role]?.keyIDs[0];
      await recorded(ctx, req, 'tuf.rotate', ns, { role, keyId, rootVersion: state.root.record.version });
      return view(ns, state);
    });
  };
}
