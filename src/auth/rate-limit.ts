/**
 * Request rate limits per identity. `RequestLimiter` is what the access controller asks; this
 * file's `RateLimiter` is a token bucket per key in this process, exact for one server (SQLite)
 * and the fallback of the limit shared by replicas (shared-rates.ts) while their database does not
 * answer. Zero turns limiting off.
 */
import { BoundedMap } from '../bounded-map.ts';

/** allowed, or refused with the whole seconds to wait before a request would be allowed */
export type RateAnswer = { allowed: true } | { allowed: false; retryAfter: number };

export const allowed: RateAnswer = { allowed: true };

export interface RequestLimiter {
  /** Counts one request of the key, if its rate allows it. */
  take(key: string): RateAnswer | Promise<RateAnswer>;
  /** Ends background work (the shared limiter's exchanges); the local bucket has none. */
  stop(): Promise<void>;
}

export class RateLimiter implements RequestLimiter {
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly buckets = new BoundedMap<string, { tokens: number; at: number }>(50_000);
  private readonly now: () => number;

  /** `now`: the clock buckets refill by, the server's injected one (tests move it instead of racing it). */
  constructor(perSecond: number, burst = Math.max(1, perSecond * 2), now: () => number = Date.now) {
    this.perSecond = perSecond;
    this.burst = burst;
    this.now = now;
  }

  /** Takes one request's token; refused with the time until the bucket holds one again. */
  take(key: string): RateAnswer {
    if (this.perSecond <= 0) return allowed;
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens < 1) return { allowed: false, retryAfter: Math.max(1, Math.ceil((1 - b.tokens) / this.perSecond)) };
    b.tokens -= 1;
    return allowed;
  }

  async stop(): Promise<void> {}
}
