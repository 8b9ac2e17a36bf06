/**
 * What JSON.parse would take from an untrusted text, judged without parsing it: how deeply it
 * nests objects and arrays, and how many values it holds. One scanner for every reader of
 * untrusted JSON, each with its own limits:
 *
 * - depth only (maxJsonDepth, 64): /api/v1 bodies, the trust files the configuration names, and
 *   manifests. V8 parses any nesting, but what comes after (JSON.stringify, schema checks, walks
 *   over the value) recurses, and a deep enough document overflows the stack: an 800 KB `[[[…]]]`
 *   in a trust document did, in the store's JSON.stringify.
 * - depth and values (documentLimits): SBOMs, in-toto statements and Sigstore envelopes, which
 *   may be 64 MiB. Their shapes cost time and memory out of proportion to the bytes: 16 MiB of
 *   `[[[…]]]` held the server's event loop 4.4 s and took 900 MiB; 64 MiB of `[],[],…`, 21 million
 *   arrays, held it 27 s and took 1.8 GiB, and in a process whose V8 heap is capped at 512 MiB
 *   still takes 1.4 GiB (the parser's own bookkeeping is not on that heap) and a minute of garbage
 *   collection. Real ones nest a few dozen levels at most (CycloneDX spends two per level of nested
 *   components) and spend 20 bytes or more per value: under 3.5 million values in 64 MiB.
 *
 * The scan is one linear pass with no recursion and no allocation: brackets and commas are counted
 * outside strings, and strings are skipped with indexOf (these documents are mostly strings, a DSSE
 * payload is one: skipping them scans a 64 MiB envelope in 15 ms instead of 640 char by char). It
 * stops at the first limit passed, so a megabyte of `[` costs a few dozen steps. It only has to
 * agree with JSON.parse on text JSON.parse accepts: on invalid text (an unterminated string, a
 * closer with nothing open) it stops where JSON.parse would refuse, having counted no more than the
 * valid part. UTF-8 bytes are read as strings are: the characters that matter are ASCII, and no
 * byte of a multi-byte sequence is. A leaf module on purpose (no imports), so any part can use it.
 */

/** The nesting /api/v1 bodies, trust files and manifests may have (real ones: under 10). */
export const maxJsonDepth = 64;

/** The limits for SBOMs, in-toto statements and Sigstore envelopes (see above). */
export const documentLimits: Readonly<JsonLimits> = { depth: 128, values: 8_000_000 };

export interface JsonLimits {
  /** the deepest nesting of objects and arrays allowed (default: any) */
  depth?: number;
  /** the most values allowed, counted as JSON.parse makes them (default: any) */
  values?: number;
}

export interface JsonShape {
  /** the deepest nesting of objects and arrays seen (0 for a scalar, 1 for `[]` or `{}`); limit + 1 when the depth limit stopped the scan */
  depth: number;
  /** values seen: every array and object, and every value after the first of each (its comma); limit + 1 when the value limit stopped it */
  values: number;
  /** which limit stopped the scan, if one did */
  exceeded?: 'depth' | 'values';
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/** Scans `text` (a string or UTF-8 bytes), stopping at the first limit it passes. */
export function scanJson(text: string | Uint8Array, limits: JsonLimits = {}): JsonShape {
  const depthLimit = limits.depth ?? Number.POSITIVE_INFINITY;
  const valuesLimit = limits.values ?? Number.POSITIVE_INFINITY;
  const bytes = typeof text === 'string' ? undefined : text;
  const string = typeof text === 'string' ? text : '';
  const n = text.length;
  let depth = 0;
  let deepest = 0;
  let values = 0;
  for (let i = 0; i < n; i++) {
    const c = bytes ? (bytes[i] as number) : string.charCodeAt(i);
    if (c === QUOTE) {
      i = bytes ? closingQuoteIn(bytes, i + 1) : closingQuote(string, i + 1);
      if (i < 0) break; // an unterminated string: JSON.parse refuses the text there
    } else if (c === COMMA) {
      if (++values > valuesLimit) return { depth: deepest, values, exceeded: 'values' };
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > depthLimit) return { depth: deepest, values, exceeded: 'depth' };
      }
      if (++values > valuesLimit) return { depth: deepest, values, exceeded: 'values' };
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      if (--depth < 0) break; // a closer with nothing open: JSON.parse refuses the text there
    }
  }
  return { depth: deepest, values };
}

/** Whether `text` nests objects and arrays more than `max` levels deep (the scan stops past it). */
export function nestsDeeperThan(text: string | Uint8Array, max: number = maxJsonDepth): boolean {
  return scanJson(text, { depth: max }).exceeded === 'depth';
}

/** Why JSON.parse should not be given `text` ("nests too deeply (…)"), or undefined when it is within `limits`. */
export function jsonTooCostly(text: string | Uint8Array, limits: JsonLimits = documentLimits): string | undefined {
  const shape = scanJson(text, limits);
  if (shape.exceeded === 'depth') return `nests too deeply (more than ${limits.depth} levels)`;
  if (shape.exceeded === 'values') return `holds too many values (more than ${limits.values} JSON values)`;
  return undefined;
}

/**
 * The index of the quote closing a string that starts at `from`, or -1. A quote is escaped when an
 * odd number of backslashes precede it; each run of them is counted once, so this stays linear.
 */
function closingQuote(text: string, from: number): number {
  for (let i = text.indexOf('"', from); i >= 0; i = text.indexOf('"', i + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
  return -1;
}

/** closingQuote over UTF-8 bytes. */
function closingQuoteIn(bytes: Uint8Array, from: number): number {
  for (let i = bytes.indexOf(QUOTE, from); i >= 0; i = bytes.indexOf(QUOTE, i + 1)) {
    let backslashes = 0;
    while (bytes[i - 1 - backslashes] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
  return -1;
}
