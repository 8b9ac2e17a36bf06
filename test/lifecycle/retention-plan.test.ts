/** Retention rules evaluated on one repository, as pure functions: the rule table, reasons, order, and what a rule set refuses. */
import { describe, expect, it } from 'vitest';
import { effectiveRules, planRepository } from '../../src/lifecycle/retention-plan.ts';
import { matches, readRules, RulesRejected } from '../../src/lifecycle/retention-rules.ts';
import { attachedTag, fixtureContents, fixtureDigest, fixtureManifests, now, ruleCases } from './retention-fixture.ts';

const nameOf = new Map(fixtureManifests.map((m) => [fixtureDigest(m.name), m.name]));

function plan(rules: string, vetoes: { tags?: string[]; manifests?: string[] } = {}) {
  const effective = effectiveRules({ document: readRules(rules), name: 'team' }, undefined);
  if (!effective) throw new Error('no rules');
  return planRepository({
    contents: fixtureContents(),
    rules: effective,
    now,
    vetoes: { tags: new Set(vetoes.tags ?? []), manifests: new Set((vetoes.manifests ?? []).map(fixtureDigest)) },
  });
}

describe('the rule table', () => {
  for (const c of ruleCases) {
    it(c.name, () => {
      const p = plan(c.rules, c.vetoes);
      expect(p.tags.map((t) => t.tag)).toEqual(c.tags);
      expect(p.manifests.map((m) => nameOf.get(m.digest)).sort()).toEqual(c.manifests);
    });
  }
});

describe('a plan', () => {
  it('says why each goes: the rule, and what dragged a referrer or child along', () => {
    const p = plan('keep: { newest: 3 }');
    const tag = (name: string) => p.tags.find((t) => t.tag === name);
    const manifest = (name: string) => p.manifests.find((m) => m.digest === fixtureDigest(name));
    // latest and v2.0.0 were pushed in the same millisecond: the later name counts as newer
    expect(tag('v2.0.0')).toMatchObject({ rule: 'keep', reason: 'not kept by the rules of namespace team: newest 3: the 4th newest' });
    expect(tag('latest')?.reason).toContain('the 5th newest');
    expect(p.tags.find((t) => t.rule === 'attached')?.reason).toBe(`attached to ${fixtureDigest('img2')}, which is deleted`);
    expect(manifest('img1')).toMatchObject({ rule: 'tags', reason: 'its tags are deleted (v1.0.0)', dragged: [fixtureDigest('sig1')] });
    expect(manifest('sig1')).toMatchObject({ rule: 'referrer', draggedBy: fixtureDigest('img1'), dragged: [fixtureDigest('att1')] });
    expect(manifest('att1')).toMatchObject({ rule: 'referrer', draggedBy: fixtureDigest('sig1') });
    expect(manifest('c1')).toMatchObject({ rule: 'child', draggedBy: fixtureDigest('idx') });
    expect(manifest('legsig2')).toMatchObject({ rule: 'attached', draggedBy: fixtureDigest('img2') });
    // c2 is listed by idx too, but idx2 is kept and needs it
    expect(manifest('c2')).toBeUndefined();
    expect(p.kept).toEqual({ tags: 3, manifests: 8 });
  });

  it('orders deletions so that an index and a subject go before what they drag along', () => {
    const order = plan('keep: { newest: 3 }').manifests.map((m) => nameOf.get(m.digest));
    const at = (n: string) => order.indexOf(n);
    expect(at('idx')).toBeLessThan(at('c1'));
    expect(at('img1')).toBeLessThan(at('sig1'));
    expect(at('sig1')).toBeLessThan(at('att1'));
  });

  it('explains a tag kept by nothing in an any, and an untagged manifest by its age', () => {
    const any = plan('keep: { any: [ { tag: "v*" }, { pulledWithin: 7d } ] }');
    expect(any.tags.find((t) => t.tag === 'nightly-1')?.reason).toBe(
      'not kept by the rules of namespace team: none of: tag v*: does not match; pulled within 7d: never pulled',
    );
    const untagged = plan('deleteUntagged: { olderThan: 14d }');
    expect(untagged.manifests.find((m) => m.digest === fixtureDigest('orphan'))?.reason).toBe(
      'untagged, pushed 2026-05-02T00:00:00.000Z: older than 14d (the rules of namespace team)',
    );
  });

  it("uses a repository's own rules over its namespace's, and protects what either protects", () => {
    const namespace = { document: readRules('keep: { newest: 1 }\nprotect: [v1.0.0]'), name: 'team' };
    const repository = { document: readRules('keep: { tag: "nightly-*" }\nprotect: [latest]'), name: 'team/app' };
    const rules = effectiveRules(namespace, repository);
    expect(rules?.from).toBe('repository team/app');
    const p = planRepository({ contents: fixtureContents(), rules: rules!, now });
    expect(p.tags.map((t) => t.tag)).toEqual(['multi', 'multi-new', attachedTag, 'tmp-abc', 'v1.1.0', 'v2.0.0']);
    expect(effectiveRules(undefined, undefined)).toBeUndefined();
  });
});

