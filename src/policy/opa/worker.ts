/**
 * A worker of the OPA pool (pool.ts): holds every loaded policy's instance and answers one
 * request at a time, synchronously (an evaluation is a call into Wasm; while it runs, the only
 * way to stop it is to terminate this thread, which the pool does when it runs over its time).
 * It runs as .ts from src (Node's type stripping: the tests) and as .js from dist.
 *
 * A policy whose evaluation failed (a trap, its memory limit) gets a fresh instance before its
 * next evaluation: its memory may be left grown to the limit, and its heap in any state.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Outcome } from '../engine.ts';
import { EvaluationFailed, LoadRefused, OpaInstance, type HostLimits, type LoadSpec } from './host.ts';
import { decide, DecisionError } from './result.ts';

export interface LoadInfo {
  builtins: string[];
  entrypoints: string[];
}

export type Request = { seq: number } & (
  { op: 'load'; id: number; spec: LoadSpec } | { op: 'evaluate'; id: number; input: string; nowNs: bigint } | { op: 'unload'; id: number }
);

export type Reply = { seq: number } & ({ ok: true; outcome?: Outcome; info?: LoadInfo } | { ok: false; refused?: boolean; message: string });

const limits = workerData as HostLimits;
const policies = new Map<number, { spec: LoadSpec; instance: OpaInstance | undefined }>();

function handle(request: Request): Reply {
  const { seq } = request;
  if (request.op === 'unload') {
    policies.delete(request.id);
    return { seq, ok: true };
  }
  if (request.op === 'load') {
    // kept even when it fails here, so that an evaluation tries again (the pool refuses a policy only on its first load)
    const entry: { spec: LoadSpec; instance: OpaInstance | undefined } = { spec: request.spec, instance: undefined };
    policies.set(request.id, entry);
    try {
      entry.instance = OpaInstance.load(request.spec, limits);
      return { seq, ok: true, info: { builtins: [...entry.instance.builtins], entrypoints: [...entry.instance.entrypoints] } };
    } catch (err) {
      return { seq, ok: false, refused: err instanceof LoadRefused, message: (err as Error).message };
    }
  }
  const entry = policies.get(request.id);
  if (!entry) return { seq, ok: false, message: `policy #${request.id} is not loaded in this worker` };
  try {
    entry.instance ??= OpaInstance.load(entry.spec, limits);
    return { seq, ok: true, outcome: decide(entry.instance.evaluate(request.input, request.nowNs)) };
  } catch (err) {
    // a result Custody cannot read leaves the instance sound; anything else gets a new one next time
    if (!(err instanceof DecisionError)) entry.instance = undefined;
    const message = err instanceof LoadRefused ? `the policy could not be loaded again: ${err.message}` : (err as Error).message;
    return {
      seq,
      ok: false,
      message: err instanceof EvaluationFailed || err instanceof DecisionError || err instanceof LoadRefused ? message : `the policy failed: ${message}`,
    };
  }
}

parentPort?.on('message', (request: Request) => parentPort?.postMessage(handle(request)));
