/**
 * Where TUF learns which tags are signed. The TrustStore (`meta.trust`) answers it in the server:
 * a tag is signed when its manifest has at least one verified signature.
 */

export interface SignedTag {
  /** the repository, in the namespace (`team` or `team/...`) */
  repository: string;
  tag: string;
  /** the manifest digest the tag points at */
  digest: string;
  /** the manifest's size in bytes */
  size: number;
  mediaType: string;
}

export interface SignedTagSource {
  signedTags(namespace: string): Promise<SignedTag[]>;
}
