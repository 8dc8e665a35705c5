// The bridge network mode (see driver.ts): node bridge + tap per VM + dnsmasq static leases + one nftables table
// generated from the running VMs; LANs as a bridge + unicast VXLAN + dnsmasq per network.
import { join } from 'node:path';
import type { Task } from '../domain/task.js';
import { LanErrors } from '../errors/index.js';
import type { NetworkRow } from '../store/networks.js';
import { Dnsmasq } from './dnsmasq.js';
import type { FilterRule } from './filters.js';
import { BaseNetwork, type CommonNetOptions, type NetworkDriver, type NicTypes, type VmNetwork } from './driver.js';
import { KernelForwarder, portMappingsOf, type PortForwarder } from './forwarder.js';
import { formatCidr, formatIp, hostRange, parseCidr, parseIp, type Cidr } from './ipv4.js';
import { deleteLink, ensureBridge, ensureTap, ensureVxlan, listLinks, setSysctl } from './links.js';
import { allocateAddress } from './lans.js';
import { ifSuffix, nicMac } from './mac.js';
import { applyRuleset, type NftTask } from './nft.js';
import type { ExtraNic } from './nic.js';

/** interface name prefixes: main taps, LAN taps, LAN bridges, LAN VXLANs (all <= 15 bytes with the suffix/name) */
export const TAP_MAIN = 'dtm';
export const TAP_LAN = 'dtl';
export const LAN_BRIDGE = 'dlb';
export const LAN_VXLAN = 'dlx';
/** VXLAN adds 50 bytes to each frame: LAN NICs get 1450 so the underlay's 1500 carries them unfragmented */
export const LAN_MTU = 1450;

export interface BridgeNetOptions extends CommonNetOptions {
  /** node bridge, e.g. dbcbr0 */
  bridge: string;
  /** its subnet, e.g. 10.200.0.0/24: the first host address is the gateway */
  cidr: string;
  /** dnsmasq state (pid, leases, hosts files) */
  stateDir: string;
  /** DNAT applies to these destination addresses; [] = any address of the host */
  hostIps: string[];
  /** VXLAN and multicast underlay address of this host */
  underlay: string;
  /** other GPU hosts' underlay addresses (unicast VXLAN peers) */
  peers: string[];
  /** nftables table name */
  table?: string;
  /** DNS servers handed to VMs */
  dns?: string[];
}

export class BridgeNetwork extends BaseNetwork implements NetworkDriver {
  readonly mode = 'bridge' as const;
  readonly forwarder: PortForwarder = new KernelForwarder();
  private readonly cidr: Cidr;
  private readonly gateway: string;
  private mainDhcp: Dnsmasq | undefined;
  private readonly lanDhcp = new Map<string, Dnsmasq>();
  private syncChain: Promise<void> = Promise.resolve();

  constructor(private readonly o: BridgeNetOptions) {
    const cidr = parseCidr(o.cidr, { strict: true });
    if (!cidr || !hostRange(cidr)) throw new Error(`invalid bridge network ${o.cidr}`);
    super(o, [{ cidr: formatCidr(cidr), what: 'the node bridge' }]);
    this.cidr = cidr;
    this.gateway = formatIp(hostRange(cidr)!.first);
    if (parseIp(o.underlay) === null) throw new Error(`invalid underlay address ${o.underlay}`);
  }

  protected override nodeAddresses(): string[] {
    return [this.gateway, ...this.o.hostIps];
  }

  async init(): Promise<void> {
    await setSysctl('net.ipv4.ip_forward', '1');
    await ensureBridge(this.o.bridge, { address: `${this.gateway}/${this.cidr.prefix}` });
    this.mainDhcp = new Dnsmasq({
      iface: this.o.bridge,
      dir: join(this.o.stateDir, this.o.bridge),
      network: formatCidr(this.cidr),
      router: this.gateway,
      dns: this.o.dns,
      hosts: this.common.store.addressesOf('').map((a) => ({ mac: a.mac, ip: a.ip })),
    });
    await this.mainDhcp.start();
    for (const row of this.lans.list()) await this.lanCreated(row);
  }

  async close(): Promise<void> {
    await this.syncChain.catch(() => undefined);
  }

  nicTypes(): NicTypes {
    return { main: 'bridge', lan: 'bridge' };
  }

  async prepare(task: Task): Promise<VmNetwork> {
    const id = task.task_id;
    const mac = nicMac(id);
    this.assignMain(id, mac);
    await this.mainDhcp?.setHosts(this.common.store.addressesOf('').map((a) => ({ mac: a.mac, ip: a.ip })));
    const tap = `${TAP_MAIN}${ifSuffix(id)}`;
    await ensureTap(tap, this.o.bridge, { isolated: true });
    const nics: ExtraNic[] = [];
    const lan = this.lanOf(task);
    if (lan) {
      const lanMac = nicMac(id, 'lan0');
      this.lans.assign(id, lan, lanMac);
      await this.lanCreated(lan);
      const lanTap = `${TAP_LAN}${ifSuffix(id)}`;
      await ensureTap(lanTap, `${LAN_BRIDGE}${lan.name}`, { mtu: LAN_MTU });
      nics.push({ id: 'lan0', kind: 'tap', mac: lanMac, ifname: lanTap, mtu: LAN_MTU });
    }
    nics.push(...this.multicastNics(task, this.o.underlay));
    return { tap, extraNics: nics };
  }

