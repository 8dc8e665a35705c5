// DHCP/ARP frame codec of the socket-multicast LAN's DHCP server, checked against frames built by hand the way
// busybox udhcpc sends them, plus the responder itself on a loopback multicast group (no VM).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import {
  DhcpType,
  buildArpReply,
  buildDhcpReply,
  formatMac,
  internetChecksum,
  parseArpFrame,
  parseDhcpFrame,
  type DhcpPacket,
} from '../../src/net/dhcp-packet.js';
import { McastDhcpResponder, defaultServerMac } from '../../src/net/mcast-dhcp.js';

const CLIENT_MAC = '52:54:00:ab:cd:ef';
const SERVER_MAC = '02:db:c0:a8:42:01';

function mac(text: string): Buffer {
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}

function ip(text: string): Buffer {
  return Buffer.from(text.split('.').map(Number));
}

function sum16(b: Buffer): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

interface ClientFrameOpts {
  mac?: string;
  type: number;
  xid?: number;
  flags?: number;
  ciaddr?: string;
  requestedIp?: string;
  serverId?: string;
  hostname?: string;
  ipSrc?: string;
  ipDst?: string;
  ethDst?: string;
  /** raw options area (replaces the generated one) */
  rawOptions?: Buffer;
  /** bytes for the sname (44..107) and file (108..235) fields */
  sname?: Buffer;
  file?: Buffer;
}

/** a client message as busybox udhcpc builds it (raw socket, IP/UDP headers by hand) */
function clientFrame(o: ClientFrameOpts): Buffer {
  const m = o.mac ?? CLIENT_MAC;
  const bootp = Buffer.alloc(236);
  bootp[0] = 1;
  bootp[1] = 1;
  bootp[2] = 6;
  bootp.writeUInt32BE(o.xid ?? 0x1234abcd, 4);
  bootp.writeUInt16BE(3, 8); // secs
  bootp.writeUInt16BE(o.flags ?? 0, 10);
  ip(o.ciaddr ?? '0.0.0.0').copy(bootp, 12);
  mac(m).copy(bootp, 28);
  o.sname?.copy(bootp, 44);
  o.file?.copy(bootp, 108);
  const opts: number[] = [];
  if (o.rawOptions) opts.push(...o.rawOptions);
  else {
    opts.push(53, 1, o.type);
    opts.push(61, 7, 1, ...mac(m));
    if (o.requestedIp) opts.push(50, 4, ...ip(o.requestedIp));
    if (o.serverId) opts.push(54, 4, ...ip(o.serverId));
    opts.push(57, 2, 0x02, 0x40); // max message size 576
    if (o.hostname) opts.push(12, o.hostname.length, ...Buffer.from(o.hostname));
    opts.push(55, 7, 1, 3, 6, 12, 15, 28, 42);
    opts.push(255);
  }
  const payload = Buffer.concat([bootp, Buffer.from([0x63, 0x82, 0x53, 0x63]), Buffer.from(opts)]);
  // udhcpc pads the BOOTP message (struct dhcp_packet is fixed size) - a short packet must parse as well
  const udpLen = 8 + payload.length;
  const iph = Buffer.alloc(20);
  iph[0] = 0x45;
  iph.writeUInt16BE(20 + udpLen, 2);
  iph[8] = 64;
  iph[9] = 17;
  ip(o.ipSrc ?? '0.0.0.0').copy(iph, 12);
  ip(o.ipDst ?? '255.255.255.255').copy(iph, 16);
  iph.writeUInt16BE(~sum16(iph) & 0xffff, 10);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(68, 0);
  udp.writeUInt16BE(67, 2);
  udp.writeUInt16BE(udpLen, 4);
  const eth = Buffer.concat([mac(o.ethDst ?? 'ff:ff:ff:ff:ff:ff'), mac(m), Buffer.from([0x08, 0x00])]);
  return Buffer.concat([eth, iph, udp, payload]);
}

