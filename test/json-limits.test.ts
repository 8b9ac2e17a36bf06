/**
 * src/json-limits.ts, the check untrusted JSON passes before JSON.parse: nesting and values counted
 * outside strings in one pass that stops past its limits, and where the trust documents (SBOMs,
 * in-toto statements, envelopes) and the depth-only readers (bodies, trust files, manifests) use it.
 */
import { describe, expect, it } from 'vitest';
import { documentLimits, jsonTooCostly, maxJsonDepth, nestsDeeperThan, scanJson } from '../src/json-limits.ts';
import { parseStatement, StatementError } from '../src/trust/intoto.ts';
import { parseSbom, SbomError } from '../src/trust/sbom/index.ts';
import { parseJSON } from '../src/trust/sigstore/annotations.ts';
import { checkStatement } from '../src/trust/sigstore/statement.ts';

const MAX_JSON_DEPTH = documentLimits.depth!;
const MAX_JSON_VALUES = documentLimits.values!;
const depthOf = (text: string | Uint8Array, limit?: number) => scanJson(text, limit === undefined ? {} : { depth: limit }).depth;

describe('depth', () => {
  it('counts objects and arrays, not what strings hold', () => {
    expect(depthOf('1')).toBe(0);
    expect(depthOf('"[[[{{{"')).toBe(0);
    expect(depthOf('[]')).toBe(1);
    expect(depthOf('{"a":[{"b":[1,2]}],"c":{}}')).toBe(4);
    expect(depthOf('["\\"[[", {"k\\\\": ["]"]}]')).toBe(3);
    expect(depthOf('[[], [[]], []]')).toBe(3);
  });

  it('reads UTF-8 bytes as it reads strings', () => {
    const text = '{"név":["ü\\"[", {"😀":[[]]}]}';
    const bytes = new TextEncoder().encode(text);
    expect(scanJson(bytes)).toEqual(scanJson(text));
    expect(depthOf(text)).toBe(5);
    expect(jsonTooCostly(new TextEncoder().encode(`["\\\\",${'['.repeat(200)}${']'.repeat(200)}]`))).toBe(
      `nests too deeply (more than ${MAX_JSON_DEPTH} levels)`,
    );
    expect(jsonTooCostly(new TextEncoder().encode(`["\\"${'['.repeat(1000)}"]`))).toBeUndefined();
  });

  it('stops at the first level past the limit, wherever the text ends', () => {
    expect(scanJson(`${'['.repeat(65)}${']'.repeat(65)}`, { depth: 64 })).toEqual({ depth: 65, values: 64, exceeded: 'depth' });
    expect(depthOf(`${'['.repeat(1_000_000)}`, 64)).toBe(65);
    expect(nestsDeeperThan(`${'{"a":'.repeat(maxJsonDepth)}1${'}'.repeat(maxJsonDepth)}`)).toBe(false);
    expect(nestsDeeperThan(`${'{"a":'.repeat(maxJsonDepth + 1)}1${'}'.repeat(maxJsonDepth + 1)}`)).toBe(true);
    expect(nestsDeeperThan('[[[]]]', 2)).toBe(true);
  });
});

const IN_TOTO = 'application/vnd.in-toto+json';
const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
const subject = `sha256:${'a'.repeat(64)}`;
const statement = (predicate: string) =>
  `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"${'a'.repeat(64)}"}}],"predicateType":"https://cyclonedx.org/bom","predicate":${predicate}}`;
const tooDeep = 'nests too deeply (more than 128 levels)';
const tooMany = `holds too many values (more than ${MAX_JSON_VALUES} JSON values)`;

