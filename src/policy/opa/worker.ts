/**
 * A worker of the OPA pool (pool.ts): holds every loaded policy's instance and answers batches
 * of requests, one request at a time, synchronously (an evaluation is a call into Wasm; while it
 * runs, the only way to stop it is to terminate this thread, which the pool does when it runs
 * over its time). It runs as .ts from src (Node's type stripping: the tests) and as .js from dist.
 *
 * Evaluations come and go through memory shared with the pool (channel.ts), not as messages:
 * the pool writes each input's UTF-8 bytes and wakes this thread with Atomics.notify, and this
 * thread writes the decisions back and wakes the pool the same way. A message costs both
 * threads several times what the evaluation of a small policy does (serializing, the port's
 * queue, its event), and the pool sends one per batch at least. Loads and unloads, which carry a
 * compiled module, still come as messages on a port of their own, read here with
 * receiveMessageOnPort: this thread waits in Atomics.wait and never returns to its event loop.
 *
 * A policy whose evaluation failed (a trap, its memory limit) gets a fresh instance before its
 * next evaluation: its memory may be left grown to the limit, and its heap in any state.
 */
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import type { Outcome } from '../engine.ts';
import { Channel, maxErrorChars, maxReplyBytes, ReplyKind, Word } from './channel.ts';
import { EvaluationFailed, LoadRefused, OpaInstance, type HostLimits, type LoadSpec } from './host.ts';
import { decide, DecisionError } from './result.ts';

export interface LoadInfo {
  builtins: string[];
  entrypoints: string[];
}

/** What comes as a message: loading and unloading a policy. */
export type Request = { op: 'load'; id: number; spec: LoadSpec } | { op: 'unload'; id: number };

export type Reply = { ok: true; outcome?: Outcome; info?: LoadInfo } | { ok: false; refused?: boolean; message: string };

/** On the port: a batch of loads and unloads, or a larger area for the inputs of the batches to come. */
export type PortMessage = { seq: number; requests: Request[] } | { inputs: SharedArrayBuffer };

/** What the worker posts back for a batch of loads and unloads: a reply for each request it claimed. */
export interface BatchReply {
  seq: number;
  replies: Reply[];
}

export interface WorkerSetup {
  limits: HostLimits;
  /** the shared memory (channel.ts) */
  control: SharedArrayBuffer;
  inputs: SharedArrayBuffer;
  replies: SharedArrayBuffer;
  port: MessagePort;
}

const setup = workerData as WorkerSetup;
const { limits, port } = setup;
const channel = new Channel(setup.control, setup.inputs, setup.replies);
const policies = new Map<number, { spec: LoadSpec; instance: OpaInstance | undefined }>();

function handle(request: Request): Reply {
  if (request.op === 'unload') {
    policies.delete(request.id);
    return { ok: true };
  }
  // kept even when it fails here, so that an evaluation tries again (the pool refuses a policy only on its first load)
  const entry: { spec: LoadSpec; instance: OpaInstance | undefined } = { spec: request.spec, instance: undefined };
  policies.set(request.id, entry);
  try {
    entry.instance = OpaInstance.load(request.spec, limits);
    return { ok: true, info: { builtins: [...entry.instance.builtins], entrypoints: [...entry.instance.entrypoints] } };
  } catch (err) {
    return { ok: false, refused: err instanceof LoadRefused, message: (err as Error).message };
  }
}

function evaluate(id: number, input: Uint8Array, nowNs: bigint): Outcome | string {
  const entry = policies.get(id);
  if (!entry) return `policy #${id} is not loaded in this worker`;
  try {
    entry.instance ??= OpaInstance.load(entry.spec, limits);
    return decide(entry.instance.evaluate(input, nowNs));
  } catch (err) {
    // a result Custody cannot read leaves the instance sound; anything else gets a new one next time
    if (!(err instanceof DecisionError)) entry.instance = undefined;
    const message = err instanceof LoadRefused ? `the policy could not be loaded again: ${err.message}` : (err as Error).message;
    return err instanceof EvaluationFailed || err instanceof DecisionError || err instanceof LoadRefused ? message : `the policy failed: ${message}`;
  }
}

/**
 * The next request of the batch to run, or undefined when there is none left: claimed in the
 * shared claims word first, so the pool knows which one is running and takes back only what
 * was not claimed.
 */
function claim(): number | undefined {
  for (;;) {
    const word = Atomics.load(channel.control, Word.claims);
    const next = word & 0xffff;
    if (next >= word >>> 16) return undefined;
    // lost only to the pool taking the rest back: read the word again
    if (Atomics.compareExchange(channel.control, Word.claims, word, word + 1) === word) return next;
  }
}

function runMessages(): void {
  for (let received = receiveMessageOnPort(port); received; received = receiveMessageOnPort(port)) {
    const message = received.message as PortMessage;
    if ('inputs' in message) {
      channel.setInputs(message.inputs);
      continue;
    }
    const replies: Reply[] = [];
    for (let i = claim(); i !== undefined; i = claim()) replies.push(handle(message.requests[i]!));
    Atomics.store(channel.control, Word.done, message.seq);
    port.postMessage({ seq: message.seq, replies } satisfies BatchReply);
  }
}

function runEvaluations(seq: number): void {
  let written = 0;
  for (;;) {
    // Replies go to a fixed area; before the next claim there must be room for the largest one.
    // What does not fit is given back (the claims word's end lowered to what was claimed) and
    // the pool sends it again in its next batch.
    if (channel.replyBytes.length - written < maxReplyBytes) {
      const word = Atomics.load(channel.control, Word.claims);
      if (Atomics.compareExchange(channel.control, Word.claims, word, ((word & 0xffff) << 16) | (word & 0xffff)) !== word) continue;
    }
    const i = claim();
    if (i === undefined) break;
    const { id, input, nowNs } = channel.job(i);
    const result = evaluate(id, input, nowNs);
    if (typeof result === 'string') {
      written += channel.reply(i, ReplyKind.error, result.length > maxErrorChars ? `${result.slice(0, maxErrorChars - 1)}…` : result, written);
    } else if (result.deny) written += channel.reply(i, ReplyKind.deny, JSON.stringify(result.messages), written);
    else written += channel.reply(i, ReplyKind.allow, '', written);
  }
  Atomics.store(channel.control, Word.done, seq);
  Atomics.notify(channel.control, Word.done);
}

// The loop this thread lives in: messages first (a load comes before the evaluations that need
// it), then the batch of evaluations if a new one was posted, then sleep until woken.
let lastBatch = Atomics.load(channel.control, Word.batch);
for (;;) {
  const wake = Atomics.load(channel.control, Word.wake);
  runMessages();
  const batch = Atomics.load(channel.control, Word.batch);
  if (batch !== lastBatch) {
    lastBatch = batch;
    runEvaluations(batch);
    continue;
  }
  Atomics.wait(channel.control, Word.wake, wake);
}
