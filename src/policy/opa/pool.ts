/**
 * The pool of worker threads that OPA Wasm policies run in, so that evaluating one never holds
 * the server's event loop. Every worker loads every policy. The evaluations asked for in one turn
 * of the event loop go to the first idle worker as one batch, through memory shared with it
 * (channel.ts), and it runs them one at a time, each with a time limit. A worker whose evaluation
 * runs over it (a module that loops) is terminated, which is the only way to stop Wasm that is
 * running: only that evaluation fails, the rest of its batch goes to the other workers, and a new
 * worker loads every policy again before it takes work. Evaluations a slow policy holds up in its
 * batch go to an idle worker after a few milliseconds. A worker that dies (its heap limit) is
 * replaced the same way. What limits memory: each policy's env.memory has a maximum
 * (memoryPages), everything read out of a module is bounded (host.ts), and the worker's heap has
 * resourceLimits as a last guard.
 *
 * Why batches and shared memory: on a busy two-core machine, a message per evaluation cost the
 * server's event loop more than the evaluation itself (the message's work, and the switch to the
 * worker it woke); bench/opa-pool.ts measures what a decision costs each thread.
 *
 * Memory at worst: size × policies × memoryPages × 64 KiB, since every worker holds an instance of
 * every policy, and a Wasm memory never shrinks (an instance that failed is replaced by a fresh
 * one, which does).
 */
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { PolicyRejected, type Outcome } from '../engine.ts';
import type { HostLimits, LoadSpec } from './host.ts';
import { Channel, maxBatch, ReplyKind, Word } from './channel.ts';
import type { BatchReply, LoadInfo, PortMessage, Reply, Request, WorkerSetup } from './worker.ts';

export interface OpaPoolOptions {
  /** worker threads (each holds every policy) */
  size: number;
  /** how long one evaluation may run before its worker is terminated */
  timeoutMs: number;
  /** how long loading one policy into a worker may take (instantiation, its start function, data.json) */
  loadTimeoutMs: number;
  /** the most 64 KiB pages one policy's memory may grow to (256: 16 MiB) */
  memoryPages: number;
  /** the most bytes of one JSON text read out of a module (results, built-in arguments) */
  jsonBytes: number;
  /** each worker's V8 old generation, in MiB (resourceLimits): a last guard, since all the above is bounded first */
  heapMb: number;
  /** evaluations that may wait for a worker; past that, evaluate fails at once */
  queueLimit: number;
}

export const defaultPoolOptions: Readonly<OpaPoolOptions> = {
  size: 2,
  timeoutMs: 1000,
  loadTimeoutMs: 10_000,
  memoryPages: 256,
  jsonBytes: 1024 * 1024,
  heapMb: 128,
  queueLimit: 1024,
};

export interface OpaPoolStats {
  workers: number;
  /** workers replaced since the pool started (time limits, deaths) */
  restarts: number;
  policies: number;
  queued: number;
}

export interface OpaPool {
  readonly options: Readonly<OpaPoolOptions>;
  /** Loads a policy into every worker; throws PolicyRejected when the module cannot serve as one. */
  load(spec: LoadSpec): Promise<LoadInfo & { id: number }>;
  /** Evaluates a loaded policy on an input (its JSON text); rejects with an Error saying how it failed. */
  evaluate(id: number, input: string, nowNs: bigint): Promise<Outcome>;
  unload(id: number): Promise<void>;
  stats(): OpaPoolStats;
  /** Terminates the workers; what is waiting or running fails. */
  close(): Promise<void>;
}

