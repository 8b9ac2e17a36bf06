/**
 * A policy as operators write it: a small YAML or JSON document (docs/policy.md). This module
 * parses and validates the document itself; the engine (CEL, OPA Wasm) checks the code in it.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isNamespaceName, namespaceRule } from '../reference.ts';
import { PolicyRejected } from './engine.ts';

export const policyLimits = { documentBytes: 64 * 1024, messageBytes: 1024, patterns: 64 } as const;

const policyName = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'a policy name is 1 to 63 lowercase letters, digits and inner dashes (like require-cost-center)');
/** A namespace or repository pattern: `*` matches within a path segment, `**` across segments. */
const pattern = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[a-z0-9._\-/*]+$/, 'a pattern holds lowercase letters, digits, . _ - / and the wildcards * and **');

const common = {
  name: policyName,
  description: z.string().max(1024).default(''),
  /** set: the policy belongs to that namespace, applies only in it, and its admins manage it */
  namespace: z.string().refine(isNamespaceName, `${namespaceRule}, e.g. team`).optional(),
  scope: z
    .strictObject({
      namespaces: z.array(pattern).min(1).max(policyLimits.patterns).default(['*']),
      repositories: z.array(pattern).min(1).max(policyLimits.patterns).default(['**']),
    })
    .default({ namespaces: ['*'], repositories: ['**'] }),
  actions: z
    .array(z.enum(['push', 'pull', 'delete', 'retention'], 'an action is push, pull, delete or retention'))
    .min(1)
    .max(4)
    .transform((a) => [...new Set(a)]),
  mode: z.enum(['enforce', 'audit', 'dry-run'], 'mode is enforce, audit or dry-run').default('enforce'),
  message: z.string().max(policyLimits.messageBytes).default('denied by policy {{ policy.name }}'),
  /** what a request gets when the policy itself fails (a trap, a time or memory limit): deny (closed) or allow (open) */
  failure: z.enum(['closed', 'open'], 'failure is closed (deny) or open (allow)').default('closed'),
};

const celPolicy = z.strictObject({ ...common, engine: z.literal('cel').default('cel'), deny: z.string().min(1) });
const opaPolicy = z.strictObject({
  ...common,
  engine: z.literal('opa-wasm'),
  /** an OPA bundle (bundle.tar.gz with /policy.wasm and data.json) pushed to this registry */
  bundle: z.strictObject({ repository: z.string().min(1).max(255), digest: z.string().regex(/^sha256:[a-f0-9]{64}$/, 'a bundle digest is sha256:<64 hex>') }),
  /** the entrypoint given to `opa build -e`, e.g. custody/deny */
  entrypoint: z.string().min(1).max(255),
});

export const policyDocument = z.discriminatedUnion('engine', [celPolicy, opaPolicy]);
export type PolicyDocument = z.infer<typeof policyDocument>;
export type CelPolicyDocument = z.infer<typeof celPolicy>;
export type OpaPolicyDocument = z.infer<typeof opaPolicy>;

/** Parses a policy from YAML or JSON text (or an already parsed value); throws PolicyRejected. */
export function readPolicy(source: unknown): PolicyDocument {
  let value: unknown = source;
  if (typeof source === 'string') {
    if (Buffer.byteLength(source) > policyLimits.documentBytes) throw new PolicyRejected(`a policy document is at most ${policyLimits.documentBytes} bytes`);
    try {
      // YAML is a superset of JSON; aliases are refused (a billion laughs is a small YAML file),
      // and the size limit above bounds the nesting the parser can be made to recurse through.
      value = parseYaml(source, { maxAliasCount: 0, uniqueKeys: true });
    } catch (err) {
      throw new PolicyRejected(`the policy is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (value && typeof value === 'object' && !('engine' in value)) value = { ...value, engine: 'cel' };
  const result = policyDocument.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    throw new PolicyRejected(`${where}${issue?.message ?? 'not a policy document'}`);
  }
  const doc = result.data;
  if (doc.namespace !== undefined && !doc.scope.namespaces.every((n) => n === doc.namespace || n === '*')) {
    throw new PolicyRejected(
      `scope.namespaces: a policy of namespace ${doc.namespace} applies only there; leave scope.namespaces out or name only ${doc.namespace}`,
    );
  }
  return doc;
}
