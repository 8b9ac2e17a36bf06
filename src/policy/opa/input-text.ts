/**
 * The input document as the JSON text an OPA module is given, made without serializing on every
 * request what does not change between requests. A Wasm module's reads cannot be told from
 * outside, so it is given the whole document; but the artifact, trust and namespace sections are
 * objects the input builder caches (src/policy/input.ts: the same object for every pull of the
 * same manifest, for as long as it is cached), so their text is kept beside them, by identity, and
 * only the request section (new every time) is serialized per decision. With an SBOM in the trust
 * section that is the difference between a few hundred bytes and megabytes per pull.
 *
 * The text is the one JSON.stringify(input) gives (the same keys in the same order): the cached
 * sections are never changed once built (the builder shares them between requests, so a change
 * would already be a bug), and a section that is a new object each time (a test, a simulation)
 * costs one WeakMap entry that goes with it.
 */
import type { PolicyInput } from '../input-schema.ts';

/** the sections the input builder caches between requests */
const cachedSections = new Set(['artifact', 'trust', 'ns']);
const texts = new WeakMap<object, string>();

function sectionText(value: object): string | undefined {
  let text = texts.get(value);
  if (text === undefined) {
    text = JSON.stringify(value);
    if (text !== undefined) texts.set(value, text);
  }
  return text;
}

/** JSON.stringify(input), with the cached sections' text reused. */
export function inputText(input: PolicyInput): string {
  const record = input as unknown as Record<string, unknown>;
  let out = '';
  for (const key of Object.keys(record)) {
    const value = record[key];
    const text = cachedSections.has(key) && value !== null && typeof value === 'object' ? sectionText(value) : JSON.stringify(value);
    // as JSON.stringify does: a key whose value has no JSON (undefined, a function) is left out
    if (text === undefined) continue;
    out += `${out === '' ? '{' : ','}${JSON.stringify(key)}:${text}`;
  }
  return out === '' ? '{}' : `${out}}`;
}
