/**
 * One retention run: plan every repository the run covers (retention-plan.ts), ask the policy
 * decision point `retention` about each deletion (a denial keeps it, and what it needs), work out
 * the bytes the deletions would free, and, unless it is a dry run, delete. A dry run and a real
 * run do the same up to that last step, so they give the same answer for the same state.
 *
 * Deleting removes metadata only, each row under a check that it is still what was planned: a tag
 * pushed again, or a manifest tagged or listed again since the plan, is skipped. The bytes are
 * the garbage collector's to reclaim (src/lifecycle/gc*.ts).
 */
import type { ManifestRecord, MetaStore } from '../meta/metastore.ts';
import type { RetentionRun, RunCounts, StoredRules } from '../meta/retention.ts';
import type { Answer, Question } from '../policy/service.ts';
import { namespaceOf } from '../reference.ts';
import { effectiveRules, planRepository, type EffectiveRules, type ManifestDeletion, type Plan, type TagDeletion } from './retention-plan.ts';
import { readRules, type RulesDocument } from './retention-rules.ts';

/** Who a retention deletion is asked as, in the policy input's `request`. */
export const retentionIdentity = { kind: 'anonymous', id: '', name: 'custody-retention', admin: false } as const;

export interface RunDeps {
  meta: MetaStore;
  policy?: { decide(q: Question): Answer | Promise<Answer> };
  /** told of each deletion, as the /v2 DELETE tells them (trust forgets what it knew) */
  events?: { manifestDeleted(e: { repo: string; digest: string }): Promise<void>; tagDeleted(e: { repo: string; tag: string }): Promise<void> };
  now: () => number;
}

export interface Deletion {
  repository: string;
  kind: 'tag' | 'manifest';
  tag?: string;
  digest: string;
  rule: string;
  reason: string;
  mediaType?: string;
  size?: number;
  draggedBy?: string;
  dragged?: string[];
  /** a real run: why it was not deleted after all (changed since the plan) */
  skipped?: string;
}

export interface RunResult {
  deletions: Deletion[];
  vetoed: { repository: string; kind: 'tag' | 'manifest'; tag?: string; digest: string; message: string }[];
  errors: { repository: string; message: string }[];
  freed: { bytes: number; blobs: number; manifestBytes: number; estimate: true };
  /** true when `deletions` was cut at maxListed (the counts are complete) */
  truncated: boolean;
}

/** How a run reports progress (and learns it must stop). */
export interface Progress {
  step(phase: string, done: number, total: number): Promise<void>;
  /** a reason to stop (the server is stopping, the lease was lost), or undefined to go on */
  stopping(): string | undefined;
}

const maxListed = 10_000;

export const emptyCounts = (): RunCounts => ({
  repositories: 0,
  tagsDeleted: 0,
  manifestsDeleted: 0,
  vetoed: 0,
  errors: 0,
  bytes: 0,
  blobs: 0,
  manifestBytes: 0,
});

class Stopped extends Error {}

interface Rulebook {
  namespaces: Map<string, RulesDocument>;
  repositories: Map<string, RulesDocument>;
  broken: { rules: StoredRules; message: string }[];
}

async function rulebook(meta: MetaStore): Promise<Rulebook> {
  const book: Rulebook = { namespaces: new Map(), repositories: new Map(), broken: [] };
  for (const stored of await meta.retention.listRules()) {
    try {
      (stored.kind === 'namespace' ? book.namespaces : book.repositories).set(stored.name, readRules(stored.document));
    } catch (err) {
      book.broken.push({ rules: stored, message: (err as Error).message });
    }
  }
  return book;
}

function rulesFor(book: Rulebook, repo: string): EffectiveRules | undefined {
  const ns = namespaceOf(repo);
  const n = book.namespaces.get(ns);
  const r = book.repositories.get(repo);
  return effectiveRules(n && { document: n, name: ns }, r && { document: r, name: repo });
}

/** The repositories a run covers that some rule set applies to, sorted. */
async function repositoriesOf(meta: MetaStore, book: Rulebook, scope: RetentionRun['scope']): Promise<string[]> {
  const found = new Set<string>();
  if (scope.kind === 'repository') {
    if (rulesFor(book, scope.name) && (await meta.repositoryExists(scope.name))) found.add(scope.name);
  } else {
    const namespaces = scope.kind === 'namespace' ? [scope.name] : [...new Set([...book.namespaces.keys(), ...[...book.repositories.keys()].map(namespaceOf)])];
    for (const ns of namespaces) for (const repo of await meta.retention.repositoriesIn(ns)) if (rulesFor(book, repo)) found.add(repo);
  }
  return [...found].sort();
}

