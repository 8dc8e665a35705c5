// The network modes of a GPU node, behind one interface the task engine drives:
//   user   - QEMU user networking with host forwards (QEMU hostfwd, forwarder.ts), LANs and multicast groups as QEMU
//            UDP multicast segments on loopback, DHCP on LANs answered by the node itself (mcast-dhcp.ts).
//            Unprivileged; the default of `dbc up`.
//   bridge - a node bridge with a tap per VM, dnsmasq (static leases), nftables DNAT/masquerade/filters built
//            from the running VMs and replaced atomically, LANs as bridge + VXLAN (unicast peers) + dnsmasq.
// Both keep their state in the database (networks, addresses), so a restarted daemon rebuilds exactly what the
// running VMs need: sync() is idempotent and is the only place rules are written. Ports reach a VM through the
// mode's PortForwarder (forwarder.ts), so neither the engine nor a handler branches on the mode.
import type { Task } from '../domain/task.js';
import { LanErrors } from '../errors/index.js';
import type { NetworkRow, NetworkStore } from '../store/networks.js';
import type { Logger } from '../util/logger.js';
import type { Hypervisor } from '../vm/types.js';
import { HostfwdForwarder, type PortForwarder } from './forwarder.js';
import { parseNetworkFilters, type FilterRule } from './filters.js';
import { formatCidr, parseCidr, type Cidr } from './ipv4.js';
import { LanRegistry, parseMulticast } from './lans.js';
import { nicMac } from './mac.js';
import { McastDhcpResponder } from './mcast-dhcp.js';
import type { ExtraNic } from './nic.js';

/** groups the node keeps for its user-mode LAN segments; renters' multicast groups must lie outside */
export const LAN_GROUPS = '239.254.0.0/16';
const LAN_GROUPS_CIDR = parseCidr(LAN_GROUPS) as Cidr;

export interface VmNetwork {
  /** bridge mode: the tap of the first NIC; absent in user mode (QEMU user networking) */
  tap?: string;
  extraNics: ExtraNic[];
}

export interface NetworkDriver {
  readonly mode: 'user' | 'bridge';
  readonly lans: LanRegistry;
  /** host plumbing for the mode (bridge, DHCP, LAN devices); before the engine reconciles */
  init(): Promise<void>;
  /** let go of sockets; bridges, taps, dnsmasq and rules stay for the running VMs */
  close(): Promise<void>;
  /** how the task's ports reach its VM: QEMU hostfwd (user) or nftables DNAT (bridge) */
  readonly forwarder: PortForwarder;
  /** tasks/start and tasks/modify: parsed network_filters (throws the envelope error) */
  filters(list: string[]): FilterRule[];
  /** tasks/start: network_name, multicast (throws the envelope errors); returns the LAN row if any */
  checkCreate(wallet: string, p: { networkName: string; multicast: string[] }): NetworkRow | undefined;
  /** before QEMU starts: addresses, taps, LAN segment; the NICs to give QEMU */
  prepare(task: Task): Promise<VmNetwork>;
  /** the VM is not running any more: its taps go */
  release(taskId: string): Promise<void>;
  /** the task is deleted: its addresses go */
  forget(task: Task): Promise<void>;
  /** rules for exactly these running VMs (idempotent, serialized); taps of `busy` tasks (starting, stopping) stay */
  sync(running: Task[], busy?: ReadonlySet<string>): Promise<void>;
  lanCreated(row: NetworkRow): Promise<void>;
  lanDeleted(row: NetworkRow): Promise<void>;
  /** the mode's fields of a lan list item */
  lanFields(row: NetworkRow): Record<string, unknown>;
  /** what tasks/<id> shows: the VM's address on the node bridge and on its LAN */
  addresses(task: Task): { local_ip?: string; local_address?: string[] };
  /** the `type` of the main NIC and of the LAN NIC in tasks/<id>'s interface list */
  nicTypes(): NicTypes;
}

export interface NicTypes {
  main: 'user' | 'bridge';
  lan: 'mcast' | 'bridge';
}

export interface CommonNetOptions {
  store: NetworkStore;
  log: Logger;
  now: () => number;
  /** LAN hosts: this host's slot among the hosts sharing LAN segments */
  hostIndex?: number;
  hostCount?: number;
  /** networks LANs must not overlap besides the mode's own */
  reserved?: Array<{ cidr: string; what: string }>;
}

/** the user-mode LAN segment of a VXLAN id: a group in 239.254.0.0/16 and a port, unique per id */
export function segmentOf(vni: number): { group: string; port: number } {
  return { group: `239.254.${(vni >>> 8) & 255}.${vni & 255}`, port: 20000 + ((vni >>> 16) & 255) };
}

export abstract class BaseNetwork {
  readonly lans: LanRegistry;

  constructor(
    protected readonly common: CommonNetOptions,
    reserved: Array<{ cidr: string; what: string }>,
  ) {
    this.lans = new LanRegistry(common.store, {
      reserved: [{ cidr: '192.168.122.0/24', what: "the hosts' default network" }, ...reserved, ...(common.reserved ?? [])],
      hostIndex: common.hostIndex ?? 0,
      hostCount: common.hostCount ?? 1,
      now: common.now,
    });
  }

  protected nodeAddresses(): string[] {
    return [];
  }

