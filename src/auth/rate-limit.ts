/**
 * Request rate limits per identity: a token bucket per key, in this process. Replicas each
 * allow the configured rate (documented in docs/auth.md). Zero turns limiting off.
 */
import { BoundedMap } from '../bounded-map.ts';

export class RateLimiter {
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

  /** Takes one request's token; false when the key is over its rate. */
  take(key: string): boolean {
    if (this.perSecond <= 0) return true;
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
