import { z } from 'zod';
import { validPurl } from './purl.ts';
import { addLicense, describeIssue, isObject, kindOf, tooMany, uniqueLicenses } from './read.ts';
import { MAX_COMPONENTS, SbomError, type Component, type SbomDocument } from './types.ts';

/**
 * SPDX 3.0 JSON-LD: a `@graph` of elements, read in two passes (elements, then the license
 * relationships that point at them). Packages are `software_Package` elements; licenses come from
 * hasConcludedLicense and hasDeclaredLicense relationships to LicenseExpression or ListedLicense
 * elements (given in the graph, embedded in the relationship, or named by their
 * https://spdx.org/licenses/ IRI). Compound licence sets (ConjunctiveLicenseSet, …) are not read:
 * tools write the same thing as a LicenseExpression.
 *
 * Spellings: the 3.0.1 context's compact names (`type`, `spdxId`, `software_packageVersion`), and,
 * because it is cheap, `@type`/`@id`, unprefixed property names and full type IRIs.
 */
const CONTEXT = /^https:\/\/spdx\.org\/rdf\/(3\.\d+(?:\.\d+)?)\/spdx-context\.jsonld$/;
const MAX_ELEMENTS = 5 * MAX_COMPONENTS;

const optString = z.string().nullish();

const PackageShape = z.object({
  name: z.string(),
  software_packageVersion: optString,
  packageVersion: optString,
  software_packageUrl: optString,
  packageUrl: optString,
  software_primaryPurpose: optString,
  primaryPurpose: optString,
  externalIdentifier: z.array(z.unknown()).nullish(),
});

const ExternalIdentifier = z.object({ externalIdentifierType: z.string(), identifier: z.string() });

const RelationshipShape = z.object({
  from: z.string(),
  to: z.array(z.unknown()),
  relationshipType: z.string(),
});

type LicenseKind = 'concluded' | 'declared';
interface PackageEntry {
  id?: string;
  component: Component;
}
interface Relationship {
  from: string;
  to: unknown[];
  kind: LicenseKind;
}

/** `software_Package`, `software:Package`, `…/terms/Software/Package` and `Package` all become `Package`. */
function localName(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const cut = Math.max(v.lastIndexOf('/'), v.lastIndexOf('_'), v.lastIndexOf(':'));
  return v.slice(cut + 1);
}

const typeOf = (e: Record<string, unknown>) => localName(e.type ?? e['@type']);
const idOf = (e: Record<string, unknown>): string | undefined => {
  const id = e.spdxId ?? e['@id'];
  return typeof id === 'string' ? id : undefined;
};

export function isSpdx3(doc: Record<string, unknown>): boolean {
  return '@context' in doc || '@graph' in doc;
}

export function parseSpdx3(doc: Record<string, unknown>): SbomDocument {
  const version = contextVersion(doc['@context']);
  const graph = doc['@graph'];
  if (graph === undefined) throw new SbomError('not an SPDX 3 document: @graph is missing');
  if (!Array.isArray(graph)) throw new SbomError(`invalid SPDX ${version} document: @graph: expected an array, got ${kindOf(graph)}`);
  if (graph.length > MAX_ELEMENTS) throw tooMany('elements in @graph', MAX_ELEMENTS);
  const fail = (message: string) => new SbomError(`invalid SPDX ${version} document: ${message}`);

  const packages: PackageEntry[] = [];
  const relationships: Relationship[] = [];
  const licenses = new Map<string, string>();
  let docName: string | undefined;
  let sbomName: string | undefined;
  for (let i = 0; i < graph.length; i++) {
    const e: unknown = graph[i];
    if (!isObject(e)) throw fail(`@graph[${i}]: expected an object, got ${kindOf(e)}`);
    const type = typeOf(e);
    if (type === 'Package') {
      if (packages.length >= MAX_COMPONENTS) throw tooMany('packages');
      const p = PackageShape.safeParse(e);
      if (!p.success) throw fail(describeIssue(`@graph[${i}] (software_Package)`, p.error));
      const id = idOf(e);
      packages.push({ ...(id ? { id } : {}), component: toComponent(p.data) });
    } else if (type === 'Relationship' || type === 'LifecycleScopedRelationship') {
      const kind = licenseKind(e.relationshipType);
      if (!kind) continue;
      const r = RelationshipShape.safeParse(e);
      if (!r.success) throw fail(describeIssue(`@graph[${i}] (Relationship)`, r.error));
      relationships.push({ from: r.data.from, to: r.data.to, kind });
    } else if (type === 'SpdxDocument' || type === 'Sbom') {
      const name = typeof e.name === 'string' && e.name !== '' ? e.name : undefined;
      if (type === 'SpdxDocument') docName ??= name;
      else sbomName ??= name;
    } else {
      const id = idOf(e);
      const license = licenseOf(e);
      if (id && license) licenses.set(id, license);
    }
  }

  const byId = new Map<string, PackageEntry>();
  for (const p of packages) if (p.id) byId.set(p.id, p);
  // concluded before declared, as in SPDX 2, whatever order the graph lists them in
  for (const kind of ['concluded', 'declared'] as const) {
    for (const r of relationships) {
      if (r.kind !== kind) continue;
      const target = byId.get(r.from);
      if (!target) continue;
      for (const to of r.to) addLicense(target.component.licenses, resolveLicense(to, licenses));
    }
  }
  const components = packages.map((p) => p.component);
  for (const c of components) c.licenses = uniqueLicenses(c.licenses);
  const name = docName ?? sbomName;
  return { format: 'spdx', specVersion: version, ...(name ? { name } : {}), components };
}

