// LAN inputs: the syntax of a LAN name and a LAN subnet with the original's texts (LanErrors), and the edge parse
// of lan/create's `additional` into typed values. Handlers call parseLanCreate once; LanRegistry and LanService
// take the strings it returns and re-check them with the same functions (a LAN name becomes an interface name).
import { LanErrors } from '../errors/index.js';
import { formatCidr, hostRange, isMulticast, parseCidr, type Cidr } from './ipv4.js';

export const LAN_NAME_RE = /^[A-Za-z0-9]{6,10}$/;
/** LANs bigger than a /16 would make huge lease tables; smaller than a /29 leave no room for VMs */
export const LAN_MIN_PREFIX = 16;
export const LAN_MAX_PREFIX = 29;

/** lan/create after the edge: a name of LAN_NAME_RE's form and the subnet text as given ('' when absent) */
export interface LanCreateInput {
  name: string;
  ipCidr: string;
}

/** a LAN name: 6 to 10 letters or digits */
export function checkLanName(name: string): string {
  if (name === '') throw LanErrors.nameEmpty();
  if (!LAN_NAME_RE.test(name)) throw LanErrors.nameInvalid();
  return name;
}

/** `network_name` as a client sent it (string, number or absent) */
export function lanNameParam(value: unknown): string {
  if (value === undefined || value === null || value === '') throw LanErrors.nameEmpty();
  if (typeof value !== 'string') throw LanErrors.nameInvalid();
  return checkLanName(value);
}

/**
 * `ip_cidr` as a client sent it: the text, '' when absent (the registry answers `ip cidr can not be empty` after
 * the name checks, as the original did), `invalid ip cidr` for a number
 */
export function lanCidrParam(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw LanErrors.cidrInvalid();
  return value;
}

/** lan/create's `additional`: the name first, then the subnet (the original's order of refusals) */
export function parseLanCreate(additional: { network_name?: unknown; ip_cidr?: unknown }): LanCreateInput {
  const name = lanNameParam(additional.network_name);
  return { name, ipCidr: lanCidrParam(additional.ip_cidr) };
}

/**
 * A LAN subnet's syntax and size: a.b.c.d/n with n in LAN_MIN_PREFIX..LAN_MAX_PREFIX, a usable unicast range, not
 * the hosts' default network, room for one address per host besides the hosts' own. Overlaps are the registry's.
 */
export function parseLanCidr(text: string, hostCount: number): Cidr {
  if (text === '') throw LanErrors.cidrEmpty();
  if (text.includes('192.168.122.')) throw LanErrors.cidrDefaultNetwork();
  const c = parseCidr(text.trim());
  if (!c) throw LanErrors.cidrFormat();
  if (c.prefix < LAN_MIN_PREFIX || c.prefix > LAN_MAX_PREFIX) throw LanErrors.cidrPrefix(LAN_MIN_PREFIX, LAN_MAX_PREFIX);
  const first = c.network >>> 24;
  if (first === 0 || first === 127 || first >= 224 || isMulticast(c.network) || (first === 169 && ((c.network >>> 16) & 255) === 254)) {
    throw LanErrors.cidrNotUnicast(formatCidr(c));
  }
  const range = hostRange(c);
  const slice = Math.floor(((range?.last ?? 0) - (range?.first ?? 0) + 1 - hostCount) / hostCount);
  if (slice < 1) throw LanErrors.cidrTooSmall(formatCidr(c), hostCount);
  return c;
}
