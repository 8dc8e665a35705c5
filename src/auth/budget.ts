// A per-account budget for failed authentication: a token bucket per account (public key), bounded in memory.
// An account starts with `failures` tokens; each failed attempt takes one; tokens come back continuously at
// `failures` per `windowMs`. An account with no token left is refused before any signature work, so after N failures
// in a burst the next attempt is possible windowMs / N later, and the full budget is back after windowMs.
// At most `maxTracked` accounts are remembered: the one that failed least recently is forgotten first, and an
// account whose bucket has refilled is dropped, so the map holds only accounts that failed recently.

export interface FailureBudgetOptions {
  /** failures allowed in a burst (the bucket size); 0 disables the budget */
  failures: number;
  /** the time in which a spent budget refills completely */
  windowMs: number;
  /** accounts tracked at most (memory bound) */
  maxTracked: number;
}

export const DEFAULT_FAILURE_BUDGET: FailureBudgetOptions = { failures: 10, windowMs: 60_000, maxTracked: 10_000 };

interface Bucket {
  tokens: number;
  at: number;
}

export class FailureBudget {
  readonly options: FailureBudgetOptions;
  private readonly buckets = new Map<string, Bucket>();

  constructor(opts: Partial<FailureBudgetOptions> = {}) {
    this.options = { ...DEFAULT_FAILURE_BUDGET, ...opts };
    const { failures, windowMs, maxTracked } = this.options;
    if (!Number.isInteger(failures) || failures < 0) throw new Error(`failure budget: failures must be an integer >= 0, got ${failures}`);
    if (!(windowMs > 0)) throw new Error(`failure budget: windowMs must be > 0, got ${windowMs}`);
    if (!Number.isInteger(maxTracked) || maxTracked < 1) throw new Error(`failure budget: maxTracked must be >= 1, got ${maxTracked}`);
  }

  get enabled(): boolean {
    return this.options.failures > 0;
  }

  /** accounts tracked now */
  get size(): number {
    return this.buckets.size;
  }

  /** true when `key` has spent its budget: refuse without doing any work */
  blocked(key: string, now: number = Date.now()): boolean {
    if (!this.enabled) return false;
    const bucket = this.refill(key, now);
    return bucket !== undefined && bucket.tokens < 1;
  }

  /** records one failed attempt of `key` */
  fail(key: string, now: number = Date.now()): void {
    if (!this.enabled) return;
    const bucket = this.refill(key, now) ?? { tokens: this.options.failures, at: now };
    bucket.tokens = Math.max(0, bucket.tokens - 1);
    // most recently failed last: eviction takes the first
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    while (this.buckets.size > this.options.maxTracked) this.buckets.delete(this.buckets.keys().next().value!);
  }

  /** the bucket brought up to `now`; dropped (undefined) once full again */
  private refill(key: string, now: number): Bucket | undefined {
    const bucket = this.buckets.get(key);
    if (!bucket) return undefined;
    const { failures, windowMs } = this.options;
    const elapsed = Math.max(0, now - bucket.at);
    bucket.tokens = Math.min(failures, bucket.tokens + (elapsed * failures) / windowMs);
    bucket.at = Math.max(bucket.at, now);
    if (bucket.tokens >= failures) {
      this.buckets.delete(key);
      return undefined;
    }
    return bucket;
  }
}