/** options of a BOOTP payload starting at `at` (the magic cookie), as code -> value */
function optionsOf(frame: Buffer, at: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let i = at + 4;
  while (i < frame.length && frame[i] !== 255) {
    if (frame[i] === 0) {
      i++;
      continue;
    }
    out.set(frame[i]!, frame.subarray(i + 2, i + 2 + frame[i + 1]!));
    i += 2 + frame[i + 1]!;
  }
  assert.equal(frame[i], 255, 'options end with END');
  return out;
}

function mustParse(frame: Buffer): DhcpPacket {
  const p = parseDhcpFrame(frame);
  assert.ok(p, 'frame parses');
  return p;
}

/** checks Ethernet/IPv4/UDP headers of a reply and returns the BOOTP payload offset */
function checkHeaders(f: Buffer, ethDst: string, ipDst: string): number {
  assert.ok(f.length >= 60);
  assert.equal(formatMac(f.subarray(0, 6)), ethDst);
  assert.equal(formatMac(f.subarray(6, 12)), SERVER_MAC);
  assert.equal(f.readUInt16BE(12), 0x0800);
  assert.equal(f[14], 0x45);
  const total = f.readUInt16BE(16);
  assert.equal(f.readUInt16BE(20) & 0x3fff, 0, 'not fragmented');
  assert.equal(f[23], 17, 'UDP');
  assert.ok(f[22]! > 0, 'TTL');
  assert.equal(sum16(f.subarray(14, 34)), 0xffff, 'IPv4 header checksum');
  assert.deepEqual([...f.subarray(26, 30)], [...ip('192.168.66.1')]);
  assert.deepEqual([...f.subarray(30, 34)], [...ip(ipDst)]);
  assert.equal(f.readUInt16BE(34), 67);
  assert.equal(f.readUInt16BE(36), 68);
  const udpLen = f.readUInt16BE(38);
  assert.equal(udpLen, total - 20);
  assert.ok(udpLen - 8 >= 300, 'BOOTP payload padded to 300 bytes');
  const pseudo = Buffer.concat([f.subarray(26, 34), Buffer.from([0, 17]), f.subarray(38, 40)]);
  assert.equal(sum16(Buffer.concat([pseudo, f.subarray(34, 34 + udpLen)])), 0xffff, 'UDP checksum');
  return 42;
}

const lease = { serverIp: '192.168.66.1', serverMac: SERVER_MAC, netmask: '255.255.255.0', leaseSecs: 3600 };

test('a udhcpc DISCOVER parses: addresses, xid, chaddr, message type, client id, hostname, parameter list', () => {
  const p = mustParse(clientFrame({ type: DhcpType.DISCOVER, hostname: 'vm-1' }));
  assert.equal(p.op, 1);
  assert.equal(p.ethSrc, CLIENT_MAC);
  assert.equal(p.ethDst, 'ff:ff:ff:ff:ff:ff');
  assert.equal(p.ipSrc, '0.0.0.0');
  assert.equal(p.ipDst, '255.255.255.255');
  assert.equal(p.srcPort, 68);
  assert.equal(p.dstPort, 67);
  assert.equal(p.xid, 0x1234abcd);
  assert.equal(p.secs, 3);
  assert.equal(p.broadcast, false);
  assert.equal(p.ciaddr, '0.0.0.0');
  assert.equal(p.chaddr, CLIENT_MAC);
  assert.equal(p.messageType, DhcpType.DISCOVER);
  assert.equal(p.requestedIp, null);
  assert.equal(p.serverId, null);
  assert.deepEqual([...p.clientId!], [1, ...mac(CLIENT_MAC)]);
  assert.equal(p.hostname, 'vm-1');
  assert.deepEqual(p.paramRequestList, [1, 3, 6, 12, 15, 28, 42]);
  assert.equal(p.options.get(57)!.readUInt16BE(0), 576);
});

