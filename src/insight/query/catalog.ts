/**
 * The tables the query language knows: each a view of the metadata store's tables, with its
 * columns, their types, and how its rows belong to a namespace (what a caller's access is
 * judged by). docs/insight.md lists the same tables and columns; a test keeps the two in step.
 */
import type { QueryExpr, QuerySource, QueryTable } from '../../meta/query.ts';

/** A value's type in the language. Times are milliseconds inside and ISO 8601 text in results; intervals are milliseconds. */
export type ColumnType = 'text' | 'integer' | 'number' | 'boolean' | 'timestamp' | 'interval';

export interface CatalogColumn {
  name: string;
  type: ColumnType;
  expr: QueryExpr;
  doc: string;
}

export interface CatalogTable {
  name: string;
  doc: string;
  source: QuerySource;
  /** what makes the view (`pulls`: type = 'pull') */
  filter: QueryExpr[];
  /** the namespace column, or the repository column whose first segment is the namespace */
  namespace: { column: QueryExpr } | { repository: QueryExpr };
  columns: CatalogColumn[];
}

const col = (table: QueryTable, column: string): QueryExpr => ({ kind: 'column', table, column });
const text = (value: string): QueryExpr => ({ kind: 'value', value, type: 'text' });
const is1 = (e: QueryExpr): QueryExpr => ({ kind: 'binary', op: '=', left: e, right: { kind: 'value', value: 1, type: 'integer' } });
const c = (name: string, type: ColumnType, expr: QueryExpr, doc: string): CatalogColumn => ({ name, type, expr, doc });

const eventColumns: CatalogColumn[] = [
  c('time', 'timestamp', col('usage_events', 'at'), 'when the request began'),
  c('type', 'text', col('usage_events', 'type'), 'push, pull, delete, login, token or decision'),
  c('object', 'text', col('usage_events', 'object'), "manifest, blob, tag, or '' (logins, tokens)"),
  c('namespace', 'text', col('usage_events', 'namespace'), "the repository's namespace ('' for logins and tokens)"),
  c('repository', 'text', col('usage_events', 'repository'), 'the repository'),
  c('digest', 'text', col('usage_events', 'digest'), 'the manifest or blob digest'),
  c('tag', 'text', col('usage_events', 'tag'), 'the tag, when asked by tag'),
  c('media_type', 'text', col('usage_events', 'media_type'), 'the media type sent or received'),
  c('actor', 'text', col('usage_events', 'actor'), "the user's or robot's name, 'anonymous' when none"),
  c('actor_kind', 'text', col('usage_events', 'actor_kind'), 'user, robot or anonymous'),
  c('token_id', 'text', col('usage_events', 'token_id'), "the personal or robot token used, or ''"),
  c('bytes', 'integer', col('usage_events', 'bytes'), 'bytes actually sent (pulls) or received (pushes)'),
  c('user_agent', 'text', col('usage_events', 'user_agent'), "the client's User-Agent"),
  c('source', 'text', col('usage_events', 'source'), "the client's address"),
  c('duration_micros', 'integer', col('usage_events', 'duration_micros'), 'how long the request took, in microseconds'),
  c('status', 'integer', col('usage_events', 'status'), 'the HTTP status (0 when none)'),
  c('result', 'text', col('usage_events', 'result'), 'ok, denied, error or aborted'),
  c('detail', 'text', col('usage_events', 'detail'), "the event's own facts, as a JSON object"),
  c('id', 'text', col('usage_events', 'id'), "the event's id (sorts as time)"),
];

function events(name: string, doc: string, type?: string): CatalogTable {
  return {
    name,
    doc,
    source: { kind: 'table', table: 'usage_events' },
    filter: type ? [{ kind: 'binary', op: '=', left: col('usage_events', 'type'), right: text(type) }] : [],
    namespace: { column: col('usage_events', 'namespace') },
    columns: eventColumns,
  };
}

const repoNamespace = (table: QueryTable, column = 'repo'): QueryExpr => ({ kind: 'namespaceOf', arg: col(table, column) });

const manifestColumns = (): CatalogColumn[] => [
  c('repository', 'text', col('manifests', 'repo'), 'the repository'),
  c('namespace', 'text', repoNamespace('manifests'), "the repository's namespace"),
  c('digest', 'text', col('manifests', 'digest'), "the manifest's digest"),
  c('media_type', 'text', col('manifests', 'media_type'), "the manifest's media type"),
  c('artifact_type', 'text', col('manifests', 'artifact_type'), 'its artifactType, else its config media type; null when neither'),
  c('size', 'integer', col('manifests', 'size'), "the manifest's own size in bytes"),
  c('subject', 'text', col('manifests', 'subject'), 'the digest of the manifest it refers to, null when none'),
  c('pushed', 'timestamp', col('manifests', 'created_at'), 'when it was first stored'),
];

