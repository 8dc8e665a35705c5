// The LAN registry: the original's validation texts, LANs overlapping each other (allowed, as in the original) but
// not the node's own networks, the VXLAN id shared by hosts, each host's slice of a LAN's addresses, static leases
// that survive, idle cleanup; multicast group parsing; and two LANs of one renter with the same subnet as separate
// user-mode segments, each answering DHCP for its own VMs only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { openDb } from '../../src/store/db.js';
import { NetworkStore } from '../../src/store/networks.js';
import { LanRegistry, parseMulticast, vniOf } from '../../src/net/lans.js';
import { parseLanCreate } from '../../src/net/lan-input.js';
import { segmentOf, LAN_GROUPS, UserNetwork } from '../../src/net/driver.js';
import { LanService } from '../../src/net/lan-service.js';
import { BROADCAST_MAC, buildUdpFrame, DhcpType, parseDhcpFrame, type DhcpPacket } from '../../src/net/dhcp-packet.js';
import type { Task } from '../../src/domain/task.js';
import { quietLogger } from '../../src/util/logger.js';
import { parseCidr } from '../../src/net/ipv4.js';
import { DbcError } from '../../src/protocol/errors.js';

function registry(o: { hostIndex?: number; hostCount?: number; now?: () => number } = {}) {
  const db = openDb(':memory:');
  const store = new NetworkStore(db);
  const lans = new LanRegistry(store, {
    reserved: [{ cidr: '10.200.0.0/24', what: 'the node bridge' }],
    hostIndex: o.hostIndex ?? 0,
    hostCount: o.hostCount ?? 1,
    now: o.now ?? (() => Date.now()),
  });
  return { db, store, lans };
}

const msg = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof DbcError, String(err));
    assert.equal(err.errcode, -3);
    return err.message;
  }
  assert.fail('expected a refusal');
};

test("names and CIDRs: the original texts; the node's networks refused, other LANs may overlap", () => {
  const { lans } = registry();
  assert.equal(
    msg(() => lans.create('w1', '', '192.168.66.0/24')),
    'network name can not be empty',
  );
  // values as clients send them go through the edge parse first (lan/create's handler)
  const viaEdge = (name: unknown, ipCidr: unknown) => {
    const input = parseLanCreate({ network_name: name, ip_cidr: ipCidr });
    return lans.create('w1', input.name, input.ipCidr);
  };
  assert.equal(
    msg(() => viaEdge(undefined, '192.168.66.0/24')),
    'network name can not be empty',
  );
  for (const bad of ['abcde', 'abcdefghijk', 'abc_def1', 'abc def1', 12345678]) {
    assert.equal(
      msg(() => viaEdge(bad, '192.168.66.0/24')),
      'network name requires a combination of 6 to 10 letters or numbers',
    );
    if (typeof bad === 'string')
      assert.equal(
        msg(() => lans.create('w1', bad, '192.168.66.0/24')),
        'network name requires a combination of 6 to 10 letters or numbers',
      );
  }
  assert.equal(
    msg(() => lans.create('w1', 'testnet1', '')),
    'ip cidr can not be empty',
  );
  assert.equal(
    msg(() => viaEdge('testnet1', undefined)),
    'ip cidr can not be empty',
  );
  assert.equal(
    msg(() => viaEdge('testnet1', 19216866)),
    'invalid ip cidr',
  );
  assert.match(
    msg(() => lans.create('w1', 'testnet1', '192.168.122.0/24')),
    /^invalid ip cidr: /,
  );
  assert.match(
    msg(() => lans.create('w1', 'testnet1', '10.200.0.0/16')),
    /overlaps the node bridge 10\.200\.0\.0\/24/,
  );
  assert.match(
    msg(() => lans.create('w1', 'testnet1', '192.168.66.0/30')),
    /prefix must be/,
  );
  assert.match(
    msg(() => lans.create('w1', 'testnet1', '127.0.0.0/24')),
    /not a usable unicast network/,
  );
  const row = lans.create('w1', 'testnet1', '192.168.66.7/24');
  assert.equal(row.ip_cidr, '192.168.66.0/24');
  assert.equal(
    msg(() => lans.create('w2', 'testnet1', '192.168.70.0/24')),
    'network name already existed',
  );
  // the same renter's second LAN may overlap the first (the rental website creates every LAN with 192.168.66.0/24):
  // each LAN is its own segment, and a VM joins one LAN only
  const overlapping = lans.create('w1', 'testnet2', '192.168.66.128/25');
  assert.equal(overlapping.ip_cidr, '192.168.66.128/25');
  const same = lans.create('w1', 'testnet4', '192.168.66.0/24');
  assert.equal(same.ip_cidr, '192.168.66.0/24');
  assert.equal(new Set([row.vni, overlapping.vni, same.vni]).size, 3, 'separate segments');
  // another renter may use the same subnet: a separate segment
  assert.equal(lans.create('w2', 'testnet3', '192.168.66.0/24').ip_cidr, '192.168.66.0/24');
  // the node's own networks stay refused, whatever LANs exist
  assert.match(
    msg(() => lans.create('w1', 'testnet5', '10.200.0.128/25')),
    /^invalid ip cidr: .*overlaps the node bridge 10\.200\.0\.0\/24/,
  );
  assert.match(
    msg(() => lans.create('w1', 'testnet5', '192.168.122.0/25')),
    /^invalid ip cidr: /,
  );
  assert.deepEqual(
    lans.list('w1').map((r) => r.name),
    ['testnet1', 'testnet2', 'testnet4'],
  );
});