/** worker.ts beside this file when running from src, worker.js when built into dist. */
const workerPath = fileURLToPath(new URL(`./worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

type Evaluation = { op: 'evaluate'; id: number; input: string; nowNs: bigint };

interface Job {
  request: Request | Evaluation;
  timeoutMs: number;
  settle(reply: Reply | Error): void;
}

/** What a worker is answering: the jobs sent together, and what the pool has seen of it. */
interface Batch {
  seq: number;
  jobs: Job[];
  /** own jobs (loads, unloads: a message on the port), or shared evaluations (through the channel), which may be taken back */
  own: boolean;
  /** jobs from here on were taken back for another worker */
  end: number;
  /** the job the worker was last seen on, and since when it is known to have been on it */
  on: number;
  since: number;
  timer?: NodeJS.Timeout;
}

interface Slot {
  worker: Worker | undefined;
  /** the memory it shares with this worker, and the port for loads and unloads: new with every worker */
  channel: Channel;
  port: MessagePort | undefined;
  /** jobs for this worker only (loads, unloads), taken before shared ones */
  own: Job[];
  current: Batch | undefined;
  /** deaths since its last answer: a worker that cannot start is not respawned forever */
  deaths: number;
}

/** how many times in a row a worker may die before its slot gives up */
const maxDeaths = 3;
/**
 * A batch still running after this long is looked at: jobs its worker has not reached go to a
 * worker that is idle. A fast policy answers a batch in microseconds, so this rarely fires; a
 * slow or looping one does not hold up the evaluations sent with it for longer than this.
 */
const takeBackMs = 5;

// Atomics.waitAsync is in V8 (Node 16+) but not in the ES lib this project compiles against
type WaitAsync = (array: Int32Array, index: number, value: number) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

class Pool implements OpaPool {
  readonly options: Readonly<OpaPoolOptions>;
  private readonly slots: Slot[] = [];
  private readonly shared: Job[] = [];
  private readonly policies = new Map<number, LoadSpec>();
  /** policies a restarted worker could not load again: their evaluations fail at once, with this */
  private readonly broken = new Map<number, string>();
  private nextId = 1;
  private nextSeq = 1;
  private restarts = 0;
  private closed = false;
  private lastDeath = '';
  /** a dispatch is due at the end of this turn of the event loop (setImmediate) */
  private dispatching = false;
  /** evaluations accepted and not answered yet, wherever they are (queued, sent in a batch, running) */
  private pending = 0;

  constructor(options: OpaPoolOptions) {
    this.options = options;
    for (let i = 0; i < options.size; i++) this.slots.push({ ...this.spawn(), own: [], current: undefined, deaths: 0 });
  }

  async load(spec: LoadSpec): Promise<LoadInfo & { id: number }> {
    if (this.closed) throw new Error('the OPA worker pool is closed');
    const id = this.nextId++;
    const [first, ...others] = this.live();
    if (!first) throw new Error(`the OPA worker pool cannot run: ${this.lastDeath}`);
    // loaded in one worker first: if the module cannot serve, it is refused before any other holds it
    const reply = await this.run(first, { op: 'load', id, spec }, this.options.loadTimeoutMs);
    if (reply instanceof Error || !reply.ok) {
      void this.run(first, { op: 'unload', id }, this.options.loadTimeoutMs);
      throw new PolicyRejected(reply instanceof Error || !reply.refused ? `the module could not be loaded: ${reply.message}` : reply.message);
    }
    this.policies.set(id, spec);
    // the others load it before they take their next shared job (own jobs come first), so no
    // evaluation reaches a worker that does not have it yet
    for (const slot of others) void this.run(slot, { op: 'load', id, spec }, this.options.loadTimeoutMs);
    return { id, builtins: reply.info?.builtins ?? [], entrypoints: reply.info?.entrypoints ?? [] };
  }

  evaluate(id: number, input: string, nowNs: bigint): Promise<Outcome> {
    if (this.closed) return Promise.reject(new Error('the OPA worker pool is closed'));
    if (!this.policies.has(id)) return Promise.reject(new Error(`OPA policy #${id} is not loaded (closed, or never loaded)`));
    const broken = this.broken.get(id);
    if (broken !== undefined) return Promise.reject(new Error(broken));
    const live = this.live().length;
    if (live === 0) return Promise.reject(new Error(`the OPA worker pool cannot run: ${this.lastDeath}`));
    // Each live worker runs one evaluation at a time; the rest wait, whether in the queue or in a
    // batch a worker has not got to (the batch is sent at the end of the turn, so counting the
    // queue alone would count evaluations that idle workers are about to take).
    const waiting = this.pending - live;
    if (waiting >= this.options.queueLimit) {
      return Promise.reject(new Error(`the OPA worker pool is overloaded: ${waiting} evaluations are waiting for a worker`));
    }
    this.pending++;
    return new Promise((resolve, reject) => {
      let settled = false;
      this.shared.push({
        request: { op: 'evaluate', id, input, nowNs },
        timeoutMs: this.options.timeoutMs,
        settle: (reply) => {
          if (settled) return;
          settled = true;
          this.pending--;
          if (reply instanceof Error) reject(reply);
          else if (!reply.ok) reject(new Error(reply.message));
          else if (reply.outcome) resolve(reply.outcome);
          else reject(new Error('the OPA worker answered without an outcome'));
        },
      });
      // Sent at the end of this turn of the event loop, not now: the evaluations that requests
      // arriving together ask for go to a worker in one batch, with one wake-up each way.
      // Waking a thread per evaluation was most of what a decision cost the server.
      if (!this.dispatching) {
        this.dispatching = true;
        setImmediate(() => {
          this.dispatching = false;
          this.pump();
        });
      }
    });
  }

  async unload(id: number): Promise<void> {
    if (!this.policies.delete(id)) return;
    this.broken.delete(id);
    if (this.closed) return;
    await Promise.all(this.live().map((slot) => this.run(slot, { op: 'unload', id }, this.options.loadTimeoutMs)));
  }

  stats(): OpaPoolStats {
    return { workers: this.live().length, restarts: this.restarts, policies: this.policies.size, queued: this.shared.length };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closed = new Error('the OPA worker pool was closed');
    for (const job of this.shared.splice(0)) job.settle(closed);
    const stopping: Promise<number>[] = [];
    for (const slot of this.slots) {
      for (const job of slot.own.splice(0)) job.settle(closed);
      const batch = slot.current;
      slot.current = undefined;
      if (batch) {
        clearTimeout(batch.timer);
        for (const job of batch.jobs.slice(0, batch.end)) job.settle(closed);
      }
      if (slot.worker) stopping.push(slot.worker.terminate());
      this.release(slot);
      slot.worker = undefined;
    }
    await Promise.all(stopping);
  }

  private live(): Slot[] {
    return this.slots.filter((s) => s.worker !== undefined);
  }

  /** A job for one worker, settled with its reply, or an Error when it timed out or the worker died. */
  private run(slot: Slot, request: Request, timeoutMs: number): Promise<Reply | Error> {
    return new Promise((resolve) => {
      slot.own.push({ request, timeoutMs, settle: resolve });
      this.pump();
    });
  }

  /**
   * Gives idle workers what waits: a worker's own jobs alone, or else the shared evaluations, all
   * of them to the first idle worker (up to maxBatch). A batch costs a wake-up of the worker
   * whatever its size, and that is most of what an evaluation costs, so the evaluations of one
   * turn go to one worker rather than spread over every idle one (on the benchmark's pull path
   * that made batches of 4 to 5 instead of 3.5). What a slow policy holds up there goes to an
   * idle worker after takeBackMs (check).
   */
  private pump(): void {
    for (const slot of this.slots) {
      if (!slot.worker || slot.current) continue;
      if (slot.own.length > 0) this.sendOwn(slot, slot.own.splice(0, maxBatch));
      else if (this.shared.length > 0) this.sendShared(slot, this.shared.splice(0, maxBatch));
    }
  }

  private start(slot: Slot, jobs: Job[], own: boolean): Batch {
    const now = performance.now();
    const batch: Batch = { seq: this.nextSeq++, jobs, own, end: jobs.length, on: 0, since: now };
    // the worker is idle (its last batch answered), so nothing else writes the word meanwhile
    Atomics.store(slot.channel.control, Word.claims, jobs.length << 16);
    batch.timer = setTimeout(() => this.check(slot, batch), this.nextCheck(batch, jobs[0]!, now));
    slot.current = batch;
    return batch;
  }

  private wake(slot: Slot): void {
    Atomics.add(slot.channel.control, Word.wake, 1);
    Atomics.notify(slot.channel.control, Word.wake);
  }

  /** Loads and unloads: a message on the worker's port (a compiled module cannot go through bytes). */
  private sendOwn(slot: Slot, jobs: Job[]): void {
    const batch = this.start(slot, jobs, true);
    slot.port!.postMessage({ seq: batch.seq, requests: jobs.map((j) => j.request as Request) } satisfies PortMessage);
    this.wake(slot);
  }

  /** Evaluations: their inputs written into the shared memory, as many as fit; the rest wait for the next batch. */
  private sendShared(slot: Slot, jobs: Job[]): void {
    const channel = slot.channel;
    let offset = 0;
    let n = 0;
    while (n < jobs.length) {
      const job = jobs[n]!;
      const { id, input, nowNs } = job.request as Evaluation;
      const written = channel.writeJob(n, id, input, nowNs, offset);
      if (written !== undefined) {
        offset += written;
        n++;
      } else if (n > 0) break;
      else {
        // the first input alone does not fit: a larger area, or a refusal for an input no policy could be given
        const refusal = this.growInputs(slot, input);
        if (refusal) {
          jobs.shift();
          job.settle(refusal);
        }
      }
    }
    if (n < jobs.length) this.shared.unshift(...jobs.slice(n));
    if (n === 0) return;
    const batch = this.start(slot, jobs.slice(0, n), false);
    const done = Atomics.load(channel.control, Word.done);
    Atomics.store(channel.control, Word.batch, batch.seq);
    this.wake(slot);
    const waited = waitAsync(channel.control, Word.done, done);
    if (waited.async) void waited.value.then(() => this.answered(slot, batch));
    else queueMicrotask(() => this.answered(slot, batch));
  }

  /**
   * A larger input area for the worker, sent to it before the batch that needs it; or, for an
   * input over the policy's memory limit, the error the host would fail it with (host.ts: reserve).
   */
  private growInputs(slot: Slot, input: string): Error | undefined {
    const bytes = Buffer.byteLength(input);
    if (bytes > this.options.memoryPages * 65536) {
      return new Error(`the input does not fit in the policy's memory limit of ${Math.round((this.options.memoryPages * 640) / 1024) / 10} MiB`);
    }
    let size = slot.channel.inputBytes.length;
    while (size < bytes) size *= 2;
    const inputs = new SharedArrayBuffer(size);
    slot.channel.setInputs(inputs);
    slot.port!.postMessage({ inputs } satisfies PortMessage);
    return undefined;
  }

  /** The worker finished a batch of evaluations: their decisions are in the shared memory. */
  private answered(slot: Slot, batch: Batch): void {
    if (slot.current !== batch) return;
    clearTimeout(batch.timer);
    slot.current = undefined;
    slot.deaths = 0;
    // the worker gives back what it had no room to answer (worker.ts): the claims word says how many it took
    const claimed = Math.min(batch.end, Atomics.load(slot.channel.control, Word.claims) & 0xffff);
    if (claimed < batch.end) this.shared.unshift(...batch.jobs.slice(claimed, batch.end));
    for (let i = 0; i < claimed; i++) {
      const { kind, text } = slot.channel.readReply(i);
      batch.jobs[i]!.settle(
        kind === ReplyKind.allow
          ? { ok: true, outcome: { deny: false } }
          : kind === ReplyKind.deny
            ? { ok: true, outcome: { deny: true, messages: JSON.parse(text) as string[] } }
            : { ok: false, message: text },
      );
    }
    this.pump();
  }

  /** When to look at a running batch again: at its current job's deadline, or sooner to take jobs back or to see the next job start. */
  private nextCheck(batch: Batch, job: Job, now: number): number {
    const deadline = batch.since + job.timeoutMs - now;
    const unclaimed = !batch.own && batch.end - batch.on > 1;
    // Checks a quarter of the limit apart: a job first seen at a check started after the one
    // before, so it is stopped after between 1 and 1.25 times its limit, never before it.
    return Math.max(1, Math.min(deadline, unclaimed ? takeBackMs : job.timeoutMs / 4));
  }

  /**
   * A batch still running: which job is its worker on, and since when? A job over its limit
   * stops the worker; jobs not reached go to an idle worker, if there is one.
   */
  private check(slot: Slot, batch: Batch): void {
    if (slot.current !== batch) return;
    const control = slot.channel.control;
    // finished: the replies are on their way (this timer ran before them)
    if (Atomics.load(control, Word.done) === batch.seq) return;
    const now = performance.now();
    const word = Atomics.load(control, Word.claims);
    const next = word & 0xffff;
    // the job last claimed is the one running; none claimed yet counts as the first, since the batch was sent
    const on = Math.max(0, next - 1);
    if (on !== batch.on) {
      batch.on = on;
      batch.since = now;
    }
    const job = batch.jobs[on]!;
    if (now - batch.since >= job.timeoutMs) return this.timedOut(slot, batch);
    if (!batch.own && next < batch.end && this.slots.some((s) => s !== slot && s.worker !== undefined && !s.current)) {
      // a compare-and-exchange, so that either the worker claims a job or it is taken back, never both
      if (Atomics.compareExchange(control, Word.claims, word, (next << 16) | next) === word) {
        this.shared.unshift(...batch.jobs.slice(next, batch.end));
        batch.end = next;
        this.pump();
      }
    }
    batch.timer = setTimeout(() => this.check(slot, batch), this.nextCheck(batch, job, now));
  }

  /** A worker with memory and a port of its own: one being terminated may still write to the old ones. */
  private spawn(): Pick<Slot, 'worker' | 'channel' | 'port'> {
    const limits: HostLimits = { memoryPages: this.options.memoryPages, jsonBytes: this.options.jsonBytes };
    const memory = Channel.create();
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(workerPath, {
      workerData: { limits, ...memory, port: port2 } satisfies WorkerSetup,
      transferList: [port2],
      // explicit, not the server's own flags (a test runner's loaders, say)
      execArgv: [],
      resourceLimits: { maxOldGenerationSizeMb: this.options.heapMb, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 },
    });
    const slotOf = () => this.slots.find((s) => s.worker === worker);
    port1.on('message', (reply: BatchReply) => {
      const slot = slotOf();
      const batch = slot?.current;
      if (!slot || !batch || !batch.own || reply.seq !== batch.seq) return;
      clearTimeout(batch.timer);
      slot.current = undefined;
      slot.deaths = 0;
      for (let i = 0; i < batch.end; i++) batch.jobs[i]!.settle(reply.replies[i] ?? new Error('the OPA worker did not answer this request'));
      this.pump();
    });
    const died = (reason: string) => {
      const slot = slotOf();
      if (slot) this.died(slot, worker, reason);
    };
    worker.on('error', (err: Error) => died(err.message));
    worker.on('exit', (code) => died(`it exited with code ${code}`));
    // an idle pool does not keep the process alive; a batch in flight does, through its timer.
    // After on('message'), which refs the port again.
    worker.unref();
    port1.unref();
    return { worker, channel: new Channel(memory.control, memory.inputs, memory.replies), port: port1 };
  }

  /** Lets go of a worker's port, and of the wait for its answer, which will not come. */
  private release(slot: Slot): void {
    slot.port?.close();
    slot.port = undefined;
    Atomics.notify(slot.channel.control, Word.done);
  }

  /**
   * The batch's worker is stopped or gone: the job it was on fails with `failure`, and every other
   * job goes to another worker (or this one's replacement). The ones before it were answered, but
   * their replies went down with the worker; evaluating them again decides the same, since a
   * decision depends only on its input, the data and the request's time.
   */
  private abandon(slot: Slot, batch: Batch, failure: (job: Job) => Error): void {
    clearTimeout(batch.timer);
    slot.current = undefined;
    const control = slot.channel.control;
    const finished = Atomics.load(control, Word.done) === batch.seq;
    const culprit = finished ? undefined : batch.jobs[Math.max(0, (Atomics.load(control, Word.claims) & 0xffff) - 1)];
    const again = batch.jobs.slice(0, batch.end).filter((j) => j !== culprit);
    if (culprit) culprit.settle(failure(culprit));
    if (batch.own) slot.own.unshift(...again);
    else this.shared.unshift(...again);
  }

  private timedOut(slot: Slot, batch: Batch): void {
    this.abandon(slot, batch, (job) =>
      job.request.op === 'evaluate'
        ? new Error(`the policy did not decide within ${job.timeoutMs} ms: its worker was stopped`)
        : new Error(`loading the module took longer than ${job.timeoutMs} ms: its worker was stopped`),
    );
    this.replace(slot);
  }

  private died(slot: Slot, worker: Worker, reason: string): void {
    if (slot.worker !== worker || this.closed) return;
    this.lastDeath = `a worker stopped (${reason})`;
    const batch = slot.current;
    if (batch) {
      this.abandon(
        slot,
        batch,
        (job) => new Error(`the policy's worker stopped while ${job.request.op === 'evaluate' ? 'evaluating' : 'loading'} it (${reason})`),
      );
    }
    if (++slot.deaths >= maxDeaths) {
      // a worker that keeps dying (it cannot start): give up on this slot rather than spin
      slot.worker = undefined;
      this.release(slot);
      for (const job of slot.own.splice(0)) job.settle(new Error(this.lastDeath));
      if (this.live().length === 0) for (const job of this.shared.splice(0)) job.settle(new Error(`the OPA worker pool cannot run: ${this.lastDeath}`));
      void worker.terminate();
      this.pump();
      return;
    }
    this.replace(slot);
  }

  /** A new worker for the slot, which loads every policy again before it takes shared work. */
  private replace(slot: Slot): void {
    const old = slot.worker;
    this.restarts++;
    this.release(slot);
    Object.assign(slot, this.spawn());
    void old?.terminate();
    const pending = slot.own.splice(0);
    for (const [id, spec] of this.policies) {
      if (this.broken.has(id)) continue;
      slot.own.push({
        request: { op: 'load', id, spec },
        timeoutMs: this.options.loadTimeoutMs,
        settle: (reply) => {
          // it loaded once: a worker that times out loading it again would loop replacing itself
          if (reply instanceof Error && this.policies.has(id))
            this.broken.set(id, `the policy could not be loaded again after a worker restart: ${reply.message}`);
        },
      });
    }
    slot.own.push(...pending);
    this.pump();
  }
}

/** Starts a pool of OPA workers (defaultPoolOptions, overridden by options). */
export function createOpaPool(options: Partial<OpaPoolOptions> = {}): OpaPool {
  const o = { ...defaultPoolOptions, ...options };
  if (!(o.size >= 1 && o.size <= 64)) throw new Error(`an OPA pool has 1 to 64 workers, not ${o.size}`);
  if (!(o.timeoutMs > 0 && o.loadTimeoutMs > 0)) throw new Error('the OPA pool time limits must be positive');
  if (!(o.memoryPages >= 2 && o.memoryPages <= 65536)) throw new Error(`an OPA policy's memory is 2 to 65536 pages, not ${o.memoryPages}`);
  return new Pool(o);
}
