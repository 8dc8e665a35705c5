// DHCP and ARP on raw Ethernet frames, for the node's own DHCP server on a QEMU socket-multicast LAN (the "user"
// network mode has no bridge and no dnsmasq): QEMU hands every frame a VM sends to the segment over as one UDP
// datagram, so the server parses Ethernet -> IPv4 -> UDP -> BOOTP itself and answers with whole frames.
// Pure: no I/O. Parsers return null for anything that is not a well-formed untagged IPv4 DHCP (or ARP) frame and
// never throw on untrusted input.
// Above ~400 lines on purpose: one wire format (Ethernet/IPv4/UDP/BOOTP/ARP) parsed and built in one pure module.
import { formatIp, parseIp } from './ipv4.js';

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
export const DHCP_MAGIC_COOKIE = 0x63825363;

export const DhcpType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type DhcpReplyType = typeof DhcpType.OFFER | typeof DhcpType.ACK | typeof DhcpType.NAK;

export const DhcpOption = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  INTERFACE_MTU: 26,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  CLIENT_ID: 61,
  END: 255,
} as const;

const ETH_HLEN = 14;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;
const IPPROTO_UDP = 17;
/** op .. file: the fixed BOOTP header */
const BOOTP_FIXED = 236;
/** BOOTP payloads are padded to this size: some clients drop shorter replies (RFC 1542 §3.4) */
const BOOTP_MIN = 300;
const ETH_MIN_FRAME = 60;
const FLAG_BROADCAST = 0x8000;
export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

/** the Ethernet / IPv4 / UDP addresses of a frame */
export interface UdpAddressing {
  ethSrc: string;
  ethDst: string;
  ipSrc: string;
  ipDst: string;
  srcPort: number;
  dstPort: number;
}

export interface DhcpPacket extends UdpAddressing {
  /** 1 BOOTREQUEST, 2 BOOTREPLY */
  op: number;
  xid: number;
  secs: number;
  flags: number;
  /** the client asked for broadcast replies (flags bit 15) */
  broadcast: boolean;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** client hardware address, lower-case aa:bb:cc:dd:ee:ff (Ethernet only) */
  chaddr: string;
  /** option 53 */
  messageType: number;
  /** option 50 */
  requestedIp: string | null;
  /** option 54 */
  serverId: string | null;
  /** option 61 */
  clientId: Buffer | null;
  /** option 12 */
  hostname: string | null;
  /** option 55 */
  paramRequestList: number[];
  /** every option (repeated ones concatenated, RFC 3396), from the options field and overloaded file/sname */
  options: Map<number, Buffer>;
}

