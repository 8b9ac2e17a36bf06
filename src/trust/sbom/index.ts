/**
 * SBOM reading: CycloneDX JSON 1.2–1.7, SPDX 2.2/2.3 JSON and SPDX 3.0 JSON-LD into one shape.
 * Pure and bounded: no I/O, no recursion on document nesting, bytes that would cost JSON.parse too
 * much refused before they are parsed (src/json-limits.ts), at most MAX_COMPONENTS components. Large
 * documents are read off the event loop by src/trust/reader/, which runs this in a child process.
 * Every failure is an SbomError whose message says what is wrong; nothing else is thrown.
 */
import { parseCycloneDx } from './cyclonedx.ts';
import { sbomFormatOf } from './mediatypes.ts';
import { isObject, kindOf, readJson } from './read.ts';
import { parseSpdx2 } from './spdx2.ts';
import { isSpdx3, parseSpdx3 } from './spdx3.ts';
import { SbomError, type SbomDocument } from './types.ts';

export { isSbomMediaType } from './mediatypes.ts';
export { MAX_COMPONENTS, SbomError, type Component, type SbomDocument } from './types.ts';

/**
 * Reads an SBOM from its bytes, or from JSON already parsed (an in-toto predicate). With a media
 * type, the document must be of that format; without one, the format is recognised by its fields.
 */
export function parseSbom(input: unknown, mediaType?: string): SbomDocument {
  try {
    return parse(input, mediaType);
  } catch (e) {
    if (e instanceof SbomError) throw e;
    // a safety net: a bug or an engine limit (a string too long, say) is still an SbomError
    throw new SbomError(`could not read the SBOM: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

function parse(input: unknown, mediaType: string | undefined): SbomDocument {
  let expected: 'cyclonedx' | 'spdx' | undefined;
  if (mediaType !== undefined) {
    expected = sbomFormatOf(mediaType);
    if (!expected) throw new SbomError(`not an SBOM media type Custody reads: ${JSON.stringify(mediaType)}`);
  }
  const doc = readJson(input);
  if (!isObject(doc)) throw new SbomError(`not an SBOM: expected a JSON object, got ${kindOf(doc)}`);
  if (expected === 'cyclonedx') return parseCycloneDx(doc);
  if (expected === 'spdx') return isSpdx3(doc) ? parseSpdx3(doc) : parseSpdx2(doc);
  if ('bomFormat' in doc) return parseCycloneDx(doc);
  if ('spdxVersion' in doc) return parseSpdx2(doc);
  if (isSpdx3(doc)) return parseSpdx3(doc);
  throw new SbomError('not an SBOM: found no bomFormat (CycloneDX), spdxVersion (SPDX 2) or @context/@graph (SPDX 3)');
}