test('a selecting REQUEST parses options 50 and 54; upper-case or padded frames too', () => {
  const f = clientFrame({ type: DhcpType.REQUEST, requestedIp: '192.168.66.11', serverId: '192.168.66.1', flags: 0x8000 });
  const p = mustParse(Buffer.concat([f, Buffer.alloc(40)])); // Ethernet padding / trailing bytes after the IP packet
  assert.equal(p.messageType, DhcpType.REQUEST);
  assert.equal(p.requestedIp, '192.168.66.11');
  assert.equal(p.serverId, '192.168.66.1');
  assert.equal(p.broadcast, true);
  assert.equal(p.flags, 0x8000);
  // a Uint8Array view into a bigger buffer works as well
  const big = new Uint8Array(f.length + 10);
  big.set(f, 5);
  assert.equal(parseDhcpFrame(big.subarray(5, 5 + f.length))?.requestedIp, '192.168.66.11');
});

test('OFFER to a DISCOVER without the broadcast flag: unicast to chaddr/yiaddr, fields and options byte by byte', () => {
  const req = mustParse(clientFrame({ type: DhcpType.DISCOVER, xid: 0xdeadbeef }));
  const f = buildDhcpReply(req, { ...lease, type: DhcpType.OFFER, yiaddr: '192.168.66.11', router: null, mtu: 1450 });
  const b = checkHeaders(f, CLIENT_MAC, '192.168.66.11');
  assert.equal(f[b], 2, 'BOOTREPLY');
  assert.equal(f[b + 1], 1);
  assert.equal(f[b + 2], 6);
  assert.equal(f.readUInt32BE(b + 4), 0xdeadbeef, 'xid echoed');
  assert.equal(f.readUInt16BE(b + 10), 0, 'flags echoed');
  assert.deepEqual([...f.subarray(b + 12, b + 16)], [0, 0, 0, 0], 'ciaddr');
  assert.deepEqual([...f.subarray(b + 16, b + 20)], [192, 168, 66, 11], 'yiaddr');
  assert.deepEqual([...f.subarray(b + 20, b + 24)], [192, 168, 66, 1], 'siaddr');
  assert.deepEqual([...f.subarray(b + 24, b + 28)], [0, 0, 0, 0], 'giaddr');
  assert.equal(formatMac(f.subarray(b + 28, b + 34)), CLIENT_MAC, 'chaddr');
  assert.deepEqual([...f.subarray(b + 34, b + 44)], Array(10).fill(0), 'chaddr padding');
  assert.equal(f.readUInt32BE(b + 236), 0x63825363, 'magic cookie');
  const o = optionsOf(f, b + 236);
  assert.deepEqual([...o.get(53)!], [DhcpType.OFFER]);
  assert.deepEqual([...o.get(54)!], [192, 168, 66, 1]);
  assert.equal(o.get(51)!.readUInt32BE(0), 3600);
  assert.equal(o.get(58)!.readUInt32BE(0), 1800);
  assert.equal(o.get(59)!.readUInt32BE(0), 3150);
  assert.deepEqual([...o.get(1)!], [255, 255, 255, 0]);
  assert.equal(o.get(26)!.readUInt16BE(0), 1450);
  assert.equal(o.has(3), false, 'no router option when router is null');
  assert.equal(o.has(6), false, 'no DNS');
  assert.deepEqual([...o.get(61)!], [1, ...mac(CLIENT_MAC)], 'client id echoed (RFC 6842)');
  // the reply is itself a valid DHCP frame
  const back = mustParse(f);
  assert.equal(back.op, 2);
  assert.equal(back.messageType, DhcpType.OFFER);
  assert.equal(back.dstPort, 68);
  assert.equal(internetChecksum(f.subarray(14, 34)), 0);
});

test('replies go to broadcast when the client asks; ACK carries the router when given, no MTU when not', () => {
  const req = mustParse(clientFrame({ type: DhcpType.REQUEST, flags: 0x8000, requestedIp: '192.168.66.12', serverId: '192.168.66.1' }));
  const f = buildDhcpReply(req, { ...lease, type: DhcpType.ACK, yiaddr: '192.168.66.12', router: '192.168.66.254', leaseSecs: 600 });
  const b = checkHeaders(f, 'ff:ff:ff:ff:ff:ff', '255.255.255.255');
  assert.equal(f.readUInt16BE(b + 10), 0x8000, 'broadcast flag echoed');
  const o = optionsOf(f, b + 236);
  assert.deepEqual([...o.get(53)!], [DhcpType.ACK]);
  assert.deepEqual([...o.get(3)!], [192, 168, 66, 254]);
  assert.equal(o.get(51)!.readUInt32BE(0), 600);
  assert.equal(o.get(58)!.readUInt32BE(0), 300);
  assert.equal(o.get(59)!.readUInt32BE(0), 525);
  assert.equal(o.has(26), false);
});

