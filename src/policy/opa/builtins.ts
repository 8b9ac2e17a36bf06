/**
 * The built-in functions Custody provides to OPA Wasm modules: the ones OPA's compiler does not
 * build into the module and a registry policy is likely to call. A module names the built-ins
 * it needs in its `builtins` export; one that names a built-in missing here is refused when the
 * policy is saved, never failed at the first request that reaches it.
 *
 * They run on the worker's JavaScript heap, so each bounds what it makes (sprintf's widths and
 * output): a worker that runs out of heap in one large allocation aborts the whole process
 * (docs/decisions.md), which is also why these are ours and not the SDK's (its sprintf pads to
 * any width it is given).
 *
 * Time is the request's: time.now_ns() is request.time (the moment the request arrived, as the
 * input says it), so a decision does not depend on when a worker got to it, and a simulation
 * over recorded inputs decides as the request would have been decided.
 */

export interface BuiltinContext {
  /** nanoseconds since the epoch that time.now_ns() returns */
  nowNs: bigint;
}

export type Builtin = (ctx: BuiltinContext, ...args: unknown[]) => unknown;

/** A built-in failed (a wrong argument): the evaluation fails with this message. */
export class BuiltinError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BuiltinError';
  }
}

/** the longest string sprintf makes, and the widest field it pads */
export const sprintfLimits = { outputChars: 64 * 1024, width: 1024 } as const;

const fail = (name: string, message: string): never => {
  throw new BuiltinError(`${name}: ${message}`);
};

// ---- time

const nsPerMs = 1_000_000n;

function nsArg(name: string, value: unknown): { ns: bigint; zone: string } {
  const [n, zone] = Array.isArray(value) ? (value as unknown[]) : [value, 'UTC'];
  if (typeof n !== 'number' && typeof n !== 'bigint') fail(name, 'the time must be a number of nanoseconds, or [ns, timezone]');
  if (typeof n === 'number' && !Number.isFinite(n)) fail(name, 'the time must be a finite number');
  if (typeof zone !== 'string') fail(name, 'the timezone must be a string');
  const ns = typeof n === 'bigint' ? n : BigInt(Math.trunc(n as number));
  return { ns, zone: zone === '' ? 'UTC' : (zone as string) };
}

/** formatters per time zone: building one costs ~50 µs, so they are kept (a bounded set: zones are IANA names) */
const formatters = new Map<string, Intl.DateTimeFormat>();
function partsAt(name: string, ns: bigint, zone: string): Record<string, string> {
  let f = formatters.get(zone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: zone === 'Local' ? undefined : zone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
        weekday: 'long',
      });
    } catch {
      return fail(name, `unknown timezone ${JSON.stringify(zone.slice(0, 64))}`);
    }
    if (formatters.size < 256) formatters.set(zone, f);
  }
  const ms = Number(ns / nsPerMs) - (ns % nsPerMs < 0n ? 1 : 0);
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) fail(name, 'the time is out of range');
  return Object.fromEntries(f.formatToParts(date).map((p) => [p.type, p.value]));
}

const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 time as nanoseconds since the epoch (exact: a bigint), or undefined if it is not one. */
export function parseRfc3339Ns(text: string): bigint | undefined {
  const m = rfc3339.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac = '', zone = 'Z'] = m;
  // setUTCFullYear, not Date.UTC, which reads years 0 to 99 as 1900 to 1999
  const check = new Date(0);
  check.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  check.setUTCHours(Number(h), Number(mi), Number(s), 0);
  const ms = check.getTime();
  // Date rolls 2026-02-31 over into March, and 12:60 into 13:00: a time that rolled over was not a real one
  const fields = [check.getUTCMonth() + 1, check.getUTCDate(), check.getUTCHours(), check.getUTCMinutes(), check.getUTCSeconds()];
  if (Number.isNaN(ms) || fields.some((f, i) => f !== Number([mo, d, h, mi, s][i]))) return undefined;
  let offsetMinutes = 0;
  if (zone !== 'Z' && zone !== 'z') offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  return (BigInt(ms) - BigInt(offsetMinutes) * 60_000n) * nsPerMs + BigInt(frac.padEnd(9, '0'));
}