export interface ArpPacket {
  ethSrc: string;
  ethDst: string;
  /** 1 request, 2 reply */
  oper: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export function formatMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** aa:bb:cc:dd:ee:ff (or with dashes, any case) -> 6 bytes; null when malformed */
export function parseMac(text: unknown): Buffer | null {
  if (typeof text !== 'string' || !/^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$/.test(text)) return null;
  return Buffer.from(text.split(/[:-]/).map((h) => parseInt(h, 16)));
}

/** normalised lower-case colon form, or null */
export function normalizeMac(text: unknown): string | null {
  const b = parseMac(text);
  return b ? formatMac(b) : null;
}

/** RFC 1071 one's complement sum over data, folded and complemented */
export function internetChecksum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < data.length; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (data.length & 1) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function asBuffer(frame: Uint8Array): Buffer {
  return Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
}

function ipAt(b: Buffer, off: number): string {
  return formatIp(b.readUInt32BE(off));
}

function ipBytes(ip: string): Buffer {
  const n = parseIp(ip);
  if (n === null) throw new Error(`invalid IPv4 address ${JSON.stringify(ip)}`);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function macBytes(mac: string): Buffer {
  const b = parseMac(mac);
  if (!b) throw new Error(`invalid MAC address ${JSON.stringify(mac)}`);
  return b;
}

/** options area parser: false when malformed (an option running past the end, or no END where one is required) */
function parseOptions(b: Buffer, start: number, end: number, into: Map<number, Buffer>): boolean {
  let i = start;
  while (i < end) {
    const code = b[i]!;
    if (code === DhcpOption.PAD) {
      i++;
      continue;
    }
    if (code === DhcpOption.END) return true;
    if (i + 1 >= end) return false;
    const len = b[i + 1]!;
    if (i + 2 + len > end) return false;
    const val = b.subarray(i + 2, i + 2 + len);
    const prev = into.get(code);
    into.set(code, prev ? Buffer.concat([prev, val]) : Buffer.from(val));
    i += 2 + len;
  }
  // a missing END is tolerated (some clients stop at the end of the packet)
  return true;
}

/** the UDP payload of an untagged IPv4 frame with a valid header checksum, unfragmented; null otherwise */
function udpOf(b: Buffer): { ipSrc: string; ipDst: string; srcPort: number; dstPort: number; start: number; end: number } | null {
  if (b.length < ETH_HLEN + 20 + 8) return null;
  if (b.readUInt16BE(12) !== ETHERTYPE_IPV4) return null; // VLAN tags (0x8100, 0x88a8, ...) and others
  const ip = ETH_HLEN;
  if (b[ip]! >> 4 !== 4) return null;
  const ihl = (b[ip]! & 0x0f) * 4;
  if (ihl < 20) return null;
  const total = b.readUInt16BE(ip + 2);
  if (total < ihl + 8 || ip + total > b.length) return null;
  if ((b.readUInt16BE(ip + 6) & 0x3fff) !== 0) return null; // MF set or a non-zero fragment offset
  if (b[ip + 9] !== IPPROTO_UDP) return null;
  if (internetChecksum(b.subarray(ip, ip + ihl)) !== 0) return null;
  const udp = ip + ihl;
  const udpLen = b.readUInt16BE(udp + 4);
  if (udpLen < 8 || udp + udpLen > ip + total) return null;
  return {
    ipSrc: ipAt(b, ip + 12),
    ipDst: ipAt(b, ip + 16),
    srcPort: b.readUInt16BE(udp),
    dstPort: b.readUInt16BE(udp + 2),
    start: udp + 8,
    end: udp + udpLen,
  };
}

/**
 * An Ethernet frame carrying a DHCP message (BOOTP with the magic cookie and option 53) to UDP port 67 or 68, or
 * null: other traffic, VLAN-tagged frames, fragments, bad IPv4 header checksums, truncated or malformed packets.
 * The UDP checksum is not verified (QEMU's socket backend delivers whole frames; a corrupt one fails elsewhere).
 */
export function parseDhcpFrame(frame: Uint8Array): DhcpPacket | null {
  try {
    const b = asBuffer(frame);
    const u = udpOf(b);
    if (!u) return null;
    if (u.dstPort !== DHCP_SERVER_PORT && u.dstPort !== DHCP_CLIENT_PORT) return null;
    const p = u.start;
    if (u.end - p < BOOTP_FIXED + 4) return null;
    const op = b[p]!;
    if (op !== 1 && op !== 2) return null;
    if (b[p + 1] !== 1 || b[p + 2] !== 6) return null; // htype Ethernet, hlen 6
    if (b.readUInt32BE(p + BOOTP_FIXED) !== DHCP_MAGIC_COOKIE) return null;
    const options = new Map<number, Buffer>();
    if (!parseOptions(b, p + BOOTP_FIXED + 4, u.end, options)) return null;
    const overload = options.get(DhcpOption.OVERLOAD);
    if (overload) {
      if (overload.length !== 1 || overload[0]! < 1 || overload[0]! > 3) return null;
      // file (108..235) first, then sname (44..107), as RFC 2131 §4.1 orders them
      if (overload[0]! & 1 && !parseOptions(b, p + 108, p + 236, options)) return null;
      if (overload[0]! & 2 && !parseOptions(b, p + 44, p + 108, options)) return null;
    }
    const type = options.get(DhcpOption.MESSAGE_TYPE);
    if (!type || type.length !== 1 || type[0]! < 1 || type[0]! > 18) return null;
    const ip4 = (code: number): string | null => {
      const v = options.get(code);
      return v && v.length === 4 ? ipAt(v, 0) : null;
    };
    const host = options.get(DhcpOption.HOSTNAME);
    const flags = b.readUInt16BE(p + 10);
    return {
      ethDst: formatMac(b.subarray(0, 6)),
      ethSrc: formatMac(b.subarray(6, 12)),
      ipSrc: u.ipSrc,
      ipDst: u.ipDst,
      srcPort: u.srcPort,
      dstPort: u.dstPort,
      op,
      xid: b.readUInt32BE(p + 4),
      secs: b.readUInt16BE(p + 8),
      flags,
      broadcast: (flags & FLAG_BROADCAST) !== 0,
      ciaddr: ipAt(b, p + 12),
      yiaddr: ipAt(b, p + 16),
      siaddr: ipAt(b, p + 20),
      giaddr: ipAt(b, p + 24),
      chaddr: formatMac(b.subarray(p + 28, p + 34)),
      messageType: type[0]!,
      requestedIp: ip4(DhcpOption.REQUESTED_IP),
      serverId: ip4(DhcpOption.SERVER_ID),
      clientId: options.get(DhcpOption.CLIENT_ID) ?? null,
      hostname: host && host.length > 0 ? host.toString('latin1').replace(/\0+$/, '') : null,
      paramRequestList: Array.from(options.get(DhcpOption.PARAM_REQUEST_LIST) ?? []),
      options,
    };
  } catch {
    return null;
  }
}

export interface DhcpReplyParams {
  type: DhcpReplyType;
  serverIp: string;
  serverMac: string;
  /** the address offered or acknowledged (ignored for a NAK) */
  yiaddr?: string;
  netmask?: string;
  /** option 3, omitted when null or undefined */
  router?: string | null;
  /** option 26, omitted when undefined */
  mtu?: number;
  /** option 51 (default 3600); 58 and 59 default to 1/2 and 7/8 of it */
  leaseSecs?: number;
  renewSecs?: number;
  rebindSecs?: number;
  /** option 56, e.g. why a NAK */
  message?: string;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff);
  return b;
}

function opt(code: number, value: Buffer): Buffer {
  if (value.length > 255) throw new Error(`DHCP option ${code} longer than 255 bytes`);
  return Buffer.concat([Buffer.from([code, value.length]), value]);
}

/**
 * Ethernet -> IPv4 -> UDP ends around a payload. UDP checksum computed (RFC 768), IPv4 header checksum computed,
 * frame padded to the Ethernet minimum.
 */
export function buildUdpFrame(p: UdpAddressing & { payload: Buffer; ttl?: number }): Buffer {
  const udpLen = 8 + p.payload.length;
  const total = 20 + udpLen;
  const frame = Buffer.alloc(Math.max(ETH_MIN_FRAME, ETH_HLEN + total));
  macBytes(p.ethDst).copy(frame, 0);
  macBytes(p.ethSrc).copy(frame, 6);
  frame.writeUInt16BE(ETHERTYPE_IPV4, 12);
  const ip = ETH_HLEN;
  const src = ipBytes(p.ipSrc);
  const dst = ipBytes(p.ipDst);
  frame[ip] = 0x45;
  frame[ip + 1] = 0x10; // TOS: low delay, as ISC dhcpd and dnsmasq send
  frame.writeUInt16BE(total, ip + 2);
  frame.writeUInt16BE(0, ip + 4); // id
  frame.writeUInt16BE(0, ip + 6); // no flags, offset 0
  frame[ip + 8] = p.ttl ?? 64;
  frame[ip + 9] = IPPROTO_UDP;
  src.copy(frame, ip + 12);
  dst.copy(frame, ip + 16);
  frame.writeUInt16BE(internetChecksum(frame.subarray(ip, ip + 20)), ip + 10);
  const udp = ip + 20;
  frame.writeUInt16BE(p.srcPort, udp);
  frame.writeUInt16BE(p.dstPort, udp + 2);
  frame.writeUInt16BE(udpLen, udp + 4);
  p.payload.copy(frame, udp + 8);
  const pseudo = Buffer.concat([src, dst, Buffer.from([0, IPPROTO_UDP]), u16(udpLen)]);
  const sum = internetChecksum(Buffer.concat([pseudo, frame.subarray(udp, udp + udpLen)]));
  frame.writeUInt16BE(sum === 0 ? 0xffff : sum, udp + 6);
  return frame;
}

/**
 * A DHCPOFFER, DHCPACK or DHCPNAK frame answering `req`. Where it goes (RFC 2131 §4.1): a NAK to the broadcast
 * MAC and 255.255.255.255; a client that has an address (ciaddr: renewing, rebinding) by unicast to
 * chaddr/ciaddr; a client that set the broadcast flag to broadcast; otherwise unicast to chaddr/yiaddr.
 */
export function buildDhcpReply(req: DhcpPacket, r: DhcpReplyParams): Buffer {
  const nak = r.type === DhcpType.NAK;
  const yiaddr = nak ? '0.0.0.0' : r.yiaddr;
  if (yiaddr === undefined || parseIp(yiaddr) === null) throw new Error(`DHCP reply needs a valid yiaddr, got ${String(yiaddr)}`);
  const chaddr = macBytes(req.chaddr);

  const bootp = Buffer.alloc(BOOTP_FIXED + 4);
  bootp[0] = 2; // BOOTREPLY
  bootp[1] = 1; // Ethernet
  bootp[2] = 6;
  bootp[3] = 0; // hops
  bootp.writeUInt32BE(req.xid >>> 0, 4);
  bootp.writeUInt16BE(0, 8); // secs
  bootp.writeUInt16BE(req.flags & 0xffff, 10);
  // ciaddr: echoed in an ACK (RFC 2131 table 3), zero in OFFER and NAK
  ipBytes(r.type === DhcpType.ACK ? req.ciaddr : '0.0.0.0').copy(bootp, 12);
  ipBytes(yiaddr).copy(bootp, 16);
  ipBytes(nak ? '0.0.0.0' : r.serverIp).copy(bootp, 20);
  ipBytes(req.giaddr).copy(bootp, 24);
  chaddr.copy(bootp, 28);
  bootp.writeUInt32BE(DHCP_MAGIC_COOKIE, BOOTP_FIXED);

  const opts: Buffer[] = [opt(DhcpOption.MESSAGE_TYPE, Buffer.from([r.type])), opt(DhcpOption.SERVER_ID, ipBytes(r.serverIp))];
  if (!nak) {
    const lease = r.leaseSecs ?? 3600;
    if (!Number.isInteger(lease) || lease < 1 || lease > 0xfffffffe) throw new Error(`invalid lease time ${lease}`);
    opts.push(opt(DhcpOption.LEASE_TIME, u32(lease)));
    opts.push(opt(DhcpOption.RENEWAL_TIME, u32(r.renewSecs ?? Math.floor(lease / 2))));
    opts.push(opt(DhcpOption.REBINDING_TIME, u32(r.rebindSecs ?? Math.floor((lease * 7) / 8))));
    opts.push(opt(DhcpOption.SUBNET_MASK, ipBytes(r.netmask ?? '255.255.255.0')));
    if (r.router !== null && r.router !== undefined) opts.push(opt(DhcpOption.ROUTER, ipBytes(r.router)));
    if (r.mtu !== undefined) {
      if (!Number.isInteger(r.mtu) || r.mtu < 68 || r.mtu > 65535) throw new Error(`invalid MTU ${r.mtu}`);
      opts.push(opt(DhcpOption.INTERFACE_MTU, u16(r.mtu)));
    }
  }
  if (r.message) opts.push(opt(DhcpOption.MESSAGE, Buffer.from(r.message.slice(0, 255), 'latin1')));
  if (req.clientId && req.clientId.length > 0) opts.push(opt(DhcpOption.CLIENT_ID, req.clientId)); // RFC 6842
  opts.push(Buffer.from([DhcpOption.END]));
  let payload = Buffer.concat([bootp, ...opts]);
  if (payload.length < BOOTP_MIN) payload = Buffer.concat([payload, Buffer.alloc(BOOTP_MIN - payload.length)]);

  let ethDst: string;
  let ipDst: string;
  if (nak) {
    ethDst = BROADCAST_MAC;
    ipDst = '255.255.255.255';
  } else if (req.ciaddr !== '0.0.0.0') {
    ethDst = req.chaddr;
    ipDst = req.ciaddr;
  } else if (req.broadcast) {
    ethDst = BROADCAST_MAC;
    ipDst = '255.255.255.255';
  } else {
    ethDst = req.chaddr;
    ipDst = yiaddr;
  }
  return buildUdpFrame({
    ethSrc: r.serverMac,
    ethDst,
    ipSrc: r.serverIp,
    ipDst,
    srcPort: DHCP_SERVER_PORT,
    dstPort: DHCP_CLIENT_PORT,
    payload,
  });
}

/** an Ethernet/IPv4 ARP request or reply (untagged), or null */
export function parseArpFrame(frame: Uint8Array): ArpPacket | null {
  try {
    const b = asBuffer(frame);
    if (b.length < ETH_HLEN + 28) return null;
    if (b.readUInt16BE(12) !== ETHERTYPE_ARP) return null;
    const a = ETH_HLEN;
    if (b.readUInt16BE(a) !== 1 || b.readUInt16BE(a + 2) !== ETHERTYPE_IPV4 || b[a + 4] !== 6 || b[a + 5] !== 4) return null;
    const oper = b.readUInt16BE(a + 6);
    if (oper !== 1 && oper !== 2) return null;
    return {
      ethDst: formatMac(b.subarray(0, 6)),
      ethSrc: formatMac(b.subarray(6, 12)),
      oper,
      senderMac: formatMac(b.subarray(a + 8, a + 14)),
      senderIp: ipAt(b, a + 14),
      targetMac: formatMac(b.subarray(a + 18, a + 24)),
      targetIp: ipAt(b, a + 24),
    };
  } catch {
    return null;
  }
}

/** the ARP reply "ip is at mac" to `req`'s sender, unicast */
export function buildArpReply(req: ArpPacket, mac: string, ip: string): Buffer {
  const frame = Buffer.alloc(ETH_MIN_FRAME);
  const own = macBytes(mac);
  const peer = macBytes(req.senderMac);
  peer.copy(frame, 0);
  own.copy(frame, 6);
  frame.writeUInt16BE(ETHERTYPE_ARP, 12);
  const a = ETH_HLEN;
  frame.writeUInt16BE(1, a);
  frame.writeUInt16BE(ETHERTYPE_IPV4, a + 2);
  frame[a + 4] = 6;
  frame[a + 5] = 4;
  frame.writeUInt16BE(2, a + 6);
  own.copy(frame, a + 8);
  ipBytes(ip).copy(frame, a + 14);
  peer.copy(frame, a + 18);
  ipBytes(req.senderIp).copy(frame, a + 24);
  return frame;
}
