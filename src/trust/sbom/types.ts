/** What every SBOM format is read into: the packages it lists, with what we match and show. */

export interface Component {
  name: string;
  version?: string;
  /** a package URL that packageurl-js accepts, exactly as the document wrote it */
  purl?: string;
  /** SPDX license ids, names or expressions, as written; NOASSERTION and NONE are left out */
  licenses: string[];
  /** CycloneDX component type, or SPDX primary purpose in lower case ("library", "operating-system", …) */
  type?: string;
}

export interface SbomDocument {
  format: 'cyclonedx' | 'spdx';
  /** "1.6" for CycloneDX, "2.3" or "3.0.1" for SPDX */
  specVersion: string;
  name?: string;
  components: Component[];
}

/** Every way an SBOM can be unreadable; the message says what is wrong and where. */
export class SbomError extends Error {
  override name = 'SbomError';
}

/** A document listing more components than this is refused rather than half read. */
export const MAX_COMPONENTS = 200_000;
