import { z } from 'zod';
import { validPurl } from './purl.ts';
import { addLicense, describeIssue, isObject, kindOf, tooMany, uniqueLicenses } from './read.ts';
import { MAX_COMPONENTS, SbomError, type Component, type SbomDocument } from './types.ts';

/**
 * SPDX 2.2 and 2.3 JSON. Every entry of packages[] is a component, the package the document
 * describes included (SPDX keeps no separate slot for it). Files and snippets are not read.
 */
export const SPDX2_VERSIONS: readonly string[] = ['SPDX-2.2', 'SPDX-2.3'];

const optString = z.string().nullish();

const Package = z.object({
  name: z.string(),
  versionInfo: optString,
  licenseConcluded: optString,
  licenseDeclared: optString,
  primaryPackagePurpose: optString,
  externalRefs: z.array(z.object({ referenceType: optString, referenceLocator: optString })).nullish(),
});

const Document = z.object({
  name: optString,
  packages: z.array(z.unknown()).nullish(),
});

export function parseSpdx2(doc: Record<string, unknown>): SbomDocument {
  const { spdxVersion } = doc;
  if (typeof spdxVersion !== 'string') {
    throw new SbomError(`not an SPDX document: spdxVersion is ${spdxVersion === undefined ? 'missing' : `${kindOf(spdxVersion)}, not a string`}`);
  }
  if (!SPDX2_VERSIONS.includes(spdxVersion)) {
    throw new SbomError(`unsupported SPDX version ${JSON.stringify(spdxVersion)}: Custody reads SPDX 2.2 and 2.3 JSON and SPDX 3.0 JSON-LD`);
  }
  const version = spdxVersion.slice('SPDX-'.length);
  const parsed = Document.safeParse(doc);
  if (!parsed.success) throw new SbomError(`invalid SPDX ${version} document: ${describeIssue('', parsed.error)}`);
  const packages = parsed.data.packages ?? [];
  if (packages.length > MAX_COMPONENTS) throw tooMany('packages');
  const components: Component[] = [];
  for (let i = 0; i < packages.length; i++) {
    const item = packages[i];
    const p = Package.safeParse(item);
    if (!p.success) {
      const where = `packages[${i}]`;
      const message = isObject(item) ? describeIssue(where, p.error) : `${where}: expected an object, got ${kindOf(item)}`;
      throw new SbomError(`invalid SPDX ${version} document: ${message}`);
    }
    components.push(toComponent(p.data));
  }
  const name = parsed.data.name ?? undefined;
  return { format: 'spdx', specVersion: version, ...(name ? { name } : {}), components };
}

function toComponent(p: z.infer<typeof Package>): Component {
  const licenses: string[] = [];
  addLicense(licenses, p.licenseConcluded);
  addLicense(licenses, p.licenseDeclared);
  let purl: string | undefined;
  for (const ref of p.externalRefs ?? []) {
    if (ref.referenceType === 'purl') purl ??= validPurl(ref.referenceLocator);
  }
  const component: Component = { name: p.name, licenses: uniqueLicenses(licenses) };
  if (p.versionInfo) component.version = p.versionInfo;
  if (purl) component.purl = purl;
  const type = p.primaryPackagePurpose?.toLowerCase();
  if (type) component.type = type;
  return component;
}
