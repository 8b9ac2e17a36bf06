/** The tables, as Kysely sees them. Times are milliseconds since the epoch. */
export interface Database {
  repositories: { name: string; created_at: number };
  blobs: { digest: string; size: number; created_at: number };
  repo_blobs: { repo: string; digest: string; created_at: number };
  manifests: {
    repo: string;
    digest: string;
    media_type: string;
    content: Uint8Array;
    size: number;
    artifact_type: string | null;
    subject: string | null;
    annotations: string | null;
    created_at: number;
  };
  /** what a manifest references: kind 'blob' or 'manifest' (for garbage collection) */
  manifest_refs: { repo: string; digest: string; ref: string; kind: string };
  tags: { repo: string; name: string; digest: string; updated_at: number };
  uploads: { id: string; repo: string; offset: number; created_at: number; updated_at: number };
  upload_parts: { upload_id: string; start: number; size: number; sha256: string; key: string };
}
