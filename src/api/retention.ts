/**
 * /api/v1/retention: set, read and delete the retention rules of a namespace or a repository,
 * start a run now (dry or real), and read the run log with what each run deleted. A namespace's
 * admins manage its rules, its repositories' rules and its runs; registry administrators
 * manage everything, including runs over the whole registry. Every change is audited. The
 * rules themselves: docs/lifecycle.md, "Retention".
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Access } from '../auth/access.ts';
import { RetentionBusy, type RetentionService, type RunScope } from '../lifecycle/retention.ts';
import { readRules, RulesRejected } from '../lifecycle/retention-rules.ts';
import type { RetentionRun, RulesKind, StoredRules } from '../meta/retention.ts';
import { OciError } from '../oci/errors.ts';
import { checkName } from '../oci/names.ts';
import { namespaceOf } from '../reference.ts';
import { access, authorize, iso, namespaceName, recorded, type ApiContext } from './context.ts';
import { ApiError, conflict, invalid, notFound, parse } from './errors.ts';

type Wild = { Params: { '*': string } };

/** Rules in a body: the document as JSON, or `{ "source": "<YAML or JSON text>" }` (what the CLI sends). */
const rulesBody = z.union([z.strictObject({ source: z.string().min(1) }), z.record(z.string(), z.unknown())]);
const runBody = z
  .strictObject({
    namespace: namespaceName.optional(),
    repository: z.string().min(1).max(255).optional(),
    dryRun: z.boolean().default(false),
  })
  .refine((b) => b.namespace === undefined || b.repository === undefined, 'give a namespace or a repository, not both');
const runsQuery = z.strictObject({
  namespace: namespaceName.optional(),
  limit: z.coerce.number<string>().int().min(1).max(500).default(50),
  before: z.string().max(200).optional(),
});
const runId = z.uuid('a run id is a UUID');

const source = (body: z.infer<typeof rulesBody>): unknown =>
  'source' in body && typeof body.source === 'string' && Object.keys(body).length === 1 ? body.source : body;

export const rulesView = (r: StoredRules) => ({
  kind: r.kind,
  name: r.name,
  document: r.document,
  source: r.source,
  updatedBy: r.updatedBy,
  updatedAt: iso(r.updatedAt),
});

export const runView = (r: RetentionRun, withResult = false) => ({
  id: r.id,
  trigger: r.trigger,
  actor: r.actor,
  scope: r.scope,
  dryRun: r.dryRun,
  status: r.status,
  phase: r.phase,
  progress: { done: r.done, total: r.total },
  startedAt: iso(r.startedAt),
  updatedAt: iso(r.updatedAt),
  finishedAt: r.finishedAt === undefined ? null : iso(r.finishedAt),
  counts: r.counts,
  ...(r.error === undefined ? {} : { error: r.error }),
  ...(withResult && r.result !== undefined ? { result: r.result } : {}),
});

/** Who manages what a run covers: the namespace's admins, or registry administrators for a run over everything. */
const managerOf = (namespace: string | undefined): Access => (namespace === undefined ? access.admin : access.manage(namespace));

/** A repository name from the path (names have slashes); a bad one is a 400. */
function repositoryName(raw: string): string {
  try {
    return checkName(raw);
  } catch (err) {
    if (err instanceof OciError) throw invalid(err.message);
    throw err;
  }
}

