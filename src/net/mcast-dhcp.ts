// DHCP server for a private LAN of the unprivileged "user" network mode. Each VM's LAN NIC is a QEMU
// `-netdev socket,mcast=GROUP:PORT,localaddr=127.0.0.1`: QEMU sends every Ethernet frame as one UDP datagram to the
// multicast group on loopback, and delivers every datagram of the group to the NIC (which filters by MAC), so all
// VMs on one GROUP:PORT share an L2 segment. There is no bridge and no dnsmasq in this mode: the node joins the
// group itself, answers DHCP from known MACs with static leases, and ARP for its server address (unicast
// renewals). Replies go to the group like any frame on the segment; unknown MACs get no answer (another daemon
// may own them).
import dgram from 'node:dgram';
import type { Logger } from '../util/logger.js';
import {
  BROADCAST_MAC,
  DHCP_SERVER_PORT,
  DhcpType,
  buildArpReply,
  buildDhcpReply,
  formatMac,
  normalizeMac,
  parseArpFrame,
  parseDhcpFrame,
  type DhcpPacket,
  type DhcpReplyType,
} from './dhcp-packet.js';
import { formatIp, isMulticast, parseIp } from './ipv4.js';

export interface McastSegmentConfig {
  /** multicast group of the segment, 224.0.0.0/4 */
  group: string;
  port: number;
  /** the interface address the group is joined on and sent from: 127.0.0.1 */
  localAddr: string;
  /** DHCP server identifier (option 54), also answered for in ARP */
  serverIp: string;
  /** Ethernet source of the replies; default a locally administered 02:db:<serverIp bytes> */
  serverMac?: string;
  netmask: string;
  /** option 3; null sends none (the LAN is not the VMs' way out) */
  router: string | null;
  /** option 26 */
  mtu?: number;
  /** default 3600 */
  leaseSecs?: number;
  /** static leases: MAC (aa:bb:cc:dd:ee:ff, any case) -> IPv4 address */
  hosts: Map<string, string>;
}

export interface McastDhcpStats {
  offers: number;
  acks: number;
  naks: number;
  arps: number;
}

const ZERO = '0.0.0.0';

function checkIp(what: string, v: unknown): string {
  const n = parseIp(v);
  if (n === null) throw new Error(`invalid ${what} ${JSON.stringify(v)}`);
  return formatIp(n);
}

function checkNetmask(v: unknown): string {
  const n = parseIp(v);
  // contiguous ones: ~mask + 1 is a power of two
  const inv = n === null ? 1 : ~n >>> 0;
  if (n === null || ((inv + 1) & inv) !== 0) throw new Error(`invalid netmask ${JSON.stringify(v)}`);
  return formatIp(n);
}

function normalizeHosts(hosts: Map<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [mac, ip] of hosts) {
    const m = normalizeMac(mac);
    if (!m) throw new Error(`invalid MAC ${JSON.stringify(mac)} in DHCP hosts`);
    out.set(m, checkIp(`address for ${m}`, ip));
  }
  return out;
}

/** the default server MAC: locally administered, unicast, unique per server address */
export function defaultServerMac(serverIp: string): string {
  const n = parseIp(serverIp);
  if (n === null) throw new Error(`invalid server address ${JSON.stringify(serverIp)}`);
  const b = Buffer.alloc(6);
  b[0] = 0x02;
  b[1] = 0xdb;
  b.writeUInt32BE(n, 2);
  return formatMac(b);
}

export class McastDhcpResponder {
  readonly stats: McastDhcpStats = { offers: 0, acks: 0, naks: 0, arps: 0 };
  private readonly group: string;
  private readonly port: number;
  private readonly localAddr: string;
  private readonly serverIp: string;
  private readonly serverMac: string;
  private readonly netmask: string;
  private readonly router: string | null;
  private readonly mtu: number | undefined;
  private readonly leaseSecs: number;
  private hosts: Map<string, string>;
  private sock: dgram.Socket | null = null;
  private closed = false;

  constructor(
    cfg: McastSegmentConfig,
    private readonly log?: Pick<Logger, 'info' | 'warn'> & Partial<Pick<Logger, 'debug'>>,
  ) {
    this.group = checkIp('multicast group', cfg.group);
    if (!isMulticast(parseIp(this.group)!)) throw new Error(`${this.group} is not a multicast group (224.0.0.0/4)`);
    if (!Number.isInteger(cfg.port) || cfg.port < 1 || cfg.port > 65535) throw new Error(`invalid port ${cfg.port}`);
    this.port = cfg.port;
    this.localAddr = checkIp('local address', cfg.localAddr);
    this.serverIp = checkIp('server address', cfg.serverIp);
    if (cfg.serverMac !== undefined) {
      const m = normalizeMac(cfg.serverMac);
      if (!m || parseInt(m.slice(0, 2), 16) & 1) throw new Error(`invalid server MAC ${JSON.stringify(cfg.serverMac)}`);
      this.serverMac = m;
    } else {
      this.serverMac = defaultServerMac(this.serverIp);
    }
    this.netmask = checkNetmask(cfg.netmask);
    this.router = cfg.router === null ? null : checkIp('router', cfg.router);
    if (cfg.mtu !== undefined && (!Number.isInteger(cfg.mtu) || cfg.mtu < 576 || cfg.mtu > 65535)) {
      throw new Error(`invalid MTU ${cfg.mtu}`);
    }
    this.mtu = cfg.mtu;
    const lease = cfg.leaseSecs ?? 3600;
    if (!Number.isInteger(lease) || lease < 10 || lease > 0xfffffffe) throw new Error(`invalid lease time ${lease}`);
    this.leaseSecs = lease;
    this.hosts = normalizeHosts(cfg.hosts);
  }

