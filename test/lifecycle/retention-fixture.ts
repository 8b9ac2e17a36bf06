/**
 * One repository to judge retention rules on, and the table of rule sets with what each keeps
 * and deletes there. The plan's unit test reads it as RepositoryContents; the run test pushes the
 * same repository into a real store and checks that a dry run and a real run give this answer.
 */
import type { RepositoryContents } from '../../src/meta/retention.ts';

export const now = Date.parse('2026-06-01T00:00:00Z');
const day = 86_400_000;
export const daysAgo = (n: number) => now - n * day;

/** Stable fake digests, by name (hex, so that attached tags can name them). */
const hex = (name: string) => {
  let h = '';
  for (const c of name) h += c.charCodeAt(0).toString(16).padStart(2, '0');
  return h.padEnd(64, '0').slice(0, 64);
};
export const fixtureDigest = (name: string) => `sha256:${hex(name)}`;

export interface FixtureManifest {
  name: string;
  age: number;
  subject?: string;
  /** the manifests an index lists, by name */
  children?: string[];
}

/** Manifests oldest first (an index after its children, a referrer after its subject). */
export const fixtureManifests: FixtureManifest[] = [
  { name: 'img1', age: 100 },
  { name: 'sig1', age: 100, subject: 'img1' },
  { name: 'att1', age: 100, subject: 'sig1' },
  { name: 'c1', age: 60 },
  { name: 'c2', age: 60 },
  { name: 'idx', age: 60, children: ['c1', 'c2'] },
  { name: 'img2', age: 50 },
  { name: 'legsig2', age: 50 },
  { name: 'img5', age: 40 },
  { name: 'orphan', age: 30 },
  { name: 'dangling', age: 20, subject: 'elsewhere' },
  { name: 'img3', age: 10 },
  { name: 'sig3', age: 10, subject: 'img3' },
  { name: 'c3', age: 5 },
  { name: 'idx2', age: 5, children: ['c2', 'c3'] },
  { name: 'img6', age: 3 },
  { name: 'img7', age: 1 },
  { name: 'young', age: 1 },
];

/** Tags oldest first: name, manifest, age in days. */
export const fixtureTags: [string, string, number][] = [
  ['v1.0.0', 'img1', 100],
  ['multi', 'idx', 60],
  ['v1.1.0', 'img2', 50],
  [`sha256-${hex('img2')}.sig`, 'legsig2', 50],
  ['nightly-1', 'img5', 40],
  ['v2.0.0', 'img3', 10],
  ['latest', 'img3', 10],
  ['multi-new', 'idx2', 5],
  ['nightly-2', 'img6', 3],
  ['tmp-abc', 'img7', 1],
];

export const attachedTag = `sha256-${hex('img2')}.sig`;

/** img1 was pulled two days ago; nothing else ever. */
export const fixturePulls: [string, number][] = [['img1', 2]];

export function fixtureContents(): RepositoryContents {
  return {
    tags: fixtureTags.map(([name, m, age]) => ({ name, digest: fixtureDigest(m), updatedAt: daysAgo(age) })),
    manifests: fixtureManifests.map((m) => ({
      digest: fixtureDigest(m.name),
      mediaType: m.children ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json',
      ...(m.subject ? { subject: fixtureDigest(m.subject) } : {}),
      size: 100,
      createdAt: daysAgo(m.age),
    })),
    children: fixtureManifests.flatMap((m) => (m.children ?? []).map((c) => ({ parent: fixtureDigest(m.name), child: fixtureDigest(c) }))),
    pulls: fixturePulls.map(([m, age]) => ({ digest: fixtureDigest(m), lastPulledAt: daysAgo(age), count: 3 })),
  };
}

export interface RuleCase {
  name: string;
  rules: string;
  vetoes?: { tags?: string[]; manifests?: string[] };
  /** tags deleted, sorted */
  tags: string[];
  /** manifests deleted, by fixture name, sorted */
  manifests: string[];
}

const allOrdinary = ['latest', 'multi', 'multi-new', 'nightly-1', 'nightly-2', 'tmp-abc', 'v1.0.0', 'v1.1.0', 'v2.0.0'];
const without = (list: string[], ...gone: string[]) => list.filter((x) => !gone.includes(x));
const sorted = (list: string[]) => [...list].sort();