test('a renewing REQUEST (ciaddr set) is acknowledged by unicast to ciaddr with ciaddr echoed', () => {
  const req = mustParse(clientFrame({ type: DhcpType.REQUEST, ciaddr: '192.168.66.11', ipSrc: '192.168.66.11', ipDst: '192.168.66.1', ethDst: SERVER_MAC }));
  assert.equal(req.ciaddr, '192.168.66.11');
  const f = buildDhcpReply(req, { ...lease, type: DhcpType.ACK, yiaddr: '192.168.66.11', router: null });
  const b = checkHeaders(f, CLIENT_MAC, '192.168.66.11');
  assert.deepEqual([...f.subarray(b + 12, b + 16)], [192, 168, 66, 11], 'ciaddr');
  assert.deepEqual([...f.subarray(b + 16, b + 20)], [192, 168, 66, 11], 'yiaddr');
});

test('a NAK is broadcast, has no address and no lease options', () => {
  const req = mustParse(clientFrame({ type: DhcpType.REQUEST, requestedIp: '10.1.2.3' }));
  const f = buildDhcpReply(req, { ...lease, type: DhcpType.NAK, yiaddr: '192.168.66.11', router: null, mtu: 1450, message: 'no' });
  const b = checkHeaders(f, 'ff:ff:ff:ff:ff:ff', '255.255.255.255');
  assert.deepEqual([...f.subarray(b + 16, b + 24)], [0, 0, 0, 0, 0, 0, 0, 0], 'yiaddr and siaddr zero');
  const o = optionsOf(f, b + 236);
  assert.deepEqual([...o.get(53)!], [DhcpType.NAK]);
  assert.deepEqual([...o.get(54)!], [192, 168, 66, 1]);
  assert.equal(o.get(56)!.toString(), 'no');
  for (const code of [1, 3, 26, 51, 58, 59]) assert.equal(o.has(code), false, `option ${code}`);
});

test('options in overloaded file/sname fields and split (repeated) options are read', () => {
  const raw = Buffer.from([52, 1, 3, 12, 2, 0x61, 0x62, 255]);
  const file = Buffer.from([53, 1, DhcpType.DISCOVER, 255]);
  const sname = Buffer.from([50, 4, 10, 0, 0, 7, 255]);
  const p = mustParse(clientFrame({ type: 0, rawOptions: raw, file, sname }));
  assert.equal(p.messageType, DhcpType.DISCOVER);
  assert.equal(p.requestedIp, '10.0.0.7');
  assert.equal(p.hostname, 'ab');
  const split = mustParse(clientFrame({ type: 0, rawOptions: Buffer.from([53, 1, 3, 12, 2, 0x61, 0x62, 12, 1, 0x63, 255]) }));
  assert.equal(split.hostname, 'abc');
});

