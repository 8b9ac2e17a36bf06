/**
 * What src/trust/tuf keeps in the shared metadata store: each namespace's TUF signing keys and
 * every version of its root, targets, snapshot and timestamp metadata. Versions are unique per
 * (namespace, role), so two replicas can never publish the same version: the second one's
 * publish() stores nothing and answers false, and that replica re-reads and uses the winner.
 */

export type TufRole = 'root' | 'targets' | 'snapshot' | 'timestamp';
export const tufRoles: readonly TufRole[] = ['root', 'targets', 'snapshot', 'timestamp'];

export interface TufKeyRecord {
  namespace: string;
  /** the TUF key id: sha256 of the key's canonical JSON, hex */
  keyId: string;
  /** the role the key was made for (the latest root says which key signs what) */
  role: TufRole;
  /** ed25519 public key, hex (TUF's keyval.public) */
  publicKey: string;
  /** PKCS8 PEM */
  privateKeyPem: string;
  createdAt: number;
}

export interface TufMetadataRecord {
  namespace: string;
  role: TufRole;
  version: number;
  /** the metadata file exactly as served */
  json: string;
  /** when the metadata expires, ms since the epoch (also inside `json`) */
  expiresAt: number;
  /** when it was signed, by the publisher's clock */
  createdAt: number;
}

export interface TufStore {
  /**
   * Stores metadata versions and the keys they introduce in one transaction. False, and nothing
   * stored, when one of the versions exists already (another replica published it first).
   */
  publish(metadata: TufMetadataRecord[], keys: TufKeyRecord[]): Promise<boolean>;
  /** The highest version of each role a namespace has (none: nothing published yet). */
  latestVersions(namespace: string): Promise<Partial<Record<TufRole, number>>>;
  getVersion(namespace: string, role: TufRole, version: number): Promise<TufMetadataRecord | undefined>;
  /** The namespace's keys, by id. */
  keys(namespace: string, keyIds: string[]): Promise<TufKeyRecord[]>;
  /** Namespaces that have published TUF metadata (the background refresh keeps them fresh). */
  namespaces(): Promise<string[]>;
  /** Deletes the versions of a role below `below` (never root's: clients walk every root). */
  prune(namespace: string, role: Exclude<TufRole, 'root'>, below: number): Promise<number>;
}
