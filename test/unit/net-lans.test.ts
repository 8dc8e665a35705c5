// The LAN registry: the original's validation texts, per-renter CIDR overlap, the VXLAN id shared by hosts, each
// host's slice of a LAN's addresses, static leases that survive, idle cleanup; and multicast group parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../../src/store/db.js';
import { NetworkStore } from '../../src/store/networks.js';
import { LanRegistry, parseMulticast, vniOf } from '../../src/net/lans.js';
import { parseLanCreate } from '../../src/net/lan-input.js';
import { segmentOf, LAN_GROUPS } from '../../src/net/driver.js';
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

test('names and CIDRs: the original texts; overlaps within one renter only', () => {
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
  assert.match(
    msg(() => lans.create('w1', 'testnet2', '192.168.66.128/25')),
    /^ip cidr already exist: .* testnet1/,
  );
  // another renter may use the same subnet: a separate segment
  assert.equal(lans.create('w2', 'testnet3', '192.168.66.0/24').ip_cidr, '192.168.66.0/24');
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
