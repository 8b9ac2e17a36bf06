/**
 * A renderer for the subset of Helm's Go templates that deploy/helm/custody uses, so that a test
 * can render the chart without helm (which cannot be installed here; no maintained npm package
 * renders Go templates without a Go binary or a native add-on: docs/decisions.md).
 *
 * The subset: `{{ pipeline }}` with `{{-`/`-}}` trimming; `if`/`else if`/`else`/`end`, `range`
 * over a list or a map (`range .x`, `range $k, $v := .x`, `.` is the element), `define` and
 * `include`; operands `.a.b`, `$`, `$.a`, `$var`, strings, numbers, `true`/`false`, `( … )`;
 * functions `quote`, `toYaml`, `nindent`, `indent`, `default`, `printf` (%s, %v, %d), `eq`, `ne`,
 * `not`, `and`, `or`. Anything else throws, so the chart cannot drift from what this renders.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'output'; expr: string }
  | { kind: 'if'; branches: { cond: string | undefined; body: Node[] }[] }
  | { kind: 'range'; keyVar?: string; valueVar?: string; expr: string; body: Node[] };

type Scope = { dot: unknown; root: unknown; vars: Map<string, unknown> };

/** Splits a template into text and actions, applying `{{-` and `-}}`. */
function tokenize(source: string): ({ kind: 'text'; text: string } | { kind: 'action'; body: string })[] {
  const out: ({ kind: 'text'; text: string } | { kind: 'action'; body: string })[] = [];
  let i = 0;
  while (i < source.length) {
    const open = source.indexOf('{{', i);
    if (open < 0) {
      out.push({ kind: 'text', text: source.slice(i) });
      break;
    }
    const close = source.indexOf('}}', open);
    if (close < 0) throw new Error(`unclosed action at ${open}`);
    let text = source.slice(i, open);
    let body = source.slice(open + 2, close);
    if (body.startsWith('- ') || body === '-') {
      text = text.replace(/\s+$/, '');
      body = body.slice(1);
    }
    let next = close + 2;
    if (body.endsWith(' -')) {
      body = body.slice(0, -1);
      while (next < source.length && /\s/.test(source[next] as string)) next++;
    }
    out.push({ kind: 'text', text }, { kind: 'action', body: body.trim() });
    i = next;
  }
  return out;
}

/** Parses the tokens into nodes, and `define` blocks into `defines`. */
function parse(source: string, defines: Map<string, Node[]>): Node[] {
  const tokens = tokenize(source);
  let pos = 0;
  const block = (terminators: string[]): { nodes: Node[]; end: string } => {
    const nodes: Node[] = [];
    while (pos < tokens.length) {
      const t = tokens[pos++]!;
      if (t.kind === 'text') {
        if (t.text !== '') nodes.push({ kind: 'text', text: t.text });
        continue;
      }
      const body = t.body;
      if (body.startsWith('/*')) continue;
      const word = body.split(/\s+/)[0]!;
      if (terminators.includes(word)) return { nodes, end: body };
      if (word === 'if') {
        const branches: { cond: string | undefined; body: Node[] }[] = [];
        let cond: string | undefined = body.slice(2).trim();
        for (;;) {
          const inner = block(['else', 'end']);
          branches.push({ cond, body: inner.nodes });
          if (inner.end === 'end') break;
          const rest = inner.end.slice(4).trim();
          if (rest === '') cond = undefined;
          else if (rest.startsWith('if ')) cond = rest.slice(3).trim();
          else throw new Error(`unsupported: {{ ${inner.end} }}`);
          if (cond === undefined) {
            const last = block(['end']);
            branches.push({ cond: undefined, body: last.nodes });
            break;
          }
        }
        nodes.push({ kind: 'if', branches });
      } else if (word === 'range') {
        const m = /^range\s+(?:(\$\w+)\s*,\s*(\$\w+)\s*:=\s*)?(.+)$/.exec(body);
        if (!m) throw new Error(`unsupported: {{ ${body} }}`);
        const inner = block(['end']);
        nodes.push({ kind: 'range', keyVar: m[1], valueVar: m[2], expr: m[3]!, body: inner.nodes });
      } else if (word === 'define') {
        const name = /^define\s+"([^"]+)"$/.exec(body)?.[1];
        if (name === undefined) throw new Error(`unsupported: {{ ${body} }}`);
        defines.set(name, block(['end']).nodes);
      } else if (['with', 'template', 'block', 'else', 'end', 'tpl'].includes(word)) {
        throw new Error(`unsupported or misplaced: {{ ${body} }}`);
      } else {
        nodes.push({ kind: 'output', expr: body });
      }
    }
    if (terminators.length > 0) throw new Error(`missing {{ end }} (expected ${terminators.join(' or ')})`);
    return { nodes, end: '' };
  };
  return block([]).nodes;
}