interface Planned {
  repository: string;
  plan: Plan;
}

/** Plans one repository, asking the policy about each deletion until no new one is vetoed. */
async function planWithPolicy(deps: RunDeps, repo: string, rules: EffectiveRules, now: number, result: RunResult): Promise<Plan> {
  const contents = await deps.meta.retention.contents(repo);
  const vetoes = { tags: new Set<string>(), manifests: new Set<string>() };
  const asked = new Set<string>();
  const records = new Map<string, ManifestRecord | undefined>();
  const manifest = async (digest: string) => {
    if (!records.has(digest)) records.set(digest, await deps.meta.getManifest(repo, digest));
    return records.get(digest);
  };
  for (;;) {
    const plan = planRepository({ contents, rules, now, vetoes });
    if (!deps.policy) return plan;
    let vetoed = false;
    const ask = async (kind: 'tag' | 'manifest', digest: string, tag?: string) => {
      const key = kind === 'tag' ? `tag ${tag}` : `manifest ${digest}`;
      if (asked.has(key)) return;
      asked.add(key);
      const record = await manifest(digest);
      if (!record || !deps.policy) return; // gone meanwhile: nothing to ask about
      const answer = await deps.policy.decide({
        action: 'retention',
        repository: repo,
        namespace: namespaceOf(repo),
        digest,
        ...(tag === undefined ? {} : { tag }),
        manifest: { mediaType: record.mediaType, content: record.content },
        principal: retentionIdentity,
        tokenKind: 'anonymous',
        userAgent: 'custody-retention',
        sourceAddress: '',
        time: now,
      });
      if (answer.allowed) return;
      vetoed = true;
      if (kind === 'tag') vetoes.tags.add(tag as string);
      else vetoes.manifests.add(digest);
      result.vetoed.push({ repository: repo, kind, ...(tag === undefined ? {} : { tag }), digest, message: answer.message });
    };
    for (const t of plan.tags) await ask('tag', t.digest, t.tag);
    for (const m of plan.manifests) await ask('manifest', m.digest);
    // a veto keeps what it names and what that needs; what is left was asked about already
    if (!vetoed) return plan;
  }
}

const tagEntry = (repository: string, t: TagDeletion): Deletion => ({ repository, kind: 'tag', tag: t.tag, digest: t.digest, rule: t.rule, reason: t.reason });
const manifestEntry = (repository: string, m: ManifestDeletion): Deletion => ({
  repository,
  kind: 'manifest',
  digest: m.digest,
  rule: m.rule,
  reason: m.reason,
  mediaType: m.mediaType,
  size: m.size,
  ...(m.draggedBy ? { draggedBy: m.draggedBy } : {}),
  dragged: m.dragged,
});

/** The bytes of the blobs that no manifest left in the registry would reference (what GC would then take). */
async function freedBytes(meta: MetaStore, planned: Planned[]): Promise<RunResult['freed']> {
  const deletedRefs = new Map<string, number>();
  let manifestBytes = 0;
  for (const { repository, plan } of planned) {
    manifestBytes += plan.manifests.reduce((n, m) => n + m.size, 0);
    if (plan.manifests.length === 0) continue;
    for (const r of await meta.retention.blobsOf(
      repository,
      plan.manifests.map((m) => m.digest),
    ))
      deletedRefs.set(r.blob, (deletedRefs.get(r.blob) ?? 0) + 1);
  }
  let bytes = 0;
  let blobs = 0;
  for (const b of await meta.retention.blobReferences([...deletedRefs.keys()])) {
    if (b.references > (deletedRefs.get(b.blob) ?? 0)) continue;
    bytes += b.size;
    blobs++;
  }
  return { bytes, blobs, manifestBytes, estimate: true };
}

/**
 * Runs retention over `run.scope`: the counts and the result, and `stopped` with the reason when
 * it was told to stop (the counts then say what was done). Throws when it cannot go on at all.
 */
