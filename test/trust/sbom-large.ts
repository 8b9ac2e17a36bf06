/**
 * Large SBOMs, made on the spot: the SBOM tests read them for correctness, and `npm run
 * bench:sbom` (bench/sbom.ts) times the same documents.
 */

/** `n` CycloneDX components; `nested`: half of them, each with one nested component. */
export function largeCycloneDx(n: number, nested = false): object {
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    components: Array.from({ length: nested ? n / 2 : n }, (_, i) => ({
      type: 'library',
      name: `pkg-${i}`,
      version: `1.${i}.0`,
      purl: `pkg:npm/%40acme/pkg-${i}@1.${i}.0`,
      licenses: [{ license: { id: 'MIT' } }],
      ...(nested
        ? { components: [{ type: 'library', name: `dep-${i}`, version: '1.0.0', purl: `pkg:npm/dep-${i}@1.0.0`, licenses: [{ expression: 'MIT OR ISC' }] }] }
        : {}),
    })),
  };
}

export function largeSpdx2(n: number): object {
  return {
    spdxVersion: 'SPDX-2.3',
    packages: Array.from({ length: n }, (_, i) => ({
      name: `p${i}`,
      versionInfo: '1.0',
      licenseConcluded: 'MIT',
      licenseDeclared: 'NOASSERTION',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:pypi/p${i}@1.0` }],
    })),
  };
}

/** `n` SPDX 3 packages, each with a license relationship: 2n + 1 graph elements. */
export function largeSpdx3(n: number): object {
  const graph: unknown[] = [{ type: 'simplelicensing_LicenseExpression', spdxId: 'urn:l', simplelicensing_licenseExpression: 'MIT' }];
  for (let i = 0; i < n; i++) {
    graph.push({ type: 'software_Package', spdxId: `urn:p${i}`, name: `p${i}`, software_packageVersion: '1', software_packageUrl: `pkg:cargo/p${i}@1` });
    graph.push({ type: 'Relationship', spdxId: `urn:r${i}`, from: `urn:p${i}`, to: ['urn:l'], relationshipType: 'hasConcludedLicense' });
  }
  return { '@context': 'https://spdx.org/rdf/3.0.1/spdx-context.jsonld', '@graph': graph };
}

/** `n` license entries on one component, half of them repeats (n/2 distinct). */
const licenseIds = (n: number) => Array.from({ length: n }, (_, i) => `LicenseRef-${i % (n / 2)}`);

export function manyLicensesCycloneDx(n: number): object {
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    components: [{ type: 'library', name: 'x', licenses: licenseIds(n).map((id) => ({ license: { id } })) }],
  };
}

export function manyLicensesSpdx3(n: number): object {
  const graph = [
    { type: 'software_Package', spdxId: 'urn:p', name: 'p' },
    { type: 'Relationship', from: 'urn:p', to: licenseIds(n).map((id) => `https://spdx.org/licenses/${id}`), relationshipType: 'hasDeclaredLicense' },
  ];
  return { '@context': 'https://spdx.org/rdf/3.0.1/spdx-context.jsonld', '@graph': graph };
}
