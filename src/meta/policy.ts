/**
 * What src/policy keeps in the shared metadata store: every version of every policy, the log of
 * decisions (every denial, and every evaluation of a policy in audit or dry-run mode), and the
 * recorded decision inputs that `simulate` replays, one per distinct input per hour. The store
 * keeps documents as JSON; policy gives them meaning.
 */

export interface StoredPolicy {
  name: string;
  /** 1, 2, …: every change is a new version; older ones are kept */
  version: number;
  /** the namespace the policy belongs to, or null for a registry-wide one */
  namespace: string | null;
  /** the validated document, as JSON */
  document: unknown;
  /** the text as it was applied (YAML or JSON), for `show` */
  source: string;
  createdBy: string;
  createdAt: number;
  /** set on the version that deleted the policy: it is gone, its history is kept */
  deleted: boolean;
}

export interface NewPolicyVersion {
  name: string;
  namespace: string | null;
  document: unknown;
  source: string;
  createdBy: string;
}

export interface DecisionRecord {
  at: number;
  policy: string;
  version: number;
  mode: string;
  action: string;
  repository: string;
  /** the tag or digest */
  reference: string;
  /** 'deny', 'allow' or 'error' */
  result: string;
  /** what the request was told (for a denial), or what went wrong */
  message: string;
  /** microseconds the evaluation took */
  latencyMicros: number;
  actor: string;
  source: string;
  /** whether the request was refused because of it (enforce mode) */
  enforced: boolean;
}

export interface DecisionFilter {
  policy?: string;
  result?: string;
  action?: string;
  /** a repository, or a namespace (its repositories) */
  repository?: string;
  namespace?: string;
  since?: number;
  until?: number;
}

/** A decision input kept for simulation; `key` names it (action, identity, artifact), once per hour. */
export interface RecordedInput {
  key: string;
  hour: number;
  at: number;
  action: string;
  repository: string;
  /** the policy input document, as JSON */
  input: unknown;
}

export interface PolicyStore {
  /** Stores a new version of a policy (1 for a new one) and returns it. */
  putPolicy(policy: NewPolicyVersion): Promise<StoredPolicy>;
  /** The latest version (or the one asked for); a deleted policy's latest is undefined. */
  getPolicy(name: string, version?: number): Promise<StoredPolicy | undefined>;
  /** Every version of a policy, newest first (the deletion included). */
  policyVersions(name: string): Promise<StoredPolicy[]>;
  /** The latest version of every policy that is not deleted, by name. */
  listPolicies(): Promise<StoredPolicy[]>;
  /** Marks a policy deleted with a new version; false when there was none. */
  deletePolicy(name: string, deletedBy: string): Promise<boolean>;
  /** A number that changes whenever any policy does: replicas reload when it moves. */
  policyRevision(): Promise<number>;

  recordDecisions(records: DecisionRecord[]): Promise<void>;
  /** Decisions newest first; `before` pages on (the `at`/id cursor of the last one seen). */
  queryDecisions(filter: DecisionFilter, page: { limit: number; before?: string }): Promise<{ decisions: DecisionRecord[]; next?: string }>;
  /** Deletes decisions and recorded inputs older than `cutoff`; returns how many decisions went. */
  pruneDecisions(cutoff: number): Promise<number>;

  /** Keeps inputs not yet recorded for their key in their hour (the rest are dropped). */
  recordInputs(inputs: RecordedInput[]): Promise<void>;
  /** Inputs recorded since `since`, oldest first, at most `limit`, after the cursor. */
  recordedInputs(since: number, page: { limit: number; after?: string }): Promise<{ inputs: RecordedInput[]; next?: string }>;
}
