/**
 * Online garbage collection: while pushes and pulls go on, removes the untagged manifests that
 * nothing reaches (in namespaces that ask for it), the blob links no manifest references, and
 * the blobs no repository links, with their bytes. No read-only window and no global lock: the
 * database decides what is garbage, row by row, under its own locks (src/meta/gc.ts says how).
 *
 * A run has phases (plan, manifests, links, blobs) and is recorded as it goes. One run at a
 * time across replicas; a run whose process died (its heartbeat stopped) is taken over by the
 * next process that looks, which does the phase it was in again: every sweep is idempotent.
 * The cutoff is fixed when a run starts (its start minus the grace period), so a resumed run
 * judges by the same time.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/schema.ts';
import type { GcCounts, GcPhase, GcRun } from '../meta/gc.ts';
import type { MetaStore } from '../meta/metastore.ts';
import { blobKeyOf, deleteKeys, type BlobStore } from '../storage/blobstore.ts';

export interface GcSettings {
  /** what was written or linked more recently than this is kept */
  graceMs: number;
  /** how often a scheduled run starts (buildApp schedules collect()); 0: only on request */
  intervalMs: number;
  /** rows per sweep transaction: small enough that a push waits at most one batch */
  batchSize: number;
  /** how often a running run records that it is alive; three missed beats make it stale */
  heartbeatMs: number;
  /** while requests are being served, the share of the time a run may work (it rests the rest) */
  busyShare: number;
}

/** The settings as configured (lifecycle.gc, docs/configuration.md). */
export function gcSettings(config: Config): GcSettings {
  const gc = config.lifecycle.gc;
  return {
    graceMs: gc.graceSeconds * 1000,
    intervalMs: gc.intervalSeconds * 1000,
    batchSize: gc.batchSize,
    heartbeatMs: gc.heartbeatSeconds * 1000,
    busyShare: gc.busyShare,
  };
}

/**
 * Paces a run between its batches. With no request in flight it only yields to the event loop
 * (SQLite's queries are synchronous, so without a yield a run would hold it); while requests are
 * served, it rests after each batch so that the run works at most `share` of the time.
 */
export class Pacer {
  private readonly share: number;
  private readonly busy: () => boolean;
  private last = performance.now();

  constructor(share: number, busy: () => boolean) {
    this.share = share;
    this.busy = busy;
  }

  readonly pause = async (): Promise<void> => {
    const worked = performance.now() - this.last;
    const rest = this.busy() && this.share < 1 ? Math.min(1000, (worked * (1 - this.share)) / this.share) : 0;
    await (rest >= 1 ? new Promise<void>((resolve) => setTimeout(resolve, rest)) : new Promise<void>((resolve) => setImmediate(resolve)));
    this.last = performance.now();
  };
}

const zero = (): GcCounts => ({ manifests: 0, links: 0, blobs: 0, bytes: 0 });

/**
 * How a run this process executed ended: done, failed, lost (another process took it over) or
 * stopped (this process is stopping; another resumes it). `done` is what this process swept.
 */
export interface GcRunReport {
  dryRun: boolean;
  outcome: 'done' | 'failed' | 'lost' | 'stopped';
  seconds: number;
  done: GcCounts;
}

export class GarbageCollector {
  private readonly meta: MetaStore;
  private readonly blobs: BlobStore;
  private readonly log: FastifyBaseLogger;
  private readonly settings: GcSettings;
  private readonly now: () => number;
  /** this process, as gc_runs.owner names it */
  readonly owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private timers: NodeJS.Timeout[] = [];
  private active: Promise<void> | undefined;
  private stopping = false;

  /** whether requests are being served now (the server counts them) */
  private readonly busy: () => boolean;
  /** told of every run this process ends (the metrics) */
  private readonly onRunEnded: ((report: GcRunReport) => void) | undefined;

  constructor(parts: {
    meta: MetaStore;
    blobs: BlobStore;
    log: FastifyBaseLogger;
    settings: GcSettings;
    now?: () => number;
    busy?: () => boolean;
    onRunEnded?: (report: GcRunReport) => void;
  }) {
    this.busy = parts.busy ?? (() => false);
    this.onRunEnded = parts.onRunEnded;
    this.meta = parts.meta;
    this.blobs = parts.blobs;
    this.log = parts.log;
    this.settings = parts.settings;
    this.now = parts.now ?? Date.now;
  }

  private get staleMs(): number {
    return this.settings.heartbeatMs * 3;
  }

  /**
   * Looks, once, for an interrupted run to finish once its heartbeat is stale (a process that
   * died mid-run and was started again). The runs every intervalMs are scheduled by buildApp
   * (collect(), once per interval across replicas: src/lifecycle/schedule.ts).
   */
  start(): void {
    const t = setTimeout(
      () => void this.begin({ dryRun: false, resumeOnly: true }).catch((err: unknown) => this.log.error({ err }, 'garbage collection failed')),
      this.staleMs + 100,
    );
    t.unref();
    this.timers.push(t);
  }

  /** Whether this process is executing a run now. */
  get running(): boolean {
    return this.active !== undefined;
  }

