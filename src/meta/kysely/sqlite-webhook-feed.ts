/**
 * The webhook feed on SQLite: which events a webhook will be sent, numbered in commit order
 * (0012-webhooks). A per-row trigger did this until 0017; it cost ~7 µs of every event's ~24 µs
 * insert even where no webhook exists. Now each transaction that inserts events appends their feed
 * rows in one statement: it notes the last rowid before its inserts (it holds the write lock, so
 * every row past it is its own, in insert order) and copies the new pushes, pulls and deletes of
 * namespaces that have a webhook. PostgreSQL keeps its statement-level trigger.
 *
 * The append must read only the new rows, through the rowid. Left to itself SQLite's planner
 * took `usage_events_type` for the `type in (…)` filter, and every commit then scanned every
 * push, pull and delete ever stored (at 37 000 events, ~26 µs per event inserted, growing with
 * the table): `+e.type` keeps the filter off that index.
 */

/** The last usage_events rowid before a transaction's inserts: `{ last }`. */
export const lastEventRowid = 'select coalesce(max(rowid), 0) as last from usage_events';

/** Appends the feed rows of the events past rowid `?`, in insert order. */
export const appendFeedAfter =
  'insert into webhook_feed (event_id, namespace) ' +
  'select e.id, e.namespace from usage_events e ' +
  "where e.rowid > ? and +e.type in ('push', 'pull', 'delete') and exists (select 1 from webhooks w where w.namespace = e.namespace) " +
  'order by e.rowid';
