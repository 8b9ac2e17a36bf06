/**
 * The trust worker. The push path only classifies a manifest and records it as pending (one
 * insert, and only for signatures, attestations and SBOMs); verification runs here, a few at
 * a time, off the request. Pending work lives in the shared store, so work a crash or another
 * replica left behind is found by the poll and done here.
 *
 * Several replicas poll the same store: each artifact is verified under a claim in the store
 * (meta.trust.claim), taken just before its verification and renewed while it runs, so two
 * replicas never verify one at the same time. A replica that dies mid-verification stops
 * renewing; its claim expires after `claimMs` and the next poll anywhere picks the work up. The
 * poll timer itself stays local: it feeds this process's queue, and what it finds is claimed.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import type { MetaStore } from '../meta/metastore.ts';
import type { TrustArtifact } from '../meta/trust.ts';
import type { BlobStore } from '../storage/blobstore.ts';
import { classify, legacyTag } from './classify.ts';
import { namespaceOf } from '../reference.ts';
import type { TrustResolver } from './config.ts';
import { evaluate } from './evaluate.ts';
import { DocumentReader } from './reader/index.ts';

/** Pending artifacts read per poll. */
const pollPage = 100;

export interface TrustServiceDeps {
  meta: MetaStore;
  blobs: BlobStore;
  resolver: TrustResolver;
  log: FastifyBaseLogger;
  /** verifications at once */
  workers: number;
  /** how often to look for pending work others left */
  pollMs?: number;
  /** how long a claim lasts unrenewed: a dead replica's verification is taken over this long after (default a minute) */
  claimMs?: number;
}

export class TrustService {
  private readonly deps: TrustServiceDeps;
  private readonly queued = new Map<string, TrustArtifact>();
  private readonly running = new Set<string>();
  /** SBOMs and statements past 1 MiB are parsed in its child process, not on the event loop */
  private readonly reader = new DocumentReader();
  private idleWaiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private morePending = false;
  /** verdicts stored since the last poll: without progress, a full page waits for the timer */
  private judgedSincePoll = 0;
  /** this process, as trust_artifacts.claimed_by names it */
  readonly holder = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly claimMs: number;

  constructor(deps: TrustServiceDeps) {
    this.deps = deps;
    this.claimMs = deps.claimMs ?? 60_000;
  }

  get resolver(): TrustResolver {
    return this.deps.resolver;
  }

  /** Artifacts waiting for a verification in this process, and those being verified (metrics). */
  get backlog(): { queued: number; running: number } {
    return { queued: this.queued.size, running: this.running.size };
  }

  /** A manifest was stored: record it when it is a signature, attestation or SBOM. Never throws. */
  async manifestPushed(e: { repo: string; digest: string; content: Uint8Array; tag?: string }): Promise<void> {
    try {
      const found = classify(e.content, e.tag);
      if (!found) return;
      const { trust } = this.deps.meta;
      if (found.via !== 'referrer') {
        // cosign re-pushes a legacy tag with one more signature layer: the manifest it replaced is no longer the signature.
        for (const old of await trust.artifactsFor(e.repo, found.subject.digest))
          if (old.via === found.via && old.digest !== e.digest) await trust.forget(e.repo, old.digest);
      }
      const artifact = { repo: e.repo, digest: e.digest, subject: found.subject.digest, kind: found.kind, format: found.format, via: found.via };
      await trust.recordArtifact(artifact);
      this.enqueue({
        ...artifact,
        status: 'pending',
        verified: null,
        signer: null,
        code: null,
        reason: null,
        details: null,
        checkedAt: null,
        createdAt: Date.now(),
      });
    } catch (err) {
      this.deps.log.error({ err, repo: e.repo, digest: e.digest }, 'could not record a trust artifact; the next poll will not find it either');
    }
  }

  async manifestDeleted(e: { repo: string; digest: string }): Promise<void> {
    await this.quietly('forget a deleted artifact', () => this.deps.meta.trust.forget(e.repo, e.digest));
  }

  /** A legacy signature tag was deleted: what came through it is no longer linked to its subject. */
  async tagDeleted(e: { repo: string; tag: string }): Promise<void> {
    const m = legacyTag.exec(e.tag);
    if (!m) return;
    const { trust } = this.deps.meta;
    await this.quietly('unlink a deleted signature tag', async () => {
      for (const a of await trust.artifactsFor(e.repo, `${m[1]}:${m[2]}`)) if (a.via === `tag:${e.tag}`) await trust.forget(e.repo, a.digest);
    });
  }

  /** The change the event reports is already stored: a listener's failure is logged, not the request's. */
  private async quietly(what: string, run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (err) {
      this.deps.log.error({ err }, `trust: could not ${what}`);
    }
  }

  /** A namespace's trust changed: judge everything in it again. */
  async trustChanged(namespace: string): Promise<number> {
    this.deps.resolver.forget(namespace);
    const count = await this.deps.meta.trust.markNamespacePending(namespace);
    await this.poll();
    return count;
  }

