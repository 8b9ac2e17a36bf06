/** SBOM reading: CycloneDX 1.2–1.7, SPDX 2.3 and 3.0.1 fixtures, media types, malformed and huge input. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isSbomMediaType, MAX_COMPONENTS, parseSbom, SbomError, type SbomDocument } from '../../src/trust/sbom/index.ts';
import { largeCycloneDx, largeSpdx2, largeSpdx3, manyLicensesCycloneDx, manyLicensesSpdx3 } from './sbom-large.ts';

const fixture = (name: string): Uint8Array => readFileSync(new URL(`./fixtures/sbom/${name}`, import.meta.url));
const bytes = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const byName = (doc: SbomDocument, name: string) => doc.components.find((c) => c.name === name);

/** The call must throw an SbomError (never anything else) whose message matches. */
function expectSbomError(run: () => unknown, message: RegExp): void {
  let thrown: unknown;
  try {
    run();
  } catch (e) {
    thrown = e;
  }
  if (!(thrown instanceof SbomError)) throw new Error(`expected an SbomError, got ${String(thrown)}`);
  expect(thrown.message).toMatch(message);
}

describe('CycloneDX', () => {
  it('1.2: nested components in document order, each license form, metadata.component names the document', () => {
    const doc = parseSbom(fixture('cyclonedx-1.2.json'), 'application/vnd.cyclonedx+json');
    expect(doc).toMatchObject({ format: 'cyclonedx', specVersion: '1.2', name: 'acme-portal' });
    expect(doc.components.map((c) => c.name)).toEqual(['express', 'body-parser', 'qs', 'runtime']);
    expect(byName(doc, 'express')).toEqual({ name: 'express', version: '4.17.1', purl: 'pkg:npm/express@4.17.1', licenses: ['MIT'], type: 'library' });
    expect(byName(doc, 'qs')?.licenses).toEqual(['BSD-3-Clause-like (see LICENSE)']);
    expect(byName(doc, 'runtime')).toMatchObject({ licenses: ['MIT OR Apache-2.0'], purl: 'pkg:npm/%40babel/runtime@7.13.9' });
  });

  it('1.4: a container SBOM; an invalid purl is dropped and its component kept', () => {
    const doc = parseSbom(fixture('cyclonedx-1.4.json'));
    expect(doc).toMatchObject({ format: 'cyclonedx', specVersion: '1.4', name: 'registry.example.com/acme/api:1.8.2' });
    expect(doc.components.map((c) => c.name)).toEqual([
      'busybox',
      'musl',
      'github.com/acme/api',
      'github.com/gorilla/mux',
      'golang.org/x/net',
      'libacme-vendored',
      'alpine',
    ]);
    expect(byName(doc, 'busybox')).toMatchObject({ licenses: ['GPL-2.0-only'], purl: 'pkg:apk/alpine/busybox@1.36.1-r0?arch=x86_64&distro=alpine-3.18.2' });
    expect(byName(doc, 'golang.org/x/net')?.licenses).toEqual(['BSD-3-Clause']);
    expect(byName(doc, 'libacme-vendored')).toEqual({ name: 'libacme-vendored', version: '0.3', licenses: ['Acme Proprietary License'], type: 'library' });
    expect(byName(doc, 'alpine')).toEqual({ name: 'alpine', version: '3.18.2', licenses: [], type: 'operating-system' });
  });

  it('1.5: components nested three deep', () => {
    const doc = parseSbom(fixture('cyclonedx-1.5.json'), 'application/vnd.cyclonedx+json; version=1.5');
    expect(doc).toMatchObject({ specVersion: '1.5', name: 'billing-service' });
    expect(doc.components.map((c) => c.name)).toEqual(['spring-core', 'acme-commons-shaded', 'guava', 'failureaccess', 'logback-classic']);
    expect(byName(doc, 'guava')?.licenses).toEqual(['Apache-2.0']);
    expect(byName(doc, 'acme-commons-shaded')?.licenses).toEqual(['Acme Corporate License 1.0']);
    expect(byName(doc, 'logback-classic')?.licenses).toEqual(['EPL-1.0 OR LGPL-2.1-only']);
  });

  it('1.6: acknowledged licenses, a license given twice is listed once, components without version or purl', () => {
    const doc = parseSbom(fixture('cyclonedx-1.6.json'));
    expect(doc).toMatchObject({ specVersion: '1.6', name: 'ghcr.io/acme/worker' });
    expect(doc.components).toHaveLength(6);
    expect(byName(doc, 'urllib3')?.licenses).toEqual(['MIT']);
    expect(byName(doc, 'certifi')?.licenses).toEqual(['MPL-2.0']);
    expect(byName(doc, 'libssl3')?.licenses).toEqual(['OpenSSL-or-Apache (see copyright file)']);
    expect(byName(doc, '/usr/local/bin/worker')).toEqual({ name: '/usr/local/bin/worker', licenses: [], type: 'file' });
    expect(byName(doc, 'tini')?.licenses).toEqual([]);
  });

  it('1.7', () => {
    const doc = parseSbom(fixture('cyclonedx-1.7.json'), 'application/vnd.cyclonedx');
    expect(doc).toMatchObject({ specVersion: '1.7', name: 'acme-gateway' });
    expect(doc.components.map((c) => c.name)).toEqual(['tokio', 'mio', 'ring', 'acme-internal-crypto', 'AES-256-GCM']);
    expect(byName(doc, 'ring')?.licenses).toEqual(['Apache-2.0 AND ISC']);
    expect(byName(doc, 'AES-256-GCM')?.type).toBe('cryptographic-asset');
  });

  it('takes JSON already parsed (an in-toto predicate)', () => {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(fixture('cyclonedx-1.5.json')));
    expect(parseSbom(parsed)).toEqual(parseSbom(fixture('cyclonedx-1.5.json')));
  });

  it('a document without components has none', () => {
    expect(parseSbom({ bomFormat: 'CycloneDX', specVersion: '1.6' })).toEqual({ format: 'cyclonedx', specVersion: '1.6', components: [] });
  });

  it('refuses wrong, XML-era and future spec versions', () => {
    expectSbomError(
      () => parseSbom({ specVersion: '1.6', components: [] }, 'application/vnd.cyclonedx+json'),
      /^not a CycloneDX document: bomFormat is missing$/,
    );
    expectSbomError(() => parseSbom({ bomFormat: 'cyclonedx', specVersion: '1.6' }), /bomFormat is "cyclonedx", expected "CycloneDX"/);
    expectSbomError(() => parseSbom({ bomFormat: 'CycloneDX' }), /specVersion is missing/);
    expectSbomError(() => parseSbom({ bomFormat: 'CycloneDX', specVersion: 1.6 }), /specVersion is a number/);
    for (const v of ['1.0', '1.1', '1.8', '2.0']) {
      expectSbomError(() => parseSbom({ bomFormat: 'CycloneDX', specVersion: v }), new RegExp(`unsupported CycloneDX specVersion "${v.replace('.', '\\.')}"`));
    }
  });

  it('says where a malformed component is', () => {
    expectSbomError(
      () => parseSbom({ bomFormat: 'CycloneDX', specVersion: '1.5', components: { name: 'x' } }),
      /^invalid CycloneDX 1\.5 document: components: .*expected array/,
    );
    expectSbomError(
      () =>
        parseSbom({
          bomFormat: 'CycloneDX',
          specVersion: '1.5',
          components: [{ type: 'library', name: 'a', components: [{ type: 'library', version: '1' }] }],
        }),
      /components\[0\]\.components\[0\]\.name: .*expected string/,
    );
    expectSbomError(
      () => parseSbom({ bomFormat: 'CycloneDX', specVersion: '1.5', components: ['lodash'] }),
      /components\[0\]: expected an object, got a string/,
    );
    expectSbomError(
      () => parseSbom({ bomFormat: 'CycloneDX', specVersion: '1.6', components: [{ name: 'a', licenses: [{ license: { id: 7 } }] }] }),
      /components\[0\]\.licenses\[0\]\.license\.id/,
    );
  });
});