test('the VXLAN id depends on owner and name only: equal on every host', () => {
  const a = registry({ hostIndex: 0, hostCount: 2 }).lans.create('w1', 'shared01', '192.168.77.0/24');
  const b = registry({ hostIndex: 1, hostCount: 2 }).lans.create('w1', 'shared01', '192.168.77.0/24');
  assert.equal(a.vni, b.vni);
  assert.equal(a.vni, vniOf('w1', 'shared01'));
  assert.notEqual(vniOf('w2', 'shared01'), a.vni);
  assert.ok(a.vni >= 1 && a.vni < 2 ** 24);
  const seg = segmentOf(a.vni);
  assert.ok(parseCidr(LAN_GROUPS)!.network >>> 16 === ((Number(seg.group.split('.')[0]) << 8) | Number(seg.group.split('.')[1])));
});

test('hosts take disjoint slices and distinct DHCP server addresses; leases are kept', () => {
  const h0 = registry({ hostIndex: 0, hostCount: 2 }).lans;
  const h1 = registry({ hostIndex: 1, hostCount: 2 }).lans;
  const r0 = h0.create('w1', 'shared01', '192.168.77.0/24');
  const r1 = h1.create('w1', 'shared01', '192.168.77.0/24');
  assert.equal(h0.serverIp(r0), '192.168.77.254');
  assert.equal(h1.serverIp(r1), '192.168.77.253');
  const s0 = h0.slice(r0);
  const s1 = h1.slice(r1);
  assert.ok(s0.last < s1.first, JSON.stringify({ s0, s1 }));
  assert.equal(h0.assign('t1', r0, '52:54:00:00:00:01'), '192.168.77.1');
  assert.equal(h0.assign('t2', r0, '52:54:00:00:00:02'), '192.168.77.2');
  assert.equal(h0.assign('t1', r0, '52:54:00:00:00:01'), '192.168.77.1', 'kept across calls');
  assert.equal(h1.assign('t9', r1, '52:54:00:00:00:09'), '192.168.77.127');
  h0.release('t1', 'shared01');
  assert.equal(h0.assign('t3', r0, '52:54:00:00:00:03'), '192.168.77.1', 'freed address reused');
});

test('a full LAN is refused with a clear text', () => {
  const { lans } = registry();
  const row = lans.create('w1', 'tinynet1', '192.168.90.0/29'); // 6 hosts: 5 for VMs, 1 for the server
  for (let i = 0; i < 5; i++) lans.assign(`t${i}`, row, `52:54:00:00:00:0${i}`);
  assert.equal(
    msg(() => lans.assign('t9', row, '52:54:00:00:00:09')),
    'network tinynet1 has no free address',
  );
});

