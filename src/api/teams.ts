/** /api/v1/teams: teams and their members (registry administrators). */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { access, accountName, authorize, createUnique, recorded, type ApiContext } from './context.ts';
import { notFound, parse } from './errors.ts';

const createBody = z.strictObject({ name: accountName });

export function registerTeams(api: FastifyInstance, ctx: ApiContext): void {
  api.get('/teams', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    return { teams: (await ctx.accounts.listTeams()).map((t) => ({ name: t.name, members: t.members })) };
  });

  api.post('/teams', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const body = parse(createBody, req.body, 'team');
    const team = await createUnique(
      () => ctx.accounts.createTeam(body.name),
      async () => (await ctx.accounts.getTeam(body.name)) !== undefined,
      `team ${body.name} already exists`,
    );
    await recorded(ctx, req, 'team.create', team.name);
    return reply.code(201).send({ name: team.name, members: [] });
  });

  api.delete<{ Params: { name: string } }>('/teams/:name', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const name = parse(accountName, req.params.name, 'team name');
    const team = await ctx.accounts.getTeam(name);
    if (!team || !(await ctx.accounts.deleteTeam(team.id))) throw notFound(`no team ${name}`);
    await recorded(ctx, req, 'team.delete', name);
    return reply.code(204).send();
  });

  api.put<{ Params: { name: string; user: string } }>('/teams/:name/members/:user', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const { team, user } = await teamAndUser(ctx, req.params);
    await ctx.accounts.addMember(team.id, user.id);
    await recorded(ctx, req, 'team.member.add', team.name, { user: user.name });
    return reply.code(204).send();
  });

  api.delete<{ Params: { name: string; user: string } }>('/teams/:name/members/:user', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const { team, user } = await teamAndUser(ctx, req.params);
    if (!(await ctx.accounts.removeMember(team.id, user.id))) throw notFound(`${user.name} is not a member of ${team.name}`);
    await recorded(ctx, req, 'team.member.remove', team.name, { user: user.name });
    return reply.code(204).send();
  });
}

async function teamAndUser(ctx: ApiContext, params: { name: string; user: string }) {
  const teamName = parse(accountName, params.name, 'team name');
  const userName = parse(accountName, params.user, 'user name');
  const team = await ctx.accounts.getTeam(teamName);
  if (!team) throw notFound(`no team ${teamName}`);
  const user = await ctx.accounts.getUser({ name: userName });
  if (!user) throw notFound(`no user ${userName}`);
  return { team, user };
}
