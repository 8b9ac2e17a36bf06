import { PackageURL } from 'packageurl-js';

/**
 * The purl if packageurl-js can parse it, else undefined. An invalid purl is dropped and its
 * component kept: the name and version still mean something to a person, while a purl we cannot
 * parse would only mislead vulnerability matching. Valid purls are kept as written (not
 * normalised), so what Custody shows is what the SBOM says.
 */
export function validPurl(purl: string | null | undefined): string | undefined {
  if (typeof purl !== 'string' || purl === '') return undefined;
  try {
    PackageURL.fromString(purl);
    return purl;
  } catch {
    return undefined;
  }
}