describe('SPDX 2', () => {
  it('2.3 as syft writes it: versions, purls, concluded then declared licenses without NOASSERTION/NONE', () => {
    const doc = parseSbom(fixture('spdx-2.3-syft.json'), 'application/spdx+json');
    expect(doc).toMatchObject({ format: 'spdx', specVersion: '2.3', name: 'alpine' });
    expect(doc.components.map((c) => c.name)).toEqual(['alpine-baselayout', 'busybox', 'libcrypto3', 'ca-certificates-bundle', 'scanelf', 'alpine']);
    expect(byName(doc, 'alpine-baselayout')).toEqual({
      name: 'alpine-baselayout',
      version: '3.6.5-r0',
      purl: 'pkg:apk/alpine/alpine-baselayout@3.6.5-r0?arch=x86_64&distro=alpine-3.20.3',
      licenses: ['GPL-2.0-only'],
    });
    expect(byName(doc, 'libcrypto3')?.licenses).toEqual(['Apache-2.0']);
    expect(byName(doc, 'ca-certificates-bundle')).toEqual({ name: 'ca-certificates-bundle', version: '20240705-r0', licenses: ['MPL-2.0 AND MIT'] });
    expect(byName(doc, 'scanelf')?.licenses).toEqual([]);
    expect(byName(doc, 'alpine')).toMatchObject({ type: 'container', licenses: [] });
    expect(byName(doc, 'alpine')?.purl).toMatch(/^pkg:oci\/alpine@sha256%3Abeef/);
  });

  it('accepts 2.2 (also as text/spdx+json) and refuses other versions', () => {
    const doc = parseSbom(bytes({ spdxVersion: 'SPDX-2.2', name: 'd', packages: [{ name: 'p', licenseDeclared: 'MIT' }] }), 'text/spdx+json');
    expect(doc).toEqual({ format: 'spdx', specVersion: '2.2', name: 'd', components: [{ name: 'p', licenses: ['MIT'] }] });
    expectSbomError(() => parseSbom({ spdxVersion: 'SPDX-2.1', packages: [] }), /unsupported SPDX version "SPDX-2\.1"/);
    expectSbomError(() => parseSbom({ name: 'x', packages: [] }, 'application/spdx+json'), /^not an SPDX document: spdxVersion is missing$/);
    expectSbomError(() => parseSbom({ spdxVersion: 'SPDX-2.3', packages: 'none' }), /^invalid SPDX 2\.3 document: packages: .*expected array/);
    expectSbomError(() => parseSbom({ spdxVersion: 'SPDX-2.3', packages: [{ name: 'a' }, { versionInfo: '1' }] }), /packages\[1\]\.name/);
  });
});