test('malformed, tagged, fragmented or foreign frames are ignored without throwing', () => {
  const good = clientFrame({ type: DhcpType.DISCOVER });
  assert.ok(parseDhcpFrame(good));
  // every truncation
  for (let n = 0; n < good.length; n++) assert.equal(parseDhcpFrame(good.subarray(0, n)), null, `truncated to ${n}`);
  const mutate = (fn: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(good);
    fn(b);
    return b;
  };
  const fixIpSum = (b: Buffer): void => {
    b.writeUInt16BE(0, 24);
    b.writeUInt16BE(~sum16(b.subarray(14, 34)) & 0xffff, 24);
  };
  const cases: Array<[string, Buffer]> = [
    ['VLAN tag', Buffer.concat([good.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x05]), good.subarray(12)])],
    ['ARP ethertype', mutate((b) => b.writeUInt16BE(0x0806, 12))],
    [
      'IPv6 version',
      mutate((b) => {
        b[14] = 0x65;
        fixIpSum(b);
      }),
    ],
    [
      'IHL too small',
      mutate((b) => {
        b[14] = 0x44;
        fixIpSum(b);
      }),
    ],
    [
      'bad IP checksum',
      mutate((b) => {
        b[22] = 63;
      }),
    ],
    [
      'more fragments',
      mutate((b) => {
        b.writeUInt16BE(0x2000, 20);
        fixIpSum(b);
      }),
    ],
    [
      'fragment offset',
      mutate((b) => {
        b.writeUInt16BE(0x0001, 20);
        fixIpSum(b);
      }),
    ],
    [
      'TCP',
      mutate((b) => {
        b[23] = 6;
        fixIpSum(b);
      }),
    ],
    [
      'IP total length past the frame',
      mutate((b) => {
        b.writeUInt16BE(b.length, 16);
        fixIpSum(b);
      }),
    ],
    ['UDP length past the IP packet', mutate((b) => b.writeUInt16BE(b.readUInt16BE(38) + 1, 38))],
    ['UDP length < 8', mutate((b) => b.writeUInt16BE(7, 38))],
    ['other port', mutate((b) => b.writeUInt16BE(53, 36))],
    [
      'op 3',
      mutate((b) => {
        b[42] = 3;
      }),
    ],
    [
      'htype 6',
      mutate((b) => {
        b[43] = 6;
      }),
    ],
    [
      'hlen 16',
      mutate((b) => {
        b[44] = 16;
      }),
    ],
    ['no magic cookie', mutate((b) => b.writeUInt32BE(0, 42 + 236))],
    ['option past the end', clientFrame({ type: 0, rawOptions: Buffer.from([53, 1, 1, 12, 200, 0x61]) })],
    ['option length byte missing', clientFrame({ type: 0, rawOptions: Buffer.from([53, 1, 1, 12]) })],
    ['no message type (plain BOOTP)', clientFrame({ type: 0, rawOptions: Buffer.from([12, 1, 0x61, 255]) })],
    ['message type of length 2', clientFrame({ type: 0, rawOptions: Buffer.from([53, 2, 1, 1, 255]) })],
    ['message type 0', clientFrame({ type: 0, rawOptions: Buffer.from([53, 1, 0, 255]) })],
    ['bad overload value', clientFrame({ type: 0, rawOptions: Buffer.from([53, 1, 1, 52, 1, 7, 255]) })],
    ['overloaded file malformed', clientFrame({ type: 0, rawOptions: Buffer.from([53, 1, 1, 52, 1, 1, 255]), file: Buffer.from([12, 250]) })],
  ];
  for (const [what, frame] of cases) assert.equal(parseDhcpFrame(frame), null, what);
  // option 50/54 of a wrong length are dropped, not fatal
  const odd = mustParse(clientFrame({ type: 0, rawOptions: Buffer.from([53, 1, 3, 50, 3, 1, 2, 3, 54, 5, 1, 2, 3, 4, 5, 255]) }));
  assert.equal(odd.requestedIp, null);
  assert.equal(odd.serverId, null);
  // random garbage and random corruption never throw
  for (let i = 0; i < 3000; i++) {
    const junk =
      i % 2
        ? Buffer.from(Array.from({ length: randomInt(0, 400) }, () => randomInt(0, 256)))
        : mutate((b) => {
            b[randomInt(0, b.length)] = randomInt(0, 256);
          });
    assert.doesNotThrow(() => {
      parseDhcpFrame(junk);
      parseArpFrame(junk);
    });
  }
});

/** an ARP who-has as the Linux kernel sends it */
function arpRequest(senderMac: string, senderIp: string, targetIp: string, ethDst = 'ff:ff:ff:ff:ff:ff'): Buffer {
  const f = Buffer.alloc(42);
  mac(ethDst).copy(f, 0);
  mac(senderMac).copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14);
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20);
  mac(senderMac).copy(f, 22);
  ip(senderIp).copy(f, 28);
  ip(targetIp).copy(f, 38);
  return f;
}

