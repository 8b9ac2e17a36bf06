/**
 * What an OPA decision means to Custody. An entrypoint's evaluation gives a result set,
 * `[{"result": X}]` for a defined decision and `[]` for an undefined one; X is read as
 *
 * - `true`: deny (no messages of its own: the policy's message template says why);
 * - `false`, undefined (an empty set), or an empty array: allow;
 * - an array of strings, e.g. `deny contains msg if …` with string messages: deny with them;
 * - an array of objects each with a string `msg` (conftest's violation shape): deny with the msgs;
 * - an object `{"deny": bool, "messages": [strings]}` (messages optional): as it says.
 *
 * Anything else is an error, never a guess: the service then applies the policy's failure mode.
 * A decision may carry many messages; a denial shows at most `messageLimits.count` of them,
 * each cut at `messageLimits.chars`, since they end up in an OCI error a client prints.
 */
import type { Outcome } from '../engine.ts';

export const messageLimits = { count: 100, chars: 1024 } as const;

export class DecisionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecisionError';
  }
}

const shape = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
};

function denyWith(messages: string[]): Outcome {
  const kept = messages.slice(0, messageLimits.count).map((m) => (m.length > messageLimits.chars ? `${m.slice(0, messageLimits.chars - 1)}…` : m));
  if (messages.length > messageLimits.count) kept.push(`… and ${messages.length - messageLimits.count} more`);
  return { deny: true, messages: kept };
}

/** The outcome of a result set; throws DecisionError for a result Custody cannot read. */
export function decide(resultSet: unknown): Outcome {
  if (!Array.isArray(resultSet)) throw new DecisionError(`the module returned ${shape(resultSet)}, not a result set`);
  if (resultSet.length === 0) return { deny: false };
  if (resultSet.length > 1) throw new DecisionError(`the module returned ${resultSet.length} results; an entrypoint has at most one`);
  const first: unknown = resultSet[0];
  if (!first || typeof first !== 'object' || Array.isArray(first))
    throw new DecisionError(`the module returned ${shape(first)} in its result set, not {"result": …}`);
  if (!('result' in first)) return { deny: false };
  const x = first.result;
  if (x === true) return { deny: true, messages: [] };
  if (x === false) return { deny: false };
  if (Array.isArray(x)) {
    if (x.length === 0) return { deny: false };
    if (x.every((m) => typeof m === 'string')) return denyWith(x);
    const msgs = x.map((v: unknown) => (v && typeof v === 'object' && 'msg' in v && typeof v.msg === 'string' ? v.msg : undefined));
    if (msgs.every((m) => m !== undefined)) return denyWith(msgs);
    throw new DecisionError(
      `the decision is a set holding ${shape(x.find((_, i) => msgs[i] === undefined))}: Custody reads a set of strings, or of objects with a msg string`,
    );
  }
  if (x && typeof x === 'object') {
    const extra = Object.keys(x).filter((k) => k !== 'deny' && k !== 'messages');
    if (extra.length > 0)
      throw new DecisionError(`the decision object has ${extra.map((k) => JSON.stringify(k)).join(', ')}; Custody reads only "deny" and "messages"`);
    const { deny, messages } = x as { deny?: unknown; messages?: unknown };
    if (typeof deny !== 'boolean') throw new DecisionError(`the decision object's "deny" is ${shape(deny)}, not true or false`);
    if (messages !== undefined && !(Array.isArray(messages) && messages.every((m) => typeof m === 'string'))) {
      throw new DecisionError(`the decision object's "messages" is ${shape(messages)}, not a list of strings`);
    }
    return deny ? denyWith(messages ?? []) : { deny: false };
  }
  throw new DecisionError(`the decision is ${shape(x)}: Custody reads true or false, a set of messages, or {"deny": bool, "messages": [...]} (docs/policy.md)`);
}
