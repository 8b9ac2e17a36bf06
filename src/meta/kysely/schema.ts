import type { Generated } from 'kysely';

/** The tables, as Kysely sees them. Times are milliseconds since the epoch. */
export interface Database {
  repositories: { name: string; created_at: number };
  /** touched_at: last written or linked (the GC's grace period counts from it) */
  blobs: { digest: string; size: number; created_at: number; touched_at: Generated<number> };
  /** namespace: namespaceOf(repo), for the fair shares of quotas (src/meta/kysely/quota.ts) */
  repo_blobs: { repo: string; digest: string; created_at: number; namespace: string };
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
    touched_at: Generated<number>;
  };
  /** what a manifest references: kind 'blob' or 'manifest' (for garbage collection) */
  manifest_refs: { repo: string; digest: string; ref: string; kind: string };
  tags: { repo: string; name: string; digest: string; updated_at: number };
  uploads: { id: string; repo: string; offset: number; created_at: number; updated_at: number };
  upload_parts: { upload_id: string; start: number; size: number; sha256: string; key: string };
  users: { id: string; name: string; password_hash: string | null; admin: number; created_at: number };
  teams: { id: string; name: string; created_at: number };
  team_members: { team_id: string; user_id: string };
  robots: { id: string; name: string; namespace: string; created_at: number };
  /**
   * labels: a JSON object of strings; quota_bytes (hard) and soft_quota_bytes 0 when none;
   * soft_exceeded_at: since when a push took the namespace over its soft quota, null when not over
   */
  namespaces: {
    name: string;
    anonymous_read: number;
    created_at: number;
    quota_bytes: Generated<number>;
    labels: Generated<string>;
    collect_untagged: Generated<number>;
    soft_quota_bytes: Generated<number>;
    soft_exceeded_at: number | null;
  };
  /** planned, done: JSON GcCounts (src/meta/gc.ts); state running | done | failed */
  gc_runs: {
    id: string;
    state: string;
    dry_run: number;
    phase: string;
    owner: string;
    started_at: number;
    heartbeat_at: number;
    finished_at: number | null;
    grace_ms: number;
    resumed: number;
    planned: string;
    done: string;
    error: string | null;
  };
  /** document: JSON; deleted: 1 on the version that deleted the policy */
  policies: {
    name: string;
    version: number;
    namespace: string | null;
    document: string;
    source: string;
    created_by: string;
    created_at: number;
    deleted: number;
  };
  policy_decisions: {
    id: string;
    at: number;
    policy: string;
    version: number;
    mode: string;
    action: string;
    repository: string;
    reference: string;
    result: string;
    message: string;
    latency_micros: number;
    actor: string;
    source: string;
    enforced: number;
  };
  /** input: the policy input document, JSON */
  policy_inputs: { key: string; hour: number; at: number; action: string; repository: string; input: string };
  /** kind is 'user', 'team' or 'robot'; principal is its id */
  grants: { namespace: string; kind: string; principal: string; role: string };
  tokens: {
    id: string;
    owner_kind: string;
    owner_id: string;
    name: string;
    secret_hash: string;
    /** JSON array */
    scopes: string;
    expires_at: number | null;
    last_used_at: number | null;
    created_at: number;
  };
  signing_keys: { kid: string; private_jwk: string; public_jwk: string; active: number; created_at: number; replaced_at: number | null };
  audit_events: {
    id: Generated<number>;
    time: number;
    actor: string;
    source: string;
    action: string;
    target: string;
    outcome: string;
    /** JSON object */
    detail: string;
  };
  login_failures: { key: string; time: number };
  trust_artifacts: {
    repo: string;
    digest: string;
    subject: string;
    kind: string;
    format: string;
    via: string;
    status: string;
    verified: number | null;
    signer: string | null;
    /** the verdict's reason code (src/trust/verdict.ts); null while pending, and for verdicts from before codes */
    code: string | null;
    reason: string | null;
    /** JSON object */
    details: string | null;
    checked_at: number | null;
    /** which trust the verdict was judged against (see src/trust/config.ts) */
    trust_fingerprint: string | null;
    created_at: number;
    /** the replica verifying it now, and until when (0: nobody); migration 0015-job-leases */
    claimed_by: Generated<string>;
    claimed_until: Generated<number>;
  };
  /** components: a JSON array */
  trust_sboms: { repo: string; digest: string; format: string; spec_version: string; name: string | null; components: string };
  /** document: the JSON trust document set through /api/v1 */
  namespace_trust: { namespace: string; document: string; updated_at: number };
  /** a namespace's TUF keys: role is what the key was made for; private_key_pem is PKCS8 */
  tuf_keys: { namespace: string; key_id: string; role: string; public_key: string; private_key_pem: string; created_at: number };
  /** every published version of a namespace's TUF metadata, as served */
  tuf_metadata: { namespace: string; role: string; version: number; json: string; expires_at: number; created_at: number };
  /** kind: 'namespace' or 'repository'; document: the validated rules, JSON */
  retention_rules: { kind: string; name: string; document: string; source: string; updated_by: string; updated_at: number };
  artifact_pulls: { repo: string; digest: string; last_pulled_at: number; pull_count: number };
  /** scope_kind: 'all', 'namespace' or 'repository'; counts and result: JSON */
  retention_runs: {
    id: string;
    trigger: string;
    actor: string;
    scope_kind: string;
    scope_name: string;
    namespace: string | null;
    dry_run: number;
    status: string;
    started_at: number;
    updated_at: number;
    finished_at: number | null;
    phase: string;
    done: number;
    total: number;
    counts: string;
    error: string | null;
    result: string | null;
  };
  retention_leases: { name: string; holder: string; expires_at: number };
  /** one row per event (src/meta/insight.ts); detail: a JSON object; absent text is '' */
  usage_events: {
    id: string;
    at: number;
    type: string;
    object: string;
    namespace: string;
    repository: string;
    digest: string;
    tag: string;
    media_type: string;
    actor: string;
    actor_kind: string;
    token_id: string;
    bytes: number;
    user_agent: string;
    source: string;
    duration_micros: number;
    status: number;
    result: string;
    detail: string;
  };
  /** period 'hour' or 'day'; start: ms since the epoch */
  usage_rollups: { period: string; start: number; namespace: string; repository: string; type: string; object: string; count: number; bytes: number };
  /** a sampling of storage (src/meta/cost.ts): stands from at until end_at, or until now while end_at is null */
  cost_ticks: { at: number; end_at: number | null };
  /** a repository's fair bytes at a tick */
  cost_samples: { at: number; namespace: string; repository: string; bytes: number };
  /** bytes pulls sent to a configured network in the hour from start */
  cost_egress: { start: number; namespace: string; repository: string; network: string; bytes: number };
  /** how far a rollup has read the usage events: (at, id) of the last one */
  cost_cursors: { name: string; at: number; id: string };
  /** scope 'namespace' or 'team'; *_notified: the month ('2026-11') a threshold was last announced, or '' */
  cost_budgets: {
    scope: string;
    name: string;
    monthly: number;
    soft: number | null;
    soft_notified: Generated<string>;
    hard_notified: Generated<string>;
    updated_by: string;
    updated_at: number;
  };
  cost_leases: { name: string; holder: string; expires_at: number };
  /** the leases of the periodic jobs (src/meta/leases.ts, src/lifecycle/schedule.ts) */
  job_leases: { name: string; holder: string; expires_at: number };
  /** types, repositories: JSON arrays (src/meta/webhooks.ts) */
  webhooks: {
    id: string;
    namespace: string;
    url: string;
    secret: string;
    types: string;
    repositories: string;
    mode: string;
    description: string;
    created_by: string;
    created_at: number;
    updated_at: number;
  };
  /** written by a trigger on usage_events, numbered in commit order (migration 0012-webhooks) */
  webhook_feed: { seq: Generated<number>; event_id: string; namespace: string };
  webhook_cursors: { webhook_id: string; seq: number; holder: string; lease_until: number };
  /** event: the UsageEvent as JSON */
  webhook_queue: { webhook_id: string; seq: number; repository: string; event: string; attempts: number; next_attempt_at: number; queued_at: number };
  webhook_deliveries: {
    id: Generated<number>;
    webhook_id: string;
    event_id: string;
    event_type: string;
    repository: string;
    attempt: number;
    at: number;
    duration_ms: number;
    status: number;
    outcome: string;
    error: string;
    response: string;
  };
  /** each replica's count of requests per identity (key) and window, and the part of the window it claims (src/meta/rates.ts) */
  rate_counts: { key: string; window_start: number; replica: string; count: number; claim: number };
}
