/**
 * Usage events written to SQLite from a thread of their own. node:sqlite is synchronous, and an
 * event costs SQLite ~3.5-5 µs of CPU to insert with its indexes (bench/events.ts): on the main
 * thread that was 10-15 % more CPU per manifest GET, and a 1000-event batch held the event loop
 * ~6 ms. Here the main thread only lays the batch out as one flat array of values and posts it
 * (~0.6 µs an event); the writer thread inserts it on its own connection to the same file (WAL:
 * readers are not blocked) in transactions of at most 250 events.
 *
 * Two connections write to the file, so the main connection's transactions begin IMMEDIATE
 * (sqlite-dialect.ts): a deferred one that read before the writer committed could not then write
 * (SQLITE_BUSY_SNAPSHOT, which no busy timeout waits out). Either connection waits for the
 * other's transaction (busy_timeout), at most about a millisecond for the writer's.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SQLInputValue } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import type { UsageEvent } from '../insight.ts';
import type { WriteReply, WriteRequest, WriterSetup } from './sqlite-events-worker.ts';

const workerPath = fileURLToPath(new URL(`./sqlite-events-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

export class SqliteEventWriter {
  private readonly file: string;
  private readonly columns: readonly string[];
  private readonly flatten: (e: UsageEvent, out: SQLInputValue[]) => void;
  private worker: Worker | undefined;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: () => void; reject: (err: Error) => void; done: Promise<void> }>();

  constructor(file: string, columns: readonly string[], flatten: (e: UsageEvent, out: SQLInputValue[]) => void) {
    this.file = path.resolve(file);
    this.columns = columns;
    this.flatten = flatten;
  }

  /** Inserts the events not stored yet and adds them to the rollups; resolves once committed. */
  write(events: UsageEvent[]): Promise<void> {
    const values: SQLInputValue[] = [];
    for (const e of events) this.flatten(e, values);
    const worker = this.start();
    const seq = ++this.seq;
    let settle!: { resolve: () => void; reject: (err: Error) => void };
    const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    this.pending.set(seq, { ...settle, done });
    // alive while a write is in flight, not while idle
    if (this.pending.size === 1) worker.ref();
    worker.postMessage({ seq, values } satisfies WriteRequest);
    return done;
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(workerPath, { workerData: { file: this.file, columns: this.columns } satisfies WriterSetup, execArgv: [] });
    worker.on('message', (reply: WriteReply) => {
      const waiting = this.pending.get(reply.seq);
      this.pending.delete(reply.seq);
      if (this.pending.size === 0) worker.unref();
      if ('error' in reply) waiting?.reject(new Error(reply.error));
      else waiting?.resolve();
    });
    const failed = (err: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', failed);
    worker.on('exit', (code) => failed(new Error(`the events writer thread exited with code ${code}`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /** Waits for the writes in flight, then ends the thread. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.pending.values()].map((p) => p.done));
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }
}
