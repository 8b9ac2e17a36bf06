/**
 * Request counts per identity and fixed time window, shared by the replicas of one database so
 * that `auth.requestsPerSecond` holds across them (src/auth/shared-rates.ts decides with them).
 * Each replica owns its own row per (key, window) and writes absolute values there, never a
 * delta: a write that is retried, or arrives late after a timeout, cannot count a request twice.
 * Beside its count, a replica writes its claim: how many of the window's requests it may allow
 * without asking again; the others leave that part to it. The rows need no durability: on
 * PostgreSQL the table is UNLOGGED (emptied by a crash, which forgets a few seconds of counts).
 */

export interface RateCount {
  /** the identity: `user:<id>`, `robot:<id>`, `source:<address>` ('' is a replica's presence) */
  key: string;
  /** when the window began, ms since the epoch (a multiple of the window's length) */
  windowStart: number;
  /** the requests this replica allowed for the key in that window so far */
  count: number;
  /** the requests this replica may allow for the key in that window (at least `count`) */
  claim: number;
}

/** What the other replicas hold of one key. */
export interface RateTotals {
  key: string;
  /** the other replicas that have a row for the key in the current or the previous window */
  peers: number;
  /** of those with a row in the current window: their claims (or counts, if larger), added up */
  claimed: number;
  /** of the peers, those with a row in the previous window only (they have not written this one yet) */
  unseen: number;
  /** of the peers, those whose replica name sorts before the asking replica's (who gets a remainder) */
  ahead: number;
}

export interface RateExchange {
  /** the replica writing: its rows are kept apart from the others' and left out of the totals */
  replica: string;
  /** this replica's rows that changed since its last exchange (any window) */
  counts: RateCount[];
  /** the keys whose totals to read back */
  keys: string[];
  /** the current window's start, and the previous window's (the peers are found in both) */
  current: number;
  previous: number;
}

export interface RateStore {
  /**
   * Whether other processes can share these counts: true on PostgreSQL. SQLite has one server,
   * whose own bucket is exact, so it never needs to exchange.
   */
  readonly shared: boolean;
  /**
   * Writes this replica's rows (keeping the larger count and claim where a row has them already)
   * and reads back the other replicas' totals for `keys`, in one statement on PostgreSQL. A key
   * no other replica has a row for has no entry in the answer.
   */
  exchange(exchange: RateExchange): Promise<RateTotals[]>;
  /** Deletes every replica's rows of windows that began before `before`; how many. */
  prune(before: number): Promise<number>;
}
