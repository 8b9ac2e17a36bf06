/**
 * /api/v1/namespaces/:ns/webhooks: a namespace's webhooks (CloudEvents over HTTP, filtered by event
 * type and repository pattern) and each one's delivery log. Managed by the namespace's admins
 * (registry administrators everywhere); every change is audited. The secret signs deliveries, so
 * it is stored as given (it cannot be hashed); it is never shown again, except the one generated
 * when none is given, in the answer that made it. Delivery: src/insight/webhooks/, docs/insight.md.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { webhookEventTypes, type Delivery, type Webhook } from '../meta/webhooks.ts';
import { maxPatterns, patternProblem } from '../insight/webhooks/patterns.ts';
import { urlProblem } from '../insight/webhooks/settings.ts';
import { access, authorize, iso, namespaceName, recorded, type ApiContext } from './context.ts';
import { invalid, notFound, parse } from './errors.ts';
import { existing } from './namespaces.ts';

const url = z.string().min(1).max(2048, 'at most 2048 characters');
const secret = z
  .string()
  .min(16, 'a secret is at least 16 characters')
  .max(256, 'a secret is at most 256 characters')
  .regex(/^[\x21-\x7e]+$/, 'a secret is printable ASCII without spaces');
const types = z
  .array(z.enum(webhookEventTypes, `an event type is ${webhookEventTypes.join(', ')}`))
  .min(1, 'name at least one event type')
  .refine((t) => new Set(t).size === t.length, 'an event type is named once');
const repositories = z.array(z.string().max(300)).min(1, 'name at least one repository pattern').max(maxPatterns, `at most ${maxPatterns} repository patterns`);
const mode = z.enum(['structured', 'binary'], 'the mode is structured or binary');
const description = z.string().max(200, 'at most 200 characters');

const createBody = z.strictObject({
  url,
  secret: secret.optional(),
  types,
  repositories: repositories.optional(),
  mode: mode.optional(),
  description: description.optional(),
});
const changeBody = z
  .strictObject({ url, secret, rotateSecret: z.literal(true), types, repositories, mode, description })
  .partial()
  .refine((b) => !(b.secret !== undefined && b.rotateSecret), 'give a secret or rotateSecret, not both');
const deliveriesQuery = z.strictObject({
  limit: z.coerce.number<string>().int().min(1).max(500).default(50),
  before: z.coerce.number<string>().int().positive().optional(),
});

type NsParams = { Params: { ns: string } };
type HookParams = { Params: { ns: string; id: string } };

const newSecret = (): string => `whsec_${randomBytes(32).toString('base64url')}`;

const view = (w: Webhook, queued: number) => ({
  id: w.id,
  namespace: w.namespace,
  url: w.url,
  types: w.types,
  repositories: w.repositories,
  mode: w.mode,
  description: w.description,
  createdBy: w.createdBy,
  createdAt: iso(w.createdAt),
  updatedAt: iso(w.updatedAt),
  /** events waiting for a successful delivery */
  queued,
});

const deliveryView = (d: Delivery) => ({
  id: d.id,
  eventId: d.eventId,
  type: d.eventType,
  repository: d.repository,
  attempt: d.attempt,
  at: iso(d.at),
  durationMs: d.durationMs,
  status: d.status,
  outcome: d.outcome,
  error: d.error,
  response: d.response,
});

