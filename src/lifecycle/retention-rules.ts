/**
 * Retention rules as operators write them (docs/lifecycle.md, "Retention"): a small YAML or JSON
 * document per namespace or repository that says which tags to keep, which never to delete, and
 * how old an untagged manifest may get.
 *
 *   keep:                       # an expression, evaluated per tag; absent: every tag is kept
 *     any:
 *       - newest: 10            # the 10 most recently pushed tags (tags.updated_at)
 *       - { newest: 3, among: "release-*" }
 *       - tag: { regex: "^v[0-9]+\\.[0-9]+\\.[0-9]+$" }
 *       - pulledWithin: 30d
 *       - all: [ { tag: "nightly-*" }, { pushedWithin: 7d } ]
 *       - not: { tag: "tmp-*" }
 *   protect: [latest, "prod-*"] # never deleted by retention, whatever keep says
 *   deleteUntagged: { olderThan: 14d }
 *
 * Patterns are globs (`*` any run of characters, `?` one) or RE2 regular expressions, matched
 * against the whole tag, in linear time (the CEL engine's matcher, src/policy/cel.ts): no pattern
 * a namespace admin writes can make a run backtrack for hours.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { re2Matches } from '../policy/re2.ts';

export class RulesRejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RulesRejected';
  }
}

export const retentionLimits = { documentBytes: 32 * 1024, depth: 16, nodes: 256, patterns: 64, patternBytes: 1024, newest: 100_000 } as const;

/** A tag pattern, normalized: a string in the document is a glob. */
export type Pattern = { glob: string } | { regex: string };

export type Expr =
  | { newest: number; among?: Pattern }
  | { tag: Pattern }
  | { pushedWithin: string }
  | { pulledWithin: string }
  | { all: Expr[] }
  | { any: Expr[] }
  | { not: Expr };

/** A validated rule set: what is stored (as JSON) and what a run evaluates. */
export interface RulesDocument {
  description?: string;
  keep?: Expr;
  protect: Pattern[];
  deleteUntagged?: { olderThan: string };
}

const units: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `30d`, `12h`, `90m`, `3600s`, `2w` → milliseconds. */
export function durationMs(text: string): number {
  const m = /^(\d{1,6})([smhdw])$/.exec(text);
  if (!m) throw new RulesRejected(`${text} is no duration: write a whole number and s, m, h, d or w, e.g. 30d`);
  return Number(m[1]) * (units[m[2] as string] as number);
}

const duration = z.string().regex(/^\d{1,6}[smhdw]$/, 'a duration is a whole number and s, m, h, d or w, e.g. 30d or 12h');
const globText = z
  .string()
  .min(1, 'a pattern is not empty')
  .max(retentionLimits.patternBytes)
  .regex(/^[\x21-\x7e]+$/, 'a glob holds printable ASCII without spaces');
const patternSchema = z.union([globText, z.strictObject({ glob: globText }), z.strictObject({ regex: z.string().min(1).max(retentionLimits.patternBytes) })], {
  error: 'a pattern is a glob ("v*"), { glob: "v*" } or { regex: "^v[0-9]+$" }',
});

/** The RE2 source a pattern is matched with: anchored, so it must match the whole tag. */
export function patternSource(p: Pattern): string {
  if ('regex' in p) return `^(?:${p.regex})$`;
  let out = '^';
  for (const ch of p.glob) out += ch === '*' ? '.*' : ch === '?' ? '.' : /[A-Za-z0-9_-]/.test(ch) ? ch : `\\${ch}`;
  return `${out}$`;
}

export function matches(p: Pattern, tag: string): boolean {
  return re2Matches(tag, patternSource(p));
}

export const describePattern = (p: Pattern): string => ('regex' in p ? `/${p.regex}/` : p.glob);

function readPattern(value: unknown, where: string): Pattern {
  const r = patternSchema.safeParse(value);
  if (!r.success) throw new RulesRejected(`${where}: ${r.error.issues[0]?.message ?? 'not a pattern'}`);
  const p: Pattern = typeof r.data === 'string' ? { glob: r.data } : r.data;
  try {
    // the pattern as written first, so that an error quotes it, not the anchored form
    if ('regex' in p) re2Matches('', p.regex);
    re2Matches('', patternSource(p));
  } catch (err) {
    throw new RulesRejected(`${where}: not a valid RE2 expression: ${(err as Error).message}`);
  }
  return p;
}

const leaves = {
  newest: z.number().int().min(1).max(retentionLimits.newest),
  pushedWithin: duration,
  pulledWithin: duration,
};
const kinds = ['newest', 'tag', 'pushedWithin', 'pulledWithin', 'all', 'any', 'not'] as const;

