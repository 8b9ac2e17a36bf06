/**
 * Request rate limits per identity: a token bucket per key, in this process. Replicas each
 * allow the configured rate (documented in docs/auth.md). Zero turns limiting off.
 */
import { BoundedMap } from '../bounded-map.ts';

export class RateLimiter {
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly buckets = new BoundedMap<string, { tokens: number; at: number }>(50_000);

  constructor(perSecond: number, burst = Math.max(1, perSecond * 2)) {
    this.perSecond = perSecond;
    this.burst = burst;
  }

  /** Takes one request's token; false when the key is over its rate. */
  take(key: string): boolean {
    if (this.perSecond <= 0) return true;
    const now = Date.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
