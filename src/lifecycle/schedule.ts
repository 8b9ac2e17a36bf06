/**
 * The scheduler of the periodic jobs that work on the shared stores (pruning, expiry, garbage
 * collection, ...): with N replicas on one database each job runs once per interval across all
 * of them, not N times. buildApp names the jobs (`schedule(name, intervalMs, run)`).
 *
 * Time is cut into intervals aligned to the epoch (an hourly job's interval is a clock hour).
 * Each replica looks when an interval begins; the first to take the job's lease (meta.leases)
 * runs it, the others see the lease taken and look again when it expires. While the job runs,
 * the lease lasts `leaseMs` and is renewed every third of that, so a long run is never
 * overlapped; when it is done its expiry becomes the end of the interval, and no replica runs the
 * job again before the next one. A replica that dies mid-run stops renewing: its lease expires
 * within `leaseMs` and the next replica to look takes the job over (and runs it again, which
 * every job here allows: each pass is idempotent, and GC resumes the run it finds).
 *
 * What is local to a process keeps its own timer and is not here: writing this process's
 * buffered events and pull counts, its policy reload, its trust queue, its TLS reload.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import type { LeaseStore } from '../meta/leases.ts';

export interface SchedulerParts {
  leases: LeaseStore;
  log: FastifyBaseLogger;
  /** how long a running job's lease lasts without a renewal: how soon a dead replica's job is taken over */
  leaseMs: number;
  /** the clock intervals and leases are judged by (tests move it); default Date.now */
  now?: () => number;
}

export interface JobOptions {
  /**
   * On a cluster where the job never ran (no lease row), wait for the next interval instead of
   * running it in this one: what runs when a cluster is first started (or first upgraded to
   * job leases) stays what the configuration says, one interval later (garbage collection).
   */
  startNextInterval?: boolean;
}

interface Job {
  name: string;
  intervalMs: number;
  run: () => Promise<unknown>;
  /** startNextInterval, until the first look has made sure the job has a lease row */
  placeFirst: boolean;
  /** when to ask for the lease next (the time it expires, as last seen) */
  askAt: number;
  timer: NodeJS.Timeout | undefined;
  /** the tick under way (asking, and running when taken) */
  ticking: Promise<boolean> | undefined;
  /** runs this process did */
  runs: number;
}

/** The longest a timer sleeps before looking at the clock again (a clock moved by tests, or by NTP). */
const maxSleepMs = 60_000;
/** After a failed look (the database is down), the wait before the next. */
const retryMs = 5_000;

export class Scheduler {
  /** this process, as job_leases.holder names it */
  readonly holder = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly parts: SchedulerParts;
  private readonly now: () => number;
  private readonly jobs = new Map<string, Job>();
  private started = false;
  private stopping = false;

  constructor(parts: SchedulerParts) {
    this.parts = parts;
    this.now = parts.now ?? Date.now;
  }

  /** Adds a job; an interval of 0 (or less) schedules nothing (a job that is configured off). */
  schedule(name: string, intervalMs: number, run: () => Promise<unknown>, options: JobOptions = {}): void {
    if (this.jobs.has(name)) throw new Error(`the job ${name} is scheduled already`);
    if (!(intervalMs > 0)) return;
    const job: Job = { name, intervalMs, run, placeFirst: options.startNextInterval === true, askAt: 0, timer: undefined, ticking: undefined, runs: 0 };
    this.jobs.set(name, job);
    if (this.started) this.wake(job);
  }

  /** Starts looking, at once, for every job. */
  start(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    for (const job of this.jobs.values()) this.wake(job);
  }

  /** Stops looking and waits for the runs in progress (the caller makes long jobs stop first). */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const job of this.jobs.values()) clearTimeout(job.timer);
    await Promise.all([...this.jobs.values()].flatMap((j) => (j.ticking ? [j.ticking] : [])));
  }

  /** The jobs scheduled, with how many times this process ran each (the metrics). */
  runs(): { job: string; intervalMs: number; runs: number }[] {
    return [...this.jobs.values()].map((j) => ({ job: j.name, intervalMs: j.intervalMs, runs: j.runs }));
  }

  /**
   * One look at a job: runs it if this process takes its lease, and resolves when the run is over;
   * true when it ran. The timers call it; tests too, with their clock moved.
   */
  tick(name: string): Promise<boolean> {
    const job = this.jobs.get(name);
    if (!job) throw new Error(`no job ${name} is scheduled`);
    job.ticking ??= this.look(job).finally(() => (job.ticking = undefined));
    return job.ticking;
  }

  private wake(job: Job): void {
    if (this.stopping) return;
    clearTimeout(job.timer);
    // a millisecond past the expiry: a lease is free at its expiry, and timers may round down
    const delay = Math.min(Math.max(job.askAt - this.now(), 0) + 1, maxSleepMs);
    job.timer = setTimeout(() => {
      if (this.now() < job.askAt) return this.wake(job);
      void this.tick(job.name).finally(() => this.wake(job));
    }, delay);
    job.timer.unref();
  }

  private async look(job: Job): Promise<boolean> {
    if (this.stopping) return false;
    const { leases, log, leaseMs } = this.parts;
    const now = this.now();
    let taken: boolean;
    try {
      if (job.placeFirst) {
        // never run here: a lease row that ends with this interval, and no run in it
        if (!(await leases.get(job.name))) await leases.acquire(job.name, '', now, this.intervalEnd(job, now));
        job.placeFirst = false;
      }
      const answer = await leases.acquire(job.name, this.holder, now, now + leaseMs);
      taken = answer.taken;
      if (!taken) job.askAt = answer.lease.expiresAt;
    } catch (err) {
      log.warn({ err, job: job.name }, 'could not ask for a job lease; asking again soon');
      job.askAt = now + Math.min(retryMs, job.intervalMs);
      return false;
    }
    if (!taken) return false;
    job.runs++;
    let lost = false;
    // one renewal at a time, and none after the last: a late one would undo the interval's end
    let renewing = Promise.resolve();
    const renew = (until: number) =>
      (renewing = renewing.then(async () => {
        if (lost) return;
        try {
          lost = !(await leases.renew(job.name, this.holder, until));
          if (lost) log.warn({ job: job.name }, 'a job ran past its lease (this replica stalled) and another replica took it over');
        } catch (err) {
          log.warn({ err, job: job.name }, 'could not renew a job lease');
        }
      }));
    const renewal = setInterval(() => void renew(this.now() + leaseMs), leaseMs / 3);
    renewal.unref();
    try {
      await job.run();
    } catch (err) {
      log.error({ err, job: job.name }, `the scheduled job ${job.name} failed`);
    } finally {
      clearInterval(renewal);
    }
    // Done: nobody runs it again before the interval it ended in is over.
    const next = this.intervalEnd(job, this.now());
    job.askAt = next;
    await renew(next);
    return true;
  }

  private intervalEnd(job: Job, at: number): number {
    return (Math.floor(at / job.intervalMs) + 1) * job.intervalMs;
  }
}
