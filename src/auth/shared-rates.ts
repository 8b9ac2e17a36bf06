/**
 * `auth.requestsPerSecond` across replicas that share a PostgreSQL database (docs/auth.md,
 * "Request rates across replicas"). No request waits for the database as a rule: each replica
 * counts the requests it allows per identity in fixed windows (2 s, aligned to the epoch, so every
 * replica has the same ones), and every 250 ms exchanges with the table of meta.rates in one
 * statement: it writes its counts, and reads back what the other replicas hold.
 *
 * A window allows `requestsPerSecond × 2 s` requests in all, and each replica allows only what it
 * claims of them. It starts a window with its share (the limit divided among the replicas that
 * counted the identity lately; for an identity it has not seen, among all the live ones) and
 * writes its claim at the next exchange; what the others claim (or, not written yet, their share)
 * is theirs. A request past the claim while the window still has room asks for an exchange at
 * once and waits for it (a round trip); the exchange claims a part of what is left, divided by
 * the replicas that share the identity. So one spread over three replicas gets the rate, not
 * three times it, and an identity on one replica gets the whole rate there, from its second
 * window on: in its first, nobody can know yet that no other replica will meet it, so each live
 * replica keeps its share for it.
 *
 * When no exchange has answered for 2 s, the local token bucket of rate-limit.ts decides (each
 * replica then allows the whole rate again), said once in the log; the next exchange that
 * answers brings the shared counts back. Requests never fail because the database did.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import type { RateCount, RateStore } from '../meta/rates.ts';
import { allowed, RateLimiter, type RateAnswer, type RequestLimiter } from './rate-limit.ts';

export interface SharedRateSettings {
  perSecond: number;
  /** the length of a counting window (default 2000 ms) */
  windowMs?: number;
  /** how often counts are exchanged (default 250 ms) */
  exchangeMs?: number;
  /** an exchange that has not answered by then has failed; with none answered for this long, the local bucket decides (default 2000 ms) */
  timeoutMs?: number;
  /** this replica's name in the table (default host:pid:random) */
  replica?: string;
}

type Log = Pick<FastifyBaseLogger, 'warn' | 'info'>;

/** What this replica knows of one identity in the window it last counted in. */
interface KeyState {
  window: number;
  /** requests this replica allowed in the window */
  mine: number;
  /** how many it may allow: its share, then what exchanges added */
  cap: number;
  /** `mine` and `cap` as the table has them (the last exchange that answered) */
  sentMine: number;
  sentCap: number;
  /** the last exchange found nothing left for this replica to claim: refused until the window ends */
  full: boolean;
  /** how many other replicas counted the identity lately */
  peers: number;
  /**
   * false in the first window this replica counts the identity in: the table cannot yet say who
   * else has it (another replica may meet it later in the window), so every live replica may
   */
  known: boolean;
}

/** identities remembered at most (each stays two windows after its last request) */
const maxKeys = 50_000;
/** the least time between two exchanges that waiting requests asked for */
const minGapMs = 20;
/** the table's key of a replica's own row: it is alive (counted as a peer of every new identity) */
const presence = '';

export class SharedRateLimiter implements RequestLimiter {
  private readonly store: RateStore;
  private readonly log: Log;
  private readonly now: () => number;
  private readonly windowMs: number;
  private readonly exchangeMs: number;
  private readonly timeoutMs: number;
  readonly replica: string;
  /** requests a window allows, all replicas together */
  readonly limit: number;
  private readonly local: RateLimiter;
  private readonly states = new Map<string, KeyState>();
  /** counts of windows a key has left, not yet written */
  private leftovers: RateCount[] = [];
  /** live replicas, this one included, as of the last exchange */
  private replicas = 1;
  /** no exchange answered for timeoutMs: the local bucket decides */
  private fallback = false;
  private lastAnswerAt = performance.now();
  private lastRoundAt = -Infinity;
  private lastPruneAt = performance.now();
  /** an exchange (or prune) is in flight: never more than one, even one that timed out */
  private outstanding = false;
  private running = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private waiters: ((answered: boolean) => void)[] = [];

