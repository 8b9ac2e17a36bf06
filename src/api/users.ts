/**
 * /api/v1/me and /api/v1/users: who am I; people, their passwords, and clearing the failed logins
 * that hold back an account (registry administrators).
 */
import type { FastifyInstance } from 'fastify';
import { failureKeys } from '../auth/authenticate.ts';
import { z } from 'zod';
import { hashPassword } from '../auth/passwords.ts';
import type { User } from '../meta/accounts.ts';
import { access, accountName, authorize, createUnique, iso, password, recorded, viaBasic, type ApiContext } from './context.ts';
import { conflict, notFound, parse } from './errors.ts';

const createBody = z.strictObject({ name: accountName, password: password.optional(), admin: z.boolean().optional() });
const passwordBody = z.strictObject({ password });
const robotName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,254}\+[a-z0-9][a-z0-9._-]{0,63}$/, 'a robot name is <namespace>+<name>');

const view = (u: User) => ({ name: u.name, admin: u.admin, hasPassword: u.passwordHash !== null, createdAt: iso(u.createdAt) });

export function registerUsers(api: FastifyInstance, ctx: ApiContext): void {
  api.get('/me', async (req, reply) => {
    const p = await authorize(ctx, req, reply, [access.login]);
    const teams = p.kind === 'user' ? (await ctx.accounts.listTeams()).filter((t) => t.members.includes(p.name)).map((t) => t.name) : [];
    return {
      name: p.name,
      kind: p.kind,
      admin: p.admin,
      teams,
      ...(p.namespace !== undefined ? { namespace: p.namespace } : {}),
      ...(p.tokenId !== undefined ? { token: { id: p.tokenId, scopes: p.scopes ?? [] } } : {}),
    };
  });

  api.get('/users', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    return { users: (await ctx.accounts.listUsers()).map(view) };
  });

  api.post('/users', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const body = parse(createBody, req.body, 'user');
    const passwordHash = body.password === undefined ? null : await hashPassword(body.password);
    const user = await createUnique(
      () => ctx.accounts.createUser({ name: body.name, passwordHash, admin: body.admin ?? false }),
      async () => (await ctx.accounts.getUser({ name: body.name })) !== undefined,
      `user ${body.name} already exists`,
    );
    await recorded(ctx, req, 'user.create', user.name, { admin: user.admin });
    return reply.code(201).send({ name: user.name, admin: user.admin, createdAt: iso(user.createdAt) });
  });

  api.delete<{ Params: { name: string } }>('/users/:name', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const name = parse(accountName, req.params.name, 'user name');
    const user = await ctx.accounts.getUser({ name });
    if (!user) throw notFound(`no user ${name}`);
    if (user.admin && (await ctx.accounts.listUsers()).filter((u) => u.admin).length <= 1)
      throw conflict(`${name} is the last registry administrator; make another one first`);
    await ctx.accounts.deleteUser(user.id);
    await recorded(ctx, req, 'user.delete', name);
    return reply.code(204).send();
  });

  api.put<{ Params: { name: string } }>('/users/:name/password', async (req, reply) => {
    const p = await authorize(ctx, req, reply, [access.login]);
    const name = parse(accountName, req.params.name, 'user name');
    // People change their own password with that password (not a token, which may be a leaked one);
    // anything else is for registry administrators.
    const self = p.kind === 'user' && p.name === name && p.tokenId === undefined && viaBasic(req);
    if (!self) await authorize(ctx, req, reply, [access.admin]);
    const body = parse(passwordBody, req.body, 'password change');
    const user = await ctx.accounts.getUser({ name });
    if (!user) throw notFound(`no user ${name}`);
    await ctx.accounts.setPassword(user.id, await hashPassword(body.password));
    await recorded(ctx, req, 'user.password', name, { by: self ? 'self' : 'admin' });
    return reply.code(204).send();
  });

  // Robots log in too (with tokens), so a robot's name `<namespace>+<name>` is taken here as well.
  api.post<{ Params: { name: string } }>('/users/:name/unlock', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const name = parse(accountName.or(robotName), req.params.name, 'user or robot name');
    const exists = (await ctx.accounts.getUser({ name })) ?? (await ctx.accounts.getRobot({ name }));
    if (!exists) throw notFound(`no user or robot ${name}`);
    const cleared = await ctx.accounts.clearFailures(failureKeys.account(name));
    await recorded(ctx, req, 'user.unlock', name, { cleared });
    return reply.send({ name, cleared });
  });
}