describe('SPDX 3.0 JSON-LD', () => {
  it('packages, purls (property or external identifier), licenses through relationships, the document name', () => {
    const doc = parseSbom(fixture('spdx-3.0.1.json'), 'application/spdx+json');
    expect(doc).toMatchObject({ format: 'spdx', specVersion: '3.0.1', name: 'acme-web 1.2.0' });
    expect(doc.components).toEqual([
      { name: 'acme-web', version: '1.2.0', purl: 'pkg:npm/acme-web@1.2.0', licenses: ['Apache-2.0', 'Apache-2.0 OR MIT'], type: 'application' },
      { name: 'openssl', version: '3.0.15', purl: 'pkg:generic/openssl@3.0.15', licenses: ['Apache-2.0'], type: 'library' },
      { name: 'zlib', version: '1.3.1', purl: 'pkg:generic/zlib@1.3.1', licenses: ['Zlib'] },
      { name: 'busybox', version: '1.36.1', licenses: ['GPL-2.0-only'], type: 'operating-system' },
      { name: 'left-pad', version: '1.3.0', purl: 'pkg:npm/left-pad@1.3.0', licenses: [] },
    ]);
  });

  it('older spellings: @type/@id, unprefixed properties, type IRIs, the Sbom name when there is no SpdxDocument', () => {
    const doc = parseSbom({
      '@context': ['https://spdx.org/rdf/3.0.0/spdx-context.jsonld'],
      '@graph': [
        { '@type': 'software_Sbom', '@id': 'urn:sbom', name: 'old-style' },
        { '@type': 'https://spdx.org/rdf/3.0.0/terms/Software/Package', '@id': 'urn:p', name: 'p', packageVersion: '2', packageUrl: 'pkg:npm/p@2' },
        { '@type': 'LicenseExpression', '@id': 'urn:l', licenseExpression: 'ISC' },
        {
          '@type': 'Relationship',
          from: 'urn:p',
          to: ['urn:l'],
          relationshipType: 'https://spdx.org/rdf/3.0.0/terms/Core/RelationshipType/hasDeclaredLicense',
        },
      ],
    });
    expect(doc).toEqual({
      format: 'spdx',
      specVersion: '3.0.0',
      name: 'old-style',
      components: [{ name: 'p', version: '2', purl: 'pkg:npm/p@2', licenses: ['ISC'] }],
    });
  });

  it('refuses other contexts and malformed graphs', () => {
    expectSbomError(() => parseSbom({ '@context': 'https://spdx.org/rdf/3.1/spdx-context.jsonld', '@graph': [] }), /unsupported SPDX version 3\.1/);
    expectSbomError(() => parseSbom({ '@context': 'https://schema.org', '@graph': [] }), /@context does not name https:\/\/spdx\.org\/rdf\/3\.0\.x/);
    expectSbomError(() => parseSbom({ '@graph': [] }), /@context is missing/);
    expectSbomError(() => parseSbom({ '@context': 'https://spdx.org/rdf/3.0.1/spdx-context.jsonld' }), /@graph is missing/);
    expectSbomError(() => parseSbom({ '@context': 'https://spdx.org/rdf/3.0.1/spdx-context.jsonld', '@graph': {} }), /@graph: expected an array, got a object/);
    expectSbomError(
      () => parseSbom({ '@context': 'https://spdx.org/rdf/3.0.1/spdx-context.jsonld', '@graph': [{ type: 'software_Package' }] }),
      /@graph\[0\] \(software_Package\)\.name/,
    );
    expectSbomError(
      () => parseSbom({ '@context': 'https://spdx.org/rdf/3.0.1/spdx-context.jsonld', '@graph': [null] }),
      /@graph\[0\]: expected an object, got null/,
    );
  });
});