// ---- sprintf, as Go's fmt (OPA's sprintf is Go's): %v %s %d %f %e %g %x %X %o %b %q %t %T %%

/** A value as OPA prints one with %v: numbers and strings as they are, others in Rego's syntax. */
function regoText(value: unknown): string {
  if (typeof value === 'string') return value;
  return regoTerm(value);
}
function regoTerm(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `[${value.map(regoTerm).join(', ')}]`;
  if (typeof value === 'object') {
    return `{${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${JSON.stringify(k)}: ${regoTerm(v)}`)
      .join(', ')}}`;
  }
  return typeof value === 'undefined' ? 'undefined' : typeof value;
}

function pad(text: string, width: number | undefined, left: boolean, zero: boolean): string {
  if (width === undefined || text.length >= width) return text;
  if (left) return text + ' '.repeat(width - text.length);
  if (zero) {
    const sign = /^[+-]/.test(text) ? text.charAt(0) : '';
    return sign + '0'.repeat(width - text.length) + text.slice(sign.length);
  }
  return ' '.repeat(width - text.length) + text;
}

function goType(v: unknown): string {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number' || typeof v === 'bigint') return Number.isInteger(Number(v)) ? 'int' : 'float64';
  if (v === null) return 'null';
  return Array.isArray(v) ? 'array' : 'object';
}

function sprintf(_: BuiltinContext, format: unknown, values: unknown): string {
  if (typeof format !== 'string') return fail('sprintf', 'the format must be a string');
  if (!Array.isArray(values)) return fail('sprintf', 'the values must be an array');
  const args = values as unknown[];
  let next = 0;
  let out = '';
  const spec = /%([-+ 0#]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])/g;
  let last = 0;
  for (let m = spec.exec(format); m; m = spec.exec(format)) {
    out += format.slice(last, m.index);
    last = spec.lastIndex;
    const [, flags = '', w, p, verb] = m;
    if (verb === '%') {
      out += '%';
      continue;
    }
    const width = w === undefined ? undefined : Number(w);
    const precision = p === undefined ? undefined : Number(p);
    if ((width ?? 0) > sprintfLimits.width || (precision ?? 0) > sprintfLimits.width) fail('sprintf', `a width or precision over ${sprintfLimits.width}`);
    if (next >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    const v = args[next++];
    const num = typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
    let text: string;
    switch (verb) {
      case 'v':
        text = regoText(v);
        break;
      case 's':
        text = typeof v === 'string' ? v : regoText(v);
        if (precision !== undefined) text = text.slice(0, precision);
        break;
      case 'q':
        text = typeof v === 'string' ? JSON.stringify(v) : `%!q(${goType(v)}=${regoText(v)})`;
        break;
      case 't':
        text = typeof v === 'boolean' ? String(v) : `%!t(${goType(v)}=${regoText(v)})`;
        break;
      case 'T':
        text = goType(v);
        break;
      case 'd':
      case 'x':
      case 'X':
      case 'o':
      case 'b': {
        if (num === undefined || !Number.isInteger(num)) {
          text = typeof v === 'string' && verb !== 'd' ? Buffer.from(v).toString('hex') : `%!${verb}(${goType(v)}=${regoText(v)})`;
          if (verb === 'X') text = text.toUpperCase();
          break;
        }
        const big = typeof v === 'bigint' ? v : BigInt(num);
        const radix = verb === 'd' ? 10 : verb === 'o' ? 8 : verb === 'b' ? 2 : 16;
        text = (big < 0n ? '-' : flags.includes('+') ? '+' : flags.includes(' ') ? ' ' : '') + (big < 0n ? -big : big).toString(radix);
        if (verb === 'X') text = text.toUpperCase();
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (num === undefined) {
          text = `%!${verb}(${goType(v)}=${regoText(v)})`;
          break;
        }
        const lower = verb.toLowerCase();
        text =
          lower === 'f'
            ? num.toFixed(precision ?? 6)
            : lower === 'e'
              ? num.toExponential(precision ?? 6)
              : precision === undefined
                ? String(num)
                : num.toPrecision(precision);
        if (lower === 'e') text = text.replace(/e([+-])(\d)$/, 'e$10$2'); // Go writes two exponent digits
        if (verb !== lower) text = text.toUpperCase();
        if (num >= 0 && flags.includes('+')) text = `+${text}`;
        break;
      }
      default:
        text = `%!${verb}(${goType(v)}=${regoText(v)})`;
    }
    out += pad(text, width, flags.includes('-'), flags.includes('0') && verb !== 's' && verb !== 'v' && verb !== 'q');
    if (out.length > sprintfLimits.outputChars) fail('sprintf', `the result is longer than ${sprintfLimits.outputChars} characters`);
  }
  out += format.slice(last);
  if (next < args.length)
    out += `%!(EXTRA ${args
      .slice(next)
      .map((a) => `${goType(a)}=${regoText(a)}`)
      .join(', ')})`;
  if (out.length > sprintfLimits.outputChars) fail('sprintf', `the result is longer than ${sprintfLimits.outputChars} characters`);
  return out;
}

// ---- semver (https://semver.org, 2.0.0; no leading v, as OPA's semver.* expect)

const semverPattern =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

function semverParts(name: string, v: unknown): { core: bigint[]; pre: string[] } {
  const m = typeof v === 'string' && v.length <= 256 ? semverPattern.exec(v) : null;
  if (!m) return fail(name, `${JSON.stringify(typeof v === 'string' ? v.slice(0, 64) : v)} is not a valid SemVer string`);
  return { core: [BigInt(m[1] as string), BigInt(m[2] as string), BigInt(m[3] as string)], pre: m[4] ? m[4].split('.') : [] };
}

function semverCompare(_: BuiltinContext, a: unknown, b: unknown): number {
  const x = semverParts('semver.compare', a);
  const y = semverParts('semver.compare', b);
  for (let i = 0; i < 3; i++) if (x.core[i] !== y.core[i]) return (x.core[i] as bigint) < (y.core[i] as bigint) ? -1 : 1;
  // a pre-release is lower than the release; otherwise field by field, numbers below words
  if (x.pre.length === 0 || y.pre.length === 0) return x.pre.length === y.pre.length ? 0 : x.pre.length === 0 ? 1 : -1;
  for (let i = 0; i < Math.min(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i] as string;
    const q = y.pre[i] as string;
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) return BigInt(p) < BigInt(q) ? -1 : 1;
    if (pn !== qn) return pn ? -1 : 1;
    return p < q ? -1 : 1;
  }
  return x.pre.length === y.pre.length ? 0 : x.pre.length < y.pre.length ? -1 : 1;
}

/** name → implementation; what a module may name in its `builtins` export */
export const builtins: Readonly<Record<string, Builtin>> = {
  'time.now_ns': (ctx) => ctx.nowNs,
  'time.parse_rfc3339_ns': (_, value) => {
    const ns = typeof value === 'string' ? parseRfc3339Ns(value) : undefined;
    return ns ?? fail('time.parse_rfc3339_ns', `${JSON.stringify(typeof value === 'string' ? value.slice(0, 64) : value)} is not an RFC 3339 time`);
  },
  'time.date': (_, value) => {
    const { ns, zone } = nsArg('time.date', value);
    const p = partsAt('time.date', ns, zone);
    return [Number(p.year), Number(p.month), Number(p.day)];
  },
  'time.clock': (_, value) => {
    const { ns, zone } = nsArg('time.clock', value);
    const p = partsAt('time.clock', ns, zone);
    return [Number(p.hour), Number(p.minute), Number(p.second)];
  },
  'time.weekday': (_, value) => {
    const { ns, zone } = nsArg('time.weekday', value);
    return partsAt('time.weekday', ns, zone).weekday;
  },
  sprintf,
  'semver.is_valid': (_, v) => typeof v === 'string' && v.length <= 256 && semverPattern.test(v),
  'semver.compare': semverCompare,
};

export const builtinNames: readonly string[] = Object.keys(builtins).sort();
