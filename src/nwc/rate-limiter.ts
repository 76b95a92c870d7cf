/** How fast one connection may send requests: a steady rate with room for bursts. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { perSecond: 10, burst: 60 };

/**
 * A token bucket per key, in memory: each instance limits what reaches it (several instances
 * share a relay's requests, so a connection's overall rate is at most instances × the limit).
 */
export class RateLimiter {
  readonly #limit: RateLimit;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(limit: RateLimit) {
    this.#limit = limit;
  }

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string, nowMs = Date.now()): boolean {
    const bucket = this.#buckets.get(key) ?? { tokens: this.#limit.burst, at: nowMs };
    bucket.tokens = Math.min(this.#limit.burst, bucket.tokens + ((nowMs - bucket.at) / 1000) * this.#limit.perSecond);
    bucket.at = nowMs;
    if (bucket.tokens < 1) {
      this.#buckets.set(key, bucket);
      return false;
    }
    bucket.tokens -= 1;
    this.#buckets.set(key, bucket);
    // Full buckets carry no information: drop them now and then so the map stays small.
    if (this.#buckets.size > 100_000) {
      for (const [k, b] of this.#buckets) if (b.tokens >= this.#limit.burst - 1) this.#buckets.delete(k);
    }
    return true;
  }
}
