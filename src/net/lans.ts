// Private LANs (original §11): the registry behind lan/create, lan, lan/<name>, lan/delete/<name> and
// tasks/start's network_name. Taken names and overlaps with the node's own networks, with the original's texts
// (syntax: lan-input.ts; LANs may overlap each other, as in the original), the VXLAN id, this host's share of each
// LAN's addresses, and static DHCP leases for the member VMs. Devices and DHCP servers are the network driver's; the
// API's LAN operations are lan-service.ts.
import { createHash } from 'node:crypto';
import { LanErrors } from '../errors/index.js';
import type { AddressRow, NetworkRow, NetworkStore } from '../store/networks.js';
import { contains, formatCidr, formatIp, hostRange, isMulticast, netmask, overlaps, parseCidr, parseIp, type Cidr } from './ipv4.js';
import { checkLanName, LAN_NAME_RE, parseLanCidr } from './lan-input.js';

export { LAN_MAX_PREFIX, LAN_MIN_PREFIX, LAN_NAME_RE } from './lan-input.js';

export interface LanRegistryOptions {
  /** networks a LAN must not overlap: the node bridge, the original's libvirt default, the host's own networks */
  reserved: Array<{ cidr: string; what: string }>;
  /** this host's position among the hosts that share LAN segments (sorted underlay addresses) and their number */
  hostIndex: number;
  hostCount: number;
  now: () => number;
}

/** derived from (owner, name) so the same renter's LAN of the same name gets the same VXLAN id on every host */
export function vniOf(wallet: string, name: string): number {
  const h = createHash('sha256').update(`${wallet}/${name}`).digest();
  return 1 + (h.readUIntBE(0, 3) % 0xfffffe);
}

export class LanRegistry {
  private readonly reserved: Array<{ cidr: Cidr; text: string; what: string }>;

  constructor(
    private readonly store: NetworkStore,
    private readonly opts: LanRegistryOptions,
  ) {
    if (!Number.isInteger(opts.hostCount) || opts.hostCount < 1 || opts.hostIndex < 0 || opts.hostIndex >= opts.hostCount) {
      throw new Error(`invalid LAN host slot ${opts.hostIndex}/${opts.hostCount}`);
    }
    this.reserved = opts.reserved.map((r) => {
      const c = parseCidr(r.cidr, { allowBare: true });
      if (!c) throw new Error(`invalid reserved network ${r.cidr}`);
      return { cidr: c, text: formatCidr(c), what: r.what };
    });
  }

  // --- the API's operations -----------------------------------------------------------------------------

  /** lan/create: typed values from the edge (lan-input.ts parseLanCreate); refusals in the original's order */
  create(wallet: string, name: string, ipCidr: string): NetworkRow {
    const n = checkLanName(name);
    if (this.store.get(n)) throw LanErrors.nameExists();
    const cidr = this.validateCidr(ipCidr);
    const vni = vniOf(wallet, n);
    if (this.store.all().some((r) => r.vni === vni)) throw LanErrors.vniFull();
    const now = this.opts.now();
    const row: NetworkRow = { name: n, wallet, ip_cidr: formatCidr(cidr), vni, created_at: now, last_used_at: now, updated_at: now };
    this.store.insert(row);
    return row;
  }

  get(name: string): NetworkRow | undefined {
    return LAN_NAME_RE.test(name) ? this.store.get(name) : undefined;
  }

  list(wallet?: string): NetworkRow[] {
    const all = this.store.all();
    return wallet === undefined ? all : all.filter((r) => r.wallet === wallet);
  }

  /** lan/delete: the owner's network without members */
  checkDelete(wallet: string, name: string): NetworkRow {
    const row = this.get(name);
    if (!row) throw LanErrors.notExist();
    if (row.wallet !== wallet) throw LanErrors.notOwner();
    if (this.store.members(name).length > 0) throw LanErrors.inUse();
    return row;
  }

  remove(name: string): void {
    this.store.remove(name);
  }

  /** tasks/start with network_name: the caller's own LAN, else the original's `can not find network info` */
  forCreate(wallet: string, name: string): NetworkRow {
    if (!LAN_NAME_RE.test(name)) throw LanErrors.noNetworkInfo();
    const row = this.store.get(name);
    if (!row || row.wallet !== wallet) throw LanErrors.noNetworkInfo();
    return row;
  }

  members(name: string): string[] {
    return this.store.members(name);
  }

  /** networks without members unused for maxIdleMs (idle cleanup); touches the ones in use */
  idle(maxIdleMs: number): NetworkRow[] {
    const now = this.opts.now();
    const out: NetworkRow[] = [];
    for (const row of this.store.all()) {
      if (this.store.members(row.name).length > 0) this.store.touch(row.name, now);
      else if (now - row.last_used_at >= maxIdleMs) out.push(row);
    }
    return out;
  }

  // --- addresses ------------------------------------------------------------------------------------------

  /** this host's DHCP server address on the LAN: the top addresses belong to the hosts, one each */
  serverIp(row: Pick<NetworkRow, 'ip_cidr'>): string {
    const range = this.range(row);
    return formatIp(range.last - this.opts.hostIndex);
  }

  netmask(row: Pick<NetworkRow, 'ip_cidr'>): string {
    return netmask(this.cidr(row).prefix);
  }