test('ARP: a who-has parses and the reply says "server ip is at server mac" to the asker', () => {
  const req = parseArpFrame(arpRequest(CLIENT_MAC, '192.168.66.11', '192.168.66.1'));
  assert.deepEqual(req, {
    ethDst: 'ff:ff:ff:ff:ff:ff',
    ethSrc: CLIENT_MAC,
    oper: 1,
    senderMac: CLIENT_MAC,
    senderIp: '192.168.66.11',
    targetMac: '00:00:00:00:00:00',
    targetIp: '192.168.66.1',
  });
  const f = buildArpReply(req, SERVER_MAC, '192.168.66.1');
  assert.equal(f.length, 60);
  assert.equal(formatMac(f.subarray(0, 6)), CLIENT_MAC);
  assert.equal(formatMac(f.subarray(6, 12)), SERVER_MAC);
  const back = parseArpFrame(f);
  assert.deepEqual(back, {
    ethDst: CLIENT_MAC,
    ethSrc: SERVER_MAC,
    oper: 2,
    senderMac: SERVER_MAC,
    senderIp: '192.168.66.1',
    targetMac: CLIENT_MAC,
    targetIp: '192.168.66.11',
  });
  assert.equal(parseArpFrame(arpRequest(CLIENT_MAC, '1.2.3.4', '1.2.3.5').subarray(0, 41)), null);
  const ipv6ish = arpRequest(CLIENT_MAC, '1.2.3.4', '1.2.3.5');
  ipv6ish.writeUInt16BE(0x86dd, 16);
  assert.equal(parseArpFrame(ipv6ish), null);
  assert.equal(parseArpFrame(clientFrame({ type: DhcpType.DISCOVER })), null);
});