  get mac(): string {
    return this.serverMac;
  }

  /** binds GROUP:PORT (shared with the QEMU processes of the segment) and joins the group on localAddr */
  start(): Promise<void> {
    if (this.sock) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('DHCP responder closed'));
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    this.sock = sock;
    return new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        this.sock = null;
        try {
          sock.close();
        } catch {
          // not bound
        }
        reject(err);
      };
      sock.once('error', fail);
      sock.on('message', (msg) => this.onMessage(msg));
      // binding the group address: only datagrams to the group, not unicast to the port
      sock.bind({ port: this.port, address: this.group, exclusive: false }, () => {
        try {
          sock.addMembership(this.group, this.localAddr);
          sock.setMulticastInterface(this.localAddr);
          sock.setMulticastLoopback(true);
          sock.setMulticastTTL(1);
        } catch (err) {
          fail(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        sock.off('error', fail);
        sock.on('error', (err) => this.log?.warn({ err, group: this.group, port: this.port }, 'lan dhcp socket error'));
        this.log?.info({ group: this.group, port: this.port, server: this.serverIp, hosts: this.hosts.size }, 'lan dhcp listening');
        resolve();
      });
    });
  }

  /** replaces the static leases (takes effect for the next message) */
  setHosts(hosts: Map<string, string>): void {
    this.hosts = normalizeHosts(hosts);
  }

  close(): Promise<void> {
    this.closed = true;
    const sock = this.sock;
    this.sock = null;
    if (!sock) return Promise.resolve();
    return new Promise<void>((resolve) => {
      try {
        sock.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  private onMessage(msg: Buffer): void {
    try {
      this.handle(msg);
    } catch (err) {
      this.log?.warn({ err }, 'lan dhcp: frame handling failed');
    }
  }

  private addressedToUs(ethDst: string): boolean {
    return ethDst === BROADCAST_MAC || ethDst === this.serverMac;
  }

  private handle(msg: Buffer): void {
    if (msg.length < 14) return;
    if (formatMac(msg.subarray(6, 12)) === this.serverMac) return; // our own reply, looped back
    const dhcp = parseDhcpFrame(msg);
    if (dhcp) {
      if (dhcp.op === 1 && dhcp.dstPort === DHCP_SERVER_PORT && this.addressedToUs(dhcp.ethDst)) this.onDhcp(dhcp);
      return;
    }
    const arp = parseArpFrame(msg);
    if (arp && arp.oper === 1 && arp.targetIp === this.serverIp && arp.senderIp !== arp.targetIp && this.addressedToUs(arp.ethDst)) {
      this.stats.arps++;
      this.send(buildArpReply(arp, this.serverMac, this.serverIp));
    }
  }

  private onDhcp(p: DhcpPacket): void {
    const ip = this.hosts.get(p.chaddr);
    if (!ip) {
      this.log?.debug?.({ mac: p.chaddr, type: p.messageType }, 'lan dhcp: unknown MAC, not answering');
      return;
    }
    if (p.giaddr !== ZERO) return; // relayed: nothing relays onto a socket segment
    switch (p.messageType) {
      case DhcpType.DISCOVER:
        this.reply(p, DhcpType.OFFER, ip);
        return;
      case DhcpType.REQUEST: {
        let wanted: string;
        if (p.serverId !== null) {
          // SELECTING: the client picked a server; another one's offer is none of our business
          if (p.serverId !== this.serverIp) return;
          wanted = p.requestedIp ?? p.ciaddr;
        } else if (p.requestedIp !== null) {
          wanted = p.requestedIp; // INIT-REBOOT
        } else {
          wanted = p.ciaddr; // RENEWING, REBINDING
        }
        if (wanted === ip) this.reply(p, DhcpType.ACK, ip);
        else this.reply(p, DhcpType.NAK, ip, `${wanted} is not assigned to ${p.chaddr}`);
        return;
      }
      case DhcpType.DECLINE:
        this.log?.warn({ mac: p.chaddr, ip }, 'lan dhcp: client declined its address (in use on the segment?)');
        return;
      case DhcpType.RELEASE:
        this.log?.debug?.({ mac: p.chaddr, ip }, 'lan dhcp: release');
        return;
      default:
        return;
    }
  }

  private reply(p: DhcpPacket, type: DhcpReplyType, ip: string, message?: string): void {
    const frame = buildDhcpReply(p, {
      type,
      serverIp: this.serverIp,
      serverMac: this.serverMac,
      yiaddr: ip,
      netmask: this.netmask,
      router: this.router,
      ...(this.mtu !== undefined ? { mtu: this.mtu } : {}),
      leaseSecs: this.leaseSecs,
      ...(message !== undefined ? { message } : {}),
    });
    if (type === DhcpType.OFFER) this.stats.offers++;
    else if (type === DhcpType.ACK) this.stats.acks++;
    else this.stats.naks++;
    const what = type === DhcpType.OFFER ? 'offer' : type === DhcpType.ACK ? 'ack' : 'nak';
    if (type === DhcpType.NAK) this.log?.info({ mac: p.chaddr, ip, requested: p.requestedIp ?? p.ciaddr, hostname: p.hostname }, `lan dhcp ${what}`);
    else this.log?.info({ mac: p.chaddr, ip, hostname: p.hostname }, `lan dhcp ${what}`);
    this.send(frame);
  }

  private send(frame: Buffer): void {
    const sock = this.sock;
    if (!sock) return;
    sock.send(frame, this.port, this.group, (err) => {
      if (err) this.log?.warn({ err, group: this.group }, 'lan dhcp: send failed');
    });
  }
}
