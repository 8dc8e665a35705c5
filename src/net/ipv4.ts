// IPv4 arithmetic for the network code: addresses as unsigned 32-bit numbers, strict dotted-quad parsing, CIDRs.
// Pure; every string that later reaches `ip`, `nft` or `dnsmasq` argv went through one of these parsers.

export interface Cidr {
  /** network address (host bits cleared) */
  network: number;
  prefix: number;
}

const QUAD = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** strict a.b.c.d (no leading zeros, no spaces); null when malformed */
export function parseIp(text: unknown): number | null {
  if (typeof text !== 'string') return null;
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => QUAD.test(p))) return null;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function maskBits(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function netmask(prefix: number): string {
  return formatIp(maskBits(prefix));
}

/**
 * "a.b.c.d/n"; with `strict`, host bits must be zero (192.168.66.0/24 yes, 192.168.66.7/24 no).
 * A bare address is accepted as /32 only when `allowBare`.
 */
export function parseCidr(text: unknown, opts: { strict?: boolean; allowBare?: boolean } = {}): Cidr | null {
  if (typeof text !== 'string') return null;
  const slash = text.indexOf('/');
  if (slash < 0) {
    if (!opts.allowBare) return null;
    const ip = parseIp(text);
    return ip === null ? null : { network: ip, prefix: 32 };
  }
  const ip = parseIp(text.slice(0, slash));
  const pfx = text.slice(slash + 1);
  if (ip === null || !/^(3[0-2]|[12]?[0-9])$/.test(pfx)) return null;
  const prefix = Number(pfx);
  const network = (ip & maskBits(prefix)) >>> 0;
  if (opts.strict && network !== ip) return null;
  return { network, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.network)}/${c.prefix}`;
}

export function broadcast(c: Cidr): number {
  return (c.network | (~maskBits(c.prefix) >>> 0)) >>> 0;
}

export function contains(c: Cidr, ip: number): boolean {
  return (ip & maskBits(c.prefix)) >>> 0 === c.network;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  const m = maskBits(p);
  return (a.network & m) >>> 0 === (b.network & m) >>> 0;
}

/** usable host addresses: network+1 .. broadcast-1 (a /31 or /32 has none) */
export function hostRange(c: Cidr): { first: number; last: number } | null {
  if (c.prefix > 30) return null;
  return { first: c.network + 1, last: broadcast(c) - 1 };
}

export function isMulticast(ip: number): boolean {
  return ip >>> 28 === 0xe;
}