test('members, delete rules and idle cleanup', () => {
  let now = 1_000_000;
  const { db, lans } = registry({ now: () => now });
  const row = lans.create('w1', 'testnet1', '192.168.66.0/24');
  db.prepare(
    `INSERT INTO tasks (task_id, wallet, status, create_time, created_at, image_name, os, bios_mode, nic_model,
    ssh_port, rdp_port, vnc_port, vnc_password, login_user, login_password, cpu_cores, mem_size_gb, gpu_count, disk_size_gb,
    network_name, updated_at) VALUES ('t1', 'w1', 'running', '', 0, 'x.qcow2', 'linux', 'legacy', 'virtio', 0, 0, 5901, 'p', 'dbc', 'p', 1, 1, 0, 1, 'testnet1', 0)`,
  ).run();
  assert.deepEqual(lans.members('testnet1'), ['t1']);
  assert.equal(
    msg(() => lans.checkDelete('w2', 'testnet1')),
    'wallet error, you are not the owner of the network',
  );
  assert.equal(
    msg(() => lans.checkDelete('w1', 'testnet1')),
    'network is in used, please delete task in the network first',
  );
  assert.equal(
    msg(() => lans.checkDelete('w1', 'nosuch12')),
    'network name not exist',
  );
  assert.equal(
    msg(() => lans.forCreate('w2', 'testnet1')),
    'can not find network info',
  );
  assert.equal(lans.forCreate('w1', 'testnet1').name, 'testnet1');
  now += 10_000;
  assert.deepEqual(lans.idle(5_000), [], 'a LAN with members is never idle');
  db.prepare("DELETE FROM tasks WHERE task_id = 't1'").run();
  now += 4_000;
  assert.deepEqual(lans.idle(5_000), [], 'last use was refreshed while it had members');
  now += 2_000;
  assert.deepEqual(
    lans.idle(5_000).map((r) => r.name),
    [row.name],
  );
});

test("multicast groups: the original texts, the node's own range refused, duplicates merged", () => {
  const own = parseCidr(LAN_GROUPS)!;
  const m = (list: string[]) => msg(() => parseMulticast(list, own));
  assert.equal(m(['239.1.2.3']), 'multicast format: ip:port');
  assert.equal(m(['239.1.2.3:']), 'multicast format: ip:port');
  assert.equal(m(['239.1.2.300:5000']), 'multicast format: ip:port');
  assert.equal(m(['10.1.2.3:5000']), 'address is not a multicast address');
  assert.equal(m(['239.1.2.3:0']), 'invalid multicast port');
  assert.equal(m(['239.1.2.3:65536']), 'invalid multicast port');
  assert.match(m(['239.254.1.1:5000']), /reserved by the node/);
  assert.deepEqual(parseMulticast(['239.1.2.3:5000', ' 239.1.2.3:5000 ', '224.0.0.251:5353'], own), [
    { group: '239.1.2.3', port: 5000 },
    { group: '224.0.0.251', port: 5353 },
  ]);
});

/** a DHCPDISCOVER as a guest's DHCP client sends it: broadcast from 0.0.0.0, client id = MAC */
function discover(mac: string, xid: number): Buffer {
  const bootp = Buffer.alloc(236);
  bootp[0] = 1; // BOOTREQUEST
  bootp[1] = 1; // Ethernet
  bootp[2] = 6;
  bootp.writeUInt32BE(xid, 4);
  Buffer.from(mac.split(':').map((h) => parseInt(h, 16))).copy(bootp, 28);
  const options = Buffer.from([0x63, 0x82, 0x53, 0x63, 53, 1, DhcpType.DISCOVER, 255]);
  return buildUdpFrame({
    ethSrc: mac,
    ethDst: BROADCAST_MAC,
    ipSrc: '0.0.0.0',
    ipDst: '255.255.255.255',
    srcPort: 68,
    dstPort: 67,
    payload: Buffer.concat([bootp, options]),
  });
}

/** a QEMU socket-multicast NIC on a segment: sends frames, collects the DHCP replies seen there */
async function segmentNic(seg: { group: string; port: number }) {
  const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  const replies: DhcpPacket[] = [];
  sock.on('message', (m) => {
    const p = parseDhcpFrame(m);
    if (p && p.op === 2) replies.push(p);
  });
  await new Promise<void>((res) => sock.bind({ port: seg.port, address: seg.group }, res));
  sock.addMembership(seg.group, '127.0.0.1');
  sock.setMulticastInterface('127.0.0.1');
  sock.setMulticastLoopback(true);
  return {
    replies,
    send: (frame: Buffer) => new Promise<void>((res, rej) => sock.send(frame, seg.port, seg.group, (e) => (e ? rej(e) : res()))),
    close: () => sock.close(),
  };
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end && !cond();) await new Promise((r) => setTimeout(r, 10));
}