describe('input and media types', () => {
  it('knows the SBOM media types it reads', () => {
    for (const t of [
      'application/vnd.cyclonedx+json',
      'application/vnd.cyclonedx+json; version=1.6',
      'Application/VND.CycloneDX+JSON',
      'application/vnd.cyclonedx',
      'application/spdx+json',
      'text/spdx+json',
    ]) {
      expect(isSbomMediaType(t), t).toBe(true);
    }
    for (const t of ['application/vnd.cyclonedx+xml', 'text/spdx', 'application/json', 'application/vnd.oci.image.manifest.v1+json', '']) {
      expect(isSbomMediaType(t), t).toBe(false);
    }
    expectSbomError(() => parseSbom(fixture('cyclonedx-1.6.json'), 'application/json'), /not an SBOM media type Custody reads: "application\/json"/);
  });

  it('a media type decides the format expected', () => {
    expectSbomError(() => parseSbom(fixture('spdx-2.3-syft.json'), 'application/vnd.cyclonedx+json'), /not a CycloneDX document: bomFormat is missing/);
    expectSbomError(() => parseSbom(fixture('cyclonedx-1.6.json'), 'application/spdx+json'), /not an SPDX document: spdxVersion is missing/);
  });

  it('malformed input is an SbomError that says why', () => {
    expectSbomError(() => parseSbom(bytes('{"bomFormat": "CycloneDX",')), /^not JSON: /);
    expectSbomError(() => parseSbom(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /not valid UTF-8/);
    expectSbomError(() => parseSbom(bytes('<?xml version="1.0"?><bom xmlns="http://cyclonedx.org/schema/bom/1.4"/>')), /looks like XML/);
    expectSbomError(() => parseSbom(bytes('SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\n')), /SPDX tag-value/);
    expectSbomError(() => parseSbom(bytes('[]')), /expected a JSON object, got an array/);
    expectSbomError(() => parseSbom(null), /expected a JSON object, got null/);
    expectSbomError(() => parseSbom('{"bomFormat":"CycloneDX"}'), /expected a JSON object, got a string/);
    expectSbomError(() => parseSbom({ hello: 'world' }), /found no bomFormat \(CycloneDX\), spdxVersion \(SPDX 2\) or @context\/@graph \(SPDX 3\)/);
  });

  it('a UTF-8 byte order mark is fine', () => {
    const withBom = new Uint8Array([0xef, 0xbb, 0xbf, ...bytes({ bomFormat: 'CycloneDX', specVersion: '1.4' })]);
    expect(parseSbom(withBom).specVersion).toBe('1.4');
  });
});

describe('large documents', () => {
  // How long these take is measured by `npm run bench:sbom`, not asserted here: the machine is shared.
  it('100 000 CycloneDX components, half of them nested, parse from bytes', () => {
    const doc = parseSbom(bytes(largeCycloneDx(100_000, true)));
    expect(doc.components).toHaveLength(100_000);
    expect(doc.components[1]).toEqual({ name: 'dep-0', version: '1.0.0', purl: 'pkg:npm/dep-0@1.0.0', licenses: ['MIT OR ISC'], type: 'library' });
  });

  it('100 000 SPDX 2.3 packages and 100 000 SPDX 3 packages with license relationships', () => {
    expect(parseSbom(bytes(largeSpdx2(100_000))).components).toHaveLength(100_000);
    const doc = parseSbom(bytes(largeSpdx3(100_000)));
    expect(doc.components).toHaveLength(100_000);
    expect(doc.components[99_999]).toEqual({ name: 'p99999', version: '1', purl: 'pkg:cargo/p99999@1', licenses: ['MIT'] });
  });

  it(`more than ${MAX_COMPONENTS} components is refused, counting nested ones`, () => {
    const small = { type: 'library', name: 'x' };
    const flat = { bomFormat: 'CycloneDX', specVersion: '1.6', components: Array.from({ length: MAX_COMPONENTS + 1 }, () => small) };
    expectSbomError(() => parseSbom(flat), /too many components: more than 200000/);
    const nested = {
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      components: Array.from({ length: MAX_COMPONENTS / 2 + 1 }, () => ({ ...small, components: [small] })),
    };
    expectSbomError(() => parseSbom(nested), /too many components/);
    expect(parseSbom({ ...flat, components: flat.components.slice(1) }).components).toHaveLength(MAX_COMPONENTS);
    expectSbomError(
      () => parseSbom({ spdxVersion: 'SPDX-2.3', packages: Array.from({ length: MAX_COMPONENTS + 1 }, () => ({ name: 'x' })) }),
      /too many packages/,
    );
    const graph = Array.from({ length: MAX_COMPONENTS + 1 }, () => ({ type: 'software_Package', name: 'x' }));
    expectSbomError(() => parseSbom({ '@context': 'https://spdx.org/rdf/3.0.1/spdx-context.jsonld', '@graph': graph }), /too many packages/);
  });

  it('200 000 license entries on one component are read once each', () => {
    const cdx = parseSbom(manyLicensesCycloneDx(200_000));
    expect(cdx.components[0]?.licenses).toHaveLength(100_000);
    const spdx3 = parseSbom(manyLicensesSpdx3(200_000));
    expect(spdx3.components[0]?.licenses).toHaveLength(100_000);
  });
});

describe('hostile nesting', () => {
  const nests = /^the document nests too deeply \(more than 128 levels\)$/;
  const cdx = (components: string) => `{"bomFormat":"CycloneDX","specVersion":"1.6","components":${components}}`;

  it('bytes nesting deeper than 128 levels are refused before they are parsed: arrays, objects, inside an SBOM', () => {
    expectSbomError(() => parseSbom(bytes(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`)), nests);
    expectSbomError(() => parseSbom(bytes(`${'{"a":'.repeat(1_000_000)}1${'}'.repeat(1_000_000)}`), 'application/vnd.cyclonedx+json'), nests);
    expectSbomError(() => parseSbom(bytes(cdx(`[{"name":"a","x":${'['.repeat(200)}${']'.repeat(200)}}]`))), nests);
    // unterminated, and deep before the point where JSON.parse would stop
    expectSbomError(() => parseSbom(bytes('['.repeat(500))), nests);
  });

  it('128 levels are read; brackets inside strings, escaped quotes included, do not count', () => {
    // the document and its components array are two levels, each nested component two more, the leaf and its licenses two
    const nested = (leaf: string) => {
      let c = leaf;
      for (let i = 0; i < 62; i++) c = `{"name":"n${i}","components":[${c}]}`;
      return cdx(`[${c}]`);
    };
    expect(parseSbom(bytes(nested('{"name":"leaf","licenses":[]}'))).components).toHaveLength(63);
    expectSbomError(() => parseSbom(bytes(nested('{"name":"leaf","licenses":[{}]}'))), nests);
    // JSON-escaped, the name holds \\" (an escaped quote) and ends in \\\\" (an escaped backslash, then the closing quote)
    const brackets = `[[[[{{{{\\"${'['.repeat(300)}\\\\`;
    const doc = parseSbom(bytes(cdx(`[{"name":${JSON.stringify(brackets)},"version":"\\\\"}]`)));
    expect(doc.components[0]).toMatchObject({ name: brackets, version: '\\' });
  });

  it('a valid SBOM reads the same as before the nesting check', () => {
    for (const name of ['cyclonedx-1.5.json', 'spdx-2.3-syft.json', 'spdx-3.0.1.json']) {
      const parsed: unknown = JSON.parse(new TextDecoder().decode(fixture(name)));
      expect(parseSbom(fixture(name)), name).toEqual(parseSbom(parsed));
    }
  });
});
