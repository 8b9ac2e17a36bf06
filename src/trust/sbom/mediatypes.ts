/**
 * SBOM media types Custody reads, by format. Parameters (`;version=1.6`, `;charset=utf-8`) are
 * ignored: the document's own specVersion/spdxVersion decides. XML, protobuf and SPDX tag-value
 * media types are SBOMs Custody cannot read, so they are not listed.
 */
const FORMATS: ReadonlyMap<string, 'cyclonedx' | 'spdx'> = new Map([
  ['application/vnd.cyclonedx+json', 'cyclonedx'],
  // the bare type carries no serialisation; Custody reads it only when the bytes are JSON
  ['application/vnd.cyclonedx', 'cyclonedx'],
  ['application/spdx+json', 'spdx'],
  // cosign's `attach sbom --type spdxjson` used this one
  ['text/spdx+json', 'spdx'],
]);

export function sbomFormatOf(mediaType: string): 'cyclonedx' | 'spdx' | undefined {
  const essence = (mediaType.split(';', 1)[0] ?? '').trim().toLowerCase();
  return FORMATS.get(essence);
}

export function isSbomMediaType(mediaType: string): boolean {
  return sbomFormatOf(mediaType) !== undefined;
}