export async function executeRun(
  deps: RunDeps,
  run: Pick<RetentionRun, 'scope' | 'dryRun'>,
  progress: Progress,
): Promise<{ counts: RunCounts; result: RunResult; stopped?: string }> {
  const counts = emptyCounts();
  const result: RunResult = { deletions: [], vetoed: [], errors: [], freed: { bytes: 0, blobs: 0, manifestBytes: 0, estimate: true }, truncated: false };
  try {
    await work(deps, run, progress, counts, result);
    return { counts, result };
  } catch (err) {
    if (!(err instanceof Stopped)) throw err;
    counts.errors = result.errors.length;
    return { counts, result, stopped: err.message };
  }
}

async function work(deps: RunDeps, run: Pick<RetentionRun, 'scope' | 'dryRun'>, progress: Progress, counts: RunCounts, result: RunResult): Promise<void> {
  const check = () => {
    const why = progress.stopping();
    if (why) throw new Stopped(why);
  };
  const book = await rulebook(deps.meta);
  for (const b of book.broken)
    result.errors.push({ repository: b.rules.name, message: `the ${b.rules.kind} rules of ${b.rules.name} cannot be read: ${b.message}` });
  const repositories = await repositoriesOf(deps.meta, book, run.scope);
  counts.repositories = repositories.length;
  // one time for the whole run: every repository is judged as of the same moment
  const now = deps.now();
  const planned: Planned[] = [];
  await progress.step('planning', 0, repositories.length);
  for (const [i, repository] of repositories.entries()) {
    check();
    try {
      const plan = await planWithPolicy(deps, repository, rulesFor(book, repository) as EffectiveRules, now, result);
      planned.push({ repository, plan });
    } catch (err) {
      result.errors.push({ repository, message: (err as Error).message });
    }
    await progress.step('planning', i + 1, repositories.length);
  }
  counts.vetoed = result.vetoed.length;
  result.freed = await freedBytes(deps.meta, planned);
  Object.assign(counts, { bytes: result.freed.bytes, blobs: result.freed.blobs, manifestBytes: result.freed.manifestBytes });

  const total = planned.reduce((n, p) => n + p.plan.tags.length + p.plan.manifests.length, 0);
  let done = 0;
  const listed = (d: Deletion) => {
    if (result.deletions.length < maxListed) result.deletions.push(d);
    else result.truncated = true;
  };
  if (!run.dryRun) await progress.step('deleting', 0, total);
  for (const { repository, plan } of planned) {
    const gone: string[] = [];
    for (const t of plan.tags) {
      const entry = tagEntry(repository, t);
      if (run.dryRun) counts.tagsDeleted++;
      else {
        check();
        try {
          if (await deps.meta.retention.deleteTagIf(repository, t.tag, t.digest, t.updatedAt)) {
            counts.tagsDeleted++;
            await deps.events?.tagDeleted({ repo: repository, tag: t.tag });
          } else entry.skipped = 'the tag was pushed again or deleted since the plan';
        } catch (err) {
          entry.skipped = `failed: ${(err as Error).message}`;
          result.errors.push({ repository, message: `deleting tag ${t.tag}: ${(err as Error).message}` });
        }
        if (++done % 100 === 0) await progress.step('deleting', done, total);
      }
      listed(entry);
    }
    for (const m of plan.manifests) {
      const entry = manifestEntry(repository, m);
      if (run.dryRun) counts.manifestsDeleted++;
      else {
        check();
        try {
          if (await deps.meta.retention.deleteManifestIfUnused(repository, m.digest)) {
            counts.manifestsDeleted++;
            gone.push(m.digest);
            await deps.events?.manifestDeleted({ repo: repository, digest: m.digest });
          } else entry.skipped = 'the manifest was tagged again, listed by an index, or deleted since the plan';
        } catch (err) {
          entry.skipped = `failed: ${(err as Error).message}`;
          result.errors.push({ repository, message: `deleting manifest ${m.digest}: ${(err as Error).message}` });
        }
        if (++done % 100 === 0) await progress.step('deleting', done, total);
      }
      listed(entry);
    }
    if (gone.length > 0) await deps.meta.retention.forgetPulls(repository, gone);
  }
  if (!run.dryRun) await progress.step('deleting', total, total);
  counts.errors = result.errors.length;
}
