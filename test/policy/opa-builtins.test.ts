/** The host built-ins OPA Wasm modules may call, and what a decision's result means. */
import { describe, expect, it } from 'vitest';
import { BuiltinError, builtins, parseRfc3339Ns, sprintfLimits, type BuiltinContext } from '../../src/policy/opa/builtins.ts';
import { decide, DecisionError, messageLimits } from '../../src/policy/opa/result.ts';

const ctx: BuiltinContext = { nowNs: 1_796_212_800_123_456_789n };
const call = (name: string, ...args: unknown[]) => builtins[name]!(ctx, ...args);

describe('OPA host built-ins', () => {
  it('time.now_ns is the time it is given (the request time), exactly', () => {
    expect(call('time.now_ns')).toBe(1_796_212_800_123_456_789n);
  });

  it('time.parse_rfc3339_ns reads zones and fractions to the nanosecond, and refuses what is not a time', () => {
    expect(call('time.parse_rfc3339_ns', '2026-12-02T12:00:00Z')).toBe(1_796_212_800_000_000_000n);
    expect(call('time.parse_rfc3339_ns', '2026-12-02T13:30:00.000000001+01:30')).toBe(1_796_212_800_000_000_001n);
    // the year 50, not 1950 (Date.UTC's reading of two-digit years)
    expect(parseRfc3339Ns('0050-01-01T00:00:00Z')).toBe(-60589296000000n * 1_000_000n);
    for (const bad of ['2026-02-31T00:00:00Z', '2026-12-02T12:60:00Z', '2026-12-02 12:00:00Z', '2026-12-02T12:00:00', 'yesterday']) {
      expect(() => call('time.parse_rfc3339_ns', bad), bad).toThrow(BuiltinError);
    }
  });

  it('time.date, time.clock and time.weekday read nanoseconds in UTC or a named zone', () => {
    const ns = 1_796_212_800_000_000_000; // 2026-12-02T12:00:00Z, a Wednesday
    expect(call('time.date', ns)).toEqual([2026, 12, 2]);
    expect(call('time.clock', ns)).toEqual([12, 0, 0]);
    expect(call('time.weekday', ns)).toBe('Wednesday');
    expect(call('time.clock', [ns, 'Asia/Tokyo'])).toEqual([21, 0, 0]);
    expect(call('time.date', [ns - 13 * 3600e9, 'America/New_York'])).toEqual([2026, 12, 1]);
    expect(() => call('time.date', [ns, 'Mars/Olympus_Mons'])).toThrow(/unknown timezone/);
    expect(() => call('time.clock', 'noon')).toThrow(BuiltinError);
  });

  it('sprintf formats as Go does for the verbs policies use', () => {
    expect(call('sprintf', '%s pushed %d layers to %v', ['alice', 3, 'team/app'])).toBe('alice pushed 3 layers to team/app');
    expect(call('sprintf', '%q %t %5.2f|%-4d|%04d %x %%', ['a"b', true, 3.14159, 7, 42, 255])).toBe('"a\\"b" true  3.14|7   |0042 ff %');
    expect(call('sprintf', 'labels %v, list %v', [{ team: 'a' }, ['x', 1]])).toBe('labels {"team": "a"}, list ["x", 1]');
    expect(call('sprintf', '%d %s', [1.5])).toBe('%!d(float64=1.5) %!s(MISSING)');
    expect(call('sprintf', 'at %d ns', [1_796_212_800_123_456_789n])).toBe('at 1796212800123456789 ns');
    expect(() => call('sprintf', 'x', 'not a list')).toThrow(BuiltinError);
  });

  it('sprintf refuses widths and results past its limits instead of allocating them', () => {
    expect(() => call('sprintf', '%400000000d', [1])).toThrow(/width or precision over/);
    expect(() => call('sprintf', '%s%s%s', ['x'.repeat(30_000), 'x'.repeat(30_000), 'x'.repeat(30_000)])).toThrow(/longer than/);
    expect((call('sprintf', `%${sprintfLimits.width}d`, [1]) as string).length).toBe(sprintfLimits.width);
  });

  it('semver.is_valid and semver.compare follow SemVer 2.0 precedence', () => {
    expect(call('semver.is_valid', '1.2.3-rc.1+build.5')).toBe(true);
    expect(call('semver.is_valid', 'v1.2.3')).toBe(false);
    expect(call('semver.is_valid', 7)).toBe(false);
    const order = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.10.0'];
    for (let i = 0; i + 1 < order.length; i++) {
      expect(call('semver.compare', order[i], order[i + 1]), `${order[i]} < ${order[i + 1]}`).toBe(-1);
      expect(call('semver.compare', order[i + 1], order[i])).toBe(1);
    }
    expect(call('semver.compare', '1.0.0+a', '1.0.0+b')).toBe(0);
    expect(() => call('semver.compare', '1.0', '1.0.0')).toThrow(/not a valid SemVer/);
  });
});

describe('what an OPA decision means', () => {
  it('reads booleans, undefined and empty sets', () => {
    expect(decide([{ result: true }])).toEqual({ deny: true, messages: [] });
    expect(decide([{ result: false }])).toEqual({ deny: false });
    expect(decide([])).toEqual({ deny: false });
    expect(decide([{}])).toEqual({ deny: false });
    expect(decide([{ result: [] }])).toEqual({ deny: false });
  });

  it('reads violation sets of strings and of objects with a msg, and the deny object', () => {
    expect(decide([{ result: ['a', 'b'] }])).toEqual({ deny: true, messages: ['a', 'b'] });
    expect(decide([{ result: [{ msg: 'a', details: {} }, { msg: 'b' }] }])).toEqual({ deny: true, messages: ['a', 'b'] });
    expect(decide([{ result: { deny: true, messages: ['m'] } }])).toEqual({ deny: true, messages: ['m'] });
    expect(decide([{ result: { deny: true } }])).toEqual({ deny: true, messages: [] });
    expect(decide([{ result: { deny: false, messages: ['ignored'] } }])).toEqual({ deny: false });
  });

  it('refuses what it cannot read rather than guess', () => {
    for (const bad of [
      [{ result: 42 }],
      [{ result: 'deny' }],
      [{ result: null }],
      [{ result: ['a', 1] }],
      [{ result: [{ message: 'typo' }] }],
      [{ result: { deny: 'yes' } }],
      [{ result: { deny: true, message: ['typo'] } }],
      [{ result: { deny: true, messages: 'one' } }],
      [{ result: true }, { result: false }],
      { result: true },
      [7],
    ]) {
      expect(() => decide(bad), JSON.stringify(bad)).toThrow(DecisionError);
    }
  });

  it('keeps at most messageLimits.count messages, each cut at messageLimits.chars', () => {
    const outcome = decide([{ result: Array.from({ length: 150 }, (_, i) => `${i}:${'x'.repeat(2000)}`) }]);
    expect(outcome.deny).toBe(true);
    const messages = outcome.deny ? outcome.messages : [];
    expect(messages).toHaveLength(messageLimits.count + 1);
    expect(messages.at(-1)).toBe('… and 50 more');
    expect(messages[0]!.length).toBe(messageLimits.chars);
  });
});