  async release(taskId: string): Promise<void> {
    await deleteLink(`${TAP_MAIN}${ifSuffix(taskId)}`);
    await deleteLink(`${TAP_LAN}${ifSuffix(taskId)}`);
  }

  protected override async afterForget(task: Task): Promise<void> {
    await this.mainDhcp?.setHosts(this.common.store.addressesOf('').map((a) => ({ mac: a.mac, ip: a.ip })));
    if (task.network_name) await this.refreshLan(task.network_name);
  }

  sync(running: Task[], busy: ReadonlySet<string> = new Set()): Promise<void> {
    const next = this.syncChain.catch(() => undefined).then(() => this.doSync(running, busy));
    this.syncChain = next;
    return next;
  }

  private async doSync(running: Task[], busy: ReadonlySet<string>): Promise<void> {
    const tasks: NftTask[] = [];
    const keepTaps = new Set<string>();
    for (const id of busy) {
      keepTaps.add(`${TAP_MAIN}${ifSuffix(id)}`);
      keepTaps.add(`${TAP_LAN}${ifSuffix(id)}`);
    }
    for (const t of running) {
      const addr = this.common.store.address(t.task_id, '');
      if (!addr) continue;
      keepTaps.add(`${TAP_MAIN}${ifSuffix(t.task_id)}`);
      if (t.network_name) keepTaps.add(`${TAP_LAN}${ifSuffix(t.task_id)}`);
      const forwards = portMappingsOf(t);
      let filters: FilterRule[];
      try {
        filters = this.filters(t.network_filters);
      } catch (err) {
        this.common.log.warn({ task_id: t.task_id, err: (err as Error).message }, 'stored network filters no longer parse; none applied');
        filters = [];
      }
      tasks.push({ taskId: t.task_id, vmIp: addr.ip, forwards, filters });
    }
    await applyRuleset({
      table: this.o.table ?? 'dbc',
      hostIps: this.o.hostIps,
      bridge: { name: this.o.bridge, cidr: formatCidr(this.cidr), gatewayIp: this.gateway },
      isolatedPrefix: LAN_BRIDGE,
      tasks,
    });
    // taps of VMs that are not running (killed, crashed, deleted while the daemon was down)
    for (const prefix of [TAP_MAIN, TAP_LAN]) {
      for (const name of await listLinks(prefix)) {
        if (!keepTaps.has(name) && /^[a-z]{3}[0-9a-f]{10}$/.test(name)) await deleteLink(name);
      }
    }
  }

  async lanCreated(row: NetworkRow): Promise<void> {
    const bridge = `${LAN_BRIDGE}${row.name}`;
    const cidr = parseCidr(row.ip_cidr) as Cidr;
    try {
      await ensureBridge(bridge, { address: `${this.lans.serverIp(row)}/${cidr.prefix}`, mtu: LAN_MTU });
      // LANs may share a subnet (and so this server address): the host's route to it is the first such bridge's,
      // so strict reverse-path filtering would drop the other LANs' ARP and unicast DHCP renewals. Loose mode on
      // each LAN bridge; dnsmasq answers on its own interface, and nftables lets nothing but DHCP in or across.
      await setSysctl(`net.ipv4.conf.${bridge}.rp_filter`, '2');
      await ensureVxlan(`${LAN_VXLAN}${row.name}`, { vni: row.vni, local: this.o.underlay, bridge, peers: this.o.peers, mtu: LAN_MTU });
      let dhcp = this.lanDhcp.get(row.name);
      if (!dhcp) {
        dhcp = new Dnsmasq({
          iface: bridge,
          dir: join(this.o.stateDir, bridge),
          network: formatCidr(cidr),
          router: null,
          mtu: LAN_MTU,
          hosts: this.lans.leases(row.name).map((a) => ({ mac: a.mac, ip: a.ip })),
        });
        await dhcp.start();
        this.lanDhcp.set(row.name, dhcp);
      } else {
        await this.refreshLan(row.name);
      }
    } catch (err) {
      throw LanErrors.vxlanCreateFailed((err as Error).message);
    }
  }

  async lanDeleted(row: NetworkRow): Promise<void> {
    const dhcp = this.lanDhcp.get(row.name);
    this.lanDhcp.delete(row.name);
    await dhcp?.stop();
    await deleteLink(`${LAN_VXLAN}${row.name}`);
    await deleteLink(`${LAN_BRIDGE}${row.name}`);
  }

  lanFields(row: NetworkRow): Record<string, unknown> {
    return {
      bridge_name: `${LAN_BRIDGE}${row.name}`,
      vxlan_name: `${LAN_VXLAN}${row.name}`,
      dhcp_interface: `${LAN_BRIDGE}${row.name}`,
      dhcp_server: this.lans.serverIp(row),
      vxlan_peers: this.o.peers,
      network_mode: 'bridge',
    };
  }

  private async refreshLan(name: string): Promise<void> {
    await this.lanDhcp.get(name)?.setHosts(this.lans.leases(name).map((a) => ({ mac: a.mac, ip: a.ip })));
  }

  /** the VM's address on the node bridge: kept, else the lowest free one after the gateway */
  private assignMain(taskId: string, mac: string): string {
    const had = this.common.store.address(taskId, '');
    if (had) return had.ip;
    const range = hostRange(this.cidr)!;
    const ip = allocateAddress(this.common.store, { taskId, net: '', mac, first: range.first + 1, last: range.last });
    if (ip === null) throw LanErrors.bridgeNoFreeAddress(this.o.bridge, formatCidr(this.cidr));
    return ip;
  }
}