function contextVersion(context: unknown): string {
  const urls = Array.isArray(context) ? context : [context];
  for (const u of urls) {
    if (typeof u !== 'string') continue;
    const m = CONTEXT.exec(u);
    if (!m) continue;
    const version = m[1]!;
    if (version === '3.0' || version.startsWith('3.0.')) return version;
    throw new SbomError(`unsupported SPDX version ${version}: Custody reads SPDX 3.0 JSON-LD and SPDX 2.2/2.3 JSON`);
  }
  if (context === undefined) throw new SbomError('not an SPDX 3 document: @context is missing');
  throw new SbomError('not an SPDX 3 document: @context does not name https://spdx.org/rdf/3.0.x/spdx-context.jsonld');
}

function licenseKind(v: unknown): LicenseKind | undefined {
  const t = localName(v);
  return t === 'hasConcludedLicense' ? 'concluded' : t === 'hasDeclaredLicense' ? 'declared' : undefined;
}

/** A license element's text: the expression, or a listed license's id, else its name. */
function licenseOf(e: Record<string, unknown>): string | undefined {
  const type = typeOf(e);
  if (type === 'LicenseExpression') {
    const expr = e.simplelicensing_licenseExpression ?? e.licenseExpression;
    return typeof expr === 'string' ? expr : undefined;
  }
  if (type === 'ListedLicense' || type === 'CustomLicense') {
    const fromId = listedLicenseId(idOf(e));
    if (fromId) return fromId;
    return typeof e.name === 'string' ? e.name : undefined;
  }
  return undefined;
}

/** `https://spdx.org/licenses/MIT` → `MIT` */
function listedLicenseId(iri: string | undefined): string | undefined {
  const m = iri ? /^https?:\/\/spdx\.org\/licenses\/([A-Za-z0-9.+-]+)$/.exec(iri) : null;
  return m?.[1];
}

function resolveLicense(to: unknown, licenses: Map<string, string>): string | undefined {
  if (typeof to === 'string') {
    const known = licenses.get(to);
    return known ?? listedLicenseId(to);
  }
  return isObject(to) ? licenseOf(to) : undefined;
}

function toComponent(p: z.infer<typeof PackageShape>): Component {
  const version = p.software_packageVersion ?? p.packageVersion;
  let purl = validPurl(p.software_packageUrl ?? p.packageUrl);
  for (const ext of p.externalIdentifier ?? []) {
    if (purl) break;
    const x = ExternalIdentifier.safeParse(ext);
    if (x.success && localName(x.data.externalIdentifierType) === 'packageUrl') purl = validPurl(x.data.identifier);
  }
  const purpose = p.software_primaryPurpose ?? p.primaryPurpose;
  // operatingSystem → operating-system, the spelling CycloneDX and SPDX 2 use
  const type = purpose ? purpose.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).toLowerCase() : undefined;
  const component: Component = { name: p.name, licenses: [] };
  if (version) component.version = version;
  if (purl) component.purl = purl;
  if (type) component.type = type;
  return component;
}