describe('rule documents', () => {
  it('reads YAML and JSON into one normalized shape', () => {
    const yaml = readRules(
      'keep:\n  any:\n    - newest: 3\n      among: "v*"\n    - not: { tag: { regex: "tmp-.*" } }\nprotect: [latest]\ndeleteUntagged: { olderThan: 2w }',
    );
    const json = readRules({
      keep: { any: [{ newest: 3, among: { glob: 'v*' } }, { not: { tag: { regex: 'tmp-.*' } } }] },
      protect: ['latest'],
      deleteUntagged: { olderThan: '2w' },
    });
    expect(json).toEqual(yaml);
    expect(yaml.protect).toEqual([{ glob: 'latest' }]);
  });

  const refused: [string, string][] = [
    ['keep: { newst: 3 }', 'keep: a rule is one of newest, tag, pushedWithin, pulledWithin, all, any, not; got "newst"'],
    ['keep: { any: [ { newest: 0 } ] }', 'keep.any[0].newest: how many tags to keep'],
    ['keep: { any: [] }', 'keep.any: a list of one or more rules'],
    ['keep: { tag: { regex: "(a" } }', 'keep.tag: not a valid RE2 expression'],
    ['keep: { tag: { regex: "(a)\\\\1" } }', 'keep.tag: not a valid RE2 expression'],
    ['keep: { tag: { regex: "(?=a)" } }', 'keep.tag: not a valid RE2 expression'],
    ['keep: { pushedWithin: 30 days }', 'keep.pushedWithin: a duration is a whole number and s, m, h, d or w'],
    ['keep: { tag: v1, newest: 2 }', 'keep: a rule is one of'],
    ['kept: {}', 'unknown field kept'],
    ['protect: [""]', 'protect[0]: a pattern is not empty'],
    ['deleteUntagged: { olderThan: soon }', 'deleteUntagged.olderThan: a duration'],
    ['[1, 2]', 'a rule set is an object'],
    ['keep: [unclosed', 'the rules are not valid YAML or JSON'],
    ['a: &x 1\nb: *x', 'the rules are not valid YAML or JSON'],
    [`keep: ${'{ not: '.repeat(20)}{ tag: x }${' }'.repeat(20)}`, 'rules nest at most 16 levels deep'],
  ];
  for (const [source, message] of refused) {
    it(`refuses ${JSON.stringify(source.slice(0, 40))}`, () => {
      expect(() => readRules(source)).toThrow(RulesRejected);
      expect(() => readRules(source)).toThrow(message);
    });
  }

  it('matches globs and regular expressions against the whole tag, in linear time', () => {
    expect(matches({ glob: 'v1.*' }, 'v1.2')).toBe(true);
    expect(matches({ glob: 'v1.*' }, 'v1x2')).toBe(false); // the dot is a dot
    expect(matches({ glob: 'v?' }, 'v1')).toBe(true);
    expect(matches({ glob: 'v?' }, 'v12')).toBe(false);
    expect(matches({ regex: 'v[0-9]+' }, 'v12')).toBe(true);
    expect(matches({ regex: 'v[0-9]+' }, 'xv12')).toBe(false); // anchored
    // what would take a backtracking engine longer than the age of the universe
    const started = performance.now();
    expect(matches({ regex: '(a+)+$' }, `${'a'.repeat(5000)}!`)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
