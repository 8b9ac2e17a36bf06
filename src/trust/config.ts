/**
 * Which trust applies to a namespace: the document set through /api/v1 when there is one, else
 * the config file's `trust.namespaces.<ns>`, else none. Namespaces without their own Sigstore
 * trusted root use `trust.sigstoreTrustedRoot`. Each answer carries a fingerprint, so verdicts
 * judged against other trust can be found and judged again.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Config, NamespaceTrustFile } from '../config/schema.ts';
import { maxJsonDepth, nestsDeeperThan } from '../json-limits.ts';
import type { TrustStore } from '../meta/trust.ts';
import { toNamespaceTrust } from './document.ts';
import { noTrust, type NamespaceTrust } from './verdict.ts';

export interface ResolvedTrust {
  trust: NamespaceTrust;
  fingerprint: string;
  source: 'api' | 'config' | 'none';
  /** when the API document was set (source 'api') */
  updatedAt?: number;
}

export class TrustConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustConfigError';
  }
}

/** Reads the files the config names; throws TrustConfigError naming the file that is wrong. */
export async function loadFileTrust(config: Config['trust'], baseDir = process.cwd()): Promise<{ namespaces: Map<string, unknown>; trustedRoot?: unknown }> {
  const read = async (what: string, file: string) => {
    try {
      return await readFile(path.resolve(baseDir, file), 'utf8');
    } catch (err) {
      throw new TrustConfigError(`${what}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const pemOrFile = async (what: string, value: string) => (value.includes('-----BEGIN') ? value : read(what, value));
  const json = async (what: string, file: string) => {
    const text = await read(what, file);
    // V8 parses any depth, but storing and fingerprinting the document (JSON.stringify) recurses
    if (nestsDeeperThan(text, maxJsonDepth))
      throw new TrustConfigError(`${what}: ${file} nests too deeply (more than ${maxJsonDepth} levels of objects and arrays)`);
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new TrustConfigError(`${what}: ${file} is not JSON: ${(err as Error).message}`);
    }
  };
  const trustedRoot = config.sigstoreTrustedRoot ? await json('trust.sigstoreTrustedRoot', config.sigstoreTrustedRoot) : undefined;
  const namespaces = new Map<string, unknown>();
  for (const [ns, t] of Object.entries<NamespaceTrustFile>(config.namespaces)) {
    const at = `trust.namespaces.${ns}`;
    const document = {
      sigstore: {
        publicKeys: await Promise.all(
          (t.sigstore?.publicKeys ?? []).map(async (k) => ({ name: k.name, pem: await pemOrFile(`${at}.sigstore.publicKeys.${k.name}`, k.pem) })),
        ),
        identities: t.sigstore?.identities ?? [],
        ...(t.sigstore?.trustedRoot ? { trustedRoot: await json(`${at}.sigstore.trustedRoot`, t.sigstore.trustedRoot) } : {}),
      },
      notary: {
        trustStores: await Promise.all(
          (t.notary?.trustStores ?? []).map(async (s) => ({
            ...s,
            certificates: await Promise.all(s.certificates.map((c) => pemOrFile(`${at}.notary.trustStores.${s.name}`, c))),
          })),
        ),
        ...(t.notary?.trustPolicy ? { trustPolicy: await json(`${at}.notary.trustPolicy`, t.notary.trustPolicy) } : {}),
      },
    };
    try {
      toNamespaceTrust(document);
    } catch (err) {
      throw new TrustConfigError(`${at} is not valid: ${err instanceof z.ZodError ? firstIssue(err) : (err as Error).message}`);
    }
    namespaces.set(ns, document);
  }
  return { namespaces, ...(trustedRoot === undefined ? {} : { trustedRoot }) };
}

/** Effective trust per namespace, cached for a second so other replicas' changes arrive quickly. */
export class TrustResolver {
  /** raw: the stored document as read (undefined: none stored, the file's trust applies) */
  private readonly cache = new Map<string, { at: number; raw: string | undefined; value: ResolvedTrust }>();
  private readonly store: TrustStore;
  private readonly file: { namespaces: Map<string, unknown>; trustedRoot?: unknown };
  private readonly ttlMs: number;

  constructor(store: TrustStore, file: { namespaces: Map<string, unknown>; trustedRoot?: unknown }, ttlMs = 1000) {
    this.store = store;
    this.file = file;
    this.ttlMs = ttlMs;
  }

  /** Namespaces the config file gives trust to. */
  fileNamespaces(): string[] {
    return [...this.file.namespaces.keys()];
  }

  /**
   * The namespace's trust. `fresh` reads the stored document every time (the worker judges with
   * it, so a verdict is never judged against trust another replica has just replaced); parsing
   * is still skipped while the document is unchanged.
   */
  async resolve(namespace: string, options: { fresh?: boolean } = {}): Promise<ResolvedTrust> {
    const hit = this.cache.get(namespace);
    if (hit && !options.fresh && Date.now() - hit.at < this.ttlMs) return hit.value;
    const stored = await this.store.getNamespaceTrust(namespace);
    const raw = stored ? JSON.stringify(stored.document) : undefined;
    if (hit && hit.raw === raw) {
      hit.at = Date.now();
      // the same document set again: same trust, a newer time
      if (stored && hit.value.updatedAt !== stored.updatedAt) hit.value = { ...hit.value, updatedAt: stored.updatedAt };
      return hit.value;
    }
    const fromFile = this.file.namespaces.get(namespace);
    const source = stored ? 'api' : fromFile ? 'config' : 'none';
    let trust = noTrust();
    if (stored) trust = toNamespaceTrust(stored.document, { stored: true });
    else if (fromFile) trust = toNamespaceTrust(fromFile);
    if (trust.sigstore.trustedRoot === undefined && this.file.trustedRoot !== undefined) trust.sigstore.trustedRoot = this.file.trustedRoot;
    const fingerprint = createHash('sha256').update(JSON.stringify(trust)).digest('hex');
    const value: ResolvedTrust = { trust, fingerprint, source, ...(stored ? { updatedAt: stored.updatedAt } : {}) };
    this.cache.set(namespace, { at: Date.now(), raw, value });
    return value;
  }

  /** Forgets a namespace's cached trust (this replica changed it). */
  forget(namespace: string): void {
    this.cache.delete(namespace);
  }
}

/** `sigstore.publicKeys.0.pem: not a PEM public key …`: one line an operator can act on. */
function firstIssue(err: z.ZodError): string {
  const issue = err.issues[0];
  return issue ? `${issue.path.map(String).join('.')}: ${issue.message}` : 'invalid';
}