  filters(list: string[]): FilterRule[] {
    return parseNetworkFilters(list, { nodeAddresses: this.nodeAddresses() });
  }

  checkCreate(wallet: string, p: { networkName: string; multicast: string[] }): NetworkRow | undefined {
    parseMulticast(p.multicast, LAN_GROUPS_CIDR);
    return p.networkName === '' ? undefined : this.lans.forCreate(wallet, p.networkName);
  }

  protected multicastNics(task: Task, localAddr: string): ExtraNic[] {
    const groups = parseMulticast(task.multicast, LAN_GROUPS_CIDR);
    return groups.map((g, i) => ({ id: `mc${i}`, kind: 'mcast', mac: nicMac(task.task_id, `mc${i}`), group: g.group, port: g.port, localAddr }));
  }

  /** the task's LAN row, or the envelope error when it vanished */
  protected lanOf(task: Task): NetworkRow | undefined {
    if (!task.network_name) return undefined;
    const row = this.lans.get(task.network_name);
    if (!row) throw LanErrors.noNetworkInfo();
    return row;
  }

  async forget(task: Task): Promise<void> {
    if (task.network_name) this.lans.release(task.task_id, task.network_name);
    this.common.store.removeAddresses(task.task_id);
    await this.afterForget(task);
  }

  protected async afterForget(_task: Task): Promise<void> {}

  addresses(task: Task): { local_ip?: string; local_address?: string[] } {
    const out: { local_ip?: string; local_address?: string[] } = {};
    const main = this.common.store.address(task.task_id, '');
    if (main) out.local_ip = main.ip;
    if (task.network_name) {
      const lan = this.lans.address(task.task_id, task.network_name);
      if (lan) out.local_address = [lan.ip];
    }
    return out;
  }
}

// --- user mode ------------------------------------------------------------------------------------------------

export interface UserNetOptions extends CommonNetOptions {
  /** the hypervisor's monitor: forwards of a running VM change there (tasks/modify) */
  hv: Pick<Hypervisor, 'addForward' | 'removeForward'>;
  /** host address the forwards bind to */
  forwardHost: string;
}

export class UserNetwork extends BaseNetwork implements NetworkDriver {
  readonly mode = 'user' as const;
  readonly forwarder: PortForwarder;
  private readonly responders = new Map<string, McastDhcpResponder>();

  constructor(o: UserNetOptions) {
    super(o, []);
    this.forwarder = new HostfwdForwarder(o.hv, o.forwardHost);
  }

  nicTypes(): NicTypes {
    return { main: 'user', lan: 'mcast' };
  }

  async init(): Promise<void> {
    for (const row of this.lans.list()) await this.lanCreated(row);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.responders.values()].map((r) => r.close()));
    this.responders.clear();
  }

  async prepare(task: Task): Promise<VmNetwork> {
    const nics: ExtraNic[] = [];
    const lan = this.lanOf(task);
    if (lan) {
      const mac = nicMac(task.task_id, 'lan0');
      this.lans.assign(task.task_id, lan, mac);
      await this.lanCreated(lan);
      const seg = segmentOf(lan.vni);
      nics.push({ id: 'lan0', kind: 'mcast', mac, group: seg.group, port: seg.port, localAddr: '127.0.0.1' });
    }
    nics.push(...this.multicastNics(task, '127.0.0.1'));
    return { extraNics: nics };
  }

  async release(_taskId: string): Promise<void> {}

  async sync(_running: Task[]): Promise<void> {}

  protected override async afterForget(task: Task): Promise<void> {
    if (task.network_name) this.refreshLeases(task.network_name);
  }

  async lanCreated(row: NetworkRow): Promise<void> {
    const existing = this.responders.get(row.name);
    if (existing) {
      this.refreshLeases(row.name);
      return;
    }
    const seg = segmentOf(row.vni);
    const cidr = parseCidr(row.ip_cidr) as Cidr;
    const responder = new McastDhcpResponder({
      group: seg.group,
      port: seg.port,
      localAddr: '127.0.0.1',
      serverIp: this.lans.serverIp(row),
      netmask: this.lans.netmask(row),
      router: null,
      leaseSecs: 86_400,
      hosts: this.hostsOf(row.name),
    });
    this.responders.set(row.name, responder);
    try {
      await responder.start();
    } catch (err) {
      this.responders.delete(row.name);
      throw LanErrors.createFailed(row.name, formatCidr(cidr), (err as Error).message);
    }
  }

  async lanDeleted(row: NetworkRow): Promise<void> {
    const r = this.responders.get(row.name);
    this.responders.delete(row.name);
    await r?.close();
  }

  lanFields(row: NetworkRow): Record<string, unknown> {
    const seg = segmentOf(row.vni);
    return {
      dhcp_interface: `mcast:${seg.group}:${seg.port}`,
      segment: `${seg.group}:${seg.port}`,
      dhcp_server: this.lans.serverIp(row),
      network_mode: 'user',
    };
  }

  private hostsOf(name: string): Map<string, string> {
    return new Map(this.lans.leases(name).map((a) => [a.mac, a.ip]));
  }

  private refreshLeases(name: string): void {
    this.responders.get(name)?.setHosts(this.hostsOf(name));
  }
}