  /** Stops scheduling, and lets a run in progress stop after its current batch (another process resumes it). */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    await this.active;
  }

  /**
   * Starts a run in the background and returns it as recorded, or, when another run is alive
   * (here or on another replica), returns undefined. `resumeOnly`: take over an interrupted run, start none.
   */
  async begin(options: { dryRun: boolean; resumeOnly?: boolean }): Promise<GcRun | undefined> {
    if (this.stopping || this.active) return undefined;
    const run = await this.meta.gc.claimRun({
      id: randomUUID(),
      owner: this.owner,
      dryRun: options.dryRun,
      graceMs: this.settings.graceMs,
      now: this.now(),
      staleMs: this.staleMs,
      ...(options.resumeOnly ? { resumeOnly: true } : {}),
    });
    if (!run) return undefined;
    if (run.resumed > 0) this.log.warn({ run: run.id, phase: run.phase, resumed: run.resumed }, 'resuming an interrupted garbage collection');
    this.active = this.execute(run).finally(() => (this.active = undefined));
    return run;
  }

  /** Runs one collection to its end (the scheduler's and the tests' way); undefined when another is alive. */
  async collect(options: { dryRun: boolean }): Promise<GcRun | undefined> {
    const run = await this.begin(options);
    if (!run) return undefined;
    await this.active;
    return this.meta.gc.getRun(run.id);
  }

  private async execute(run: GcRun): Promise<void> {
    const started = this.now();
    const cutoff = run.startedAt - run.graceMs;
    const done = run.phase === 'plan' ? zero() : { ...run.done };
    let planned = run.planned;
    let owned = true;
    const beat = async (change: { phase?: GcPhase; planned?: GcCounts; state?: GcRun['state']; error?: string; finishedAt?: number } = {}) => {
      if (owned) owned = await this.meta.gc.updateRun(run.id, this.owner, { heartbeatAt: this.now(), done, ...change });
      if (!owned) throw new LostRun();
    };
    const pacer = new Pacer(this.settings.busyShare, this.busy);
    const heartbeat = setInterval(() => void beat().catch(() => {}), this.settings.heartbeatMs);
    heartbeat.unref();
    const before = { ...done };
    const clock = performance.now();
    let outcome: GcRunReport['outcome'] = 'stopped';
    try {
      const phases: GcPhase[] = ['plan', 'manifests', 'links', 'blobs'];
      for (const phase of phases.slice(Math.max(0, phases.indexOf(run.phase)))) {
        if (this.stopping) return;
        await beat({ phase });
        if (phase === 'plan') {
          planned = await this.meta.gc.plan(cutoff, pacer.pause);
          await beat({ planned });
          if (run.dryRun) break;
        } else if (phase === 'manifests') {
          for (let n = -1; n !== 0 && !this.stopping;) {
            n = await this.meta.gc.sweepManifests(cutoff, this.settings.batchSize);
            done.manifests += n;
            await pacer.pause();
          }
        } else if (phase === 'links') {
          let after: string | undefined;
          do {
            const swept = await this.meta.gc.sweepLinks(cutoff, this.settings.batchSize, after);
            done.links += swept.count;
            after = swept.next;
            await pacer.pause();
          } while (after !== undefined && !this.stopping);
        } else {
          let after: string | undefined;
          do {
            // Fewer rows than the other sweeps: their rows stay locked while the bytes go (and on
            // SQLite the one connection is held), so a batch here is what a push may wait for.
            const swept = await this.meta.gc.sweepBlobs(cutoff, Math.min(this.settings.batchSize, 64), (blobs) => this.removeBytes(blobs), after);
            done.blobs += swept.count;
            done.bytes += swept.bytes;
            after = swept.next;
            await pacer.pause();
          } while (after !== undefined && !this.stopping);
        }
        if (this.stopping) return;
      }
      await beat({ state: 'done', phase: 'done', finishedAt: this.now() });
      outcome = 'done';
      const seconds = (this.now() - started) / 1000;
      this.log.info(
        { run: run.id, dryRun: run.dryRun, planned, done, seconds },
        run.dryRun ? 'garbage collection planned (dry run)' : 'garbage collection finished',
      );
    } catch (err) {
      if (err instanceof LostRun) {
        outcome = 'lost';
        this.log.warn({ run: run.id }, 'another process took over this garbage collection');
        return;
      }
      outcome = 'failed';
      this.log.error({ err, run: run.id }, 'garbage collection failed');
      await beat({ state: 'failed', error: err instanceof Error ? err.message : String(err), finishedAt: this.now() }).catch(() => {});
    } finally {
      clearInterval(heartbeat);
      const delta = {
        manifests: done.manifests - before.manifests,
        links: done.links - before.links,
        blobs: done.blobs - before.blobs,
        bytes: done.bytes - before.bytes,
      };
      this.onRunEnded?.({ dryRun: run.dryRun, outcome, seconds: (performance.now() - clock) / 1000, done: delta });
    }
  }

  /**
   * A batch's bytes in one deleteMany (on S3 one DeleteObjects request; on a filesystem a few
   * unlinks at a time, so that they do not queue the pushes' own file work behind them).
   */
  private async removeBytes(blobs: { digest: string }[]): Promise<void> {
    const keys = blobs.map((b) => {
      const colon = b.digest.indexOf(':');
      return blobKeyOf(b.digest.slice(0, colon), b.digest.slice(colon + 1));
    });
    await deleteKeys(this.blobs, keys);
  }
}

class LostRun extends Error {}