export function registerRetention(api: FastifyInstance, ctx: ApiContext): void {
  const service = (): RetentionService => {
    if (!ctx.retention) throw new ApiError('INVALID', 'retention is not available on this server');
    return ctx.retention;
  };

  const target = (kind: RulesKind, raw: string) => (kind === 'namespace' ? parse(namespaceName, raw, 'namespace name') : repositoryName(raw));
  const describeTarget = (kind: RulesKind, name: string) => `${kind} ${name}`;

  const getRules = async (kind: RulesKind, raw: string, req: FastifyRequest, reply: FastifyReply) => {
    const name = target(kind, raw);
    await authorize(ctx, req, reply, [access.manage(namespaceOf(name))]);
    const found = await ctx.meta.retention.getRules(kind, name);
    if (!found) throw notFound(`no retention rules for ${describeTarget(kind, name)}`);
    return rulesView(found);
  };

  const putRules = async (kind: RulesKind, raw: string, req: FastifyRequest, reply: FastifyReply) => {
    const name = target(kind, raw);
    const actor = await authorize(ctx, req, reply, [access.manage(namespaceOf(name))]);
    const body = parse(rulesBody, req.body ?? {}, 'retention rules');
    let document;
    try {
      document = readRules(source(body));
    } catch (err) {
      if (err instanceof RulesRejected) throw invalid(err.message);
      throw err;
    }
    const text = typeof source(body) === 'string' ? (source(body) as string) : JSON.stringify(body, null, 2);
    const stored: StoredRules = { kind, name, document, source: text, updatedBy: actor.name, updatedAt: Date.now() };
    const { created } = await ctx.meta.retention.putRules(stored);
    await recorded(ctx, req, created ? 'retention.rules.create' : 'retention.rules.update', name, { kind });
    return reply.code(created ? 201 : 200).send(rulesView(stored));
  };

  const deleteRules = async (kind: RulesKind, raw: string, req: FastifyRequest, reply: FastifyReply) => {
    const name = target(kind, raw);
    await authorize(ctx, req, reply, [access.manage(namespaceOf(name))]);
    if (!(await ctx.meta.retention.deleteRules(kind, name))) throw notFound(`no retention rules for ${describeTarget(kind, name)}`);
    await recorded(ctx, req, 'retention.rules.delete', name, { kind });
    return reply.code(204).send();
  };

  api.get<{ Params: { ns: string } }>('/retention/namespaces/:ns', (req, reply) => getRules('namespace', req.params.ns, req, reply));
  api.put<{ Params: { ns: string } }>('/retention/namespaces/:ns', (req, reply) => putRules('namespace', req.params.ns, req, reply));
  api.delete<{ Params: { ns: string } }>('/retention/namespaces/:ns', (req, reply) => deleteRules('namespace', req.params.ns, req, reply));
  api.get<Wild>('/retention/repositories/*', (req, reply) => getRules('repository', req.params['*'], req, reply));
  api.put<Wild>('/retention/repositories/*', (req, reply) => putRules('repository', req.params['*'], req, reply));
  api.delete<Wild>('/retention/repositories/*', (req, reply) => deleteRules('repository', req.params['*'], req, reply));

  // Every rule set (registry administrators), or a namespace's and its repositories' (its admins).
  api.get<{ Querystring: Record<string, string> }>('/retention/rules', async (req, reply) => {
    const q = parse(z.strictObject({ namespace: namespaceName.optional() }), req.query, 'query');
    await authorize(ctx, req, reply, [managerOf(q.namespace)]);
    return { rules: (await ctx.meta.retention.listRules(q.namespace)).map(rulesView) };
  });

  api.post('/retention/runs', async (req, reply) => {
    const body = parse(runBody, req.body ?? {}, 'retention run');
    const scope: RunScope =
      body.repository !== undefined
        ? { kind: 'repository', name: repositoryName(body.repository) }
        : body.namespace !== undefined
          ? { kind: 'namespace', name: body.namespace }
          : { kind: 'all' };
    const actor = await authorize(ctx, req, reply, [managerOf(scope.kind === 'all' ? undefined : namespaceOf(scope.name))]);
    try {
      const run = await service().begin({ scope, dryRun: body.dryRun, actor: actor.name, trigger: 'api', source: req.ip });
      if (!run) throw conflict('the run could not start');
      return reply.code(202).send(runView(run));
    } catch (err) {
      if (err instanceof RetentionBusy) throw conflict(err.message);
      throw err;
    }
  });

  api.get<{ Querystring: Record<string, string> }>('/retention/runs', async (req, reply) => {
    const q = parse(runsQuery, req.query, 'query');
    await authorize(ctx, req, reply, [managerOf(q.namespace)]);
    const page = await ctx.meta.retention.listRuns(q.namespace === undefined ? {} : { namespace: q.namespace }, {
      limit: q.limit,
      ...(q.before ? { before: q.before } : {}),
    });
    return { runs: page.runs.map((r) => runView(r)), ...(page.next ? { next: page.next } : {}) };
  });

  api.get<{ Params: { id: string } }>('/retention/runs/:id', async (req, reply) => {
    const id = parse(runId, req.params.id, 'run id');
    const run = await ctx.meta.retention.getRun(id);
    // refuse before saying whether it exists: a stranger learns nothing from the status
    await authorize(ctx, req, reply, [managerOf(run ? run.namespace : undefined)]);
    if (!run) throw notFound(`no retention run ${id}`);
    return runView(run, true);
  });
}
