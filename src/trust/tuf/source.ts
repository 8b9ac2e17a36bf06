/**
 * Where TUF learns which tags are signed. The TrustStore (`meta.trust`) answers it in the server:
 * a tag is signed when its manifest has at least one verified signature.
 */

import type { SignedTag } from '../../meta/trust.ts';

export type { SignedTag };

export interface SignedTagSource {
  signedTags(namespace: string): Promise<SignedTag[]>;
}
