/**
 * /api/v1/namespaces: a namespace's settings and who holds which role in it. Registry
 * administrators create namespaces; a namespace's admins change it and its grants.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Namespace, PrincipalKind } from '../meta/accounts.ts';
import type { Access } from '../auth/access.ts';
import { namespaceOf } from '../reference.ts';
import type { MetaStore } from '../meta/metastore.ts';
import { access, accountName, authorize, decide, iso, namespaceName, recorded, type ApiContext } from './context.ts';
import { invalid, notFound, parse } from './errors.ts';

const settingsBody = z.strictObject({
  anonymousRead: z.boolean().optional(),
  /** the hard quota: a push that would take the namespace's fair usage over it is refused; policies read it as ns.quotaBytes (0: none) */
  quotaBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  /** the soft quota: crossing it is logged and shown in …/usage (0: none) */
  softQuotaBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  /** garbage collection may remove untagged manifests that nothing reaches */
  collectUntagged: z.boolean().optional(),
  /** what policies read as ns.labels */
  labels: z
    .record(z.string().regex(/^[a-z0-9][a-z0-9._/-]{0,62}$/, 'a label key is lowercase letters, digits and . _ / -'), z.string().max(256))
    .refine((l) => Object.keys(l).length <= 64, 'at most 64 labels')
    .optional(),
});
const grantBody = z.strictObject({ role: z.enum(['reader', 'writer', 'maintainer', 'admin'], 'use reader, writer, maintainer or admin') });
const kinds = z.enum(['user', 'team', 'robot'], 'use user, team or robot');

export const view = (n: Namespace) => ({
  name: n.name,
  anonymousRead: n.anonymousRead,
  quotaBytes: n.quotaBytes,
  softQuotaBytes: n.softQuotaBytes,
  labels: n.labels,
  collectUntagged: n.collectUntagged,
  createdAt: iso(n.createdAt),
});

type NsParams = { Params: { ns: string } };
type GrantParams = { Params: { ns: string; kind: string; name: string } };

/** The namespace, or 404 with how to create it. */
export async function existing(ctx: ApiContext, ns: string): Promise<Namespace> {
  const found = await ctx.accounts.getNamespace(ns);
  if (!found) throw notFound(`no namespace ${ns}; a registry administrator creates it with PUT /api/v1/namespaces/${ns}`);
  return found;
}

