/**
 * The SQLite webhook feed's append (src/meta/kysely/sqlite-webhook-feed.ts) runs in every
 * transaction of usage events: it must read only the rows that transaction inserted. With its
 * `type` filter on usage_events_type, every commit scanned every push, pull and delete stored,
 * a cost that grew with the table.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import { openMetaStore } from '../../src/meta/open.ts';
import { appendFeedAfter } from '../../src/meta/kysely/sqlite-webhook-feed.ts';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function migratedDatabase(): Promise<DatabaseSync> {
  dir = await mkdtemp(path.join(tmpdir(), 'custody-feed-'));
  const file = path.join(dir, 'custody.db');
  await (await openMetaStore(file)).close();
  return new DatabaseSync(file);
}

describe('the SQLite webhook feed append', () => {
  it('reads usage_events by rowid from the transaction’s first row, through no other index', async () => {
    const db = await migratedDatabase();
    try {
      const plan = (db.prepare(`explain query plan ${appendFeedAfter}`).all(0) as { detail: string }[]).map((r) => r.detail);
      const events = plan.filter((d) => / e( |$)/.test(d));
      expect(events).toEqual(['SEARCH e USING INTEGER PRIMARY KEY (rowid>?)']);
      expect(plan.join('\n')).not.toMatch(/TEMP B-TREE/);
    } finally {
      db.close();
    }
  });
});
