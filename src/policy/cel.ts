/**
 * The CEL engine: a policy's `deny` expression, checked when the policy is saved and evaluated
 * in the request. @marcbachmann/cel-js, not @bufbuild/cel (docs/decisions.md): it evaluates our
 * expressions ~8× faster (0.4 µs against 3.3 µs), which is what keeps five policies on the pull
 * path within its budget, and it type-checks against declared schemas, which is how an
 * expression is held to the documented input fields. Two things the checker lets through are
 * refused by the walk below: has() of a field the input lacks (false, never an error, so a typo
 * in it would never deny) and dyn() of input fields (after which nothing is checked).
 *
 * Three guards keep an expression from costing a request more than it should:
 * - parse limits (nodes, depth) and a size limit on the source;
 * - a static cost bound: every comprehension (exists, all, map, filter, …) is charged the most
 *   elements its list can hold, times the cost of its body, so nested loops over SBOM
 *   components are refused when saved, not discovered when a pull stalls;
 * - `matches` runs on RE2 (re2js: linear time), not on JavaScript's backtracking RegExp, since the
 *   string it matches can come from whoever pushed the artifact. cel-js's own `matches` cannot
 *   be replaced, so the checked source is rewritten, call by call, to our `re2Matches`.
 */
import { Environment, type ASTNode, type Context, type ObjectSchema } from '@marcbachmann/cel-js';
import { RE2JS } from 're2js';
import { re2Matches } from './re2.ts';
import { inputSchema } from './input-schema.ts';
import { PolicyRejected, requestFields, type CompiledPolicy, type Outcome, type RequestField, type RequestReads } from './engine.ts';
import type { PolicyInput, Section } from './input-schema.ts';

export const celLimits = {
  sourceBytes: 8192,
  astNodes: 1000,
  depth: 48,
  /** cost units: one per node, comprehensions multiplied by their list's bound */
  cost: 1_000_000,
} as const;

/** The most elements a list of the input holds (SBOM components are capped when the input is built). */
const listBounds: Record<string, number> = {
  'artifact.platforms': 128,
  'artifact.layers': 1024,
  'artifact.wasm.imports': 4096,
  'artifact.wasm.exports': 4096,
  'trust.signatures': 256,
  'trust.attestations': 256,
  'trust.sbom.licenses': 4096,
  'trust.sbom.components': 10_000,
  'trust.sbom.components.licenses': 64,
  'request.identity.teams': 256,
  'request.identity.roles': 4,
};
/** what a list of unknown origin (a function's result, a literal) is charged */
const unknownListBound = 10_000;
const comprehensions = new Set(['all', 'exists', 'exists_one', 'map', 'filter', 'transformList', 'transformMap']);

type JsonSchema = { type?: string; properties?: Record<string, JsonSchema>; additionalProperties?: JsonSchema | boolean; items?: JsonSchema; title?: string };

/** The checker's environment: the input's fields, declared from the JSON Schema. */
function checkEnvironment(): Environment {
  const env = new Environment({ limits: { maxAstNodes: celLimits.astNodes, maxDepth: celLimits.depth } });
  const typed = (schema: JsonSchema): unknown => {
    if (schema.type === 'string' || schema.type === undefined) return 'string';
    if (schema.type === 'number') return 'double';
    if (schema.type === 'boolean') return 'bool';
    if (schema.type === 'array') {
      const items = schema.items ?? {};
      if (items.type !== 'object') return `list<${typed(items) as string}>`;
      const title = items.title ?? 'Item';
      env.registerType(title, { schema: fields(items) as ObjectSchema });
      return `list<${title}>`;
    }
    if (schema.properties) return fields(schema);
    return 'map<string, string>';
  };
  const fields = (schema: JsonSchema): Record<string, unknown> => Object.fromEntries(Object.entries(schema.properties ?? {}).map(([k, v]) => [k, typed(v)]));
  const root = inputSchema as unknown as JsonSchema;
  for (const [name, schema] of Object.entries(root.properties ?? {})) {
    const declared = typed(schema);
    if (typeof declared === 'string') env.registerVariable(name, declared);
    else env.registerVariable({ name, schema: declared as ObjectSchema });
  }
  return env;
}

