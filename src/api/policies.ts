/**
 * /api/v1/policies: save (a new version each time), read, list and delete policies; simulate and
 * test them before they decide anything; and read the decision log. Registry administrators
 * manage registry-wide policies; a namespace's admins manage the policies of their namespace
 * (a document with `namespace: <ns>`). Every change is audited.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Access } from '../auth/access.ts';
import type { Principal } from '../auth/principal.ts';
import type { DecisionRecord, StoredPolicy } from '../meta/policy.ts';
import { readPolicy, type PolicyDocument } from '../policy/document.ts';
import { PolicyRejected } from '../policy/engine.ts';
import type { PolicyInput } from '../policy/input-schema.ts';
import { scopeMatcher } from '../policy/scope.ts';
import type { PolicyService } from '../policy/service.ts';
import { renderTemplate } from '../policy/template.ts';
import { isDigest, parseDigest } from '../oci/digest.ts';
import { isRepositoryName, isTag, nameRule, namespaceOf, tagRule } from '../reference.ts';
import { access, decide, iso, recorded, type ApiContext } from './context.ts';
import { ApiError, invalid, notFound, parse } from './errors.ts';

type NameParams = { Params: { name: string } };

const policyName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'a policy name is 1 to 63 lowercase letters, digits and inner dashes');
/** A policy in a body: the document as JSON, or `{ "source": "<YAML or JSON text>" }` (what the CLI sends). */
const policyBody = z.union([z.strictObject({ source: z.string().min(1) }), z.record(z.string(), z.unknown())]);
const simulateBody = z.strictObject({
  policy: policyBody,
  days: z.number().int().min(0).max(366).default(7),
  limit: z.number().int().min(1).max(100_000).default(10_000),
});
const testBody = z.strictObject({
  policy: policyBody,
  /** a whole input document to decide on */
  input: z.record(z.string(), z.unknown()).optional(),
  /** or a stored artifact, as if requested now by the caller */
  artifact: z.strictObject({ repository: z.string().min(1).max(255), reference: z.string().min(1).max(255) }).optional(),
  action: z.enum(['push', 'pull', 'delete', 'retention']).default('pull'),
});
const decisionQuery = z.strictObject({
  policy: z.string().max(63).optional(),
  result: z.enum(['deny', 'allow', 'error']).optional(),
  action: z.enum(['push', 'pull', 'delete', 'retention']).optional(),
  repository: z.string().min(1).max(255).optional(),
  namespace: z.string().min(1).max(255).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** the `next` of an earlier page (src/meta/kysely/policy.ts writes it: time.id) */
  before: z
    .string()
    .regex(/^\d{1,16}\.[0-9a-f-]{1,64}$/, 'before is the next of an earlier page')
    .optional(),
});

const source = (body: z.infer<typeof policyBody>): unknown =>
  'source' in body && typeof body.source === 'string' && Object.keys(body).length === 1 ? body.source : body;

export const policyView = (p: StoredPolicy) => ({
  name: p.name,
  version: p.version,
  namespace: p.namespace,
  document: p.document,
  source: p.source,
  createdBy: p.createdBy,
  createdAt: iso(p.createdAt),
  ...(p.deleted ? { deleted: true } : {}),
});
const decisionView = (d: DecisionRecord) => ({ ...d, at: iso(d.at) });

/** Who manages a policy: registry admins for registry-wide ones, the namespace's admins for theirs. */
const managerOf = (namespace: string | null | undefined): Access => (namespace ? access.manage(namespace) : access.admin);

function rejected(err: unknown): never {
  if (err instanceof PolicyRejected) throw invalid(err.message);
  throw err;
}

