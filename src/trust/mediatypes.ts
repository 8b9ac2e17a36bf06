/** Media types of signatures, attestations and SBOMs; src/oci/mediatypes.ts has the registry core's. */
export const trustTypes = {
  cosignSimpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
  cosignArtifactSig: 'application/vnd.dev.cosign.artifact.sig.v1+json',
  sigstoreBundleV03: 'application/vnd.dev.sigstore.bundle.v0.3+json',
  /** v0.1 and v0.2 carry the version as a parameter */
  sigstoreBundle: 'application/vnd.dev.sigstore.bundle+json',
  notarySignature: 'application/vnd.cncf.notary.signature',
  jws: 'application/jose+json',
  cose: 'application/cose',
  dsse: 'application/vnd.dsse.envelope.v1+json',
  inToto: 'application/vnd.in-toto+json',
} as const;

/** The media type without parameters, lowercased. */
const bareType = (mediaType: string): string => (mediaType.split(';')[0] ?? '').trim().toLowerCase();

export function isSigstoreBundle(mediaType: string): boolean {
  const bare = bareType(mediaType);
  return bare === trustTypes.sigstoreBundle || /^application\/vnd\.dev\.sigstore\.bundle\.v0\.[0-9]+\+json$/.test(bare);
}

/** SBOM media types: the table the SBOM parser reads by (a small module, safe on the push path). */
export { sbomFormatOf as sbomFormat } from './sbom/mediatypes.ts';
