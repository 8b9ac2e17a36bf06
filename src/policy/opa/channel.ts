/**
 * The memory an OPA pool worker shares with the pool (pool.ts, worker.ts), through which batches
 * of evaluations go in and their decisions come back without a message: three SharedArrayBuffers.
 *
 * - control: Int32 words (`Word`), then per job of the batch its policy, where its input is and
 *   how long (jobs), its request time (nows), and where its reply is (answers);
 * - inputs: the inputs' UTF-8 bytes, one after the other; replaced by a larger one when an input
 *   does not fit (the pool sends the new one to the worker before the batch that needs it);
 * - replies: the decisions, `replyAreaBytes`: room for the largest reply there can be at least,
 *   so a batch always gets one answered, and the worker gives back what it has no room for.
 *
 * Who writes what: the pool writes a batch only while the worker is idle (its last batch
 * answered), the worker writes replies only while it runs one; the claims word is the one both
 * change while a batch runs, always with compare-and-exchange.
 */
import { messageLimits } from './result.ts';

/** the most evaluations in one batch (the claims word counts to 65535) */
export const maxBatch = 256;

export const Word = {
  /** bumped by the pool whenever the worker has something to do: the worker sleeps on it */
  wake: 0,
  /** the sequence number of the batch of evaluations posted last */
  batch: 1,
  /** the sequence number of the batch the worker finished last (evaluations or loads) */
  done: 2,
  /** the running batch's claims: `end << 16 | next` (worker.ts: claim) */
  claims: 3,
} as const;

export const ReplyKind = { allow: 0, deny: 1, error: 2 } as const;

/** an evaluation's failure message is cut here: it names what the module did, never needs more */
export const maxErrorChars = 4096;
/**
 * The longest reply: a denial's messages as a JSON array (result.ts keeps messageLimits.count of
 * them and one saying how many more, each at most messageLimits.chars UTF-16 units, which JSON
 * writes in at most 6 bytes each, as \u001f), or an error message's UTF-8.
 */
export const maxReplyBytes = Math.max((messageLimits.count + 1) * (messageLimits.chars * 6 + 3) + 2, maxErrorChars * 3);
export const replyAreaBytes = 1024 * 1024;
export const initialInputBytes = 256 * 1024;

const words = 8;
const jobsAt = words;
const nowsAt = (jobsAt + maxBatch * 3) * 4;
const answersAt = nowsAt + maxBatch * 8;
const controlBytes = answersAt + maxBatch * 3 * 4;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Channel {
  readonly control: Int32Array;
  private readonly jobs: Int32Array;
  private readonly nows: BigInt64Array;
  private readonly answers: Int32Array;
  readonly replyBytes: Uint8Array;
  inputBytes: Uint8Array;

  /** New shared memory for a worker. */
  static create(): { control: SharedArrayBuffer; inputs: SharedArrayBuffer; replies: SharedArrayBuffer } {
    return { control: new SharedArrayBuffer(controlBytes), inputs: new SharedArrayBuffer(initialInputBytes), replies: new SharedArrayBuffer(replyAreaBytes) };
  }

  constructor(control: SharedArrayBuffer, inputs: SharedArrayBuffer, replies: SharedArrayBuffer) {
    this.control = new Int32Array(control, 0, words);
    this.jobs = new Int32Array(control, jobsAt * 4, maxBatch * 3);
    this.nows = new BigInt64Array(control, nowsAt, maxBatch);
    this.answers = new Int32Array(control, answersAt, maxBatch * 3);
    this.inputBytes = new Uint8Array(inputs);
    this.replyBytes = new Uint8Array(replies);
  }

  setInputs(inputs: SharedArrayBuffer): void {
    this.inputBytes = new Uint8Array(inputs);
  }

  /** The pool: writes job i's input at `offset`; the bytes it took, or undefined when it does not fit there. */
  writeJob(i: number, id: number, input: string, nowNs: bigint, offset: number): number | undefined {
    const { read, written } = encoder.encodeInto(input, this.inputBytes.subarray(offset));
    if (read < input.length) return undefined;
    this.jobs[i * 3] = id;
    this.jobs[i * 3 + 1] = offset;
    this.jobs[i * 3 + 2] = written;
    this.nows[i] = nowNs;
    return written;
  }

  /** The worker: job i (its input is a view of the shared bytes, valid while the batch runs). */
  job(i: number): { id: number; input: Uint8Array; nowNs: bigint } {
    const offset = this.jobs[i * 3 + 1]!;
    return { id: this.jobs[i * 3]!, input: this.inputBytes.subarray(offset, offset + this.jobs[i * 3 + 2]!), nowNs: this.nows[i]! };
  }

  /** The worker: writes job i's reply at `offset`; the bytes it took (there is room: see worker.ts). */
  reply(i: number, kind: number, text: string, offset: number): number {
    const { written } = encoder.encodeInto(text, this.replyBytes.subarray(offset));
    this.answers[i * 3] = kind;
    this.answers[i * 3 + 1] = offset;
    this.answers[i * 3 + 2] = written;
    return written;
  }

  /** The pool: job i's reply. */
  readReply(i: number): { kind: number; text: string } {
    const offset = this.answers[i * 3 + 1]!;
    const length = this.answers[i * 3 + 2]!;
    return { kind: this.answers[i * 3]!, text: length === 0 ? '' : decoder.decode(this.replyBytes.subarray(offset, offset + length)) };
  }
}

if (replyAreaBytes < maxReplyBytes) throw new Error('the OPA reply area must hold the longest reply');