  /** Starts polling; re-judges what the config file's trust (changed since last start) makes stale. */
  async start(): Promise<void> {
    for (const ns of this.deps.resolver.fileNamespaces()) {
      const { fingerprint } = await this.deps.resolver.resolve(ns);
      const stale = await this.deps.meta.trust.markNamespacePending(ns, fingerprint);
      if (stale > 0) this.deps.log.info({ namespace: ns, artifacts: stale }, 'trust changed in the config file: judging again');
    }
    const every = this.deps.pollMs ?? 2000;
    this.timer = setInterval(() => void this.poll(), every);
    this.timer.unref();
    await this.poll();
  }

  /** Stops taking work, waits for what is running, then ends the reader's child process. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.queued.clear();
    await this.idle();
    await this.reader.close();
  }

  /** Resolves when nothing is queued or running (tests, shutdown). */
  idle(): Promise<void> {
    if (this.queued.size === 0 && this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    try {
      // what another replica verifies now is not queued here: its claim says so
      const page = await this.deps.meta.trust.pending(pollPage, Date.now());
      this.judgedSincePoll = 0;
      // A full page means more is waiting (a namespace re-judged whole): ask again once it is done.
      this.morePending = page.length === pollPage;
      for (const a of page) this.enqueue(a);
    } catch (err) {
      this.deps.log.error({ err }, 'trust: cannot read pending work');
    }
  }

  private enqueue(a: TrustArtifact): void {
    const key = `${a.repo}@${a.digest}`;
    if (this.stopped || this.running.has(key)) return;
    this.queued.set(key, a);
    this.pump();
  }

  private pump(): void {
    while (this.running.size < this.deps.workers && this.queued.size > 0) {
      const [key, artifact] = this.queued.entries().next().value as [string, TrustArtifact];
      this.queued.delete(key);
      this.running.add(key);
      void this.judge(artifact).finally(() => {
        this.running.delete(key);
        this.pump();
        if (this.queued.size > 0 || this.running.size > 0) return;
        if (this.morePending && this.judgedSincePoll > 0) {
          this.morePending = false;
          void this.poll();
          return;
        }
        for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
    }
  }

  /** Verifies an artifact if this replica claims it first; the claim is renewed while it runs. */
  private async judge(a: TrustArtifact): Promise<void> {
    const { trust } = this.deps.meta;
    try {
      // not claimed: another replica verifies it now, or it was judged since it was queued
      if (!(await trust.claim(a.repo, a.digest, this.holder, Date.now(), Date.now() + this.claimMs))) return;
    } catch (err) {
      this.deps.log.error({ err, repo: a.repo, digest: a.digest }, 'trust: cannot claim pending work');
      return;
    }
    const renewal = setInterval(() => void trust.renewClaim(a.repo, a.digest, this.holder, Date.now() + this.claimMs).catch(() => {}), this.claimMs / 3);
    renewal.unref();
    try {
      await this.verify(a);
    } finally {
      clearInterval(renewal);
    }
  }

  private async verify(a: TrustArtifact): Promise<void> {
    const started = Date.now();
    try {
      const { trust, fingerprint } = await this.deps.resolver.resolve(namespaceOf(a.repo), { fresh: true });
      const j = await evaluate(a, trust, { meta: this.deps.meta, blobs: this.deps.blobs, reader: this.reader });
      if (j.sbom)
        await this.deps.meta.trust.putSbom({
          repo: a.repo,
          digest: a.digest,
          format: j.sbom.format,
          specVersion: j.sbom.specVersion,
          ...(j.sbom.name ? { name: j.sbom.name } : {}),
          components: j.sbom.components,
        });
      await this.deps.meta.trust.setVerdict(a.repo, a.digest, {
        kind: j.kind,
        verified: j.verified,
        code: j.code,
        reason: j.reason,
        trustFingerprint: fingerprint,
        ...(j.signer ? { signer: j.signer } : {}),
        ...(j.details ? { details: j.details } : {}),
      });
      // Trust replaced on another replica while this one judged: its pending mark may have come
      // before our verdict. Judged against what is there now, anything stale is pending again.
      const now = await this.deps.resolver.resolve(namespaceOf(a.repo), { fresh: true });
      if (now.fingerprint !== fingerprint) await this.deps.meta.trust.markNamespacePending(namespaceOf(a.repo), now.fingerprint);
      this.judgedSincePoll++;
      this.deps.log.info(
        {
          repo: a.repo,
          digest: a.digest,
          subject: a.subject,
          kind: j.kind,
          format: a.format,
          verified: j.verified,
          signer: j.signer,
          code: j.code,
          reason: j.reason,
          ms: Date.now() - started,
        },
        'trust verdict',
      );
    } catch (err) {
      // Left pending: the next poll tries again (a store that is down now may be up then).
      this.deps.log.error({ err, repo: a.repo, digest: a.digest }, 'trust: judging failed');
      await this.deps.meta.trust.releaseClaim(a.repo, a.digest, this.holder).catch(() => {});
    }
  }
}