describe('jsonTooCostly', () => {
  it('counts nesting outside strings, as JSON.parse nests', () => {
    expect(MAX_JSON_DEPTH).toBe(128);
    expect(jsonTooCostly(deep(128))).toBeUndefined();
    expect(jsonTooCostly(deep(129))).toBe(tooDeep);
    expect(jsonTooCostly(`${'{"a":'.repeat(129)}0${'}'.repeat(129)}`)).toBe(tooDeep);
    expect(jsonTooCostly(`{"a":"${'['.repeat(1000)}"}`)).toBeUndefined();
    // \" does not end a string, \\" does
    expect(jsonTooCostly(`["\\"${'['.repeat(1000)}"]`)).toBeUndefined();
    expect(jsonTooCostly(`["\\\\",${deep(200)}]`)).toBe(tooDeep);
    expect(jsonTooCostly(`["\\\\\\"${'['.repeat(200)}"]`)).toBeUndefined();
    // JSON.parse stops at an unterminated string or a stray closer, and so does the count
    expect(jsonTooCostly(`["${'['.repeat(200)}`)).toBeUndefined();
    expect(jsonTooCostly(`[]]${deep(200)}`)).toBeUndefined();
    expect(() => void JSON.parse(`[]]${deep(200)}`)).toThrow(SyntaxError);
    expect(jsonTooCostly(`[[]]${deep(200)}`)).toBe(tooDeep);
  });

  it('counts values, commas and brackets, outside strings', () => {
    expect(jsonTooCostly('[0,0,0,0]', { depth: 128, values: 3 })).toBe('holds too many values (more than 3 JSON values)');
    expect(jsonTooCostly('[0,0,0]', { depth: 128, values: 3 })).toBeUndefined();
    expect(jsonTooCostly('[[],[]]', { depth: 128, values: 3 })).toBe('holds too many values (more than 3 JSON values)');
    expect(jsonTooCostly('["a,b,c,d,[e]"]', { depth: 128, values: 3 })).toBeUndefined();
    // 64 MiB of [] is 21 million arrays for JSON.parse to make
    expect(jsonTooCostly(`[${'[],'.repeat(MAX_JSON_VALUES / 2)}[]]`)).toBe(tooMany);
  });

  it('a real SBOM at the 64 MiB limit is well within both', () => {
    const component = (i: number) => ({
      type: 'library',
      'bom-ref': `pkg:npm/p${i}@1.0.0`,
      name: `p${i}`,
      version: '1.0.0',
      purl: `pkg:npm/p${i}@1.0.0`,
      licenses: [{ license: { id: 'MIT' } }],
      hashes: [{ alg: 'SHA-256', content: 'ab'.repeat(32) }],
    });
    const sample = JSON.stringify({
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      components: Array.from({ length: 1000 }, (_, i) => component(i)),
      dependencies: Array.from({ length: 1000 }, (_, i) => ({ ref: `pkg:npm/p${i}@1.0.0`, dependsOn: [`pkg:npm/p${i + 1}@1.0.0`] })),
    });
    const commas = sample.split(',').length - 1;
    // as dense as this sample, 64 MiB would hold fewer than half the values allowed
    expect((commas / sample.length) * 64 * 1024 * 1024).toBeLessThan(MAX_JSON_VALUES / 2);
    expect(jsonTooCostly(sample)).toBeUndefined();
  });
});

describe('where it applies', () => {
  it('SBOMs: the reason says what is wrong', () => {
    let thrown: unknown;
    try {
      parseSbom(new TextEncoder().encode(`{"bomFormat":"CycloneDX","specVersion":"1.6","x":[${'0,'.repeat(MAX_JSON_VALUES)}0]}`));
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(SbomError);
    expect((thrown as Error).message).toBe(`the document ${tooMany}`);
  });

  it('parseStatement refuses a payload nesting too deeply, before parsing it', () => {
    const payload = new TextEncoder().encode(statement(deep(1_000_000)));
    let thrown: unknown;
    try {
      parseStatement({ payloadType: IN_TOTO, payload });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(StatementError);
    expect((thrown as Error).message).toBe(`the payload ${tooDeep}`);
    expect(
      parseStatement({ payloadType: IN_TOTO, payload: new TextEncoder().encode(statement('{"bomFormat":"CycloneDX","specVersion":"1.6"}')) }).sbom,
    ).toMatchObject({ format: 'cyclonedx' });
  });

  it('the signature path says why a verified payload is refused; envelopes nesting too deeply are not JSON', () => {
    expect(checkStatement(IN_TOTO, new TextEncoder().encode(statement(deep(1_000_000))), subject)).toEqual({
      code: 'limit_exceeded',
      reason: `the signed payload ${tooDeep}`,
    });
    expect(checkStatement(IN_TOTO, new TextEncoder().encode(statement('{}')), subject)).toEqual({ predicateType: 'https://cyclonedx.org/bom' });
    expect(parseJSON(`{"payloadType":"x","payload":"","signatures":[],"x":${deep(1_000_000)}}`)).toBeUndefined();
    expect(parseJSON('{"payloadType":"x"}')).toEqual({ payloadType: 'x' });
  });
});
