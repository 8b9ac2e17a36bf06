/** The one migration set, for SQLite and PostgreSQL alike. */
import { sql, type ColumnDefinitionBuilder, type Kysely } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely/migration';
import { manifestChannel, namespaceChannel } from './change-feed.ts';

export type Engine = 'sqlite' | 'postgres';

/** The PostgreSQL advisory lock that numbers the webhook feed in commit order (0012-webhooks). */
export const webhookFeedLock = 0x7765_6268; // 'wehb'

export function migrations(engine: Engine): MigrationProvider {
  // Names compare byte by byte on both engines (PostgreSQL would otherwise sort by locale, and
  // the spec wants tags and repositories in lexical order).
  const name = engine === 'postgres' ? sql`text collate "C"` : sql`text`;
  const bytes = engine === 'postgres' ? sql`bytea` : sql`blob`;
  const all: Record<string, Migration> = {
    '0001-registry-core': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('repositories')
          .addColumn('name', name, (c) => c.primaryKey())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('blobs')
          .addColumn('digest', 'text', (c) => c.primaryKey())
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('repo_blobs')
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('repo_blobs_pk', ['repo', 'digest'])
          .execute();
        await db.schema.createIndex('repo_blobs_digest').on('repo_blobs').column('digest').execute();
        await db.schema
          .createTable('manifests')
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('media_type', 'text', (c) => c.notNull())
          .addColumn('content', bytes, (c) => c.notNull())
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('artifact_type', 'text')
          .addColumn('subject', 'text')
          .addColumn('annotations', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('manifests_pk', ['repo', 'digest'])
          .execute();
        await db.schema.createIndex('manifests_subject').on('manifests').columns(['repo', 'subject']).execute();
        await db.schema
          .createTable('manifest_refs')
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('ref', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('manifest_refs_pk', ['repo', 'digest', 'ref'])
          .execute();
        await db.schema
          .createTable('tags')
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('name', name, (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('tags_pk', ['repo', 'name'])
          .execute();
        await db.schema.createIndex('tags_digest').on('tags').columns(['repo', 'digest']).execute();
        await db.schema
          .createTable('uploads')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('offset', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('upload_parts')
          .addColumn('upload_id', 'text', (c) => c.notNull())
          .addColumn('start', 'bigint', (c) => c.notNull())
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('sha256', 'text', (c) => c.notNull())
          .addColumn('key', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('upload_parts_pk', ['upload_id', 'start'])
          .execute();
      },
    },
    '0002-accounts': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('users')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', name, (c) => c.notNull().unique())
          .addColumn('password_hash', 'text')
          .addColumn('admin', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('teams')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', name, (c) => c.notNull().unique())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('team_members')
          .addColumn('team_id', 'text', (c) => c.notNull())
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('team_members_pk', ['team_id', 'user_id'])
          .execute();
        await db.schema.createIndex('team_members_user').on('team_members').column('user_id').execute();
        await db.schema
          .createTable('robots')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', name, (c) => c.notNull().unique())
          .addColumn('namespace', name, (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('namespaces')
          .addColumn('name', name, (c) => c.primaryKey())
          .addColumn('anonymous_read', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('grants')
          .addColumn('namespace', name, (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('principal', 'text', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('grants_pk', ['namespace', 'kind', 'principal'])
          .execute();
        await db.schema
          .createTable('tokens')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('owner_kind', 'text', (c) => c.notNull())
          .addColumn('owner_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('secret_hash', 'text', (c) => c.notNull())
          .addColumn('scopes', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint')
          .addColumn('last_used_at', 'bigint')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('tokens_owner').on('tokens').columns(['owner_kind', 'owner_id']).execute();
        await db.schema
          .createTable('signing_keys')
          .addColumn('kid', 'text', (c) => c.primaryKey())
          .addColumn('private_jwk', 'text', (c) => c.notNull())
          .addColumn('public_jwk', 'text', (c) => c.notNull())
          .addColumn('active', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('audit_events')
          .addColumn('id', engine === 'postgres' ? 'bigserial' : 'integer', (c) => (engine === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('time', 'bigint', (c) => c.notNull())
          .addColumn('actor', name, (c) => c.notNull())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('target', 'text', (c) => c.notNull())
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('detail', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('audit_events_time').on('audit_events').column('time').execute();
        await db.schema.createIndex('audit_events_actor').on('audit_events').columns(['actor', 'id']).execute();
        await db.schema
          .createTable('login_failures')
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('time', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('login_failures_key').on('login_failures').columns(['key', 'time']).execute();
      },
    },
    '0003-trust': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('trust_artifacts')
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('subject', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('format', 'text', (c) => c.notNull())
          .addColumn('via', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('verified', 'integer')
          .addColumn('signer', 'text')
          .addColumn('reason', 'text')
          .addColumn('details', 'text')
          .addColumn('checked_at', 'bigint')
          .addColumn('trust_fingerprint', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('trust_artifacts_pk', ['repo', 'digest'])
          .execute();
        await db.schema.createIndex('trust_artifacts_subject').on('trust_artifacts').columns(['repo', 'subject']).execute();
        await db.schema.createIndex('trust_artifacts_status').on('trust_artifacts').columns(['status', 'created_at']).execute();
        await db.schema
          .createTable('trust_sboms')
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('format', 'text', (c) => c.notNull())
          .addColumn('spec_version', 'text', (c) => c.notNull())
          .addColumn('name', 'text')
          .addColumn('components', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('trust_sboms_pk', ['repo', 'digest'])
          .execute();
        await db.schema
          .createTable('namespace_trust')
          .addColumn('namespace', name, (c) => c.primaryKey())
          .addColumn('document', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '0004-tuf': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('tuf_keys')
          .addColumn('namespace', name, (c) => c.notNull())
          .addColumn('key_id', 'text', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('public_key', 'text', (c) => c.notNull())
          .addColumn('private_key_pem', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('tuf_keys_pk', ['namespace', 'key_id'])
          .execute();
        // The primary key is what stops two replicas publishing the same version.
        await db.schema
          .createTable('tuf_metadata')
          .addColumn('namespace', name, (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('version', 'bigint', (c) => c.notNull())
          .addColumn('json', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('tuf_metadata_pk', ['namespace', 'role', 'version'])
          .execute();
      },
    },
    '0005-signing-key-replaced-at': {
      async up(db: Kysely<unknown>) {
        // When a key stopped signing: it keeps verifying for one token lifetime after that.
        await db.schema.alterTable('signing_keys').addColumn('replaced_at', 'bigint').execute();
        await sql`update signing_keys set replaced_at = ${Date.now()} where active = 0`.execute(db);
      },
    },
    '0006-trust-reason-code': {
      async up(db: Kysely<unknown>) {
        // A verdict's reason code (src/trust/verdict.ts); null for verdicts stored before codes existed.
        await db.schema.alterTable('trust_artifacts').addColumn('code', 'text').execute();
      },
    },
    '0007-policies': {
      async up(db: Kysely<unknown>) {
        // Every version of every policy; a deletion is a version too, so the history stays.
        await db.schema
          .createTable('policies')
          .addColumn('name', name, (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('namespace', name)
          .addColumn('document', 'text', (c) => c.notNull())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('deleted', 'integer', (c) => c.notNull())
          .addPrimaryKeyConstraint('policies_pk', ['name', 'version'])
          .execute();
        await db.schema
          .createTable('policy_decisions')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('policy', name, (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('mode', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('repository', name, (c) => c.notNull())
          .addColumn('reference', 'text', (c) => c.notNull())
          .addColumn('result', 'text', (c) => c.notNull())
          .addColumn('message', 'text', (c) => c.notNull())
          .addColumn('latency_micros', 'bigint', (c) => c.notNull())
          .addColumn('actor', 'text', (c) => c.notNull())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('enforced', 'integer', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('policy_decisions_at').on('policy_decisions').columns(['at', 'id']).execute();
        // One input per (action, identity, artifact) and hour: what `simulate` replays.
        await db.schema
          .createTable('policy_inputs')
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('hour', 'bigint', (c) => c.notNull())
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('repository', name, (c) => c.notNull())
          .addColumn('input', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('policy_inputs_pk', ['key', 'hour'])
          .execute();
        await db.schema.createIndex('policy_inputs_at').on('policy_inputs').columns(['at', 'key']).execute();
        // What policies read of a namespace besides its name: a storage quota and labels.
        await db.schema
          .alterTable('namespaces')
          .addColumn('quota_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .alterTable('namespaces')
          .addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}'))
          .execute();
      },
    },
    '0008-gc': {
      async up(db: Kysely<unknown>) {
        // When a blob or manifest was last written or linked: the GC's grace period counts from
        // here (src/lifecycle/gc.ts). An upload touches its blob before writing the bytes.
        for (const table of ['blobs', 'manifests']) {
          await db.schema
            .alterTable(table)
            .addColumn('touched_at', 'bigint', (c) => c.notNull().defaultTo(0))
            .execute();
          await sql`update ${sql.table(table)} set touched_at = created_at`.execute(db);
        }
        await db.schema.createIndex('blobs_touched').on('blobs').columns(['touched_at', 'digest']).execute();
        // "is this blob (or child manifest) still referenced in this repository?"
        await db.schema.createIndex('manifest_refs_ref').on('manifest_refs').columns(['repo', 'ref', 'kind']).execute();
        // a namespace setting: untagged manifests that nothing reaches may be collected
        await db.schema
          .alterTable('namespaces')
          .addColumn('collect_untagged', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        // every GC run, its progress while it runs (a run whose heartbeat stops is resumed)
        await db.schema
          .createTable('gc_runs')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('dry_run', 'integer', (c) => c.notNull())
          .addColumn('phase', 'text', (c) => c.notNull())
          .addColumn('owner', 'text', (c) => c.notNull())
          .addColumn('started_at', 'bigint', (c) => c.notNull())
          .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
          .addColumn('finished_at', 'bigint')
          .addColumn('grace_ms', 'bigint', (c) => c.notNull())
          .addColumn('resumed', 'integer', (c) => c.notNull())
          .addColumn('planned', 'text', (c) => c.notNull())
          .addColumn('done', 'text', (c) => c.notNull())
          .addColumn('error', 'text')
          .execute();
        await db.schema.createIndex('gc_runs_started').on('gc_runs').columns(['started_at', 'id']).execute();
        // at most one run in progress, across every replica sharing the database
        await db.schema.createIndex('gc_runs_one_running').on('gc_runs').column('state').unique().where(sql.ref('state'), '=', 'running').execute();
      },
    },
    '0009-retention': {
      async up(db: Kysely<unknown>) {
        // A rule set per namespace and per repository (src/lifecycle/retention-rules.ts).
        await db.schema
          .createTable('retention_rules')
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('name', name, (c) => c.notNull())
          .addColumn('document', 'text', (c) => c.notNull())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('updated_by', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('retention_rules_pk', ['kind', 'name'])
          .execute();
        // Pulls per manifest, written at most once a minute per artifact and replica (src/lifecycle/pulls.ts).
        await db.schema
          .createTable('artifact_pulls')
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('last_pulled_at', 'bigint', (c) => c.notNull())
          .addColumn('pull_count', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('artifact_pulls_pk', ['repo', 'digest'])
          .execute();
        // Every run, dry or real, with its counts and what it deleted (result: JSON).
        await db.schema
          .createTable('retention_runs')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('trigger', 'text', (c) => c.notNull())
          .addColumn('actor', 'text', (c) => c.notNull())
          .addColumn('scope_kind', 'text', (c) => c.notNull())
          .addColumn('scope_name', name, (c) => c.notNull())
          .addColumn('namespace', name)
          .addColumn('dry_run', 'integer', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('started_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addColumn('finished_at', 'bigint')
          .addColumn('phase', 'text', (c) => c.notNull())
          .addColumn('done', 'bigint', (c) => c.notNull())
          .addColumn('total', 'bigint', (c) => c.notNull())
          .addColumn('counts', 'text', (c) => c.notNull())
          .addColumn('error', 'text')
          .addColumn('result', 'text')
          .execute();
        await db.schema.createIndex('retention_runs_started').on('retention_runs').columns(['started_at', 'id']).execute();
        await db.schema.createIndex('retention_runs_namespace').on('retention_runs').columns(['namespace', 'started_at']).execute();
        // The one real run at a time, across replicas: a row per lease, taken while it is unexpired.
        await db.schema
          .createTable('retention_leases')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('holder', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '0010-quotas': {
      async up(db: Kysely<unknown>) {
        // Each link's namespace (namespaceOf(repo), the first path segment), so that a namespace's
        // fair share of its blobs and who else links each are index reads (src/meta/kysely/quota.ts).
        await db.schema
          .alterTable('repo_blobs')
          .addColumn('namespace', name, (c) => c.notNull().defaultTo(''))
          .execute();
        const firstSegment =
          engine === 'postgres' ? sql`split_part(repo, '/', 1)` : sql`case when instr(repo, '/') > 0 then substr(repo, 1, instr(repo, '/') - 1) else repo end`;
        await sql`update repo_blobs set namespace = ${firstSegment}`.execute(db);
        await db.schema.createIndex('repo_blobs_namespace').on('repo_blobs').columns(['namespace', 'digest']).execute();
        await db.schema.createIndex('repo_blobs_digest_namespace').on('repo_blobs').columns(['digest', 'namespace']).execute();
        // what was linked or stored lately, for the push path's cheap upper bound (src/lifecycle/quota.ts)
        await db.schema.createIndex('repo_blobs_namespace_created').on('repo_blobs').columns(['namespace', 'created_at']).execute();
        await db.schema.createIndex('manifests_created').on('manifests').columns(['created_at']).execute();
        // quota_bytes (0007) is the hard quota; the soft one is logged and shown when crossed,
        // once per crossing: soft_exceeded_at marks a namespace seen over it.
        await db.schema
          .alterTable('namespaces')
          .addColumn('soft_quota_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema.alterTable('namespaces').addColumn('soft_exceeded_at', 'bigint').execute();
      },
    },
    '0011-insight-events': {
      async up(db: Kysely<unknown>) {
        // Every push, pull, delete, login, token issue and policy decision (src/meta/insight.ts),
        // written in batches by src/insight/events.ts. Absent text is '', never null.
        const text = (c: ColumnDefinitionBuilder) => c.notNull().defaultTo('');
        await db.schema
          .createTable('usage_events')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('object', 'text', text)
          .addColumn('namespace', name, text)
          .addColumn('repository', name, text)
          .addColumn('digest', 'text', text)
          .addColumn('tag', name, text)
          .addColumn('media_type', 'text', text)
          .addColumn('actor', name, text)
          .addColumn('actor_kind', 'text', text)
          .addColumn('token_id', 'text', text)
          .addColumn('bytes', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('user_agent', 'text', text)
          .addColumn('source', 'text', text)
          .addColumn('duration_micros', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('status', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('result', 'text', (c) => c.notNull())
          .addColumn('detail', 'text', (c) => c.notNull().defaultTo('{}'))
          .execute();
        await db.schema.createIndex('usage_events_at').on('usage_events').columns(['at', 'id']).execute();
        await db.schema.createIndex('usage_events_namespace').on('usage_events').columns(['namespace', 'at']).execute();
        await db.schema.createIndex('usage_events_repository').on('usage_events').columns(['repository', 'at']).execute();
        await db.schema.createIndex('usage_events_type').on('usage_events').columns(['type', 'at']).execute();
        // Counts and bytes per hour and per (UTC) day, added to by the batch that inserts the events.
        await db.schema
          .createTable('usage_rollups')
          .addColumn('period', 'text', (c) => c.notNull())
          .addColumn('start', 'bigint', (c) => c.notNull())
          .addColumn('namespace', name, (c) => c.notNull())
          .addColumn('repository', name, (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('object', 'text', (c) => c.notNull())
          .addColumn('count', 'bigint', (c) => c.notNull())
          .addColumn('bytes', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('usage_rollups_pk', ['period', 'start', 'namespace', 'repository', 'type', 'object'])
          .execute();
        await db.schema.createIndex('usage_rollups_namespace').on('usage_rollups').columns(['period', 'namespace', 'start']).execute();
      },
    },
    '0012-webhooks': {
      async up(db: Kysely<unknown>) {
        // Webhooks per namespace and the outbox they are delivered from (src/meta/webhooks.ts,
        // src/insight/webhooks/README.md). types and repositories: JSON arrays.
        await db.schema
          .createTable('webhooks')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('namespace', name, (c) => c.notNull())
          .addColumn('url', 'text', (c) => c.notNull())
          .addColumn('secret', 'text', (c) => c.notNull())
          .addColumn('types', 'text', (c) => c.notNull())
          .addColumn('repositories', 'text', (c) => c.notNull())
          .addColumn('mode', 'text', (c) => c.notNull())
          .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('webhooks_namespace').on('webhooks').columns(['namespace', 'created_at']).execute();
        // The feed: the pushes, pulls and deletes of namespaces that have a webhook, numbered in
        // commit order by the triggers below.
        await db.schema
          .createTable('webhook_feed')
          .addColumn('seq', engine === 'postgres' ? 'bigserial' : 'integer', (c) => (engine === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('event_id', 'text', (c) => c.notNull())
          .addColumn('namespace', name, (c) => c.notNull())
          .execute();
        await db.schema.createIndex('webhook_feed_namespace').on('webhook_feed').columns(['namespace', 'seq']).execute();
        await db.schema
          .createTable('webhook_cursors')
          .addColumn('webhook_id', 'text', (c) => c.primaryKey())
          .addColumn('seq', 'bigint', (c) => c.notNull())
          .addColumn('holder', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('lease_until', 'bigint', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .createTable('webhook_queue')
          .addColumn('webhook_id', 'text', (c) => c.notNull())
          .addColumn('seq', 'bigint', (c) => c.notNull())
          .addColumn('repository', name, (c) => c.notNull())
          .addColumn('event', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
          .addColumn('queued_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('webhook_queue_pk', ['webhook_id', 'seq'])
          .execute();
        await db.schema.createIndex('webhook_queue_repository').on('webhook_queue').columns(['webhook_id', 'repository', 'seq']).execute();
        await db.schema
          .createTable('webhook_deliveries')
          .addColumn('id', engine === 'postgres' ? 'bigserial' : 'integer', (c) => (engine === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('webhook_id', 'text', (c) => c.notNull())
          .addColumn('event_id', 'text', (c) => c.notNull())
          .addColumn('event_type', 'text', (c) => c.notNull())
          .addColumn('repository', name, (c) => c.notNull())
          .addColumn('attempt', 'integer', (c) => c.notNull())
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('duration_ms', 'integer', (c) => c.notNull())
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('error', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('response', 'text', (c) => c.notNull().defaultTo(''))
          .execute();
        await db.schema.createIndex('webhook_deliveries_webhook').on('webhook_deliveries').columns(['webhook_id', 'id']).execute();
        await db.schema.createIndex('webhook_deliveries_at').on('webhook_deliveries').columns(['at']).execute();
        if (engine === 'postgres') {
          // One statement's rows at a time. The advisory lock is held until the batch commits, so
          // batches number their rows one after the other: a reader that has seen number n has
          // seen every committed row below it, and no row below it can commit later.
          await sql`
            create function webhook_feed_append() returns trigger language plpgsql as $$
            begin
              if exists (select 1 from new_events e join webhooks w on w.namespace = e.namespace where e.type in ('push', 'pull', 'delete')) then
                perform pg_advisory_xact_lock(${sql.raw(String(webhookFeedLock))});
                insert into webhook_feed (event_id, namespace)
                  select e.id, e.namespace from new_events e
                  where e.type in ('push', 'pull', 'delete') and exists (select 1 from webhooks w where w.namespace = e.namespace)
                  order by e.at, e.id;
              end if;
              return null;
            end $$`.execute(db);
          await sql`
            create trigger usage_events_webhook_feed after insert on usage_events
            referencing new table as new_events for each statement execute function webhook_feed_append()`.execute(db);
        } else {
          // SQLite writes one transaction at a time: rows are numbered in commit order already.
          await sql`
            create trigger usage_events_webhook_feed after insert on usage_events
            when new.type in ('push', 'pull', 'delete') and exists (select 1 from webhooks where namespace = new.namespace)
            begin
              insert into webhook_feed (event_id, namespace) values (new.id, new.namespace);
            end`.execute(db);
        }
      },
    },
    '0013-cost': {
      async up(db: Kysely<unknown>) {
        // Storage over time (src/meta/cost.ts): a tick is one sampling of every repository's fair
        // bytes; it stands from `at` until `end_at` (the next tick), or until now while it is the last.
        await db.schema
          .createTable('cost_ticks')
          .addColumn('at', 'bigint', (c) => c.primaryKey())
          .addColumn('end_at', 'bigint')
          .execute();
        await db.schema
          .createTable('cost_samples')
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('namespace', name, (c) => c.notNull())
          .addColumn('repository', name, (c) => c.notNull())
          .addColumn('bytes', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('cost_samples_pk', ['at', 'namespace', 'repository'])
          .execute();
        await db.schema.createIndex('cost_samples_namespace').on('cost_samples').columns(['namespace', 'at']).execute();
        // The bytes pulls sent to each configured network, per hour, rolled up from the events'
        // source addresses by one replica; the cursor is where that rollup has read up to.
        await db.schema
          .createTable('cost_egress')
          .addColumn('start', 'bigint', (c) => c.notNull())
          .addColumn('namespace', name, (c) => c.notNull())
          .addColumn('repository', name, (c) => c.notNull())
          .addColumn('network', 'text', (c) => c.notNull())
          .addColumn('bytes', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('cost_egress_pk', ['start', 'namespace', 'repository', 'network'])
          .execute();
        await db.schema.createIndex('cost_egress_namespace').on('cost_egress').columns(['namespace', 'start']).execute();
        await db.schema
          .createTable('cost_cursors')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .execute();
        // Budgets per namespace or team; *_notified: the month ('2026-11') a threshold was last announced in.
        await db.schema
          .createTable('cost_budgets')
          .addColumn('scope', 'text', (c) => c.notNull())
          .addColumn('name', name, (c) => c.notNull())
          .addColumn('monthly', 'double precision', (c) => c.notNull())
          .addColumn('soft', 'double precision')
          .addColumn('soft_notified', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('hard_notified', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('updated_by', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('cost_budgets_pk', ['scope', 'name'])
          .execute();
        await db.schema
          .createTable('cost_leases')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('holder', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '0014-manifest-notify': {
      async up(db: Kysely<unknown>) {
        // PostgreSQL: every change to what a manifest GET reads notifies the repository on commit,
        // for the manifest cache of every replica (src/meta/kysely/change-feed.ts). Inserts need
        // none: the cache keeps no misses. A manifest's bytes never change, so of its rows only
        // deletes matter; a tag also moves (update). Safe beside older replicas: nobody listens there.
        if (engine !== 'postgres') return;
        await sql`
          create function custody_manifest_changed() returns trigger language plpgsql as $$
          begin
            perform pg_notify(${sql.lit(manifestChannel)}, case when tg_op = 'DELETE' then old.repo else new.repo end);
            return null;
          end $$`.execute(db);
        await sql`create trigger tags_changed after update or delete on tags for each row execute function custody_manifest_changed()`.execute(db);
        await sql`create trigger manifests_changed after delete on manifests for each row execute function custody_manifest_changed()`.execute(db);
      },
    },
    '0015-job-leases': {
      async up(db: Kysely<unknown>) {
        // The periodic jobs' leases (src/meta/leases.ts): a row per job, so that of N replicas one
        // runs each job per interval. Only adds, so older replicas serve on beside it (they run
        // their own timers, as before, until they are gone).
        await db.schema
          .createTable('job_leases')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('holder', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .execute();
        // A pending trust artifact's claim: the replica verifying it, until when. An older
        // replica's rows get the defaults, "nobody", which is what they mean.
        await db.schema
          .alterTable('trust_artifacts')
          .addColumn('claimed_by', 'text', (c) => c.notNull().defaultTo(''))
          .execute();
        await db.schema
          .alterTable('trust_artifacts')
          .addColumn('claimed_until', 'bigint', (c) => c.notNull().defaultTo(0))
          .execute();
      },
    },
    '0016-rate-counts': {
      async up(db: Kysely<unknown>) {
        // Request counts per identity, window and replica, and the share of the window each
        // replica claims, exchanged so that auth.requestsPerSecond holds across them
        // (src/meta/rates.ts). UNLOGGED on PostgreSQL: no write-ahead log for rows rewritten every
        // quarter second, and a crash that empties the table forgets a few seconds of counts,
        // which is all they are worth.
        const table = db.schema.createTable('rate_counts');
        await (engine === 'postgres' ? table.modifyFront(sql`unlogged`) : table)
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('window_start', 'bigint', (c) => c.notNull())
          .addColumn('replica', 'text', (c) => c.notNull())
          .addColumn('count', 'bigint', (c) => c.notNull())
          .addColumn('claim', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('rate_counts_pk', ['key', 'window_start', 'replica'])
          .execute();
        // for pruning old windows
        await db.schema.createIndex('rate_counts_window').on('rate_counts').column('window_start').execute();
      },
    },
    '0017-events-feed-by-batch': {
      async up(db: Kysely<unknown>) {
        // SQLite: the transaction that inserts events appends their webhook feed rows in one
        // statement (sqlite-webhook-feed.ts), not a trigger per row. PostgreSQL keeps its trigger.
        if (engine === 'sqlite') await sql`drop trigger if exists usage_events_webhook_feed`.execute(db);
      },
    },
    '0018-namespace-notify': {
      async up(db: Kysely<unknown>) {
        // PostgreSQL: every change to a namespace's row (its quotas, its soft quota crossed) notifies
        // the namespace on commit, for the namespace cache of every replica (namespace-cache.ts).
        // Inserts too: that cache keeps "no row". Safe beside older replicas: nobody listens there.
        if (engine !== 'postgres') return;
        await sql`
          create function custody_namespace_changed() returns trigger language plpgsql as $$
          begin
            perform pg_notify(${sql.lit(namespaceChannel)}, case when tg_op = 'DELETE' then old.name else new.name end);
            return null;
          end $$`.execute(db);
        await sql`create trigger namespaces_changed after insert or update or delete on namespaces for each row execute function custody_namespace_changed()`.execute(
          db,
        );
      },
    },
  };
  return { getMigrations: async () => all };
}
