import type { z } from 'zod';
import { jsonTooCostly } from '../../json-limits.ts';
import { MAX_COMPONENTS, SbomError } from './types.ts';

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Bytes to JSON. Anything else is taken to be JSON already (an in-toto predicate, say). */
export function readJson(input: unknown): unknown {
  if (!(input instanceof Uint8Array)) return input;
  let text: string;
  try {
    text = decoder.decode(input);
  } catch {
    throw new SbomError('not JSON: the bytes are not valid UTF-8');
  }
  const start = text.trimStart();
  if (start.startsWith('<')) throw new SbomError('not JSON: this looks like XML; only JSON SBOMs are read (CycloneDX XML is not supported)');
  if (/^SPDXVersion:/i.test(start)) throw new SbomError('not JSON: this looks like SPDX tag-value, which is not supported; use SPDX JSON');
  const costly = jsonTooCostly(text);
  if (costly) throw new SbomError(`the document ${costly}`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SbomError(`not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

/** The first problem zod found, as `where.path: message`. */
export function describeIssue(where: string, error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return `${where}: invalid`;
  let path = where;
  for (const key of issue.path) path += typeof key === 'number' ? `[${key}]` : `${path ? '.' : ''}${String(key)}`;
  return `${path}: ${issue.message}`;
}

/** Collects license strings, leaving out the SPDX "no information" values; see uniqueLicenses. */
export function addLicense(into: string[], value: string | null | undefined): void {
  if (value === null || value === undefined) return;
  const v = value.trim();
  if (v !== '' && v !== 'NOASSERTION' && v !== 'NONE') into.push(v);
}

/** Each license once, in first-seen order; linear, so a component with a million entries is no trap. */
export function uniqueLicenses(licenses: string[]): string[] {
  return licenses.length > 1 ? [...new Set(licenses)] : licenses;
}

export function tooMany(what: string, limit: number = MAX_COMPONENTS): SbomError {
  return new SbomError(`too many ${what}: more than ${limit}, the most Custody reads from one SBOM`);
}