export function registerNamespaces(api: FastifyInstance, ctx: ApiContext): void {
  // Everyone logged in sees the namespaces they may pull from (administrators: all of them);
  // the access controller decides which, one optional access per namespace.
  // A namespace exists once created here or once something was pushed to it; the second kind has
  // no settings yet (`created: false`, anonymous read off) until an administrator creates it.
  api.get('/namespaces', async (req, reply) => {
    const listed = new Map((await ctx.accounts.listNamespaces()).map((n) => [n.name, { ...view(n), created: true }]));
    for (const name of await pushedNamespaces(ctx.meta))
      if (!listed.has(name))
        listed.set(name, { name, anonymousRead: false, quotaBytes: 0, softQuotaBytes: 0, labels: {}, collectUntagged: false, createdAt: null, created: false });
    const all = [...listed.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const decision = await decide(ctx, req, reply, [
      access.login,
      ...all.map((n): Access => ({ type: 'repository', name: n.name, actions: ['pull'], optional: true })),
    ]);
    const refused = new Set(decision.refused.map((a) => a.name));
    return { namespaces: all.filter((n) => !refused.has(n.name)) };
  });

  api.put<NsParams>('/namespaces/:ns', async (req, reply) => {
    const ns = parse(namespaceName, req.params.ns, 'namespace name');
    const before = await ctx.accounts.getNamespace(ns);
    await authorize(ctx, req, reply, [before ? access.manage(ns) : access.admin]);
    const body = parse(settingsBody, req.body ?? {}, 'namespace settings');
    const after = await ctx.accounts.upsertNamespace(ns, body);
    ctx.policy?.namespaceChanged(ns);
    await recorded(ctx, req, before ? 'namespace.update' : 'namespace.create', ns, { ...body });
    return view(after);
  });

  api.get<NsParams>('/namespaces/:ns', async (req, reply) => {
    const ns = parse(namespaceName, req.params.ns, 'namespace name');
    await authorize(ctx, req, reply, [access.manage(ns)]);
    const found = await existing(ctx, ns);
    const grants = await ctx.accounts.listGrants(ns);
    const teams = grants.some((g) => g.kind === 'team') ? new Map((await ctx.accounts.listTeams()).map((t) => [t.id, t.name])) : new Map<string, string>();
    const named = await Promise.all(
      grants.map(async (g) => {
        const name =
          g.kind === 'team'
            ? teams.get(g.principal)
            : g.kind === 'user'
              ? (await ctx.accounts.getUser({ id: g.principal }))?.name
              : (await ctx.accounts.getRobot({ id: g.principal }))?.name;
        return name === undefined ? undefined : { kind: g.kind, name, role: g.role };
      }),
    );
    return { ...view(found), grants: named.filter((g) => g !== undefined).sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name)) };
  });

  api.put<GrantParams>('/namespaces/:ns/grants/:kind/:name', async (req, reply) => {
    const ns = parse(namespaceName, req.params.ns, 'namespace name');
    await authorize(ctx, req, reply, [access.manage(ns)]);
    const kind = parse(kinds, req.params.kind, 'principal kind');
    const { role } = parse(grantBody, req.body, 'grant');
    await existing(ctx, ns);
    const principal = await grantee(ctx, ns, kind, req.params.name);
    await ctx.accounts.setGrant({ namespace: ns, kind, principal: principal.id, role });
    await recorded(ctx, req, 'grant.set', ns, { kind, name: principal.name, role });
    return reply.code(204).send();
  });

  api.delete<GrantParams>('/namespaces/:ns/grants/:kind/:name', async (req, reply) => {
    const ns = parse(namespaceName, req.params.ns, 'namespace name');
    await authorize(ctx, req, reply, [access.manage(ns)]);
    const kind = parse(kinds, req.params.kind, 'principal kind');
    await existing(ctx, ns);
    const principal = await grantee(ctx, ns, kind, req.params.name);
    if (!(await ctx.accounts.removeGrant(ns, kind, principal.id))) throw notFound(`${kind} ${principal.name} has no role in ${ns}`);
    await recorded(ctx, req, 'grant.remove', ns, { kind, name: principal.name });
    return reply.code(204).send();
  });
}

/**
 * The first path segments of the stored repositories, read a page at a time. Names sort byte by
 * byte (both engines) and hold only [a-z0-9._/-], so `<ns>/~` sorts after every repository in ns:
 * a page that ends inside a namespace skips the rest of it, and a namespace with a million
 * repositories costs one page, not a thousand.
 */
export async function pushedNamespaces(meta: MetaStore, pageSize = 1000): Promise<Set<string>> {
  const found = new Set<string>();
  let last: string | undefined;
  for (;;) {
    const page = await meta.listRepositories({ n: pageSize, last });
    for (const repo of page) found.add(namespaceOf(repo));
    const tail = page[page.length - 1];
    if (page.length < pageSize || tail === undefined) return found;
    const ns = namespaceOf(tail);
    last = tail === ns ? tail : `${ns}/~`;
  }
}

/** The user, team or robot a grant names. A robot is named `<ns>+<name>` or by its short name. */
async function grantee(ctx: ApiContext, ns: string, kind: PrincipalKind, rawName: string): Promise<{ id: string; name: string }> {
  if (kind === 'robot') {
    const plus = rawName.indexOf('+');
    if (plus !== -1 && rawName.slice(0, plus) !== ns)
      throw invalid(`robot ${rawName.slice(0, 200)} belongs to another namespace; a robot may only have a role in its own namespace`);
    const short = parse(accountName, plus === -1 ? rawName : rawName.slice(plus + 1), 'robot name');
    const robot = await ctx.accounts.getRobot({ name: `${ns}+${short}` });
    if (!robot) throw notFound(`no robot ${ns}+${short}`);
    return robot;
  }
  const name = parse(accountName, rawName, `${kind} name`);
  const found = kind === 'user' ? await ctx.accounts.getUser({ name }) : await ctx.accounts.getTeam(name);
  if (!found) throw notFound(`no ${kind} ${name}`);
  return found;
}
