/**
 * How deeply a JSON text nests objects and arrays, found without parsing it: one pass that counts
 * `{` and `[` outside strings. Linear in the text, no recursion, no allocation, and it stops as
 * soon as the nesting passes the limit it is given, so a megabyte of `[` costs a few dozen steps.
 *
 * Check untrusted JSON with it before JSON.parse: V8 parses any depth, but what comes after
 * (JSON.stringify, schema checks, walks over the value) recurses, and a deep enough document
 * overflows the stack. A leaf module on purpose (no imports), so any reader of JSON can use it:
 * the /api/v1 body parser, the trust files the config names, SBOM readers.
 */

/** The nesting the /api/v1 body parser and the trust-file loader accept (real documents: under 10). */
export const maxJsonDepth = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * The deepest nesting of objects and arrays in `text` (0 for a scalar, 1 for `[]` or `{}`). The
 * text is not validated: malformed JSON gives some number, and JSON.parse refuses it afterwards.
 * Once the depth passes `limit` the scan stops and answers `limit + 1`. Bytes (UTF-8) work as
 * well as strings: the characters that matter are ASCII, and no byte of a multi-byte sequence is.
 */
export function jsonDepth(text: string | Uint8Array, limit = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  const n = text.length;
  const bytes = typeof text === 'string' ? undefined : text;
  for (let i = 0; i < n; i++) {
    const c = bytes ? (bytes[i] as number) : (text as string).charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > limit) return limit + 1;
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (depth > 0) depth--;
    }
  }
  return deepest;
}

/** Whether `text` nests objects and arrays more than `max` levels deep (stops counting past it). */
export function nestsDeeperThan(text: string | Uint8Array, max: number = maxJsonDepth): boolean {
  return jsonDepth(text, max) > max;
}
