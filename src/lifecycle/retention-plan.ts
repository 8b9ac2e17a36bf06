/**
 * What retention keeps and deletes in one repository: a pure function of the repository's tags,
 * manifests and the edges between them, the rules, the time, and the deletions a policy vetoed.
 * The same input gives the same plan, so a dry run and the real run that follows agree.
 *
 * Tags first. A tag is kept when a `protect` pattern matches it, when a policy vetoed its
 * deletion, or when the `keep` expression is true for it (no `keep`: every tag is kept); any
 * other tag is deleted. Tags that attach an artifact to another by name (cosign's
 * `sha256-<hex>.sig|.att|.sbom`, the referrers fallback `sha256-<hex>`) are not judged by `keep`:
 * they stay as long as the manifest they name stays (and are left alone when it is not here).
 *
 * Then manifests. The roots are the manifests a kept tag points at, those whose deletion a policy
 * vetoed, and the untagged manifests that nothing here refers to and that `deleteUntagged` does
 * not yet take (none, without it). Everything a kept manifest needs is kept with it: the
 * manifests an index lists, and the referrers (signatures, SBOMs, attestations) whose subject it
 * is, recursively. Every other manifest is deleted, with its referrers and children, unless
 * another kept manifest still needs them.
 */
import type { RepositoryContents } from '../meta/retention.ts';
import { describe, describePattern, durationMs, matches, type Expr, type Pattern, type RulesDocument } from './retention-rules.ts';

/** The rules that apply to a repository: its own, else its namespace's; `protect` from both. */
export interface EffectiveRules {
  keep?: Expr;
  protect: Pattern[];
  deleteUntagged?: { olderThan: string };
  /** whose rules these are, for reasons: `namespace team` or `repository team/app` */
  from: string;
}

export function effectiveRules(
  namespace: { document: RulesDocument; name: string } | undefined,
  repository: { document: RulesDocument; name: string } | undefined,
): EffectiveRules | undefined {
  const own = repository ?? namespace;
  if (!own) return undefined;
  const protect = [...(repository?.document.protect ?? []), ...(namespace?.document.protect ?? [])];
  return {
    ...(own.document.keep ? { keep: own.document.keep } : {}),
    protect,
    ...(own.document.deleteUntagged ? { deleteUntagged: own.document.deleteUntagged } : {}),
    from: repository ? `repository ${repository.name}` : `namespace ${own.name}`,
  };
}

export interface Vetoes {
  tags: ReadonlySet<string>;
  manifests: ReadonlySet<string>;
}

export type TagRule = 'keep' | 'attached';
export type ManifestRule = 'tags' | 'untagged' | 'referrer' | 'child' | 'attached';

export interface TagDeletion {
  tag: string;
  digest: string;
  updatedAt: number;
  rule: TagRule;
  reason: string;
}

export interface ManifestDeletion {
  digest: string;
  mediaType: string;
  size: number;
  rule: ManifestRule;
  reason: string;
  /** the deleted manifest that takes this one with it (its subject, its index) */
  draggedBy?: string;
  /** the manifests this one takes with it */
  dragged: string[];
}

export interface Plan {
  tags: TagDeletion[];
  /** parents before what they drag along: the order to delete them in */
  manifests: ManifestDeletion[];
  kept: { tags: number; manifests: number };
}

/** cosign's `sha256-<hex>.sig|.att|.sbom` and the referrers API's fallback tag `sha256-<hex>`. */
const attachedTag = /^(sha256|sha512)-([a-f0-9]{64}|[a-f0-9]{128})(?:\.(?:sig|att|sbom))?$/;

type Tag = RepositoryContents['tags'][number];
type Why = { keep: boolean; why: string };

const iso = (ms: number) => new Date(ms).toISOString();
const ordinal = (n: number) => `${n}${n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th')}`;

