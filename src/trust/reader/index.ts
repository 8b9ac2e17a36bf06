/**
 * Reading untrusted documents (SBOMs, in-toto statements) without holding the event loop. A pusher
 * chooses what is in them, up to 64 MiB, and JSON.parse of that on the main thread stops every
 * request of every tenant until it is done: seconds, and gigabytes for the worst shapes.
 *
 * Small documents (up to 1 MiB: what nearly every SBOM and statement is) are parsed here, which
 * costs less than a message to another process. Larger ones go to one child process, one at a
 * time, with limits: its V8 heap (512 MiB; a real 64 MiB SBOM needs ~350), its time per document
 * (60 s, then it is killed), and what it sends back (the summary the trust worker keeps, not the
 * parsed JSON). A document that breaks a limit is unreadable, with the limit as its reason, like
 * any malformed one. The heap is the bound that matters: parsing is linear in the bytes, and a
 * document that would need more memory fails on it first. The time is a safety net, wall-clock
 * and so generous: a real 64 MiB SBOM takes 3 to 6 s on two cores, 15 when they are busy.
 *
 * A process, not a worker thread: a worker's resourceLimits are best effort, and a worker that
 * reaches its heap limit inside JSON.parse aborts the whole server (64 MiB of `[[],[],…]` does it;
 * nodejs/node#47224). A child that runs out of heap only ends itself. It holds no reference on the
 * server's event loop while idle, and exits after a minute without work or when the server does.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Statement } from '../intoto.ts';
import type { SbomDocument } from '../sbom/index.ts';
import type { SignedPayload } from '../verdict.ts';
import type * as VerifiersModule from '../verifiers.ts';
import type { Job, Reply } from './child.ts';

/** What a statement read in the child keeps: all but the predicate (see child.ts). */
export type StatementSummary = Omit<Statement, 'predicate'>;

export interface ReaderLimits {
  /** documents larger than this go to the child */
  inlineBytes: number;
  /** the child's V8 old generation, in MiB */
  heapMb: number;
  /** how long the child may take over one document */
  timeoutMs: number;
  /** the child exits after this long without work, giving its memory back */
  idleMs: number;
}

export const defaultLimits: ReaderLimits = { inlineBytes: 1024 * 1024, heapMb: 512, timeoutMs: 60_000, idleMs: 60_000 };

type Verifiers = typeof VerifiersModule;
// the parsers come with the verifiers, loaded on the first judgement (see evaluate.ts)
const loadVerifiers = (): Promise<Verifiers> => import('../verifiers.ts');

