/**
 * /api/v1/namespaces/:ns/robots: machine accounts of a namespace, named `<ns>+<name>`, and their
 * tokens (a robot has no password). Managed by the namespace's admins.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Robot } from '../meta/accounts.ts';
import { access, accountName, authorize, createUnique, iso, namespaceName, recorded, type ApiContext } from './context.ts';
import { notFound, parse } from './errors.ts';
import { existing } from './namespaces.ts';
import { createToken, tokenBody, tokenId, tokenView } from './tokens.ts';

const createBody = z.strictObject({ name: accountName });

const view = (r: Robot) => ({ name: r.name, namespace: r.namespace, createdAt: iso(r.createdAt) });

type NsParams = { Params: { ns: string } };
type RobotParams = { Params: { ns: string; name: string } };
type TokenParams = { Params: { ns: string; name: string; id: string } };

/** Checks the namespace name, asks for manage on it, and finds the namespace. */
async function managed(ctx: ApiContext, req: FastifyRequest, reply: FastifyReply, rawNs: string): Promise<string> {
  const ns = parse(namespaceName, rawNs, 'namespace name');
  await authorize(ctx, req, reply, [access.manage(ns)]);
  await existing(ctx, ns);
  return ns;
}

async function robotOf(ctx: ApiContext, ns: string, rawName: string): Promise<Robot> {
  const name = parse(accountName, rawName, 'robot name');
  const robot = await ctx.accounts.getRobot({ name: `${ns}+${name}` });
  if (!robot) throw notFound(`no robot ${ns}+${name}`);
  return robot;
}

export function registerRobots(api: FastifyInstance, ctx: ApiContext): void {
  api.get<NsParams>('/namespaces/:ns/robots', async (req, reply) => {
    const ns = await managed(ctx, req, reply, req.params.ns);
    return { robots: (await ctx.accounts.listRobots(ns)).map(view) };
  });

  api.post<NsParams>('/namespaces/:ns/robots', async (req, reply) => {
    const ns = await managed(ctx, req, reply, req.params.ns);
    const body = parse(createBody, req.body, 'robot');
    const robot = await createUnique(
      () => ctx.accounts.createRobot(ns, body.name),
      async () => (await ctx.accounts.getRobot({ name: `${ns}+${body.name}` })) !== undefined,
      `robot ${ns}+${body.name} already exists`,
    );
    await recorded(ctx, req, 'robot.create', robot.name);
    return reply.code(201).send(view(robot));
  });

  api.delete<RobotParams>('/namespaces/:ns/robots/:name', async (req, reply) => {
    const ns = await managed(ctx, req, reply, req.params.ns);
    const robot = await robotOf(ctx, ns, req.params.name);
    if (!(await ctx.accounts.deleteRobot(robot.id))) throw notFound(`no robot ${robot.name}`);
    await recorded(ctx, req, 'robot.delete', robot.name);
    return reply.code(204).send();
  });

  api.get<RobotParams>('/namespaces/:ns/robots/:name/tokens', async (req, reply) => {
    const ns = await managed(ctx, req, reply, req.params.ns);
    const robot = await robotOf(ctx, ns, req.params.name);
    return { tokens: (await ctx.accounts.listTokens('robot', robot.id)).map(tokenView) };
  });

  api.post<RobotParams>('/namespaces/:ns/robots/:name/tokens', async (req, reply) => {
    const ns = await managed(ctx, req, reply, req.params.ns);
    const robot = await robotOf(ctx, ns, req.params.name);
    const body = parse(tokenBody, req.body, 'token');
    return reply.code(201).send(await createToken(ctx, req, { kind: 'robot', id: robot.id, name: robot.name }, body));
  });

  api.delete<TokenParams>('/namespaces/:ns/robots/:name/tokens/:id', async (req, reply) => {
    const ns = await managed(ctx, req, reply, req.params.ns);
    const robot = await robotOf(ctx, ns, req.params.name);
    const id = parse(tokenId, req.params.id, 'token id');
    const token = await ctx.accounts.getToken(id);
    if (!token || token.ownerKind !== 'robot' || token.ownerId !== robot.id || !(await ctx.accounts.deleteToken(id)))
      throw notFound(`no token ${id} of ${robot.name}`);
    await recorded(ctx, req, 'token.revoke', id, { name: token.name, owner: robot.name, ownerKind: 'robot' });
    return reply.code(204).send();
  });
}