  constructor(store: RateStore, settings: SharedRateSettings, log: Log, now: () => number = Date.now) {
    this.store = store;
    this.log = log;
    this.now = now;
    this.windowMs = settings.windowMs ?? 2000;
    this.exchangeMs = settings.exchangeMs ?? 250;
    this.timeoutMs = settings.timeoutMs ?? 2000;
    this.replica = settings.replica ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    // A rate below one request per window is rounded up to one.
    this.limit = Math.max(1, Math.round((settings.perSecond * this.windowMs) / 1000));
    this.local = new RateLimiter(settings.perSecond, undefined, now);
  }

  /**
   * Exchanges at once (to learn the live replicas), then every exchangeMs: a timer of this process
   * (not a scheduled job), since what it writes is this replica's own counts. Its pruning of old
   * windows rides on it too, never beside an exchange, so it never holds a second connection.
   */
  start(): void {
    const tick = () => {
      if (this.stopped) return;
      // Idle too: the presence row keeps the count of live replicas fresh, which a new identity's share is divided by.
      this.kick();
      this.timer = setTimeout(tick, this.exchangeMs);
      this.timer.unref();
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const w of this.waiters.splice(0)) w(false);
    await this.round;
  }

  take(key: string): RateAnswer | Promise<RateAnswer> {
    if (this.fallback) return this.local.take(key);
    const now = this.now();
    const answer = this.judge(this.state(key, now), now);
    return answer === 'ask' ? this.afterExchange(key) : answer;
  }

