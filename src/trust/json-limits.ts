/**
 * What JSON.parse would take from an untrusted document, judged without parsing it. V8's JSON.parse
 * does not recurse, so no shape overflows the stack; shapes cost time and memory instead, out of
 * proportion to the bytes. 16 MiB of `[[[…]]]` held the server's event loop 4.4 s and took 900 MiB;
 * 64 MiB of `[],[],…`, 21 million arrays, held it 27 s and took 1.8 GiB, and in a process whose V8
 * heap is capped at 512 MiB still takes 1.4 GiB (the parser's own bookkeeping is not on that heap)
 * and a minute of garbage collection. So SBOMs, in-toto statements and Sigstore envelopes are
 * refused before JSON.parse when they nest deeper than MAX_JSON_DEPTH or hold more than
 * MAX_JSON_VALUES values. Real ones nest a few dozen levels at most (CycloneDX spends two per level
 * of nested components) and spend 20 bytes or more per value: under 3.5 million values in the
 * 64 MiB an SBOM may have.
 *
 * The scan is one linear pass: brackets and commas are counted outside strings, and strings are
 * skipped with indexOf. It only has to agree with JSON.parse on text JSON.parse accepts: on invalid
 * text, JSON.parse stops at the first error, after no more than the valid part the scan counted.
 * Not src/json-depth.ts, which bounds only the depth of what an admin sends (bodies, trust files)
 * and reads every character: these documents are mostly strings (a DSSE payload is one), and
 * skipping them scans a 64 MiB envelope in 15 ms instead of 640.
 */
export const MAX_JSON_DEPTH = 128;
export const MAX_JSON_VALUES = 8_000_000;

/** Why JSON.parse should not be given `text` ("nests too deeply (…)"), or undefined. */
export function jsonTooCostly(text: string, depthLimit: number = MAX_JSON_DEPTH, valuesLimit: number = MAX_JSON_VALUES): string | undefined {
  let depth = 0;
  // commas and opening brackets: every value but the first of each array or object, and every array or object
  let values = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      i = closingQuote(text, i + 1);
      if (i < 0) return undefined; // an unterminated string: JSON.parse refuses the text there
    } else if (c === 0x2c /* , */) {
      if (++values > valuesLimit) return `holds too many values (more than ${valuesLimit} JSON values)`;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > depthLimit) return `nests too deeply (more than ${depthLimit} levels)`;
      if (++values > valuesLimit) return `holds too many values (more than ${valuesLimit} JSON values)`;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      if (--depth < 0) return undefined; // a closer with nothing open: JSON.parse refuses the text there
    }
  }
  return undefined;
}

/** The index of the quote closing a string that starts at `from`, or -1. */
function closingQuote(text: string, from: number): number {
  for (let i = text.indexOf('"', from); i >= 0; i = text.indexOf('"', i + 1)) {
    // escaped when an odd number of backslashes precede it; each run is counted once, so this stays linear
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === 0x5c /* \ */) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
  return -1;
}
