/**
 * `npm run bench:query`: the query language's benchmark of issue 15 (item 4).
 *
 * Seeds N pull events (default 1 000 000) over 1 000 repositories in 50 namespaces and 30 days
 * into an SQLite database, written straight into usage_events in transactions of 100 000 rows
 * (the rollups are not the subject here), then times queries through the whole path
 * (runQuery: parse, plan, compile, run, convert) as a registry administrator and as a reader of
 * five namespaces. The target: `FROM pulls |> AGGREGATE sum(bytes), count() GROUP BY repository`
 * under 1 s on SQLite.
 *
 *   --events N      events to seed (default 1000000)
 *   --runs N        runs of each query; the median and the fastest are printed (default 5)
 *   --postgres URL  seed and query this PostgreSQL database instead (it must be empty)
 *   --load N        N busy loops beside the run
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { runQuery, type QueryAccess } from '../src/insight/query/index.ts';
import { parseQuery } from '../src/insight/query/parser.ts';
import { planQuery } from '../src/insight/query/planner.ts';
import { eventId, type UsageEvent } from '../src/meta/insight.ts';
import type { KyselyQueryStore } from '../src/meta/kysely/query.ts';
import type { MetaStore } from '../src/meta/metastore.ts';
import { openMetaStore } from '../src/meta/open.ts';
import { startBusyLoops } from './load.ts';
import { fmt, table } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '5' },
    postgres: { type: 'string' },
    load: { type: 'string', default: '0' },
  },
});
const events = Number(args.events);
const runs = Number(args.runs);
const day = 86_400_000;
const now = Date.now();
const load = (label: string) =>
  `${label} ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;

/** The i-th event: repositories and sizes spread evenly, times over the last 30 days. */
function eventOf(i: number): UsageEvent {
  const repo = i % 1000;
  const namespace = `ns${repo % 50}`;
  const at = now - 30 * day + Math.floor((i / events) * 30 * day);
  return {
    id: eventId(at),
    at,
    type: Math.floor(i / 1000) % 10 === 0 ? 'push' : 'pull',
    object: i % 7 === 0 ? 'manifest' : 'blob',
    namespace,
    repository: `${namespace}/app-${repo}`,
    digest: `sha256:${(i * 2654435761).toString(16).padStart(64, '0').slice(-64)}`,
    tag: '',
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    actor: `user${i % 200}`,
    actorKind: 'user',
    tokenId: '',
    bytes: 1000 + ((i * 7919) % 50_000_000),
    userAgent: 'containerd/2.0.0',
    source: `10.0.${(i >> 8) & 255}.${i & 255}`,
    durationMicros: 500 + (i % 10_000),
    status: 200,
    result: 'ok',
    detail: {},
  };
}

async function seedSqlite(file: string): Promise<void> {
  const db = new DatabaseSync(file);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL');
  const insert = db.prepare(
    `insert into usage_events (id, at, type, object, namespace, repository, digest, tag, media_type, actor, actor_kind, token_id, bytes, user_agent, source, duration_micros, status, result, detail)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  for (let start = 0; start < events; start += 100_000) {
    db.exec('begin');
    for (let i = start; i < Math.min(events, start + 100_000); i++) {
      const e = eventOf(i);
      insert.run(
        e.id,
        e.at,
        e.type,
        e.object,
        e.namespace,
        e.repository,
        e.digest,
        e.tag,
        e.mediaType,
        e.actor,
        e.actorKind,
        e.tokenId,
        e.bytes,
        e.userAgent,
        e.source,
        e.durationMicros,
        e.status,
        e.result,
        '{}',
      );
    }
    db.exec('commit');
  }
  db.exec('analyze');
  db.close();
}

async function seedThroughStore(meta: MetaStore): Promise<void> {
  for (let start = 0; start < events; start += 10_000)
    await meta.insight.recordEvents(Array.from({ length: Math.min(10_000, events - start) }, (_, k) => eventOf(start + k)));
}

const queries: [string, string, QueryAccess][] = [
  ['the target: bytes and pulls per repository', 'FROM pulls |> AGGREGATE sum(bytes), count() GROUP BY repository', 'all'],
  ['the same, as a reader of 5 namespaces', 'FROM pulls |> AGGREGATE sum(bytes), count() GROUP BY repository', ['ns1', 'ns2', 'ns3', 'ns4', 'ns5']],
  [
    "the issue's example (one namespace, 7 days, top 10)",
    "FROM pulls |> WHERE namespace = 'ns7' AND time > now() - interval '7 days' |> AGGREGATE sum(bytes) AS bytes, count() AS pulls GROUP BY repository |> ORDER BY bytes DESC |> LIMIT 10",
    'all',
  ],
  [
    'pulls per day over 30 days',
    "FROM pulls |> AGGREGATE count() AS pulls, sum(bytes) AS bytes GROUP BY bucket(time, interval '1 day') AS day |> ORDER BY day",
    'all',
  ],
  ['distinct actors per namespace', 'FROM pulls |> AGGREGATE count(distinct actor) AS actors GROUP BY namespace |> ORDER BY actors DESC', 'all'],
  ['the newest 100 pulls of one repository', "FROM pulls |> WHERE repository = 'ns3/app-3' |> ORDER BY time DESC |> LIMIT 100", 'all'],
];

const dir = await mkdtemp(path.join(tmpdir(), 'custody-bench-query-'));
const busy = startBusyLoops(Number(args.load));
try {
  console.log(load(`seeding ${events} events (${args.postgres ? 'PostgreSQL' : 'SQLite'}); load averages before:`));
  const file = path.join(dir, 'custody.db');
  const seedStarted = performance.now();
  let meta: MetaStore;
  if (args.postgres) {
    meta = await openMetaStore(args.postgres);
    await seedThroughStore(meta);
  } else {
    await (await openMetaStore(file)).close(); // the migrations
    await seedSqlite(file);
    meta = await openMetaStore(file);
  }
  console.log(`seeded in ${fmt((performance.now() - seedStarted) / 1000)} s`);
  const plan = planQuery(parseQuery(queries[0]?.[1] as string), { access: 'all', now, defaultRows: 1000, maxRows: 10_000 }).plan;
  console.log(`SQL: ${(meta.query as KyselyQueryStore).compile(plan).sql}`);
  if (!args.postgres) {
    const db = new DatabaseSync(file, { readOnly: true });
    const { sql } = (meta.query as KyselyQueryStore).compile(plan);
    const plain = sql
      .replace(/ and \(random\(\) % 1024 <> 0 or custody_query_deadline\(\?\)\)/, '')
      .replace(/cast\(\? as text\)/, "'pull'")
      .replace(/limit \?$/, 'limit 1001');
    console.log(
      `plan: ${db
        .prepare(`explain query plan ${plain}`)
        .all()
        .map((r) => r.detail)
        .join('; ')}`,
    );
    db.close();
  }
  const rows: string[][] = [['query', 'rows', 'median ms', 'fastest ms']];
  for (const [label, text, access] of queries) {
    const times: number[] = [];
    let count = 0;
    for (let r = 0; r < runs; r++) {
      const started = performance.now();
      const result = await runQuery(meta.query, text, { access, limits: { timeoutMs: 60_000 } });
      times.push(performance.now() - started);
      count = result.rows.length;
    }
    times.sort((a, b) => a - b);
    rows.push([label, String(count), fmt(times[Math.floor(times.length / 2)]), fmt(times[0])]);
  }
  console.log(table(rows));
  console.log(load('load averages after:'));
  await meta.close();
} finally {
  busy.stop();
  await rm(dir, { recursive: true, force: true });
}
