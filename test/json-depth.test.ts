/** src/json-depth.ts: nesting counted outside strings, in one pass that stops past the limit. */
import { describe, expect, it } from 'vitest';
import { jsonDepth, maxJsonDepth, nestsDeeperThan } from '../src/json-depth.ts';

describe('jsonDepth', () => {
  it('counts objects and arrays, not what strings hold', () => {
    expect(jsonDepth('1')).toBe(0);
    expect(jsonDepth('"[[[{{{"')).toBe(0);
    expect(jsonDepth('[]')).toBe(1);
    expect(jsonDepth('{"a":[{"b":[1,2]}],"c":{}}')).toBe(4);
    expect(jsonDepth('["\\"[[", {"k\\\\": ["]"]}]')).toBe(3);
    expect(jsonDepth('[[], [[]], []]')).toBe(3);
  });

  it('reads UTF-8 bytes as it reads strings', () => {
    const text = '{"név":["ü\\"[", {"😀":[[]]}]}';
    expect(jsonDepth(new TextEncoder().encode(text))).toBe(jsonDepth(text));
    expect(jsonDepth(text)).toBe(5);
  });

  it('stops at the first level past the limit, wherever the text ends', () => {
    expect(jsonDepth(`${'['.repeat(65)}${']'.repeat(65)}`, 64)).toBe(65);
    expect(jsonDepth(`${'['.repeat(1_000_000)}`, 64)).toBe(65);
    expect(nestsDeeperThan(`${'{"a":'.repeat(maxJsonDepth)}1${'}'.repeat(maxJsonDepth)}`)).toBe(false);
    expect(nestsDeeperThan(`${'{"a":'.repeat(maxJsonDepth + 1)}1${'}'.repeat(maxJsonDepth + 1)}`)).toBe(true);
    expect(nestsDeeperThan('[[[]]]', 2)).toBe(true);
  });
});