/** Helm's truth: false, 0, "", nil, an empty list or map are false. */
function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/** Go's fmt for the verbs the chart uses. */
function format(v: unknown): string {
  if (v === undefined || v === null) return '<no value>';
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function lookup(base: unknown, fields: string[]): unknown {
  let v = base;
  for (const f of fields) {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object') throw new Error(`cannot read .${f} of a ${typeof v}`);
    v = (v as Record<string, unknown>)[f];
  }
  return v;
}

/** Splits an expression into words, keeping strings and parenthesised groups whole. */
function words(expr: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < expr.length && expr[j] !== '"') j += expr[j] === '\\' ? 2 : 1;
      out.push(expr.slice(i, j + 1));
      i = j + 1;
    } else if (c === '(') {
      let depth = 0;
      let j = i;
      for (; j < expr.length; j++) {
        if (expr[j] === '(') depth++;
        if (expr[j] === ')' && --depth === 0) break;
      }
      if (depth !== 0) throw new Error(`unbalanced ( in ${expr}`);
      out.push(expr.slice(i, j + 1));
      i = j + 1;
    } else if (c === '|') {
      out.push('|');
      i++;
    } else {
      let j = i;
      while (j < expr.length && !/[\s|()]/.test(expr[j]!)) j++;
      out.push(expr.slice(i, j));
      i = j;
    }
  }
  return out;
}

export class HelmRenderer {
  private readonly defines = new Map<string, Node[]>();

  private evalPipeline(expr: string, scope: Scope): unknown {
    const parts: string[][] = [[]];
    for (const w of words(expr)) {
      if (w === '|') parts.push([]);
      else parts[parts.length - 1]!.push(w);
    }
    let value: unknown;
    parts.forEach((cmd, i) => {
      if (cmd.length === 0) throw new Error(`empty command in ${expr}`);
      value = this.evalCommand(cmd, scope, i === 0 ? [] : [value]);
    });
    return value;
  }

  private evalOperand(w: string, scope: Scope): unknown {
    if (w.startsWith('(')) return this.evalPipeline(w.slice(1, -1), scope);
    if (w.startsWith('"')) return JSON.parse(w) as string;
    if (/^-?\d+(\.\d+)?$/.test(w)) return Number(w);
    if (w === 'true' || w === 'false') return w === 'true';
    if (w === '.') return scope.dot;
    if (w.startsWith('.')) return lookup(scope.dot, w.slice(1).split('.'));
    if (w === '$') return scope.root;
    if (w.startsWith('$.')) return lookup(scope.root, w.slice(2).split('.'));
    if (w.startsWith('$')) {
      const [name, ...fields] = w.split('.');
      if (!scope.vars.has(name!)) throw new Error(`undefined variable ${name}`);
      return lookup(scope.vars.get(name!), fields);
    }
    throw new Error(`not an operand: ${w}`);
  }

