// Per-address budget for failed authentication at the gateway. Every reply whose message starts with
// `check authority failed` (the node's, or ours) counts against the client address; once `limit` failures fall in
// one window, the address gets `check authority failed: too many failed attempts from this address, try again
// later` (HTTP 429, errcode -3) for node routes, and nothing is relayed. The same token bucket as the node's
// per-wallet budget: `limit` failures in a burst, refilled over `windowMs`. Memory is bounded: at most `maxAddresses`
// entries, the least recently failing dropped first; IPv6 addresses count per /64.
import net from 'node:net';
import { FailureBudget } from '../auth/budget.js';
import { CHECK_AUTHORITY_FAILED } from '../errors/index.js';

export interface AuthBudgetOptions {
  /** failures per window before an address is refused; 0 disables the budget */
  limit: number;
  windowMs: number;
  /** addresses tracked at most (oldest forgotten first) */
  maxAddresses?: number;
}

export const DEFAULT_AUTH_BUDGET: Required<AuthBudgetOptions> = { limit: 100, windowMs: 60_000, maxAddresses: 10_000 };

/** the key an address counts under: IPv4 as is (also IPv4-mapped IPv6), IPv6 by its /64 */
export function addressKey(ip: string | undefined): string {
  if (!ip) return '?';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (net.isIPv6(ip)) {
    const parts = expandV6(ip);
    return parts ? `${parts.slice(0, 4).join(':')}::/64` : ip;
  }
  return ip;
}

function expandV6(ip: string): string[] | undefined {
  const noZone = ip.split('%')[0]!;
  const [head, tail] = noZone.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  if (t.some((p) => p.includes('.')) || h.some((p) => p.includes('.'))) return undefined;
  const fill = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill('0');
  const all = [...h, ...fill, ...t];
  return all.length === 8 ? all.map((p) => (parseInt(p, 16) || 0).toString(16)) : undefined;
}

export const AUTH_FAILED_PREFIX = CHECK_AUTHORITY_FAILED;

/** the node's per-wallet token bucket (auth/budget.ts), keyed by client address instead */
export class AuthBudget {
  private readonly bucket: FailureBudget;

  constructor(
    o: Partial<AuthBudgetOptions> = {},
    private readonly now: () => number = Date.now,
  ) {
    const { limit, windowMs, maxAddresses } = { ...DEFAULT_AUTH_BUDGET, ...o };
    this.bucket = new FailureBudget({ failures: limit, windowMs, maxTracked: maxAddresses });
  }

  get enabled(): boolean {
    return this.bucket.enabled;
  }

  /** seconds until the address may try again, or 0 when it is within its budget */
  blockedFor(ip: string | undefined): number {
    return this.bucket.blocked(addressKey(ip), this.now()) ? Math.max(1, Math.ceil(this.bucket.options.windowMs / this.bucket.options.failures / 1000)) : 0;
  }

  /** note a reply message; counts it when it is an authentication failure */
  note(ip: string | undefined, message: unknown): void {
    if (typeof message !== 'string' || !message.startsWith(AUTH_FAILED_PREFIX)) return;
    this.bucket.fail(addressKey(ip), this.now());
  }

  /** addresses tracked now (for tests) */
  get size(): number {
    return this.bucket.size;
  }
}
