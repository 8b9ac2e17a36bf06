/**
 * Named leases in a table of (name, holder, expires_at): one holder at a time until it expires or
 * is released. Retention's and cost's background jobs each keep theirs in a table of their own
 * (retention_leases, cost_leases); the rules are these, written once.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';

export type LeaseTable = 'retention_leases' | 'cost_leases';

/** Takes (or renews) the lease for `holder` until now + ttlMs, unless another holder's is still valid. */
export async function acquireLease(db: Kysely<Database>, table: LeaseTable, name: string, holder: string, now: number, ttlMs: number): Promise<boolean> {
  const r = await db
    .insertInto(table)
    .values({ name, holder, expires_at: now + ttlMs })
    .onConflict((c) =>
      c
        .column('name')
        .doUpdateSet({ holder, expires_at: now + ttlMs })
        .where((eb) => eb.or([eb(`${table}.expires_at`, '<', now), eb(`${table}.holder`, '=', holder)])),
    )
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
}

/** Gives the lease up, if `holder` has it. */
export async function releaseLease(db: Kysely<Database>, table: LeaseTable, name: string, holder: string): Promise<void> {
  await db.deleteFrom(table).where('name', '=', name).where('holder', '=', holder).execute();
}
