/**
 * What src/trust keeps in the shared metadata store: every signature, attestation and SBOM that
 * names a subject (through the referrers API or cosign's legacy tags), its verdict, the parsed
 * SBOMs, and the trust each namespace configured through /api/v1. A verdict is `pending` from
 * the push until a verifier has looked at it; any replica may pick pending work up, under a claim
 * that expires, so that two replicas do not verify one artifact at once and a crashed replica's
 * work is picked up.
 */

export type ArtifactKind = 'signature' | 'attestation' | 'sbom';

export interface TrustArtifact {
  repo: string;
  /** the signature's (attestation's, SBOM's) own manifest */
  digest: string;
  /** the manifest it is about */
  subject: string;
  kind: ArtifactKind;
  /** cosign, sigstore-bundle, notary-jws, notary-cose, dsse, cyclonedx, spdx */
  format: string;
  /** 'referrer' (a manifest with a subject) or the legacy tag it came through */
  via: string;
  status: 'pending' | 'done';
  verified: boolean | null;
  signer: string | null;
  /**
   * the verdict's reason code, one of trust's (src/trust/verdict.ts: reasonCodes; the store keeps
   * it, trust gives it meaning); null while pending, and for verdicts stored before codes existed
   */
  code: string | null;
  reason: string | null;
  details: Record<string, unknown> | null;
  checkedAt: number | null;
  createdAt: number;
}

export type NewTrustArtifact = Pick<TrustArtifact, 'repo' | 'digest' | 'subject' | 'kind' | 'format' | 'via'>;

export interface VerdictUpdate {
  kind: ArtifactKind;
  verified: boolean | null;
  signer?: string;
  /** one of trust's reason codes (src/trust/verdict.ts); the store keeps it, trust gives it meaning */
  code: string;
  reason: string;
  details?: Record<string, unknown>;
  /** the fingerprint of the trust it was judged against */
  trustFingerprint: string;
}

export interface StoredSbom {
  repo: string;
  digest: string;
  format: string;
  specVersion: string;
  name?: string;
  /** JSON array of components, kept whole: they are read together */
  components: unknown[];
}

/** A tag whose manifest has a verified signature: a TUF target (src/trust/tuf). */
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

export interface TrustStore {
  /** Records an artifact as pending (again, when it was known). */
  recordArtifact(artifact: NewTrustArtifact): Promise<void>;
  setVerdict(repo: string, digest: string, verdict: VerdictUpdate): Promise<void>;
  getArtifact(repo: string, digest: string): Promise<TrustArtifact | undefined>;
  /** Everything that names this subject. */
  artifactsFor(repo: string, subject: string): Promise<TrustArtifact[]>;
  /** Pending work, oldest first; with `now`, only what no replica's claim covers at that time. */
  pending(limit: number, now?: number): Promise<TrustArtifact[]>;
  /**
   * Claims a pending artifact for `holder` until `until`: the one replica verifying it. Taken when
   * no claim runs past `now`; false when another replica has it, or it is no longer pending. A
   * verdict ends the claim.
   */
  claim(repo: string, digest: string, holder: string, now: number, until: number): Promise<boolean>;
  /** Moves the end of `holder`'s claim to `until` while it verifies; false when the claim is not (any more) `holder`'s. */
  renewClaim(repo: string, digest: string, holder: string, until: number): Promise<boolean>;
  /** Ends `holder`'s claim without a verdict (judging failed): any replica may try it again. */
  releaseClaim(repo: string, digest: string, holder: string): Promise<void>;
  /**
   * Marks pending every artifact of a namespace whose verdict was judged against other trust
   * than `fingerprint` (every artifact, without one); returns how many.
   */
  markNamespacePending(namespace: string, fingerprint?: string): Promise<number>;
  /** Forgets an artifact (its manifest was deleted), with its SBOM. */
  forget(repo: string, digest: string): Promise<void>;

  putSbom(sbom: StoredSbom): Promise<void>;
  getSbom(repo: string, digest: string): Promise<StoredSbom | undefined>;

  /** Trust set through /api/v1, as the JSON document it was given; undefined when none. */
  getNamespaceTrust(namespace: string): Promise<{ document: unknown; updatedAt: number } | undefined>;
  putNamespaceTrust(namespace: string, document: unknown): Promise<void>;
  deleteNamespaceTrust(namespace: string): Promise<boolean>;

  /** Tags of a manifest in a repository. */
  tagsOf(repo: string, digest: string): Promise<string[]>;
  /** Tags in a namespace whose manifest has at least one verified signature (for TUF). */
  signedTags(namespace: string): Promise<SignedTag[]>;
}
