/**
 * What every policy engine (CEL, OPA Wasm) gives the policy service: a policy compiled once,
 * when it is saved or loaded, then evaluated against an input document per request. The same
 * decision cases run through every engine (test/suites/policy-engine.ts).
 */
import type { PolicyInput, Section } from './input-schema.ts';

/** A policy's answer: deny, with the policy's own messages (OPA violation sets), or not. */
export type Outcome = { deny: false } | { deny: true; messages: string[] };

export interface CompiledPolicy {
  /** the input sections the policy reads (all of them when the engine cannot tell) */
  readonly reads: ReadonlySet<Section>;
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