function evalEnvironment(): Environment {
  const env = new Environment({ unlistedVariablesAreDyn: true, limits: { maxAstNodes: celLimits.astNodes * 2, maxDepth: celLimits.depth } });
  env.registerFunction('string.re2Matches(string): bool', re2Matches);
  return env;
}

let environments: { check: Environment; run: Environment } | undefined;
const envs = () => (environments ??= { check: checkEnvironment(), run: evalEnvironment() });

/** "line 1, column 7" for an offset into the source. */
function position(source: string, offset: number): { line: number; column: number } {
  const before = source.slice(0, Math.max(0, offset));
  const lines = before.split('\n');
  return { line: lines.length, column: (lines.at(-1)?.length ?? 0) + 1 };
}

/** The first line of cel-js's message (the rest draws the source, which we point at ourselves). */
const headline = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'invalid expression';

interface Walk {
  cost: number;
  reads: Set<Section>;
  /** where each `.matches(` is, and its pattern when it is a literal */
  matches: { from: number; to: number; literal?: string }[];
  /** what the type check cannot see, and where: has() of a field the input lacks, dyn() of the input */
  unchecked: { kind: 'has' | 'dyn'; from: number; to: number }[];
}

const isSection = (name: string | undefined): name is Section => name === 'artifact' || name === 'trust' || name === 'ns' || name === 'request';

/** Is this dotted path (list elements named by their list's path) a field of the input? A map's keys are any. */
function documentedField(path: string): boolean {
  let node = inputSchema as unknown as JsonSchema;
  for (const part of path.split('.')) {
    while (node.type === 'array' && node.items) node = node.items;
    if (node.type === 'object' && !node.properties) return true;
    const next = node.properties?.[part];
    if (!next) return false;
    node = next;
  }
  return true;
}

/** The dotted path of a field selection rooted in the input (artifact.labels), or undefined. */
function pathOf(node: ASTNode, bound: Map<string, string>): string | undefined {
  if (node.op === 'id') return bound.get(node.args) ?? node.args;
  if (node.op === '.' || node.op === '.?') {
    const base = pathOf(node.args[0], bound);
    return base === undefined ? undefined : `${base}.${node.args[1]}`;
  }
  return undefined;
}

function children(node: ASTNode): ASTNode[] {
  const out: ASTNode[] = [];
  const visit = (value: unknown) => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object' && 'op' in value) out.push(value as ASTNode);
  };
  visit(node.args);
  return out;
}

/** Cost of a node; records the sections it reads and where `matches` is called. */
function walk(node: ASTNode, state: Walk, bound: Map<string, string>): number {
  if (node.op === 'id') {
    const root = (bound.get(node.args) ?? node.args).split('.')[0];
    if (isSection(root)) state.reads.add(root);
    return 1;
  }
  if (node.op === 'call') {
    const [name, args] = node.args;
    // has(x.f) is false for a field x does not have, and so for a typo: the checker lets it through
    const path = name === 'has' && args.length === 1 && args[0] ? pathOf(args[0], bound) : undefined;
    if (path !== undefined && isSection(path.split('.')[0]) && !documentedField(path))
      state.unchecked.push({ kind: 'has', from: node.range.start, to: node.range.end });
    if (name === 'dyn') {
      const inner: Walk = { ...state, reads: new Set() };
      const cost = 1 + children(node).reduce((sum, child) => sum + walk(child, inner, bound), 0);
      for (const section of inner.reads) state.reads.add(section);
      if (inner.reads.size > 0) state.unchecked.push({ kind: 'dyn', from: node.range.start, to: node.range.end });
      return cost;
    }
  }
  if (node.op === 'rcall') {
    const [name, receiver, args] = node.args;
    const [pattern] = args;
    if (name === 'matches' && args.length === 1 && pattern) {
      const literal = pattern.op === 'value' && typeof pattern.args === 'string' ? pattern.args : undefined;
      state.matches.push({ from: receiver.range.end, to: pattern.range.start, ...(literal === undefined ? {} : { literal }) });
    }
    if (comprehensions.has(name) && args.length >= 2 && args[0]?.op === 'id') {
      const list = pathOf(receiver, bound);
      const elements = (list === undefined ? undefined : listBounds[list]) ?? unknownListBound;
      const inner = new Map(bound);
      if (list) inner.set(args[0].args, list);
      const body = args.slice(1).reduce<number>((sum, arg) => sum + walk(arg, state, inner), 0);
      return 1 + walk(receiver, state, bound) + elements * body;
    }
  }
  return 1 + children(node).reduce((sum, child) => sum + walk(child, state, bound), 0);
}

