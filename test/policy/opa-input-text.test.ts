/**
 * The input text OPA modules are given (src/policy/opa/input-text.ts) is JSON.stringify's, byte
 * for byte, while the cached sections' text is reused between inputs that share them.
 */
import { describe, expect, it } from 'vitest';
import type { PolicyInput } from '../../src/policy/input-schema.ts';
import { inputText } from '../../src/policy/opa/input-text.ts';
import { sampleInput } from '../suites/policy-engine.ts';

describe('the input text of an OPA evaluation', () => {
  it('is the text JSON.stringify gives, for inputs of every shape', () => {
    const odd = sampleInput({
      artifact: { labels: { __proto__: 'x', constructor: 'y', 'ü "quoted" \\ \n': '\u2028' }, annotations: { '': '' } },
      ns: { labels: { team: 'payments' } },
    });
    const inputs: unknown[] = [
      sampleInput(),
      odd,
      // recorded inputs and test inputs may lack sections, carry others, or have them in another order
      { request: sampleInput().request, action: 'pull', version: 'custody.policy.input/v1' },
      { ...sampleInput(), extra: [1, 'two', null], artifact: null },
      { ...sampleInput(), trust: undefined, ns: 'not an object' },
      {},
    ];
    for (const input of inputs) expect(inputText(input as PolicyInput)).toBe(JSON.stringify(input));
  });

  it('stays right for inputs that share cached sections and differ in the request', () => {
    const base = sampleInput({ action: 'pull' });
    for (let i = 0; i < 5; i++) {
      const input: PolicyInput = {
        ...base,
        request: { ...base.request, time: `2026-12-02T12:00:0${i}.000Z`, identity: { ...base.request.identity, name: `user-${i}` } },
      };
      expect(inputText(input)).toBe(JSON.stringify(input));
    }
    // the same artifact object, now in another input beside another trust section
    const other = { ...base, trust: { ...base.trust, signatures: [{ format: 'cosign', signer: 's', issuer: '', verified: true, code: '' }] } };
    expect(inputText(other)).toBe(JSON.stringify(other));
  });
});
