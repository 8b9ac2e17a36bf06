/** The media types the registry core knows; src/trust/mediatypes.ts has those of signatures, attestations and SBOMs. */
export const mediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

/** Manifests whose references are blobs (config and layers). */
export const imageManifestTypes: ReadonlySet<string> = new Set([mediaTypes.ociManifest, mediaTypes.dockerManifest]);
/** Manifests whose references are other manifests. */
export const indexTypes: ReadonlySet<string> = new Set([mediaTypes.ociIndex, mediaTypes.dockerManifestList]);

/** Layer types that are not pushed to registries (Docker's foreign layers, OCI non-distributable). */
export function isForeignLayer(mediaType: string, urls: unknown): boolean {
  return (Array.isArray(urls) && urls.length > 0) || mediaType.includes('foreign') || mediaType.includes('nondistributable');
}