  private evalCommand(cmd: string[], scope: Scope, piped: unknown[]): unknown {
    const [head, ...rest] = cmd as [string, ...string[]];
    if (!/^[a-zA-Z]\w*$/.test(head) || head === 'true' || head === 'false') {
      if (rest.length > 0 || piped.length > 0) throw new Error(`cannot call ${head}`);
      return this.evalOperand(head, scope);
    }
    const args = [...rest.map((w) => this.evalOperand(w, scope)), ...piped];
    const arity = (n: number) => {
      if (args.length !== n) throw new Error(`${head} takes ${n} arguments, got ${args.length}`);
    };
    switch (head) {
      case 'quote':
        arity(1);
        return JSON.stringify(args[0] === undefined || args[0] === null ? '' : format(args[0]));
      case 'toYaml':
        arity(1);
        return args[0] === undefined || args[0] === null ? 'null' : stringify(args[0]).replace(/\n$/, '');
      case 'nindent':
      case 'indent': {
        arity(2);
        const pad = ' '.repeat(args[0] as number);
        const text = String(args[1] as string)
          .split('\n')
          .map((l) => pad + l)
          .join('\n');
        return head === 'nindent' ? `\n${text}` : text;
      }
      case 'default':
        arity(2);
        return truthy(args[1]) ? args[1] : args[0];
      case 'printf': {
        let k = 1;
        return String(args[0]).replace(/%[svd]/g, () => format(args[k++]));
      }
      case 'eq':
        arity(2);
        return args[0] === args[1];
      case 'ne':
        arity(2);
        return args[0] !== args[1];
      case 'not':
        arity(1);
        return !truthy(args[0]);
      case 'and':
        return args.every(truthy) ? args[args.length - 1] : args.find((a) => !truthy(a));
      case 'or':
        return args.find(truthy) ?? args[args.length - 1];
      case 'include': {
        arity(2);
        const body = this.defines.get(args[0] as string);
        if (body === undefined) throw new Error(`no template named ${String(args[0])}`);
        return this.run(body, { dot: args[1], root: args[1], vars: new Map() });
      }
      default:
        throw new Error(`unsupported function ${head}`);
    }
  }

  private run(nodes: Node[], scope: Scope): string {
    let out = '';
    for (const node of nodes) {
      if (node.kind === 'text') out += node.text;
      else if (node.kind === 'output') {
        const v = this.evalPipeline(node.expr, scope);
        out += typeof v === 'string' ? v : format(v);
      } else if (node.kind === 'if') {
        const branch = node.branches.find((b) => b.cond === undefined || truthy(this.evalPipeline(b.cond, scope)));
        if (branch) out += this.run(branch.body, scope);
      } else {
        const list = this.evalPipeline(node.expr, scope);
        if (list === undefined || list === null) continue;
        const entries: [unknown, unknown][] = Array.isArray(list)
          ? list.map((v, i) => [i, v])
          : typeof list === 'object'
            ? Object.keys(list)
                .sort()
                .map((k) => [k, (list as Record<string, unknown>)[k]])
            : [];
        if (entries.length === 0 && !Array.isArray(list) && typeof list !== 'object') throw new Error(`cannot range over ${typeof list}`);
        for (const [k, v] of entries) {
          const vars = new Map(scope.vars);
          if (node.keyVar) vars.set(node.keyVar, k);
          if (node.valueVar) vars.set(node.valueVar, v);
          out += this.run(node.body, { dot: v, root: scope.root, vars });
        }
      }
    }
    return out;
  }

  /** A chart's values.yaml with `overrides` merged over it, as helm merges `-f` files. */
  static mergedValues(chartDir: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    return deepMerge(parseYaml(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>, overrides);
  }

  /** Renders each template of a chart directory with its values.yaml merged under `overrides`. */
  static renderChart(chartDir: string, overrides: Record<string, unknown> = {}, release = { name: 'registry', namespace: 'default' }): Map<string, string> {
    const chart = parseYaml(readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
    const values = HelmRenderer.mergedValues(chartDir, overrides);
    const root = {
      Values: values,
      Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
      Release: { Name: release.name, Namespace: release.namespace, Service: 'Helm' },
    };
    const renderer = new HelmRenderer();
    const dir = path.join(chartDir, 'templates');
    const files = readdirSync(dir).sort();
    const parsed = files.map((f) => [f, parse(readFileSync(path.join(dir, f), 'utf8'), renderer.defines)] as const);
    const out = new Map<string, string>();
    for (const [f, nodes] of parsed) {
      if (f.startsWith('_')) continue;
      out.set(f, renderer.run(nodes, { dot: root, root, vars: new Map() }));
    }
    return out;
  }

  /** Renders a template string on its own (for the renderer's own tests). */
  static renderString(source: string, root: unknown): string {
    const renderer = new HelmRenderer();
    return renderer.run(parse(source, renderer.defines), { dot: root, root, vars: new Map() });
  }
}

/** Helm's merge of user values over the chart's: maps merge, anything else replaces; null deletes. */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    if (v === null) delete out[k];
    else if (typeof v === 'object' && !Array.isArray(v) && typeof b === 'object' && b !== null && !Array.isArray(b))
      out[k] = deepMerge(b as Record<string, unknown>, v as Record<string, unknown>);
    else out[k] = v;
  }
  return out;
}