const matchManifest = (): [string, QueryExpr][] => [
  ['repo', col('manifests', 'repo')],
  ['digest', col('manifests', 'digest')],
];

const matchSbom = (): [string, QueryExpr][] => [
  ['repo', col('trust_sboms', 'repo')],
  ['digest', col('trust_sboms', 'digest')],
];

export const catalog: CatalogTable[] = [
  events('events', 'every usage event: pushes, pulls, deletes, logins, token issues and policy decisions'),
  events('pulls', 'pulls of manifests and blobs (events of type pull)', 'pull'),
  events('pushes', 'pushes of manifests and blobs, and tags set (events of type push)', 'push'),
  events('deletes', 'deletions of manifests, tags and blobs (events of type delete)', 'delete'),
  events('logins', 'logins, successful or refused (events of type login)', 'login'),
  events('decisions', 'policy decisions (events of type decision)', 'decision'),
  {
    name: 'rollups',
    doc: 'events counted per hour and per day (they outlive the events they count)',
    source: { kind: 'table', table: 'usage_rollups' },
    filter: [],
    namespace: { column: col('usage_rollups', 'namespace') },
    columns: [
      c('period', 'text', col('usage_rollups', 'period'), 'hour or day'),
      c('start', 'timestamp', col('usage_rollups', 'start'), 'the start of the hour or (UTC) day'),
      c('namespace', 'text', col('usage_rollups', 'namespace'), 'the namespace'),
      c('repository', 'text', col('usage_rollups', 'repository'), 'the repository'),
      c('type', 'text', col('usage_rollups', 'type'), 'the event type'),
      c('object', 'text', col('usage_rollups', 'object'), 'manifest, blob, tag or empty'),
      c('count', 'integer', col('usage_rollups', 'count'), 'how many events'),
      c('bytes', 'integer', col('usage_rollups', 'bytes'), 'their bytes'),
    ],
  },
  {
    name: 'artifacts',
    doc: 'stored manifests (images, indexes, signatures, SBOMs, any OCI artifact)',
    source: { kind: 'table', table: 'manifests' },
    filter: [],
    namespace: { repository: col('manifests', 'repo') },
    columns: [
      ...manifestColumns(),
      c('tags', 'integer', { kind: 'lookup', table: 'tags', value: 'count', match: matchManifest() }, 'how many tags point at it'),
      c(
        'pulls',
        'integer',
        {
          kind: 'call',
          fn: 'coalesce',
          args: [
            { kind: 'lookup', table: 'artifact_pulls', value: 'pull_count', match: matchManifest() },
            { kind: 'value', value: 0, type: 'integer' },
          ],
        },
        'manifest pulls counted (written about once a minute)',
      ),
      c(
        'last_pulled',
        'timestamp',
        { kind: 'lookup', table: 'artifact_pulls', value: 'last_pulled_at', match: matchManifest() },
        'the last pull counted, null when never',
      ),
    ],
  },
  {
    name: 'tags',
    doc: 'tags and the manifests they point at',
    source: { kind: 'table', table: 'tags' },
    filter: [],
    namespace: { repository: col('tags', 'repo') },
    columns: [
      c('repository', 'text', col('tags', 'repo'), 'the repository'),
      c('namespace', 'text', repoNamespace('tags'), "the repository's namespace"),
      c('tag', 'text', col('tags', 'name'), 'the tag'),
      c('digest', 'text', col('tags', 'digest'), 'the manifest it points at'),
      c('updated', 'timestamp', col('tags', 'updated_at'), 'when it was last set'),
    ],
  },
  {
    name: 'referrers',
    doc: 'manifests that refer to another (a subject): signatures, SBOMs, attestations',
    source: { kind: 'table', table: 'manifests' },
    filter: [{ kind: 'isNull', arg: col('manifests', 'subject'), negated: true }],
    namespace: { repository: col('manifests', 'repo') },
    columns: manifestColumns(),
  },
  {
    name: 'verdicts',
    doc: "trust verdicts: each signature's, attestation's and SBOM's, about its subject",
    source: { kind: 'table', table: 'trust_artifacts' },
    filter: [],
    namespace: { repository: col('trust_artifacts', 'repo') },
    columns: [
      c('repository', 'text', col('trust_artifacts', 'repo'), 'the repository'),
      c('namespace', 'text', repoNamespace('trust_artifacts'), "the repository's namespace"),
      c('digest', 'text', col('trust_artifacts', 'digest'), "the signature's (attestation's, SBOM's) own manifest"),
      c('subject', 'text', col('trust_artifacts', 'subject'), 'the manifest it is about'),
      c('kind', 'text', col('trust_artifacts', 'kind'), 'signature, attestation or sbom'),
      c('format', 'text', col('trust_artifacts', 'format'), 'cosign, sigstore-bundle, notary-jws, notary-cose, dsse, cyclonedx, spdx'),
      c('via', 'text', col('trust_artifacts', 'via'), 'referrer, or the legacy tag it came through'),
      c('status', 'text', col('trust_artifacts', 'status'), 'pending or done'),
      c('verified', 'boolean', is1(col('trust_artifacts', 'verified')), 'true or false once judged; null while pending or when not a question'),
      c('signer', 'text', col('trust_artifacts', 'signer'), 'who signed, when known'),
      c('code', 'text', col('trust_artifacts', 'code'), "the verdict's reason code"),
      c('reason', 'text', col('trust_artifacts', 'reason'), "the verdict's reason"),
      c('checked', 'timestamp', col('trust_artifacts', 'checked_at'), 'when it was judged'),
      c('recorded', 'timestamp', col('trust_artifacts', 'created_at'), 'when it was recorded'),
    ],
  },
  {
    name: 'components',
    doc: 'the components listed by every stored SBOM (CycloneDX or SPDX)',
    source: { kind: 'components' },
    filter: [],
    namespace: { repository: col('trust_sboms', 'repo') },
    columns: [
      c('repository', 'text', col('trust_sboms', 'repo'), 'the repository'),
      c('namespace', 'text', repoNamespace('trust_sboms'), "the repository's namespace"),
      c('sbom', 'text', col('trust_sboms', 'digest'), "the SBOM's manifest"),
      c('subject', 'text', { kind: 'lookup', table: 'trust_artifacts', value: 'subject', match: matchSbom() }, 'the manifest the SBOM describes'),
      c('format', 'text', col('trust_sboms', 'format'), 'cyclonedx or spdx'),
      c('name', 'text', { kind: 'componentField', key: 'name' }, "the component's name"),
      c('version', 'text', { kind: 'componentField', key: 'version' }, 'its version, null when none'),
      c('purl', 'text', { kind: 'componentField', key: 'purl' }, 'its package URL, null when none'),
      c('type', 'text', { kind: 'componentField', key: 'type' }, 'library, application, operating-system, …'),
      c('licenses', 'text', { kind: 'componentLicenses' }, "its licenses, joined with ', '"),
    ],
  },
  {
    name: 'policy_decisions',
    doc: 'the policy decision log: denials, failures, and every evaluation of a policy in audit or dry-run mode',
    source: { kind: 'table', table: 'policy_decisions' },
    filter: [],
    namespace: { repository: col('policy_decisions', 'repository') },
    columns: [
      c('time', 'timestamp', col('policy_decisions', 'at'), 'when it was decided'),
      c('policy', 'text', col('policy_decisions', 'policy'), "the policy's name"),
      c('version', 'integer', col('policy_decisions', 'version'), "the policy's version"),
      c('mode', 'text', col('policy_decisions', 'mode'), 'enforce, audit or dry-run'),
      c('action', 'text', col('policy_decisions', 'action'), 'push, pull, delete, retention'),
      c('repository', 'text', col('policy_decisions', 'repository'), 'the repository'),
      c('namespace', 'text', repoNamespace('policy_decisions', 'repository'), "the repository's namespace"),
      c('reference', 'text', col('policy_decisions', 'reference'), 'the tag or digest'),
      c('result', 'text', col('policy_decisions', 'result'), 'allow, deny or error'),
      c('message', 'text', col('policy_decisions', 'message'), "the policy's message"),
      c('latency_micros', 'integer', col('policy_decisions', 'latency_micros'), 'how long it took to decide'),
      c('actor', 'text', col('policy_decisions', 'actor'), 'who asked'),
      c('source', 'text', col('policy_decisions', 'source'), "the client's address"),
      c('enforced', 'boolean', is1(col('policy_decisions', 'enforced')), 'whether the decision was enforced'),
    ],
  },
];

const byName = new Map(catalog.map((t) => [t.name, t]));

export const findTable = (name: string): CatalogTable | undefined => byName.get(name);
