/**
 * Named leases in a table of (name, holder, expires_at): one holder at a time until it expires or
 * is released. Retention's and cost's background jobs each keep theirs in a table of their own
 * (retention_leases, cost_leases), the periodic jobs theirs in job_leases (src/meta/leases.ts);
 * the rules are these, written once.
 *
 * Every change is one statement, so two replicas asking at once are decided by the database: on
 * PostgreSQL the conflicting row is locked and the WHERE is checked again against what the other
 * committed; SQLite has one writer.
 */
import type { Kysely } from 'kysely';
import type { Lease, LeaseStore } from '../leases.ts';
import type { Database } from './schema.ts';

export type LeaseTable = 'retention_leases' | 'cost_leases' | 'job_leases';

/**
 * Takes the lease for `holder` until `until`, if it is free at `now` (no row, or expired: before
 * `now`, or at `now` too when `atExpiry`), or, when `renewOwn`, already `holder`'s. True when taken.
 */
async function take(
  db: Kysely<Database>,
  table: LeaseTable,
  lease: { name: string; holder: string; now: number; until: number },
  rules: { renewOwn: boolean; atExpiry: boolean },
): Promise<boolean> {
  const { name, holder, now, until } = lease;
  const r = await db
    .insertInto(table)
    .values({ name, holder, expires_at: until })
    .onConflict((c) =>
      c
        .column('name')
        .doUpdateSet({ holder, expires_at: until })
        .where((eb) => {
          const free = eb(`${table}.expires_at`, rules.atExpiry ? '<=' : '<', now);
          return rules.renewOwn ? eb.or([free, eb(`${table}.holder`, '=', holder)]) : free;
        }),
    )
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
}

/** Takes (or renews) the lease for `holder` until now + ttlMs, unless another holder's is still valid. */
export function acquireLease(db: Kysely<Database>, table: LeaseTable, name: string, holder: string, now: number, ttlMs: number): Promise<boolean> {
  return take(db, table, { name, holder, now, until: now + ttlMs }, { renewOwn: true, atExpiry: false });
}

/** Gives the lease up, if `holder` has it. */
export async function releaseLease(db: Kysely<Database>, table: LeaseTable, name: string, holder: string): Promise<void> {
  await db.deleteFrom(table).where('name', '=', name).where('holder', '=', holder).execute();
}

/** The periodic jobs' leases (src/meta/leases.ts) in job_leases. */
export class KyselyLeaseStore implements LeaseStore {
  private readonly db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.db = db;
  }

  async acquire(name: string, holder: string, now: number, until: number): Promise<{ taken: boolean; lease: Lease }> {
    // Not renewOwn: a holder whose lease runs to the interval's end has run this interval's job.
    if (await take(this.db, 'job_leases', { name, holder, now, until }, { renewOwn: false, atExpiry: true }))
      return { taken: true, lease: { name, holder, expiresAt: until } };
    // Held (the insert conflicted): by whom, until when. Released in the meantime, it is free now.
    return { taken: false, lease: (await this.get(name)) ?? { name, holder: '', expiresAt: now } };
  }

  async renew(name: string, holder: string, until: number): Promise<boolean> {
    const r = await this.db.updateTable('job_leases').set({ expires_at: until }).where('name', '=', name).where('holder', '=', holder).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async release(name: string, holder: string): Promise<void> {
    await releaseLease(this.db, 'job_leases', name, holder);
  }

  async get(name: string): Promise<Lease | undefined> {
    const row = await this.db.selectFrom('job_leases').selectAll().where('name', '=', name).executeTakeFirst();
    return row && { name: row.name, holder: row.holder, expiresAt: Number(row.expires_at) };
  }
}
