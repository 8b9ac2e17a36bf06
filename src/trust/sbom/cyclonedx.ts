import { z } from 'zod';
import { validPurl } from './purl.ts';
import { addLicense, describeIssue, isObject, kindOf, tooMany, uniqueLicenses } from './read.ts';
import { MAX_COMPONENTS, SbomError, type Component, type SbomDocument } from './types.ts';

/**
 * CycloneDX JSON 1.2–1.7. Only the fields we read are checked; the rest of the document may be
 * anything. 1.0 and 1.1 were XML only, and a version newer than 1.7 is refused rather than guessed.
 * The BOM's subject (metadata.component) names the document and is not itself a component.
 */
export const CYCLONEDX_VERSIONS: readonly string[] = ['1.2', '1.3', '1.4', '1.5', '1.6', '1.7'];

const optString = z.string().nullish();

const LicenseChoice = z.object({
  license: z.object({ id: optString, name: optString }).nullish(),
  expression: optString,
});

const CdxComponent = z.object({
  type: optString,
  name: z.string(),
  version: optString,
  purl: optString,
  licenses: z.array(LicenseChoice).nullish(),
  components: z.array(z.unknown()).nullish(),
});

const CdxBom = z.object({
  metadata: z.object({ component: z.object({ name: optString }).nullish() }).nullish(),
  components: z.array(z.unknown()).nullish(),
});

export function parseCycloneDx(doc: Record<string, unknown>): SbomDocument {
  const { bomFormat, specVersion } = doc;
  if (bomFormat === undefined) throw new SbomError('not a CycloneDX document: bomFormat is missing');
  if (bomFormat !== 'CycloneDX') throw new SbomError(`not a CycloneDX document: bomFormat is ${JSON.stringify(bomFormat)}, expected "CycloneDX"`);
  if (typeof specVersion !== 'string')
    throw new SbomError(`not a CycloneDX document: specVersion is ${specVersion === undefined ? 'missing' : `${kindOf(specVersion)}, not a string`}`);
  if (!CYCLONEDX_VERSIONS.includes(specVersion)) {
    throw new SbomError(`unsupported CycloneDX specVersion ${JSON.stringify(specVersion)}: Custody reads CycloneDX JSON ${CYCLONEDX_VERSIONS.join(', ')}`);
  }
  const bom = CdxBom.safeParse(doc);
  if (!bom.success) throw new SbomError(`invalid CycloneDX ${specVersion} document: ${describeIssue('', bom.error)}`);
  const name = bom.data.metadata?.component?.name ?? undefined;
  const components = walk(bom.data.components ?? [], specVersion);
  return { format: 'cyclonedx', specVersion, ...(name ? { name } : {}), components };
}

interface Frame {
  items: unknown[];
  next: number;
  path: string;
}

/** Depth first, in document order, without recursion: nesting depth is the sender's choice. */
function walk(top: unknown[], specVersion: string): Component[] {
  const out: Component[] = [];
  const stack: Frame[] = [{ items: top, next: 0, path: 'components' }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.next >= frame.items.length) {
      stack.pop();
      continue;
    }
    const i = frame.next++;
    if (out.length >= MAX_COMPONENTS) throw tooMany('components');
    const item = frame.items[i];
    const parsed = CdxComponent.safeParse(item);
    if (!parsed.success) {
      const where = `${frame.path}[${i}]`;
      const message = isObject(item) ? describeIssue(where, parsed.error) : `${where}: expected an object, got ${kindOf(item)}`;
      throw new SbomError(`invalid CycloneDX ${specVersion} document: ${message}`);
    }
    const c = parsed.data;
    out.push(toComponent(c));
    if (c.components && c.components.length > 0) stack.push({ items: c.components, next: 0, path: `${frame.path}[${i}].components` });
  }
  return out;
}

function toComponent(c: z.infer<typeof CdxComponent>): Component {
  const licenses: string[] = [];
  for (const choice of c.licenses ?? []) {
    addLicense(licenses, choice.license?.id ?? choice.license?.name ?? choice.expression);
  }
  const component: Component = { name: c.name, licenses: uniqueLicenses(licenses) };
  if (c.version) component.version = c.version;
  const purl = validPurl(c.purl);
  if (purl) component.purl = purl;
  if (c.type) component.type = c.type;
  return component;
}
