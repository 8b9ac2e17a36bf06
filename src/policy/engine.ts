/**
 * What every policy engine (CEL, OPA Wasm) gives the policy service: a policy compiled once,
 * when it is saved or loaded, then evaluated against an input document per request. The same
 * decision cases run through every engine (test/suites/policy-engine.ts).
 */
import type { PolicyInput, Section } from './input-schema.ts';

/** A policy's answer: deny, with the policy's own messages (OPA violation sets), or not. */
export type Outcome = { deny: false } | { deny: true; messages: string[] };

/** The fields of the input's request section, as a decision's outcome may depend on them. */
export const requestFields = [
  'repository',
  'identity.name',
  'identity.kind',
  'identity.admin',
  'identity.teams',
  'identity.roles',
  'tokenKind',
  'userAgent',
  'sourceAddress',
  'time',
] as const;
export type RequestField = (typeof requestFields)[number];

/**
 * What of the request section a pure policy's outcome depends on: the fields it reads, and how
 * finely it reads `request.time`, in ms (1: the time as it is; 3,600,000: only its UTC hour, as
 * `timestamp(request.time).getHours()` does). Two inputs with the same other sections that agree
 * on these fields, and whose times fall in the same bucket, get the same outcome.
 */
export interface RequestReads {
  readonly fields: ReadonlySet<RequestField>;
  readonly timeBucketMs: number;
}

export interface CompiledPolicy {
  /** the input sections the policy reads (all of them when the engine cannot tell) */
  readonly reads: ReadonlySet<Section>;
  /**
   * Set only by an engine whose outcome is a function of the input alone (CEL: no clock, no
   * randomness, no effects) and that knows what of the request it reads; the policy service then
   * reuses an outcome for a request that agrees on all of it (service.ts, Memo).
   */
  readonly request?: RequestReads;
  /** Throws when the policy fails (a trap, a time or memory limit): the service applies its failure mode. */
  evaluate(input: PolicyInput): Outcome | Promise<Outcome>;
  /** frees what the engine holds for it (a Wasm instance in the worker pool) */
  close?(): Promise<void>;
}

/** A policy refused when it is saved: the engine's error, and where in the source it is. */
export class PolicyRejected extends Error {
  readonly position: { line: number; column: number } | undefined;
  constructor(message: string, position?: { line: number; column: number }) {
    super(position ? `${message} (line ${position.line}, column ${position.column})` : message);
    this.name = 'PolicyRejected';
    this.position = position;
  }
}