  /** the VM's address on the LAN: kept when it has one, else the lowest free one of this host's slice */
  assign(taskId: string, row: NetworkRow, mac: string): string {
    const had = this.store.address(taskId, row.name);
    if (had) return had.ip;
    const ip = allocateAddress(this.store, { taskId, net: row.name, mac, ...this.slice(row) });
    if (ip === null) throw LanErrors.full(row.name);
    this.store.touch(row.name, this.opts.now());
    return ip;
  }

  address(taskId: string, name: string): AddressRow | undefined {
    return this.store.address(taskId, name);
  }

  leases(name: string): AddressRow[] {
    return this.store.addressesOf(name);
  }

  /** the task left the LAN (deleted) */
  release(taskId: string, name: string): void {
    this.store.removeAddresses(taskId, name);
    if (this.store.get(name)) this.store.touch(name, this.opts.now());
  }

  /** this host's share of the LAN: the usable range minus the hosts' server addresses, cut in hostCount slices */
  slice(row: Pick<NetworkRow, 'ip_cidr'>): { first: number; last: number } {
    const r = this.range(row);
    const usable = r.last - this.opts.hostCount - r.first + 1;
    const size = Math.floor(usable / this.opts.hostCount);
    const first = r.first + this.opts.hostIndex * size;
    return { first, last: first + size - 1 };
  }

  /** the original's list item, plus what the driver adds (devices or the multicast segment) */
  describe(row: NetworkRow, extra: Record<string, unknown> = {}): Record<string, unknown> {
    const range = this.range(row);
    const d = new Date(row.last_used_at);
    const pad = (n: number) => String(n).padStart(2, '0');
    const lastUse = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return {
      network_name: row.name,
      bridge_name: '',
      vxlan_name: '',
      vxlan_vni: String(row.vni),
      ip_cidr: row.ip_cidr,
      ip_start: formatIp(range.first),
      ip_end: formatIp(range.last),
      dhcp_interface: '',
      machine_id: '',
      rent_wallet: row.wallet,
      members: this.store.members(row.name),
      lastUseTime: lastUse,
      native_flags: '3',
      ...extra,
    };
  }

  // --- internals ----------------------------------------------------------------------------------------

  private cidr(row: Pick<NetworkRow, 'ip_cidr'>): Cidr {
    const c = parseCidr(row.ip_cidr);
    if (!c) throw new Error(`stored network has a bad cidr: ${row.ip_cidr}`);
    return c;
  }

  private range(row: Pick<NetworkRow, 'ip_cidr'>): { first: number; last: number } {
    const r = hostRange(this.cidr(row));
    if (!r) throw new Error(`network ${row.ip_cidr} has no host addresses`);
    return r;
  }

  /**
   * The subnet's syntax and the networks of the node itself. Not other LANs, the same renter's included (the
   * original had no such check; the rental website creates every LAN with 192.168.66.0/24): each LAN is its own L2
   * segment (its own VXLAN id; in bridge mode its own bridge and dnsmasq, in user mode its own multicast group), and
   * a VM joins at most one LAN (network_name is a single value), so no VM sees two overlapping ranges.
   */
  private validateCidr(text: string): Cidr {
    const c = parseLanCidr(text, this.opts.hostCount);
    for (const r of this.reserved) {
      if (overlaps(c, r.cidr)) throw LanErrors.cidrReserved(formatCidr(c), r.what, r.text);
    }
    return c;
  }
}

/** records the lowest address of [first, last] that `net` has not handed out yet for the task; null when full */
export function allocateAddress(store: NetworkStore, a: { taskId: string; net: string; mac: string; first: number; last: number }): string | null {
  const used = new Set(store.addressesOf(a.net).map((r) => parseIp(r.ip)));
  for (let ip = a.first; ip <= a.last; ip++) {
    if (used.has(ip)) continue;
    store.insertAddress({ task_id: a.taskId, net: a.net, ip: formatIp(ip), mac: a.mac });
    return formatIp(ip);
  }
  return null;
}

/** multicast on tasks/start: ["ip:port", ...] with ip in 224.0.0.0/4 (original texts); `reserved` = the node's own groups */
export function parseMulticast(list: readonly string[], reserved?: Cidr): Array<{ group: string; port: number }> {
  const out: Array<{ group: string; port: number }> = [];
  const seen = new Set<string>();
  if (list.length > 8) throw LanErrors.multicastFormat();
  for (const item of list) {
    if (typeof item !== 'string') throw LanErrors.multicastFormat();
    const m = /^([0-9.]+):([0-9]+)$/.exec(item.trim());
    if (!m) throw LanErrors.multicastFormat();
    const ip = parseIp(m[1]);
    if (ip === null) throw LanErrors.multicastFormat();
    if (!isMulticast(ip)) throw LanErrors.notMulticast();
    const port = Number(m[2]);
    if (!/^[1-9][0-9]{0,4}$/.test(m[2]!) || port > 65535) throw LanErrors.multicastPort();
    if (reserved && contains(reserved, ip)) throw LanErrors.multicastReserved(m[1]!);
    const key = `${m[1]}:${port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ group: m[1]!, port });
  }
  return out;
}