const minuteMs = 60_000;
const hourMs = 3_600_000;
const dayMs = 86_400_000;
/**
 * The timestamp accessors, and the bucket of request.time each depends on alone: [without a time
 * zone (cel-js reads UTC), with one]. A UTC hour or day starts at a multiple of its length in ms
 * since the epoch (JavaScript time has no leap seconds), so the bucket is floor(ms / length). In a
 * time zone the wall clock's fields are those of the UTC minute: every zone's offset has been a
 * whole number of minutes since the 1970s and changes only on a whole minute. getMilliseconds
 * ignores its zone; getSeconds in a zone is read from a string without milliseconds.
 */
const timeParts: Record<string, readonly [number, number]> = {
  getFullYear: [dayMs, minuteMs],
  getMonth: [dayMs, minuteMs],
  getDate: [dayMs, minuteMs],
  getDayOfMonth: [dayMs, minuteMs],
  getDayOfWeek: [dayMs, minuteMs],
  getDayOfYear: [dayMs, minuteMs],
  getHours: [hourMs, minuteMs],
  getMinutes: [minuteMs, minuteMs],
  getSeconds: [1000, 1000],
  getMilliseconds: [1, 1],
};

/**
 * What of the request section an expression reads (engine.ts, RequestReads): every field named
 * under `request` (a whole `request` or `request.identity` names all the fields in it), and the
 * coarsest bucket of request.time that decides it. Only `timestamp(request.time).getX()` with
 * X one of timeParts reads the time by bucket; any other use of request.time (compared,
 * converted, bound to a variable, passed to a function) reads it to the millisecond.
 */
function requestReadsOf(root: ASTNode): RequestReads {
  const fields = new Set<RequestField>();
  let timeBucketMs = Infinity;
  const read = (path: string) => {
    for (const f of requestFields) {
      const full = `request.${f}`;
      if (full === path || full.startsWith(`${path}.`) || path.startsWith(`${full}.`)) fields.add(f);
    }
    if (fields.has('time') && (path === 'request' || path === 'request.time' || path.startsWith('request.time.'))) timeBucketMs = 1;
  };
  const visit = (node: ASTNode, bound: Map<string, string>): void => {
    if (node.op === 'rcall') {
      const [name, receiver, args] = node.args;
      const part = timeParts[name];
      if (part && args.length <= 1 && receiver.op === 'call') {
        const [fn, fnArgs] = receiver.args;
        const [only] = fnArgs;
        if (fn === 'timestamp' && fnArgs.length === 1 && only && pathOf(only, bound) === 'request.time') {
          fields.add('time');
          timeBucketMs = Math.min(timeBucketMs, args.length === 0 ? part[0] : part[1]);
          for (const arg of args) visit(arg, bound);
          return;
        }
      }
      if (comprehensions.has(name) && args.length >= 2 && args[0]?.op === 'id') {
        const list = pathOf(receiver, bound);
        const inner = new Map(bound);
        if (list) inner.set(args[0].args, list);
        else inner.delete(args[0].args);
        visit(receiver, bound);
        for (const arg of args.slice(1)) visit(arg, inner);
        return;
      }
    }
    if (node.op === 'id' || node.op === '.' || node.op === '.?') {
      const path = pathOf(node, bound);
      if (path !== undefined) {
        if (path === 'request' || path.startsWith('request.')) read(path);
        return;
      }
    }
    for (const child of children(node)) visit(child, bound);
  };
  visit(root, new Map());
  return { fields, timeBucketMs: fields.has('time') ? timeBucketMs : 1 };
}