export function registerPolicies(api: FastifyInstance, ctx: ApiContext): void {
  const service = (): PolicyService => {
    if (!ctx.policy) throw new ApiError('INVALID', 'policies are not available on this server');
    return ctx.policy;
  };
  const checked = async (body: z.infer<typeof policyBody>) => {
    try {
      return await service().check(source(body));
    } catch (err) {
      rejected(err);
    }
  };
  /**
   * Who may save, test or simulate a policy: its manager, who must also be able to pull its OPA
   * bundle (else a policy could run, and a save's answer tell of, code the caller may not read).
   * Asked on the parsed document, before anything of it is compiled or fetched.
   */
  const authorizeFor = (req: FastifyRequest, reply: Parameters<typeof decide>[2], body: z.infer<typeof policyBody>, also: Access[] = []) => {
    let doc: PolicyDocument;
    try {
      doc = readPolicy(source(body));
    } catch (err) {
      rejected(err);
    }
    const bundle: Access[] = doc.engine === 'opa-wasm' ? [{ type: 'repository', name: doc.bundle.repository, actions: ['pull'] }] : [];
    return principal(req, reply, [managerOf(doc.namespace), ...bundle, ...also]);
  };
  /** The document, once checked; what the check compiled is let go (an OPA policy holds a place in every worker). */
  const checkedDocument = async (body: z.infer<typeof policyBody>) => {
    const { doc, compiled } = await checked(body);
    await compiled.close?.();
    return doc;
  };
  const principal = async (req: FastifyRequest, reply: Parameters<typeof decide>[2], accesses: Access[]): Promise<Principal> =>
    (await decide(ctx, req, reply, accesses)).principal;

  api.get('/policies', async (req, reply) => {
    const all = await ctx.meta.policy.listPolicies();
    const decision = await decide(ctx, req, reply, [access.login, ...all.map((p) => ({ ...managerOf(p.namespace), optional: true }))]);
    const refused = new Set(decision.refused.map((a) => `${a.type} ${a.name}`));
    const visible = all.filter((p) => !refused.has(`${managerOf(p.namespace).type} ${managerOf(p.namespace).name}`));
    return { policies: visible.map(policyView) };
  });

  api.get<NameParams & { Querystring: { version?: string } }>('/policies/:name', async (req, reply) => {
    const name = parse(policyName, req.params.name, 'policy name');
    const version = req.query.version === undefined ? undefined : parse(z.coerce.number().int().min(1), req.query.version, 'version');
    const found = await ctx.meta.policy.getPolicy(name, version);
    // Refuse before saying whether it exists: a stranger learns nothing from the status.
    await principal(req, reply, [managerOf(found?.namespace)]);
    if (!found) throw notFound(`no policy ${name}${version ? ` version ${version}` : ''}`);
    return policyView(found);
  });

  api.get<NameParams>('/policies/:name/versions', async (req, reply) => {
    const name = parse(policyName, req.params.name, 'policy name');
    const versions = await ctx.meta.policy.policyVersions(name);
    await principal(req, reply, [managerOf(versions[0]?.namespace)]);
    if (versions.length === 0) throw notFound(`no policy ${name}`);
    return { versions: versions.map(policyView) };
  });

  api.put<NameParams>('/policies/:name', async (req, reply) => {
    const name = parse(policyName, req.params.name, 'policy name');
    const body = parse(policyBody, req.body ?? {}, 'policy');
    // The caller must be allowed to manage the policy as it is and as it would be.
    const before = await ctx.meta.policy.getPolicy(name);
    const actor = await authorizeFor(req, reply, body, before ? [managerOf(before.namespace)] : []);
    const doc = await checkedDocument(body);
    if (doc.name !== name) throw invalid(`the document is named ${doc.name}, but the URL names ${name}`);
    const text = typeof source(body) === 'string' ? (source(body) as string) : JSON.stringify(body, null, 2);
    const saved = await ctx.meta.policy.putPolicy({ name, namespace: doc.namespace ?? null, document: doc, source: text, createdBy: actor.name });
    await recorded(ctx, req, before ? 'policy.update' : 'policy.create', name, { version: saved.version, namespace: saved.namespace, mode: doc.mode });
    await service().reload(true);
    return reply.code(before ? 200 : 201).send(policyView(saved));
  });

  api.delete<NameParams>('/policies/:name', async (req, reply) => {
    const name = parse(policyName, req.params.name, 'policy name');
    const found = await ctx.meta.policy.getPolicy(name);
    const actor = await principal(req, reply, [managerOf(found?.namespace)]);
    if (!found || !(await ctx.meta.policy.deletePolicy(name, actor.name))) throw notFound(`no policy ${name}`);
    await recorded(ctx, req, 'policy.delete', name, { version: found.version + 1 });
    await service().reload(true);
    return reply.code(204).send();
  });

  api.post('/policies/simulate', async (req, reply) => {
    const body = parse(simulateBody, req.body ?? {}, 'simulation');
    const actor = await authorizeFor(req, reply, body.policy);
    try {
      return await service().simulate(source(body.policy), actor, { days: body.days, limit: body.limit });
    } catch (err) {
      rejected(err);
    }
  });

  api.post('/policies/test', async (req, reply) => {
    const body = parse(testBody, req.body ?? {}, 'policy test');
    const actor = await authorizeFor(req, reply, body.policy);
    const { doc, compiled } = await checked(body.policy);
    // What the check compiled is let go however the request ends (an OPA policy holds a place in every worker).
    try {
      if ((body.input === undefined) === (body.artifact === undefined))
        throw invalid('give either an input document or an artifact (repository and reference)');
      let input: PolicyInput;
      if (body.input) input = body.input as unknown as PolicyInput;
      else {
        const { repository, reference } = body.artifact as { repository: string; reference: string };
        if (!isRepositoryName(repository)) throw invalid(`${repository.slice(0, 80)} is not a repository name: ${nameRule}`);
        if (isDigest(reference)) {
          try {
            parseDigest(reference);
          } catch (err) {
            throw invalid((err as Error).message);
          }
        } else if (!isTag(reference)) throw invalid(`${reference.slice(0, 80)} is neither a tag (${tagRule}) nor a digest`);
        await principal(req, reply, [{ type: 'repository', name: repository, actions: ['pull'] }]);
        const record = isDigest(reference)
          ? await ctx.meta.getManifest(repository, reference)
          : isTag(reference)
            ? await ctx.meta.getTaggedManifest(repository, reference)
            : undefined;
        if (!record) throw notFound(`no manifest ${reference} in repository ${repository}`);
        input = await service().input({
          action: body.action,
          repository,
          namespace: namespaceOf(repository),
          digest: record.digest,
          ...(isDigest(reference) ? {} : { tag: reference }),
          manifest: { mediaType: record.mediaType, content: record.content },
          principal: { kind: actor.kind, id: actor.id, name: actor.name, admin: actor.admin },
          tokenKind: 'jwt',
          userAgent: req.headers['user-agent'] ?? '',
          sourceAddress: req.ip,
          time: Date.now(),
        });
      }
      try {
        const outcome = await compiled.evaluate(input);
        // whether the policy would decide this request at all: a test decides the input whatever the policy's scope and actions
        const applies =
          (doc.actions as string[]).includes(input.action) && scopeMatcher(doc)(input.artifact?.namespace ?? '', input.artifact?.repository ?? '');
        if (!outcome.deny) return { deny: false, applies, messages: [], input };
        // the message the request would be told: a CEL engine has no messages of its own, only the
        // document's template (version 0: the policy under test is not saved)
        const message = renderTemplate(doc.message, input, { name: doc.name, version: 0 }, outcome.messages);
        return { deny: true, applies, message, messages: outcome.messages, input };
      } catch (err) {
        return { deny: doc.failure === 'closed', error: err instanceof Error ? err.message : String(err), input };
      }
    } finally {
      await compiled.close?.();
    }
  });

  // How long decisions take, per engine, and how many policies are loaded (registry administrators).
  api.get('/policy-stats', async (req, reply) => {
    await principal(req, reply, [access.admin]);
    return { policies: (await ctx.meta.policy.listPolicies()).length, latency: service().latency.summary() };
  });

  api.get<{ Querystring: Record<string, string> }>('/policy-decisions', async (req, reply) => {
    const q = parse(decisionQuery, req.query, 'query');
    // Registry administrators read every decision; a namespace's admins those in their namespace:
    // the namespace named and the repository's, when both are given (the filters are all applied).
    const scopes = new Set([...(q.namespace === undefined ? [] : [q.namespace]), ...(q.repository === undefined ? [] : [namespaceOf(q.repository)])]);
    await principal(req, reply, scopes.size > 0 ? [...scopes].map(access.manage) : [access.admin]);
    const page = await ctx.meta.policy.queryDecisions(
      {
        ...(q.policy ? { policy: q.policy } : {}),
        ...(q.result ? { result: q.result } : {}),
        ...(q.action ? { action: q.action } : {}),
        ...(q.repository !== undefined ? { repository: q.repository } : {}),
        ...(q.namespace !== undefined ? { namespace: q.namespace } : {}),
        ...(q.since ? { since: Date.parse(q.since) } : {}),
        ...(q.until ? { until: Date.parse(q.until) } : {}),
      },
      { limit: q.limit, ...(q.before ? { before: q.before } : {}) },
    );
    return { decisions: page.decisions.map(decisionView), ...(page.next ? { next: page.next } : {}) };
  });
}