export function registerWebhooks(api: FastifyInstance, ctx: ApiContext): void {
  const allowPrivate = ctx.webhooks?.allowPrivateNetworks ?? false;

  const checkUrl = (raw: string) => {
    const problem = urlProblem(raw, allowPrivate);
    if (problem) throw invalid(`invalid webhook (url): ${problem}`);
    return raw;
  };
  const checkPatterns = (patterns: string[], ns: string) => {
    for (const p of patterns) {
      const problem = patternProblem(p, ns);
      if (problem) throw invalid(`invalid webhook (repositories): ${problem}`);
    }
    return [...new Set(patterns)];
  };

  const managed = async (req: FastifyRequest, reply: FastifyReply, rawNs: string): Promise<string> => {
    const ns = parse(namespaceName, rawNs, 'namespace name');
    await authorize(ctx, req, reply, [access.manage(ns)]);
    await existing(ctx, ns);
    return ns;
  };
  const webhookOf = async (ns: string, id: string): Promise<Webhook> => {
    const found = /^[0-9a-f-]{36}$/.test(id) ? await ctx.meta.webhooks.getWebhook(id) : undefined;
    if (!found || found.namespace !== ns) throw notFound(`no webhook ${id.slice(0, 64)} in ${ns}`);
    return found;
  };
  const queuedOf = async (id: string) => (await ctx.meta.webhooks.queued()).get(id) ?? 0;
  // the URL's path and query may be a credential of the receiver's: the audit log keeps its origin
  const auditDetail = (w: Partial<Webhook>) => ({
    ...(w.url !== undefined ? { origin: new URL(w.url).origin } : {}),
    ...(w.types ? { types: w.types } : {}),
    ...(w.repositories ? { repositories: w.repositories } : {}),
    ...(w.mode ? { mode: w.mode } : {}),
  });

  api.get<NsParams>('/namespaces/:ns/webhooks', async (req, reply) => {
    const ns = await managed(req, reply, req.params.ns);
    const queued = await ctx.meta.webhooks.queued();
    return { webhooks: (await ctx.meta.webhooks.listWebhooks(ns)).map((w) => view(w, queued.get(w.id) ?? 0)) };
  });

  api.post<NsParams>('/namespaces/:ns/webhooks', async (req, reply) => {
    const ns = await managed(req, reply, req.params.ns);
    const body = parse(createBody, req.body, 'webhook');
    const now = Date.now();
    const generated = body.secret === undefined ? newSecret() : undefined;
    const webhook: Webhook = {
      id: randomUUID(),
      namespace: ns,
      url: checkUrl(body.url),
      secret: body.secret ?? (generated as string),
      types: body.types,
      repositories: checkPatterns(body.repositories ?? [`${ns}/**`], ns),
      mode: body.mode ?? 'structured',
      description: body.description ?? '',
      createdBy: req.principal?.name ?? 'anonymous',
      createdAt: now,
      updatedAt: now,
    };
    await ctx.meta.webhooks.createWebhook(webhook);
    await recorded(ctx, req, 'webhook.create', webhook.id, { namespace: ns, ...auditDetail(webhook), generatedSecret: generated !== undefined });
    return reply.code(201).send({ ...view(webhook, 0), ...(generated ? { secret: generated } : {}) });
  });

  api.get<HookParams>('/namespaces/:ns/webhooks/:id', async (req, reply) => {
    const ns = await managed(req, reply, req.params.ns);
    const webhook = await webhookOf(ns, req.params.id);
    return view(webhook, await queuedOf(webhook.id));
  });

  api.patch<HookParams>('/namespaces/:ns/webhooks/:id', async (req, reply) => {
    const ns = await managed(req, reply, req.params.ns);
    const before = await webhookOf(ns, req.params.id);
    const body = parse(changeBody, req.body ?? {}, 'webhook change');
    const generated = body.rotateSecret ? newSecret() : undefined;
    const secretChange = body.secret ?? generated;
    const change = {
      ...(body.url !== undefined ? { url: checkUrl(body.url) } : {}),
      ...(secretChange !== undefined ? { secret: secretChange } : {}),
      ...(body.types ? { types: body.types } : {}),
      ...(body.repositories ? { repositories: checkPatterns(body.repositories, ns) } : {}),
      ...(body.mode ? { mode: body.mode } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
    };
    const after = await ctx.meta.webhooks.updateWebhook(before.id, { ...change, updatedAt: Math.max(Date.now(), before.updatedAt + 1) });
    if (!after) throw notFound(`no webhook ${before.id} in ${ns}`);
    await recorded(ctx, req, 'webhook.update', before.id, { namespace: ns, ...auditDetail(change), secretChanged: secretChange !== undefined });
    return { ...view(after, await queuedOf(after.id)), ...(generated ? { secret: generated } : {}) };
  });

  api.delete<HookParams>('/namespaces/:ns/webhooks/:id', async (req, reply) => {
    const ns = await managed(req, reply, req.params.ns);
    const webhook = await webhookOf(ns, req.params.id);
    if (!(await ctx.meta.webhooks.deleteWebhook(webhook.id))) throw notFound(`no webhook ${webhook.id} in ${ns}`);
    await recorded(ctx, req, 'webhook.delete', webhook.id, { namespace: ns });
    return reply.code(204).send();
  });

  api.get<HookParams & { Querystring: Record<string, string> }>('/namespaces/:ns/webhooks/:id/deliveries', async (req, reply) => {
    const ns = await managed(req, reply, req.params.ns);
    const webhook = await webhookOf(ns, req.params.id);
    const q = parse(deliveriesQuery, req.query, 'query');
    const page = await ctx.meta.webhooks.listDeliveries(webhook.id, { limit: q.limit, ...(q.before !== undefined ? { before: q.before } : {}) });
    return { deliveries: page.deliveries.map(deliveryView), ...(page.next !== undefined ? { next: page.next } : {}) };
  });
}