test('user mode: two LANs of one renter with the same subnet are separate segments with their own DHCP', async (t) => {
  const db = openDb(':memory:');
  const store = new NetworkStore(db);
  const net = new UserNetwork({
    store,
    log: quietLogger,
    now: () => Date.now(),
    hv: { addForward: async () => undefined, removeForward: async () => undefined },
    forwardHost: '127.0.0.1',
  });
  const service = new LanService(net, quietLogger);
  t.after(async () => {
    await net.close();
    db.close();
  });
  const a = await service.create('w1', { name: 'samenet1', ipCidr: '192.168.66.0/24' });
  const b = await service.create('w1', { name: 'samenet2', ipCidr: '192.168.66.0/24' });
  assert.equal(a.ip_cidr, b.ip_cidr);
  assert.notEqual(a.vxlan_vni, b.vxlan_vni);
  assert.notEqual(a.segment, b.segment, 'each LAN its own multicast segment');
  assert.equal(a.dhcp_server, b.dhcp_server, 'the same subnet: the same server address on each segment');
  const rowA = net.lans.get('samenet1')!;
  const rowB = net.lans.get('samenet2')!;

  // a VM on each LAN (LAN B has one VM more, so its VM's address differs from LAN A's)
  const task = (id: string, lan: string): Task => ({ task_id: id, network_name: lan, multicast: [] }) as unknown as Task;
  const tag = randomBytes(4).toString('hex');
  const vmA = task(`sa${tag}`, 'samenet1');
  const filler = task(`sf${tag}`, 'samenet2');
  const vmB = task(`sb${tag}`, 'samenet2');
  const nicA = (await net.prepare(vmA)).extraNics[0];
  await net.prepare(filler);
  const nicB = (await net.prepare(vmB)).extraNics[0];
  assert.ok(nicA?.kind === 'mcast' && nicB?.kind === 'mcast');
  assert.deepEqual({ group: nicA.group, port: nicA.port }, segmentOf(rowA.vni));
  assert.deepEqual({ group: nicB.group, port: nicB.port }, segmentOf(rowB.vni));
  assert.notDeepEqual(segmentOf(rowA.vni), segmentOf(rowB.vni));
  assert.equal(net.addresses(vmA).local_address?.[0], '192.168.66.1');
  assert.equal(net.addresses(vmB).local_address?.[0], '192.168.66.2');

  const segA = await segmentNic(segmentOf(rowA.vni));
  const segB = await segmentNic(segmentOf(rowB.vni));
  t.after(() => {
    segA.close();
    segB.close();
  });
  // each VM's DISCOVER is answered on its own segment, with its own LAN's address; nothing crosses
  await segA.send(discover(nicA.mac, 1));
  await segB.send(discover(nicB.mac, 2));
  await until(() => segA.replies.length > 0 && segB.replies.length > 0, 3000);
  assert.deepEqual(
    segA.replies.map((r) => [r.xid, r.messageType, r.chaddr, r.yiaddr]),
    [[1, DhcpType.OFFER, nicA.mac, '192.168.66.1']],
  );
  assert.deepEqual(
    segB.replies.map((r) => [r.xid, r.messageType, r.chaddr, r.yiaddr]),
    [[2, DhcpType.OFFER, nicB.mac, '192.168.66.2']],
  );
  // a VM's MAC on the other LAN's segment gets nothing there
  segA.replies.length = 0;
  segB.replies.length = 0;
  await segB.send(discover(nicA.mac, 3));
  await segA.send(discover(nicB.mac, 4));
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual([...segA.replies, ...segB.replies], []);
  // deleting one LAN leaves the other answering
  await net.forget(vmA);
  await service.remove('w1', 'samenet1');
  await segB.send(discover(nicB.mac, 5));
  await until(() => segB.replies.length > 0, 3000);
  assert.deepEqual(
    segB.replies.map((r) => [r.xid, r.yiaddr]),
    [[5, '192.168.66.2']],
  );
});