test('McastDhcpResponder on a loopback multicast group: OFFER/ACK/NAK for known MACs, silence for others, ARP', async (t) => {
  const group = `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`;
  const port = randomInt(20000, 60000);
  const logs: string[] = [];
  const log = {
    info: (o: unknown, m?: string) => logs.push(`${m} ${JSON.stringify(o)}`),
    warn: (o: unknown, m?: string) => logs.push(`WARN ${m} ${JSON.stringify(o)}`),
  };
  const r = new McastDhcpResponder(
    {
      group,
      port,
      localAddr: '127.0.0.1',
      serverIp: '192.168.66.1',
      netmask: '255.255.255.0',
      router: null,
      mtu: 1450,
      hosts: new Map([['52:54:00:AB:CD:EF', '192.168.66.11']]),
    },
    log,
  );
  assert.equal(r.mac, defaultServerMac('192.168.66.1'));
  assert.equal(r.mac, SERVER_MAC);
  await r.start();
  const vm = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  t.after(async () => {
    vm.close();
    await r.close();
  });
  const frames: Buffer[] = [];
  vm.on('message', (m) => frames.push(m));
  await new Promise<void>((res) => vm.bind({ port, address: group }, res));
  vm.addMembership(group, '127.0.0.1');
  vm.setMulticastInterface('127.0.0.1');
  vm.setMulticastLoopback(true);

  /** sends a frame as the VM would and collects what the server sends back (frames from the server's MAC) */
  const fromServer = (): Buffer[] => frames.filter((f) => formatMac(f.subarray(6, 12)) === SERVER_MAC);
  const exchange = async (frame: Buffer, waitMs = 2000): Promise<Buffer[]> => {
    frames.length = 0;
    await new Promise<void>((res, rej) => vm.send(frame, port, group, (e) => (e ? rej(e) : res())));
    for (const end = Date.now() + waitMs; Date.now() < end && fromServer().length === 0;) await new Promise((res) => setTimeout(res, 5));
    return fromServer();
  };

  const [offer] = await exchange(clientFrame({ type: DhcpType.DISCOVER, xid: 7 }));
  const o = mustParse(offer!);
  assert.equal(o.messageType, DhcpType.OFFER);
  assert.equal(o.yiaddr, '192.168.66.11');
  assert.equal(o.xid, 7);
  assert.equal(o.options.get(26)!.readUInt16BE(0), 1450);

  const [ack] = await exchange(clientFrame({ type: DhcpType.REQUEST, xid: 8, requestedIp: '192.168.66.11', serverId: '192.168.66.1' }));
  assert.equal(mustParse(ack!).messageType, DhcpType.ACK);
  // INIT-REBOOT for a wrong address: NAK; renewing with the right ciaddr: ACK
  const [nak] = await exchange(clientFrame({ type: DhcpType.REQUEST, xid: 9, requestedIp: '192.168.66.99' }));
  assert.equal(mustParse(nak!).messageType, DhcpType.NAK);
  const [renew] = await exchange(
    clientFrame({ type: DhcpType.REQUEST, xid: 10, ciaddr: '192.168.66.11', ethDst: SERVER_MAC, ipSrc: '192.168.66.11', ipDst: '192.168.66.1' }),
  );
  assert.equal(mustParse(renew!).messageType, DhcpType.ACK);
  assert.equal(mustParse(renew!).ipDst, '192.168.66.11');
  // a REQUEST selecting another server's offer, an unknown MAC, a unicast to someone else: no answer
  assert.deepEqual(await exchange(clientFrame({ type: DhcpType.REQUEST, requestedIp: '192.168.66.11', serverId: '192.168.66.2' }), 150), []);
  assert.deepEqual(await exchange(clientFrame({ type: DhcpType.DISCOVER, mac: '52:54:00:00:00:99' }), 150), []);
  assert.deepEqual(await exchange(clientFrame({ type: DhcpType.REQUEST, ciaddr: '192.168.66.11', ethDst: '02:00:00:00:00:01' }), 150), []);
  // garbage does not kill the handler
  assert.deepEqual(await exchange(Buffer.from('hello'), 100), []);
  assert.deepEqual(await exchange(Buffer.alloc(1500, 0xff), 100), []);

  const [arp] = await exchange(arpRequest(CLIENT_MAC, '192.168.66.11', '192.168.66.1'));
  assert.equal(parseArpFrame(arp!)?.oper, 2);
  assert.equal(parseArpFrame(arp!)?.senderIp, '192.168.66.1');
  assert.deepEqual(await exchange(arpRequest(CLIENT_MAC, '192.168.66.11', '192.168.66.12'), 150), [], 'ARP for another address');

  // setHosts swaps the lease table: the new MAC gets an offer, the old one nothing
  r.setHosts(new Map([['52:54:00:00:00:99', '192.168.66.42']]));
  const [offer2] = await exchange(clientFrame({ type: DhcpType.DISCOVER, mac: '52:54:00:00:00:99' }));
  assert.equal(mustParse(offer2!).yiaddr, '192.168.66.42');
  assert.deepEqual(await exchange(clientFrame({ type: DhcpType.DISCOVER }), 150), []);

  assert.deepEqual(r.stats, { offers: 2, acks: 2, naks: 1, arps: 1 });
  assert.equal(logs.filter((l) => l.startsWith('WARN')).length, 0, logs.join('\n'));
});

test('McastDhcpResponder refuses a bad configuration', () => {
  const ok = {
    group: '239.255.1.1',
    port: 5000,
    localAddr: '127.0.0.1',
    serverIp: '10.0.0.1',
    netmask: '255.255.255.0',
    router: null,
    hosts: new Map<string, string>(),
  };
  assert.doesNotThrow(() => new McastDhcpResponder(ok));
  for (const bad of [
    { group: '10.0.0.1' },
    { group: '239.255.1' },
    { port: 0 },
    { port: 70000 },
    { localAddr: 'lo' },
    { serverIp: '' },
    { netmask: '255.0.255.0' },
    { router: '1.2.3' },
    { mtu: 100 },
    { leaseSecs: 0 },
    { serverMac: '01:00:5e:00:00:01' },
    { hosts: new Map([['nope', '10.0.0.2']]) },
    { hosts: new Map([['52:54:00:00:00:01', '10.0.0.256']]) },
  ]) {
    assert.throws(() => new McastDhcpResponder({ ...ok, ...bad }), Error, JSON.stringify(bad));
  }
});
