/**
 * The SQLite events writer's thread (see sqlite-events.ts): its own connection to the database
 * file, and for each batch it is sent (19 values per event, in the columns' order) transactions
 * of at most `rowsPerTransaction` events that insert the new ones, add them to the rollups and
 * append them to the webhook feed (sqlite-webhook-feed.ts).
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';
import { appendFeedAfter, lastEventRowid } from './sqlite-webhook-feed.ts';

export interface WriterSetup {
  file: string;
  columns: readonly string[];
}

export interface WriteRequest {
  seq: number;
  /** 19 values per event */
  values: SQLInputValue[];
}

export type WriteReply = { seq: number; inserted: number } | { seq: number; error: string };

const hourMs = 3_600_000;
const dayMs = 86_400_000;
/** Events per insert statement, and per transaction: a transaction holds the write lock ~1 ms. */
const rowsPerStatement = 50;
const rowsPerTransaction = 250;

const { file, columns } = workerData as WriterSetup;
const width = columns.length;
const db = new DatabaseSync(file);
db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;');
const at = columns.indexOf('at');
const type = columns.indexOf('type');
const object = columns.indexOf('object');
const namespace = columns.indexOf('namespace');
const repository = columns.indexOf('repository');
const bytes = columns.indexOf('bytes');

/** Insert statements by row count: plain ones, and ones that skip an id already stored and say which rows went in. */
const inserts = new Map<string, StatementSync>();
function insert(rows: number, skipping: boolean): StatementSync {
  const key = `${rows} ${skipping}`;
  let stmt = inserts.get(key);
  if (!stmt) {
    const row = `(${columns.map(() => '?').join(', ')})`;
    const values = Array.from({ length: rows }, () => row).join(', ');
    stmt = db.prepare(`insert into usage_events (${columns.join(', ')}) values ${values}${skipping ? ' on conflict (id) do nothing returning id' : ''}`);
    inserts.set(key, stmt);
  }
  return stmt;
}
const lastRowid = db.prepare(lastEventRowid);
const appendFeed = db.prepare(appendFeedAfter);
const upsert = db.prepare(
  'insert into usage_rollups (period, start, namespace, repository, type, object, count, bytes) values (?, ?, ?, ?, ?, ?, ?, ?) ' +
    'on conflict (period, start, namespace, repository, type, object) do update set count = count + excluded.count, bytes = bytes + excluded.bytes',
);

interface Sum {
  start: number;
  namespace: string;
  repository: string;
  type: string;
  object: string;
  count: number;
  bytes: number;
}

/** The text columns are strings (params() in insight.ts writes them so). */
const text = (v: SQLInputValue | undefined): string => (typeof v === 'string' ? v : '');

/** Adds event `r` to the hourly sums (the daily ones are made from those). */
function addTo(sums: Map<string, Sum>, values: SQLInputValue[], r: number): void {
  const o = r * width;
  const when = Number(values[o + at]);
  const start = when - (when % hourMs);
  const ns = text(values[o + namespace]);
  const repo = text(values[o + repository]);
  const kind = text(values[o + type]);
  const obj = text(values[o + object]);
  const key = `${start}\0${ns}\0${repo}\0${kind}\0${obj}`;
  const n = Number(values[o + bytes]);
  const sum = sums.get(key);
  if (sum) {
    sum.count++;
    sum.bytes += n;
  } else sums.set(key, { start, namespace: ns, repository: repo, type: kind, object: obj, count: 1, bytes: n });
}

function upsertRollups(hours: Map<string, Sum>): void {
  const days = new Map<string, Sum>();
  for (const h of hours.values()) {
    upsert.run('hour', h.start, h.namespace, h.repository, h.type, h.object, h.count, h.bytes);
    const start = h.start - (h.start % dayMs);
    const key = `${start}\0${h.namespace}\0${h.repository}\0${h.type}\0${h.object}`;
    const d = days.get(key);
    if (d) {
      d.count += h.count;
      d.bytes += h.bytes;
    } else days.set(key, { ...h, start });
  }
  for (const d of days.values()) upsert.run('day', d.start, d.namespace, d.repository, d.type, d.object, d.count, d.bytes);
}

/**
 * Inserts events first..end-1 of the batch and adds those inserted to the rollups, in one
 * transaction; how many were new. A batch written again (its first write committed, but its
 * answer was lost) hits an id already stored: the range is then written again skipping those.
 */
function writeRange(values: SQLInputValue[], first: number, end: number, skipping = false): number {
  const sums = new Map<string, Sum>();
  let inserted = 0;
  db.exec('BEGIN IMMEDIATE');
  try {
    const before = Number((lastRowid.get() as { last: number }).last);
    for (let i = first; i < end; i += rowsPerStatement) {
      const rows = Math.min(rowsPerStatement, end - i);
      const args = values.slice(i * width, (i + rows) * width);
      if (!skipping) {
        insert(rows, false).run(...args);
        for (let r = i; r < i + rows; r++) addTo(sums, values, r);
        inserted += rows;
        continue;
      }
      const stored = new Set((insert(rows, true).all(...args) as { id: string }[]).map((x) => x.id));
      for (let r = i; r < i + rows; r++) if (stored.has(values[r * width] as string)) addTo(sums, values, r);
      inserted += stored.size;
    }
    upsertRollups(sums);
    appendFeed.run(before);
    db.exec('COMMIT');
    return inserted;
  } catch (err) {
    db.exec('ROLLBACK');
    if (!skipping && /UNIQUE constraint failed: usage_events\.id/.test((err as Error).message)) return writeRange(values, first, end, true);
    throw err;
  }
}

parentPort?.on('message', (request: WriteRequest) => {
  let inserted = 0;
  try {
    const events = request.values.length / width;
    for (let first = 0; first < events; first += rowsPerTransaction)
      inserted += writeRange(request.values, first, Math.min(events, first + rowsPerTransaction));
    parentPort?.postMessage({ seq: request.seq, inserted } satisfies WriteReply);
  } catch (err) {
    parentPort?.postMessage({ seq: request.seq, error: (err as Error).message } satisfies WriteReply);
  }
});
