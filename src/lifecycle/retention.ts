/**
 * The retention service: starts runs (from the API, or on the schedule), runs them in the
 * background with their progress in the run log (meta.retention), and keeps one real run at a
 * time across every replica with a lease row in the database. Dry runs delete nothing and take
 * no lease: any number may run beside each other and beside a real run.
 *
 * The schedule: tick() looks (buildApp schedules it every checkInterval, once per interval across
 * replicas: src/lifecycle/schedule.ts); when the last scheduled run started `intervalMs` ago or
 * more, it runs over every rule set under the lease (checked again once the lease is held, so
 * two replicas never both run it, nor a replica of an older release beside a newer one). A run
 * whose replica stopped is marked failed once its heartbeat is two minutes old; the next run does
 * what it left.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { MetaStore } from '../meta/metastore.ts';
import type { RetentionRun } from '../meta/retention.ts';
import type { Answer, Question } from '../policy/service.ts';
import { namespaceOf } from '../reference.ts';
import type { PullRecorder } from './pulls.ts';
import { emptyCounts, executeRun, retentionIdentity, type RunDeps } from './retention-run.ts';

export interface RetentionSettings {
  /** how often the scheduled run runs; 0: never (runs are started through the API only) */
  intervalMs: number;
  /** finished runs older than this are deleted from the log */
  keepRunsMs: number;
}

export interface AuditSink {
  record(entry: { actor: string; source: string; action: string; target: string; outcome: string; detail?: Record<string, unknown> }): Promise<void>;
}

export interface RetentionParts {
  meta: MetaStore;
  log: FastifyBaseLogger;
  settings: RetentionSettings;
  policy?: { decide(q: Question): Answer | Promise<Answer> };
  events?: RunDeps['events'];
  audit?: AuditSink;
  /** this replica's pull counts, written before each run plans */
  pulls?: PullRecorder;
  now?: () => number;
}

export type RunScope = RetentionRun['scope'];

/** A real run is going on (here or on another replica). */
export class RetentionBusy extends Error {}

const lease = 'retention';
const leaseTtlMs = 60_000;
const heartbeatMs = 15_000;
const staleMs = 120_000;

export class RetentionService {
  private readonly parts: RetentionParts;
  private readonly now: () => number;
  private readonly active = new Map<string, Promise<void>>();
  private stopping = false;
  private ticking: Promise<void> | undefined;

  constructor(parts: RetentionParts) {
    this.parts = parts;
    this.now = parts.now ?? Date.now;
  }

  /** How often tick() should look: every minute (or interval, if shorter); 0 when there is no schedule. */
  get checkIntervalMs(): number {
    const { intervalMs } = this.parts.settings;
    return intervalMs > 0 ? Math.min(intervalMs, 60_000) : 0;
  }