  /** Past its claim: decided again once an exchange has answered (with no answer in time, by the local bucket). */
  private async afterExchange(key: string): Promise<RateAnswer> {
    const answered = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.exchangeMs);
      this.waiters.push((ok) => {
        clearTimeout(timer);
        resolve(ok);
      });
      this.kick();
    });
    if (this.fallback || !answered) return this.local.take(key);
    const now = this.now();
    const answer = this.judge(this.state(key, now), now);
    // Still past its claim: other requests waiting on the same exchange took what it claimed; the next may claim more.
    return answer === 'ask' ? { allowed: false, retryAfter: 1 } : answer;
  }

  private judge(s: KeyState, now: number): RateAnswer | 'ask' {
    if (s.mine < s.cap) {
      s.mine++;
      return allowed;
    }
    // (a claim of the whole limit has nothing more to ask for)
    return s.full || s.cap >= this.limit ? { allowed: false, retryAfter: Math.max(1, Math.ceil((s.window + this.windowMs - now) / 1000)) } : 'ask';
  }

  /** This replica's share of a window when `peers` other replicas count the identity too. */
  private share(peers: number): number {
    return Math.max(1, Math.floor(this.limit / (peers + 1)));
  }

  /** The key's state in the window `now` is in; a new window starts at its share and remembers the peers. */
  private state(key: string, now: number): KeyState {
    const window = now - (now % this.windowMs);
    const s = this.states.get(key);
    // (a clock moved back keeps counting in the later window)
    if (s && s.window >= window) return s;
    if (s && (s.mine > s.sentMine || s.cap > s.sentCap)) this.leftovers.push({ key, windowStart: s.window, count: s.mine, claim: s.cap });
    const peers = s ? s.peers : this.replicas - 1;
    const fresh: KeyState = { window, mine: 0, cap: this.share(peers), sentMine: 0, sentCap: 0, full: false, peers, known: s !== undefined };
    if (!s && this.states.size >= maxKeys) {
      const oldest = this.states.keys().next().value;
      if (oldest !== undefined) this.states.delete(oldest);
    }
    this.states.set(key, fresh);
    return fresh;
  }

  /** Starts a round of exchanges unless one is running (waiters that came meanwhile get another). */
  private kick(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.round = this.rounds().finally(() => (this.running = false));
  }

  private async rounds(): Promise<void> {
    do {
      const gap = this.lastRoundAt + minGapMs - performance.now();
      if (gap > 0) await new Promise((resolve) => setTimeout(resolve, gap));
      const waiting = this.waiters.splice(0);
      this.lastRoundAt = performance.now();
      const answered = await this.exchange();
      for (const w of waiting) w(answered);
    } while (this.waiters.length > 0 && !this.stopped);
  }

  /** One exchange; false when it failed or timed out (a timed-out one is left to settle first). */
  private async exchange(): Promise<boolean> {
    if (this.outstanding) return this.failed(new Error('the previous exchange has not answered yet'));
    const now = this.now();
    const current = now - (now % this.windowMs);
    const previous = current - this.windowMs;
    const counts = this.leftovers.filter((c) => c.windowStart >= previous);
    const sentLeftovers = this.leftovers.length;
    const asked = new Map<string, { window: number; mine: number; cap: number }>();
    for (const [key, s] of this.states) {
      // idle for two windows: nothing left to know
      if (s.window < previous) {
        this.states.delete(key);
        continue;
      }
      if (s.mine > s.sentMine || s.cap > s.sentCap) counts.push({ key, windowStart: s.window, count: s.mine, claim: s.cap });
      asked.set(key, { window: s.window, mine: s.mine, cap: s.cap });
    }
    counts.push({ key: presence, windowStart: current, count: 0, claim: 0 });
    let totals;
    try {
      totals = await this.settle(this.store.exchange({ replica: this.replica, counts, keys: [presence, ...asked.keys()], current, previous }));
    } catch (err) {
      return this.failed(err);
    }
    this.leftovers.splice(0, sentLeftovers);
    this.lastAnswerAt = performance.now();
    if (this.fallback) {
      this.fallback = false;
      // The outage wrote nothing: every identity starts afresh, as one new here.
      this.states.clear();
      this.leftovers = [];
      this.log.info({ replica: this.replica }, 'request rates: the shared counts answer again; the limit holds across replicas');
    }
    const byKey = new Map(totals.map((t) => [t.key, t]));
    this.replicas = (byKey.get(presence)?.peers ?? 0) + 1;
    for (const [key, was] of asked) {
      const s = this.states.get(key);
      // counted in a later window since: what was written and read is of another window
      if (!s || s.window !== was.window) continue;
      s.sentMine = Math.max(s.sentMine, was.mine);
      s.sentCap = Math.max(s.sentCap, was.cap);
      const t = byKey.get(key) ?? { peers: 0, claimed: 0, unseen: 0, ahead: 0 };
      const peers = s.known ? t.peers : Math.max(t.peers, this.replicas - 1);
      s.peers = t.peers;
      // the totals are the current window's; a key last counted in the previous one starts afresh in it
      if (was.window !== current) continue;
      // A peer that has not written this window yet may be using its share of it.
      const taken = t.claimed + (t.unseen + peers - t.peers) * this.share(peers);
      const left = this.limit - s.mine - taken;
      // What is left, divided among the replicas sharing the identity; the remainder goes to the
      // first of them by name, so that together they claim no more than is left.
      // (replicas only assumed to have the identity sort first: their rank is unknown)
      const ahead = t.ahead + peers - t.peers;
      const grant = left <= 0 ? 0 : Math.floor(left / (peers + 1)) + (ahead < left % (peers + 1) ? 1 : 0);
      s.cap = Math.max(s.cap, s.mine + grant);
      // Nothing more for this replica until the window ends: claims only grow, so what is left only shrinks.
      s.full = grant === 0;
    }
    await this.pruneNow(current - 2 * this.windowMs);
    return true;
  }

  /** Every few seconds, the windows no replica reads any more (everyone's: a replica that died leaves its rows). */
  private async pruneNow(before: number): Promise<void> {
    if (performance.now() - this.lastPruneAt < 10_000) return;
    this.lastPruneAt = performance.now();
    try {
      await this.settle(this.store.prune(before));
    } catch (err) {
      this.log.warn({ err }, 'request rates: could not delete old windows; the next try is in 10 s');
    }
  }

  /** The store's answer within timeoutMs; one that comes later is dropped (its writes are absolute counts: harmless). */
  private async settle<T>(call: Promise<T>): Promise<T> {
    this.outstanding = true;
    void call.then(
      () => (this.outstanding = false),
      () => (this.outstanding = false),
    );
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        call,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer in ${this.timeoutMs} ms`)), this.timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private failed(err: unknown): false {
    if (!this.fallback && performance.now() - this.lastAnswerAt >= this.timeoutMs) {
      this.fallback = true;
      this.log.warn(
        { err, replica: this.replica },
        `request rates: the shared counts did not answer for ${this.timeoutMs} ms; until they do, each replica limits on its own (the whole rate each)`,
      );
    }
    return false;
  }
}
