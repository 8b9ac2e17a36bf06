/**
 * Job leases: which replica may run a periodic job now (src/lifecycle/schedule.ts runs them).
 * A lease is a row per job (name, holder, expires_at), shared by every replica on the database.
 * Whoever takes it runs the job; nobody else may take it before it expires. While the job runs
 * its holder keeps moving the expiry forward; when the job is done the holder sets it to the end
 * of the interval, so the next run is the next interval's. A holder that dies stops renewing,
 * and the lease is free again when it expires: another replica takes the job over.
 *
 * Times are the callers' clocks (milliseconds since the epoch): replicas' clocks must agree to
 * well within a lease (deploy.md asks for NTP).
 */

export interface Lease {
  name: string;
  holder: string;
  expiresAt: number;
}

export interface LeaseStore {
  /**
   * Takes the lease `name` for `holder` until `until`, if nobody holds it at `now`: there is no
   * row, or its expiry is not after `now` (whoever held it, this holder too: an interval a job has
   * run in is not run again). Answers whether it was taken, and the lease as it stands afterwards.
   */
  acquire(name: string, holder: string, now: number, until: number): Promise<{ taken: boolean; lease: Lease }>;
  /**
   * Moves the expiry of `holder`'s lease to `until` (later while its job runs, the interval's end
   * once it is done); false when the lease is no longer `holder`'s (it expired and was taken).
   */
  renew(name: string, holder: string, until: number): Promise<boolean>;
  /** Gives the lease up at once, if `holder` has it: the next replica to ask takes it. */
  release(name: string, holder: string): Promise<void>;
  get(name: string): Promise<Lease | undefined>;
}