export const ruleCases: RuleCase[] = [
  { name: 'no rules: nothing goes', rules: '{}', tags: [], manifests: [] },
  {
    name: 'newest 3: the rest go, with their referrers, children and attached tags',
    rules: 'keep: { newest: 3 }',
    tags: sorted([...without(allOrdinary, 'tmp-abc', 'nightly-2', 'multi-new'), attachedTag]),
    manifests: sorted(['img1', 'sig1', 'att1', 'img2', 'legsig2', 'img3', 'sig3', 'img5', 'idx', 'c1']),
  },
  { name: 'not: everything but tmp-*', rules: 'keep: { not: { tag: "tmp-*" } }', tags: ['tmp-abc'], manifests: ['img7'] },
  {
    name: 'any: a version tag, or pushed within a week',
    rules: 'keep:\n  any:\n    - tag: "v*"\n    - pushedWithin: 7d',
    tags: ['latest', 'multi', 'nightly-1'],
    manifests: sorted(['img5', 'idx', 'c1']),
  },
  {
    name: 'all: a recent nightly; protect: latest and versions',
    rules: 'keep: { all: [ { tag: "nightly-*" }, { pushedWithin: 7d } ] }\nprotect: [latest, "v*"]',
    tags: ['multi', 'multi-new', 'nightly-1', 'tmp-abc'],
    manifests: sorted(['idx', 'idx2', 'c1', 'c2', 'c3', 'img5', 'img7']),
  },
  {
    name: 'pulled within a week: only what was pulled stays, with its referrers',
    rules: 'keep: { pulledWithin: 7d }',
    tags: sorted([...without(allOrdinary, 'v1.0.0'), attachedTag]),
    manifests: sorted(['img2', 'legsig2', 'img3', 'sig3', 'img5', 'img6', 'img7', 'idx', 'idx2', 'c1', 'c2', 'c3']),
  },
  {
    name: 'newest among a regex, or latest',
    rules: 'keep:\n  any:\n    - { newest: 1, among: { regex: "v[0-9]+\\\\.[0-9]+\\\\.[0-9]+" } }\n    - tag: latest',
    tags: sorted([...without(allOrdinary, 'v2.0.0', 'latest'), attachedTag]),
    manifests: sorted(['img1', 'sig1', 'att1', 'img2', 'legsig2', 'img5', 'img6', 'img7', 'idx', 'idx2', 'c1', 'c2', 'c3']),
  },
  {
    name: 'deleteUntagged alone: old free-standing untagged manifests go, referrers and children stay',
    rules: 'deleteUntagged: { olderThan: 14d }',
    tags: [],
    manifests: ['dangling', 'orphan'],
  },
  {
    name: 'protect wins over a keep that keeps nothing',
    rules: 'keep: { not: { tag: "*" } }\nprotect: [latest]',
    tags: sorted([...without(allOrdinary, 'latest'), attachedTag]),
    manifests: sorted(['img1', 'sig1', 'att1', 'img2', 'legsig2', 'img5', 'img6', 'img7', 'idx', 'idx2', 'c1', 'c2', 'c3']),
  },
  {
    name: 'pulled within a week, and untagged older than 14 days',
    rules: 'keep: { pulledWithin: 7d }\ndeleteUntagged: { olderThan: 14d }',
    tags: sorted([...without(allOrdinary, 'v1.0.0'), attachedTag]),
    manifests: sorted(['img2', 'legsig2', 'img3', 'sig3', 'img5', 'img6', 'img7', 'idx', 'idx2', 'c1', 'c2', 'c3', 'orphan', 'dangling']),
  },
  {
    name: 'a vetoed manifest stays with what it needs; its tag still goes',
    rules: 'keep: { not: { tag: "*" } }\nprotect: [latest]',
    vetoes: { manifests: ['img1'] },
    tags: sorted([...without(allOrdinary, 'latest'), attachedTag]),
    manifests: sorted(['img2', 'legsig2', 'img5', 'img6', 'img7', 'idx', 'idx2', 'c1', 'c2', 'c3']),
  },
  {
    name: 'a vetoed tag keeps its manifest and the tags attached to it',
    rules: 'keep: { newest: 3 }',
    vetoes: { tags: ['v1.1.0'] },
    tags: without(allOrdinary, 'tmp-abc', 'nightly-2', 'multi-new', 'v1.1.0'),
    manifests: sorted(['img1', 'sig1', 'att1', 'img3', 'sig3', 'img5', 'idx', 'c1']),
  },
];