  /** Starts nothing more; a run in progress stops at its next step and is logged as interrupted. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.ticking;
    await Promise.all(this.active.values());
  }

  /** One look at the schedule (the scheduler calls it; tests may too). */
  tick(): Promise<void> {
    this.ticking ??= this.scheduled()
      .catch((err: unknown) => this.parts.log.error({ err }, 'the scheduled retention run failed to start'))
      .finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async scheduled(): Promise<void> {
    const store = this.parts.meta.retention;
    const now = this.now();
    const failed = await store.failStaleRuns(now - staleMs, now);
    if (failed > 0) this.parts.log.warn({ runs: failed }, 'retention runs whose replica stopped were marked failed');
    await store.pruneRuns(now - this.parts.settings.keepRunsMs);
    if (this.stopping || !(await this.due())) return;
    if ((await store.listRules()).length === 0) return;
    try {
      await this.begin({ scope: { kind: 'all' }, dryRun: false, actor: retentionIdentity.name, trigger: 'schedule', source: '' });
    } catch (err) {
      if (!(err instanceof RetentionBusy)) throw err;
    }
  }

  private async due(): Promise<boolean> {
    const last = await this.parts.meta.retention.lastScheduledStart();
    return last === undefined || this.now() - last >= this.parts.settings.intervalMs;
  }

  /**
   * Starts a run and returns it as logged, while it goes on in the background. A real run needs
   * the lease: RetentionBusy when another real run holds it. A scheduled run that is no longer
   * due once the lease is held starts nothing (undefined).
   */
  async begin(request: { scope: RunScope; dryRun: boolean; actor: string; trigger: 'api' | 'schedule'; source: string }): Promise<RetentionRun | undefined> {
    if (this.stopping) throw new RetentionBusy('the server is stopping');
    const store = this.parts.meta.retention;
    const id = randomUUID();
    if (!request.dryRun) {
      if (!(await store.acquireLease(lease, id, this.now(), leaseTtlMs)))
        throw new RetentionBusy('another retention run is deleting; try again when it has finished');
      if (request.trigger === 'schedule' && !(await this.due())) {
        await store.releaseLease(lease, id);
        return undefined;
      }
    }
    const now = this.now();
    const run: RetentionRun = {
      id,
      trigger: request.trigger,
      actor: request.actor,
      scope: request.scope,
      ...(request.scope.kind === 'all' ? {} : { namespace: namespaceOf(request.scope.name) }),
      dryRun: request.dryRun,
      status: 'running',
      startedAt: now,
      updatedAt: now,
      phase: 'starting',
      done: 0,
      total: 0,
      counts: emptyCounts(),
    };
    try {
      await store.createRun(run);
    } catch (err) {
      if (!request.dryRun) await store.releaseLease(lease, id);
      throw err;
    }
    const running = this.execute(run, request.source).finally(() => this.active.delete(id));
    this.active.set(id, running);
    return run;
  }

  /** Resolves when a run this replica started has finished (for tests and the CLI's in-process use). */
  async wait(id: string): Promise<RetentionRun | undefined> {
    await this.active.get(id);
    return this.parts.meta.retention.getRun(id);
  }

  private async execute(run: RetentionRun, source: string): Promise<void> {
    const { meta, log } = this.parts;
    const store = meta.retention;
    let lost: string | undefined;
    let last = 0;
    // The heartbeat keeps the lease (a real run) and tells others the run is alive.
    const heartbeat = setInterval(() => {
      void (async () => {
        const now = this.now();
        if (!run.dryRun && !(await store.acquireLease(lease, run.id, now, leaseTtlMs))) lost = 'the lease was lost (this replica stalled for a minute)';
        await store.updateRun(run.id, { updatedAt: now });
      })().catch((err: unknown) => log.warn({ err, run: run.id }, 'retention heartbeat failed'));
    }, heartbeatMs);
    heartbeat.unref();
    const started = this.now();
    try {
      await this.parts.pulls?.flush().catch((err: unknown) => log.warn({ err }, 'writing pull counts before a retention run failed'));
      const outcome = await executeRun(
        { meta, now: this.now, ...(this.parts.policy ? { policy: this.parts.policy } : {}), ...(this.parts.events ? { events: this.parts.events } : {}) },
        run,
        {
          step: async (phase, done, total) => {
            const now = this.now();
            // progress at most every half second, and at each phase's start and end
            if (done !== 0 && done !== total && now - last < 500) return;
            last = now;
            await store.updateRun(run.id, { phase, done, total, updatedAt: now });
          },
          stopping: () => lost ?? (this.stopping ? 'interrupted: the server stopped' : undefined),
        },
      );
      const finished = this.now();
      await store.updateRun(run.id, {
        status: outcome.stopped ? 'failed' : 'done',
        phase: 'done',
        counts: outcome.counts,
        result: outcome.result,
        ...(outcome.stopped ? { error: outcome.stopped } : {}),
        finishedAt: finished,
        updatedAt: finished,
      });
      const c = outcome.counts;
      log.info(
        { run: run.id, dryRun: run.dryRun, scope: run.scope, ...c, ms: finished - started },
        run.dryRun ? 'retention dry run finished' : 'retention run finished',
      );
      await this.parts.audit?.record({
        actor: run.actor,
        source,
        action: run.dryRun ? 'retention.dry-run' : 'retention.run',
        target: run.scope.kind === 'all' ? '*' : run.scope.name,
        outcome: outcome.stopped ? 'failure' : 'success',
        detail: {
          run: run.id,
          trigger: run.trigger,
          tagsDeleted: c.tagsDeleted,
          manifestsDeleted: c.manifestsDeleted,
          vetoed: c.vetoed,
          bytes: c.bytes,
          errors: c.errors,
        },
      });
    } catch (err) {
      log.error({ err, run: run.id }, 'retention run failed');
      const now = this.now();
      await store
        .updateRun(run.id, { status: 'failed', error: (err as Error).message, finishedAt: now, updatedAt: now })
        .catch((e: unknown) => log.error({ err: e, run: run.id }, 'could not log a failed retention run'));
    } finally {
      clearInterval(heartbeat);
      if (!run.dryRun) await store.releaseLease(lease, run.id).catch((err: unknown) => log.warn({ err }, 'releasing the retention lease failed'));
    }
  }
}