/** The keep expression, compiled against one repository's tags (ranks are worked out once per `newest`). */
function evaluator(keep: Expr, tags: Tag[], pulls: Map<string, number>, now: number): (t: Tag) => Why {
  // newest first; tags pushed in the same millisecond: the later name in byte order is the newer
  const ordered = [...tags].sort((a, b) => b.updatedAt - a.updatedAt || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  const ranks = new Map<Expr, Map<string, number>>();
  const rankIn = (e: Extract<Expr, { newest: number }>): Map<string, number> => {
    let r = ranks.get(e);
    if (!r) {
      r = new Map();
      for (const t of ordered) if (!e.among || matches(e.among, t.name)) r.set(t.name, r.size + 1);
      ranks.set(e, r);
    }
    return r;
  };
  const evaluate = (e: Expr, t: Tag): Why => {
    if ('newest' in e) {
      const among = e.among ? ` among ${describePattern(e.among)}` : '';
      const rank = rankIn(e).get(t.name);
      if (rank === undefined) return { keep: false, why: `newest ${e.newest}${among}: the tag is not among them` };
      return { keep: rank <= e.newest, why: `newest ${e.newest}${among}: the ${ordinal(rank)} newest` };
    }
    if ('tag' in e) {
      const hit = matches(e.tag, t.name);
      return { keep: hit, why: `tag ${describePattern(e.tag)}: ${hit ? 'matches' : 'does not match'}` };
    }
    if ('pushedWithin' in e) {
      const within = t.updatedAt >= now - durationMs(e.pushedWithin);
      return { keep: within, why: `pushed within ${e.pushedWithin}: pushed ${iso(t.updatedAt)}` };
    }
    if ('pulledWithin' in e) {
      const last = pulls.get(t.digest);
      const within = last !== undefined && last >= now - durationMs(e.pulledWithin);
      return { keep: within, why: `pulled within ${e.pulledWithin}: ${last === undefined ? 'never pulled' : `last pulled ${iso(last)}`}` };
    }
    if ('all' in e) {
      for (const c of e.all) {
        const r = evaluate(c, t);
        if (!r.keep) return { keep: false, why: r.why };
      }
      return { keep: true, why: describe(e) };
    }
    if ('any' in e) {
      const no: string[] = [];
      for (const c of e.any) {
        const r = evaluate(c, t);
        if (r.keep) return r;
        no.push(r.why);
      }
      return { keep: false, why: `none of: ${no.join('; ')}` };
    }
    const r = evaluate(e.not, t);
    return { keep: !r.keep, why: `not(${r.why})` };
  };
  return (t) => evaluate(keep, t);
}

export function planRepository(input: { contents: RepositoryContents; rules: EffectiveRules; now: number; vetoes?: Vetoes }): Plan {
  const { contents, rules, now } = input;
  const vetoes = input.vetoes ?? { tags: new Set(), manifests: new Set() };
  const manifests = new Map(contents.manifests.map((m) => [m.digest, m]));
  const pulls = new Map(contents.pulls.map((p) => [p.digest, p.lastPulledAt]));

  const tagsOf = new Map<string, Tag[]>();
  for (const t of contents.tags) {
    if (!manifests.has(t.digest)) continue;
    const list = tagsOf.get(t.digest) ?? [];
    list.push(t);
    tagsOf.set(t.digest, list);
  }
  // Edges from what is needed to what needs it (subject → referrer, index → child), within the repository.
  type Edge = { digest: string; via: 'referrer' | 'child' | 'attached' };
  const dependents = new Map<string, Edge[]>();
  const parents = new Map<string, Edge[]>();
  const edge = (parent: string, child: string, via: Edge['via']) => {
    if (parent === child || !manifests.has(parent) || !manifests.has(child)) return;
    dependents.set(parent, [...(dependents.get(parent) ?? []), { digest: child, via }]);
    parents.set(child, [...(parents.get(child) ?? []), { digest: parent, via }]);
  };
  for (const c of contents.children) edge(c.parent, c.child, 'child');
  for (const m of contents.manifests) if (m.subject) edge(m.subject, m.digest, 'referrer');

  const ordinary: Tag[] = [];
  /** attached tags, and the digest each names */
  const attached = new Map<string, string>();
  for (const t of contents.tags) {
    if (!manifests.has(t.digest)) continue;
    const a = attachedTag.exec(t.name);
    if (a) attached.set(t.name, `${a[1]}:${a[2]}`);
    else ordinary.push(t);
  }
  const judge = rules.keep ? evaluator(rules.keep, ordinary, pulls, now) : undefined;

  const keptTags = new Set<string>();
  const deletedTags: TagDeletion[] = [];
  const pending: { tag: Tag; subject: string }[] = [];
  for (const t of contents.tags) {
    if (!manifests.has(t.digest)) continue;
    if (rules.protect.some((p) => matches(p, t.name)) || vetoes.tags.has(t.name)) {
      keptTags.add(t.name);
      continue;
    }
    const subject = attached.get(t.name);
    if (subject !== undefined) {
      // kept as long as what it names is kept; left alone when that is not in this repository
      if (manifests.has(subject)) {
        edge(subject, t.digest, 'attached');
        pending.push({ tag: t, subject });
      } else keptTags.add(t.name);
      continue;
    }
    const verdict = judge?.(t);
    if (!verdict || verdict.keep) keptTags.add(t.name);
    else
      deletedTags.push({
        tag: t.name,
        digest: t.digest,
        updatedAt: t.updatedAt,
        rule: 'keep',
        reason: `not kept by the rules of ${rules.from}: ${verdict.why}`,
      });
  }

  const untaggedCutoff = rules.deleteUntagged ? now - durationMs(rules.deleteUntagged.olderThan) : -Infinity;
  const kept = new Set<string>();
  const stack: string[] = [];
  const root = (digest: string) => {
    if (!kept.has(digest)) {
      kept.add(digest);
      stack.push(digest);
    }
  };
  for (const t of contents.tags) if (keptTags.has(t.name)) root(t.digest);
  for (const d of vetoes.manifests) if (manifests.has(d)) root(d);
  for (const m of contents.manifests) if (!tagsOf.has(m.digest) && !parents.has(m.digest) && m.createdAt >= untaggedCutoff) root(m.digest);
  while (stack.length > 0) for (const d of dependents.get(stack.pop() as string) ?? []) root(d.digest);

  for (const a of pending) {
    if (kept.has(a.subject)) keptTags.add(a.tag.name);
    else
      deletedTags.push({
        tag: a.tag.name,
        digest: a.tag.digest,
        updatedAt: a.tag.updatedAt,
        rule: 'attached',
        reason: `attached to ${a.subject}, which is deleted`,
      });
  }

  const deleted = new Map<string, ManifestDeletion>();
  for (const m of contents.manifests) {
    if (kept.has(m.digest)) continue;
    const parent = parents.get(m.digest)?.[0];
    const tags = tagsOf.get(m.digest);
    let rule: ManifestRule;
    let reason: string;
    if (parent) {
      rule = parent.via;
      reason =
        parent.via === 'child'
          ? `listed by the index ${parent.digest}, which is deleted`
          : parent.via === 'referrer'
            ? `a referrer of ${parent.digest}, which is deleted`
            : `attached by tag to ${parent.digest}, which is deleted`;
    } else if (tags) {
      rule = 'tags';
      reason = `its tags are deleted (${tags.map((t) => t.name).join(', ')})`;
    } else {
      rule = 'untagged';
      reason = `untagged, pushed ${iso(m.createdAt)}: older than ${rules.deleteUntagged?.olderThan ?? ''} (the rules of ${rules.from})`;
    }
    deleted.set(m.digest, {
      digest: m.digest,
      mediaType: m.mediaType,
      size: m.size,
      rule,
      reason,
      ...(parent ? { draggedBy: parent.digest } : {}),
      dragged: [],
    });
  }
  for (const d of deleted.values()) if (d.draggedBy) deleted.get(d.draggedBy)?.dragged.push(d.digest);
  for (const d of deleted.values()) d.dragged.sort();

  // Parents before what they drag along: an index goes before its children, so that a child is
  // no longer listed by anything when its turn comes.
  const depth = new Map<string, number>();
  const depthOf = (digest: string, seen: Set<string>): number => {
    const known = depth.get(digest);
    if (known !== undefined) return known;
    if (seen.has(digest)) return 0;
    seen.add(digest);
    let d = 0;
    for (const p of parents.get(digest) ?? []) if (deleted.has(p.digest)) d = Math.max(d, depthOf(p.digest, seen) + 1);
    depth.set(digest, d);
    return d;
  };
  const order = [...deleted.values()].sort((a, b) => depthOf(a.digest, new Set()) - depthOf(b.digest, new Set()) || (a.digest < b.digest ? -1 : 1));
  deletedTags.sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
  return { tags: deletedTags, manifests: order, kept: { tags: keptTags.size, manifests: kept.size } };
}