/** Reads an expression node by node, so that a mistake is named by its path (keep.any[2].tag). */
function readExpr(value: unknown, where: string, depth: number, budget: { nodes: number }): Expr {
  if (depth > retentionLimits.depth) throw new RulesRejected(`${where}: rules nest at most ${retentionLimits.depth} levels deep`);
  if (--budget.nodes < 0) throw new RulesRejected(`keep: at most ${retentionLimits.nodes} rules in an expression`);
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new RulesRejected(`${where}: a rule is an object with one of ${kinds.join(', ')}, e.g. { newest: 10 }`);
  const keys = Object.keys(value);
  const kind = keys[0] as (typeof kinds)[number];
  // `newest` may carry `among` beside it ({ newest: 3, among: "v*" }); everything else stands alone
  const extra = keys.filter((k) => k !== kind && !(kind === 'newest' && k === 'among'));
  if (!kinds.includes(kind) || extra.length > 0)
    throw new RulesRejected(
      `${where}: a rule is one of ${kinds.join(', ')}; got ${keys.length === 0 ? 'an empty object' : keys.map((k) => JSON.stringify(k)).join(', ')}`,
    );
  const v = (value as Record<string, unknown>)[kind];
  const at = `${where}.${kind}`;
  switch (kind) {
    case 'newest': {
      const r = leaves.newest.safeParse(v);
      if (!r.success) throw new RulesRejected(`${at}: how many tags to keep, a whole number from 1 to ${retentionLimits.newest}`);
      const among = (value as { among?: unknown }).among;
      return among === undefined ? { newest: r.data } : { newest: r.data, among: readPattern(among, `${where}.among`) };
    }
    case 'tag':
      return { tag: readPattern(v, at) };
    case 'pushedWithin':
    case 'pulledWithin': {
      const r = leaves[kind].safeParse(v);
      if (!r.success) throw new RulesRejected(`${at}: ${r.error.issues[0]?.message ?? 'not a duration'}`);
      return kind === 'pushedWithin' ? { pushedWithin: r.data } : { pulledWithin: r.data };
    }
    case 'all':
    case 'any': {
      if (!Array.isArray(v) || v.length === 0) throw new RulesRejected(`${at}: a list of one or more rules`);
      const list = v.map((e, i) => readExpr(e, `${at}[${i}]`, depth + 1, budget));
      return kind === 'all' ? { all: list } : { any: list };
    }
    case 'not':
      return { not: readExpr(v, at, depth + 1, budget) };
  }
}

const documentSchema = z.strictObject({
  description: z.string().max(1024).optional(),
  keep: z.unknown().optional(),
  protect: z.array(z.unknown()).max(retentionLimits.patterns, `at most ${retentionLimits.patterns} protected patterns`).default([]),
  deleteUntagged: z.strictObject({ olderThan: duration }).optional(),
});

/** Parses and checks a rule set from YAML or JSON text (or an already parsed value); throws RulesRejected. */
export function readRules(source: unknown): RulesDocument {
  let value: unknown = source;
  if (typeof source === 'string') {
    if (Buffer.byteLength(source) > retentionLimits.documentBytes) throw new RulesRejected(`a rule set is at most ${retentionLimits.documentBytes} bytes`);
    try {
      // aliases refused, as for policies: a billion laughs is a small YAML file
      value = parseYaml(source, { maxAliasCount: 0, uniqueKeys: true });
    } catch (err) {
      throw new RulesRejected(`the rules are not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new RulesRejected('a rule set is an object with keep, protect and deleteUntagged (each optional)');
  const r = documentSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    throw new RulesRejected(`${where}${issue?.code === 'unrecognized_keys' ? `unknown field ${issue.keys.join(', ')}` : (issue?.message ?? 'not a rule set')}`);
  }
  const doc = r.data;
  return {
    ...(doc.description === undefined ? {} : { description: doc.description }),
    ...(doc.keep === undefined ? {} : { keep: readExpr(doc.keep, 'keep', 1, { nodes: retentionLimits.nodes }) }),
    protect: doc.protect.map((p, i) => readPattern(p, `protect[${i}]`)),
    ...(doc.deleteUntagged === undefined ? {} : { deleteUntagged: doc.deleteUntagged }),
  };
}

/** The expression in words, for reasons and `show`. */
export function describe(e: Expr): string {
  if ('newest' in e) return e.among ? `newest ${e.newest} among ${describePattern(e.among)}` : `newest ${e.newest}`;
  if ('tag' in e) return `tag ${describePattern(e.tag)}`;
  if ('pushedWithin' in e) return `pushed within ${e.pushedWithin}`;
  if ('pulledWithin' in e) return `pulled within ${e.pulledWithin}`;
  if ('all' in e) return `all(${e.all.map(describe).join(', ')})`;
  if ('any' in e) return `any(${e.any.map(describe).join(', ')})`;
  return `not(${describe(e.not)})`;
}