/** child.ts beside this file when running from src, child.js when built into dist. */
const childPath = fileURLToPath(new URL(`./child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

interface Pending {
  job: Job;
  bytes: Uint8Array;
  /** what a broken limit or a crash becomes: an SbomError or a StatementError, so a verdict */
  unreadable: (message: string) => Error;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class DocumentReader {
  private readonly limits: ReaderLimits;
  private readonly queue: Pending[] = [];
  private current: { pending: Pending; timer: NodeJS.Timeout } | undefined;
  private child: ChildProcess | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(limits: Partial<ReaderLimits> = {}) {
    this.limits = { ...defaultLimits, ...limits };
  }

  /** parseSbom, in the child when the document is large. */
  async sbom(bytes: Uint8Array, mediaType?: string): Promise<SbomDocument> {
    const v = await loadVerifiers();
    if (bytes.byteLength <= this.limits.inlineBytes) return v.parseSbom(bytes, mediaType);
    const job: Job = { job: 'sbom', length: bytes.byteLength, ...(mediaType !== undefined ? { mediaType } : {}) };
    return (await this.submit(job, bytes, (m) => new v.SbomError(m))) as SbomDocument;
  }

  /** parseStatement, in the child when the payload is large. */
  async statement(signed: SignedPayload): Promise<StatementSummary> {
    const v = await loadVerifiers();
    if (signed.payload.byteLength <= this.limits.inlineBytes) return v.parseStatement(signed);
    const job: Job = { job: 'statement', length: signed.payload.byteLength, payloadType: signed.payloadType };
    return (await this.submit(job, signed.payload, (m) => new v.StatementError(m))) as StatementSummary;
  }

  /** Ends the child. What is queued or running fails with a plain Error: no verdict, so it stays pending. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    const closed = new Error('the document reader was closed');
    for (const p of this.queue.splice(0)) p.reject(closed);
    const child = this.dropChild();
    this.finish((p) => p.reject(closed));
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    hold(child, true); // an idle child holds nothing: without this, the process could end before it is gone
    await new Promise((resolve) => child.once('close', resolve));
  }

  private submit(job: Job, bytes: Uint8Array, unreadable: (message: string) => Error): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('the document reader was closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ job, bytes, unreadable, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.current || this.closed) return;
    clearTimeout(this.idleTimer);
    const pending = this.queue.shift();
    if (!pending) {
      if (this.child) hold(this.child, false);
      this.idleTimer = setTimeout(() => this.dropChild(), this.limits.idleMs).unref();
      return;
    }
    const child = (this.child ??= this.spawn());
    // held while it works, so that a judgement under way keeps the server up like any I/O would
    hold(child, true);
    const timer = setTimeout(
      () => this.fail(`reading it took longer than ${this.limits.timeoutMs / 1000} s, the most Custody spends on one document`),
      this.limits.timeoutMs,
    );
    this.current = { pending, timer };
    child.send(pending.job);
    child.stdin?.write(pending.bytes);
  }

  private spawn(): ChildProcess {
    const child = fork(childPath, [], {
      // explicit, not the server's own flags (a test runner's loaders, say); a young generation of 2 × 8 MiB (the server's is 2 × 2, bin/custody.js: parsing a document allocates more)
      execArgv: [`--max-old-space-size=${this.limits.heapMb}`, '--max-semi-space-size=8'],
      serialization: 'advanced',
      stdio: ['pipe', 'ignore', 'pipe', 'ipc'],
    });
    // a child that died mid-document breaks the pipe; its 'close' below says why
    child.stdin?.on('error', () => {});
    // the last of what it printed says why it died: V8 writes "heap out of memory" before aborting
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    // events of a child already replaced (killed on a timeout) are ignored
    child.on('message', (reply: Reply) => {
      if (child === this.child) this.finish((p) => (reply.ok ? p.resolve(reply.value) : p.reject(rebuild(reply, p))));
    });
    child.on('error', (err) => {
      if (child === this.child) this.fail(`the reader could not run (${err.message})`);
    });
    child.on('close', (code, signal) => {
      if (child !== this.child) return;
      this.child = undefined;
      if (/heap out of memory|heap limit/i.test(stderr))
        this.fail(`reading it needs more than the ${this.limits.heapMb} MiB of memory Custody gives one document`);
      else this.fail(`the reader stopped while reading it (${signal ?? `exit code ${code}`})`);
    });
    return child;
  }

  /** The document in progress broke a limit, or the child died: it is unreadable, and the child goes. */
  private fail(reason: string): void {
    if (!this.current) return;
    this.dropChild(); // first, so that the next document gets a fresh child
    this.finish((p) => p.reject(p.unreadable(reason)));
  }

  /** Settles the document in progress and starts the next one. */
  private finish(settle: (p: Pending) => void): void {
    const current = this.current;
    if (!current) return;
    this.current = undefined;
    clearTimeout(current.timer);
    settle(current.pending);
    this.next();
  }

  private dropChild(): ChildProcess | undefined {
    const child = this.child;
    this.child = undefined;
    child?.kill('SIGKILL');
    return child;
  }
}

/** Whether the child (its process, IPC channel and pipes) keeps the server's event loop alive. */
function hold(child: ChildProcess, on: boolean): void {
  for (const handle of [child, child.channel, child.stdin as Socket | null, child.stderr as Socket | null]) {
    if (on) handle?.ref();
    else handle?.unref();
  }
}

function rebuild(reply: Extract<Reply, { ok: false }>, p: Pending): Error {
  // parseSbom throws only SbomErrors and parseStatement StatementErrors: anything else is a bug, thrown as such
  if (reply.name === 'SbomError' || reply.name === 'StatementError') return p.unreadable(reply.message);
  return new Error(`${reply.name}: ${reply.message}`);
}
