/**
 * The pool of worker threads that OPA Wasm policies run in, so that evaluating one never holds
 * the server's event loop. Every worker loads every policy; an evaluation goes to the first idle
 * worker, one at a time per worker, with a time limit. A worker whose evaluation runs over it (a
 * module that loops) is terminated, which is the only way to stop Wasm that is running, and
 * replaced by a new one that loads every policy again before it takes work; the other workers go
 * on answering meanwhile. A worker that dies (its heap limit) is replaced the same way. What
 * limits memory: each policy's env.memory has a maximum (memoryPages), everything read out of a
 * module is bounded (host.ts), and the worker's heap has resourceLimits as a last guard.
 *
 * Memory at worst: size × policies × memoryPages × 64 KiB, since every worker holds an instance of
 * every policy, and a Wasm memory never shrinks (an instance that failed is replaced by a fresh
 * one, which does).
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PolicyRejected, type Outcome } from '../engine.ts';
import type { HostLimits, LoadSpec } from './host.ts';
import type { LoadInfo, Reply, Request } from './worker.ts';

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

type WithoutSeq<T> = T extends unknown ? Omit<T, 'seq'> : never;

interface Job {
  request: WithoutSeq<Request>;
  timeoutMs: number;
  settle(reply: Reply | Error): void;
}

interface Slot {
  worker: Worker | undefined;
  /** jobs for this worker only (loads, unloads), taken before shared ones */
  own: Job[];
  current: { job: Job; seq: number; timer: NodeJS.Timeout } | undefined;
  /** deaths since its last answer: a worker that cannot start is not respawned forever */
  deaths: number;
}

/** how many times in a row a worker may die before its slot gives up */
const maxDeaths = 3;

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

  constructor(options: OpaPoolOptions) {
    this.options = options;
    for (let i = 0; i < options.size; i++) {
      const slot: Slot = { worker: undefined, own: [], current: undefined, deaths: 0 };
      slot.worker = this.spawn(slot);
      this.slots.push(slot);
    }
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
    if (this.live().length === 0) return Promise.reject(new Error(`the OPA worker pool cannot run: ${this.lastDeath}`));
    if (this.shared.length >= this.options.queueLimit) {
      return Promise.reject(new Error(`the OPA worker pool is overloaded: ${this.shared.length} evaluations are waiting for a worker`));
    }
    return new Promise((resolve, reject) => {
      this.shared.push({
        request: { op: 'evaluate', id, input, nowNs },
        timeoutMs: this.options.timeoutMs,
        settle: (reply) => {
          if (reply instanceof Error) reject(reply);
          else if (!reply.ok) reject(new Error(reply.message));
          else if (reply.outcome) resolve(reply.outcome);
          else reject(new Error('the OPA worker answered without an outcome'));
        },
      });
      this.pump();
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
      if (slot.current) {
        clearTimeout(slot.current.timer);
        slot.current.job.settle(closed);
        slot.current = undefined;
      }
      if (slot.worker) stopping.push(slot.worker.terminate());
      slot.worker = undefined;
    }
    await Promise.all(stopping);
  }

  private live(): Slot[] {
    return this.slots.filter((s) => s.worker !== undefined);
  }

  /** A job for one worker, settled with its reply, or an Error when it timed out or the worker died. */
  private run(slot: Slot, request: WithoutSeq<Request>, timeoutMs: number): Promise<Reply | Error> {
    return new Promise((resolve) => {
      slot.own.push({ request, timeoutMs, settle: resolve });
      this.pump();
    });
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (!slot.worker || slot.current) continue;
      const job = slot.own.shift() ?? this.shared.shift();
      if (!job) continue;
      const seq = this.nextSeq++;
      const timer = setTimeout(() => this.timedOut(slot), job.timeoutMs);
      slot.current = { job, seq, timer };
      slot.worker.postMessage({ ...job.request, seq });
    }
  }

  private spawn(slot: Slot): Worker {
    const limits: HostLimits = { memoryPages: this.options.memoryPages, jsonBytes: this.options.jsonBytes };
    const worker = new Worker(workerPath, {
      workerData: limits,
      // explicit, not the server's own flags (a test runner's loaders, say)
      execArgv: [],
      resourceLimits: { maxOldGenerationSizeMb: this.options.heapMb, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 },
    });
    // an idle pool does not keep the process alive; a job in flight does, through its timer
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const current = slot.current;
      if (slot.worker !== worker || !current || reply.seq !== current.seq) return;
      clearTimeout(current.timer);
      slot.current = undefined;
      slot.deaths = 0;
      current.job.settle(reply);
      this.pump();
    });
    worker.on('error', (err: Error) => this.died(slot, worker, err.message));
    worker.on('exit', (code) => this.died(slot, worker, `it exited with code ${code}`));
    return worker;
  }

  private timedOut(slot: Slot): void {
    const current = slot.current;
    if (!current) return;
    slot.current = undefined;
    const { job } = current;
    const ms = job.timeoutMs;
    if (job.request.op === 'evaluate') job.settle(new Error(`the policy did not decide within ${ms} ms: its worker was stopped`));
    else job.settle(new Error(`loading the module took longer than ${ms} ms: its worker was stopped`));
    this.replace(slot);
  }

  private died(slot: Slot, worker: Worker, reason: string): void {
    if (slot.worker !== worker || this.closed) return;
    this.lastDeath = `a worker stopped (${reason})`;
    const current = slot.current;
    slot.current = undefined;
    if (current) {
      clearTimeout(current.timer);
      current.job.settle(new Error(`the policy's worker stopped while ${current.job.request.op === 'evaluate' ? 'evaluating' : 'loading'} it (${reason})`));
    }
    if (++slot.deaths >= maxDeaths) {
      // a worker that keeps dying (it cannot start): give up on this slot rather than spin
      slot.worker = undefined;
      for (const job of slot.own.splice(0)) job.settle(new Error(this.lastDeath));
      if (this.live().length === 0) for (const job of this.shared.splice(0)) job.settle(new Error(`the OPA worker pool cannot run: ${this.lastDeath}`));
      void worker.terminate();
      return;
    }
    this.replace(slot);
  }

  /** A new worker for the slot, which loads every policy again before it takes shared work. */
  private replace(slot: Slot): void {
    const old = slot.worker;
    this.restarts++;
    slot.worker = this.spawn(slot);
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