/**
 * cel-js tells a map from an object by its `constructor` property (debugType in its operators.js),
 * so a map with an own key "constructor" (a label or an annotation, which whoever pushes chooses)
 * would make every evaluation that touches it throw "Unsupported type". Those maps go in as a
 * Map, which cel-js reads as the same map; the others as they are, at the cost of three lookups.
 */
const hasConstructorKey = (m: unknown): m is Record<string, string> => typeof m === 'object' && m !== null && Object.hasOwn(m, 'constructor');
const asMap = (m: Record<string, string>) => (hasConstructorKey(m) ? new Map(Object.entries(m)) : m);
function celInput(input: PolicyInput): Context {
  const { artifact, ns } = input as Partial<PolicyInput>;
  if (!hasConstructorKey(artifact?.labels) && !hasConstructorKey(artifact?.annotations) && !hasConstructorKey(ns?.labels)) return input;
  return {
    ...input,
    ...(artifact ? { artifact: { ...artifact, labels: asMap(artifact.labels), annotations: asMap(artifact.annotations) } } : {}),
    ...(ns ? { ns: { ...ns, labels: asMap(ns.labels) } } : {}),
  };
}

export interface CelSource {
  /** the deny expression */
  deny: string;
}

/** Checks and compiles a deny expression; throws PolicyRejected with the CEL error and its position. */
export function compileCel(policy: CelSource): CompiledPolicy {
  const source = policy.deny;
  if (Buffer.byteLength(source) > celLimits.sourceBytes) throw new PolicyRejected(`the deny expression is longer than ${celLimits.sourceBytes} bytes`);
  const { check, run } = envs();
  let checked;
  try {
    checked = check.check(source);
  } catch (err) {
    throw new PolicyRejected(`deny: ${headline(err)}`);
  }
  if (!checked.valid) {
    const error = checked.error as (Error & { node?: { pos?: number; range?: { start: number } }; range?: { start: number } }) | undefined;
    const offset = error?.range?.start ?? error?.node?.range?.start ?? error?.node?.pos;
    throw new PolicyRejected(`deny: ${headline(error)}`, offset === undefined ? undefined : position(source, offset));
  }
  if (checked.type !== 'bool') throw new PolicyRejected(`deny: the expression must be a bool (true denies), not ${checked.type}`);
  const parsed = check.parse(source);
  const state: Walk = { cost: 0, reads: new Set(), matches: [], unchecked: [] };
  const cost = walk(parsed.ast, state, new Map());
  const [unchecked] = state.unchecked;
  if (unchecked) {
    const text = source.slice(unchecked.from, unchecked.to);
    const why =
      unchecked.kind === 'has'
        ? `${text} names a field the input does not have (docs/policy.md lists them)`
        : `${text}: dyn() of input fields is refused, since the check could not hold what follows to the fields the input has`;
    throw new PolicyRejected(`deny: ${why}`, position(source, unchecked.from));
  }
  if (cost > celLimits.cost) {
    throw new PolicyRejected(
      `deny: the expression may cost up to ${cost} steps on one input, over the limit of ${celLimits.cost}; loop over fewer elements or nest fewer comprehensions`,
    );
  }
  for (const call of state.matches) {
    if (!/^\s*\.\s*matches\s*\($/.test(source.slice(call.from, call.to))) throw new PolicyRejected('deny: matches() could not be located in the source');
    if (call.literal !== undefined) {
      try {
        RE2JS.compile(call.literal);
      } catch (err) {
        throw new PolicyRejected(`deny: matches() needs an RE2 pattern: ${headline(err)}`, position(source, call.to));
      }
    }
  }
  // Rewrite `.matches(` to `.re2Matches(` from the end, so earlier offsets stay valid.
  let rewritten = source;
  for (const call of [...state.matches].sort((a, b) => b.from - a.from)) rewritten = `${rewritten.slice(0, call.from)}.re2Matches(${rewritten.slice(call.to)}`;
  const program = run.parse(rewritten);
  return {
    reads: state.reads,
    request: requestReadsOf(parsed.ast),
    evaluate(input: PolicyInput): Outcome {
      const result: unknown = program(celInput(input));
      if (typeof result !== 'boolean') throw new Error(`the deny expression gave ${typeof result}, not a bool`);
      return result ? { deny: true, messages: [] } : { deny: false };
    },
  };
}
