import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNetworkFilters } from '../../src/net/filters.js';
import { forwardConflicts, renderRuleset, type NftState, type NftTask } from '../../src/net/nft.js';

function task(over: Partial<NftTask> = {}): NftTask {
  return {
    taskId: 'vm_a',
    vmIp: '10.200.0.5',
    forwards: [
      { proto: 'tcp', hostFrom: 2222, hostTo: 2222, guestFrom: 22, guestTo: 22 },
      { proto: 'udp', hostFrom: 7000, hostTo: 7010, guestFrom: 7000, guestTo: 7010 },
      { proto: 'tcp', hostFrom: 9000, hostTo: 9002, guestFrom: 8000, guestTo: 8002 },
    ],
    filters: [],
    ...over,
  };
}

function state(over: Partial<NftState> = {}): NftState {
  return {
    table: 'dbc',
    hostIps: ['203.0.113.7'],
    bridge: { name: 'dbcbr0', cidr: '10.200.0.0/24', gatewayIp: '10.200.0.1' },
    isolatedPrefix: 'dlb',
    tasks: [task()],
    ...over,
  };
}

/** the rules (trimmed lines) of one chain */
function chainLines(text: string, name: string): string[] {
  const m = new RegExp(`\\tchain ${name} \\{\\n([\\s\\S]*?)\\n\\t\\}`).exec(text);
  assert.ok(m, `chain ${name} missing in\n${text}`);
  return m[1]!.split('\n').map((l) => l.trim());
}

test('the table holds the expected DNAT, masquerade, forward and input rules', () => {
  const text = renderRuleset(state());
  assert.ok(text.startsWith('table ip dbc {\n') && text.endsWith('\n}\n'));
  assert.deepEqual(chainLines(text, 'prerouting'), ['type nat hook prerouting priority dstnat; policy accept;', 'jump portfwd']);
  assert.deepEqual(chainLines(text, 'output'), ['type nat hook output priority -100; policy accept;', 'jump portfwd']);
  assert.deepEqual(chainLines(text, 'portfwd'), ['ip daddr != 203.0.113.7 return', 'jump t_vm_a']);
  assert.deepEqual(chainLines(text, 't_vm_a'), [
    'tcp dport 2222 dnat to 10.200.0.5:22',
    'tcp dport 9000-9002 dnat to 10.200.0.5:tcp dport map { 9000 : 8000, 9001 : 8001, 9002 : 8002 }',
    'udp dport 7000-7010 dnat to 10.200.0.5',
  ]);
  assert.deepEqual(chainLines(text, 'postrouting'), [
    'type nat hook postrouting priority srcnat; policy accept;',
    'ip saddr 10.200.0.0/24 oifname != "dbcbr0" masquerade',
    'ip saddr 10.200.0.0/24 oifname "dbcbr0" ct status dnat masquerade',
  ]);
  assert.deepEqual(chainLines(text, 'forward'), [
    'type filter hook forward priority filter; policy accept;',
    'iifname "dlb*" oifname != "dlb*" drop',
    'oifname "dlb*" iifname != "dlb*" drop',
    'ct state established,related accept',
    'iifname "dbcbr0" ip saddr 10.200.0.5 accept',
    'iifname "dbcbr0" drop',
    'oifname "dbcbr0" ct status dnat accept',
    'oifname "dbcbr0" drop',
  ]);
  assert.deepEqual(chainLines(text, 'input'), [
    'type filter hook input priority filter; policy accept;',
    'iifname "dlb*" udp dport 67 accept',
    'iifname "dlb*" drop',
    'iifname "dbcbr0" udp dport 67 accept',
    'iifname "dbcbr0" ct state established,related accept',
    'iifname "dbcbr0" icmp type echo-request accept',
    'iifname "dbcbr0" drop',
  ]);
  assert.ok(!/counter|handle/.test(text));
});

test('no host ips: DNAT for any local address except loopback', () => {
  assert.deepEqual(chainLines(renderRuleset(state({ hostIps: [] })), 'portfwd'), [
    'fib daddr type != local return',
    'ip daddr 127.0.0.0/8 return',
    'jump t_vm_a',
  ]);
  assert.deepEqual(
    chainLines(renderRuleset(state({ hostIps: ['203.0.113.9', '198.51.100.1', '203.0.113.9'] })), 'portfwd')[0],
    'ip daddr != { 198.51.100.1, 203.0.113.9 } return',
  );
});

test('filters render into per-VM chains: in matches the source, out the destination, accept returns', () => {
  const filters = parseNetworkFilters([
    'in,ssh,,1.2.3.4,accept',
    'in,all,all,0.0.0.0/0,drop',
    'out,all,all,any,accept',
    'inout,dns,,10.1.2.3/8,drop',
    'out,icmp,all,any,drop',
    'in,udp,all,192.168.0.0/16,drop',
    'in,tcp,5000-5100,any,drop',
  ]);
  const text = renderRuleset(state({ tasks: [task({ filters })] }));
  const fwd = chainLines(text, 'forward');
  assert.ok(fwd.includes('ip daddr 10.200.0.5 jump f_vm_a_in'));
  assert.ok(fwd.includes('ip saddr 10.200.0.5 jump f_vm_a_out'));
  assert.ok(fwd.indexOf('ct state established,related accept') < fwd.indexOf('ip daddr 10.200.0.5 jump f_vm_a_in'));
  assert.ok(fwd.indexOf('ip saddr 10.200.0.5 jump f_vm_a_out') < fwd.indexOf('iifname "dbcbr0" drop'));
  assert.deepEqual(chainLines(text, 'f_vm_a_in'), [
    'ip saddr 1.2.3.4 tcp dport 22 return',
    'drop',
    'ip saddr 10.0.0.0/8 meta l4proto { tcp, udp } th dport 53 drop',
    'ip saddr 192.168.0.0/16 ip protocol udp drop',
    'tcp dport 5000-5100 drop',
  ]);
  assert.deepEqual(chainLines(text, 'f_vm_a_out'), ['return', 'ip daddr 10.0.0.0/8 meta l4proto { tcp, udp } th dport 53 drop', 'ip protocol icmp drop']);
});

test('a task without forwards or filters has no chains of its own', () => {
  const text = renderRuleset(state({ tasks: [task(), task({ taskId: 'vm_b', vmIp: '10.200.0.6', forwards: [] })] }));
  assert.ok(!text.includes('t_vm_b') && !text.includes('f_vm_b'));
  assert.ok(chainLines(text, 'forward').includes('iifname "dbcbr0" ip saddr { 10.200.0.5, 10.200.0.6 } accept'));
  const empty = renderRuleset(state({ tasks: [] }));
  assert.deepEqual(chainLines(empty, 'portfwd'), ['ip daddr != 203.0.113.7 return']);
  assert.ok(!/10\.200\.0\.5/.test(empty));
  assert.ok(chainLines(empty, 'forward').includes('iifname "dbcbr0" drop'));
});

test('rendering is deterministic: task and forward order do not matter', () => {
  const a = task();
  const b = task({
    taskId: 'B2',
    vmIp: '10.200.0.9',
    forwards: [{ proto: 'tcp', hostFrom: 3333, hostTo: 3333, guestFrom: 22, guestTo: 22 }],
    filters: parseNetworkFilters(['in,tcp,22,any,drop']),
  });
  const one = renderRuleset(state({ tasks: [a, b] }));
  const two = renderRuleset(state({ tasks: [b, { ...a, forwards: [...a.forwards].reverse() }] }));
  assert.equal(one, two);
  assert.equal(renderRuleset(state({ tasks: [a, b] })), one);
  // B2 sorts before vm_a (code unit order)
  assert.deepEqual(chainLines(one, 'portfwd').slice(1), ['jump t_B2', 'jump t_vm_a']);
  assert.ok(one.indexOf('chain t_B2 {') < one.indexOf('chain t_vm_a {'));
});

test('injection attempts and bad values are rejected', () => {
  const bad: Array<[string, Partial<NftState>]> = [
    ['table', { table: 'dbc; flush ruleset' }],
    ['table upper', { table: 'DBC' }],
    ['table empty', { table: '' }],
    ['bridge', { bridge: { name: 'tap0; flush ruleset', cidr: '10.200.0.0/24', gatewayIp: '10.200.0.1' } }],
    ['bridge quote', { bridge: { name: 'br"0', cidr: '10.200.0.0/24', gatewayIp: '10.200.0.1' } }],
    ['bridge long', { bridge: { name: 'abcdefghijklmnop', cidr: '10.200.0.0/24', gatewayIp: '10.200.0.1' } }],
    ['bridge cidr', { bridge: { name: 'dbcbr0', cidr: '10.200.0.0/24 }', gatewayIp: '10.200.0.1' } }],
    ['bridge gw outside', { bridge: { name: 'dbcbr0', cidr: '10.200.0.0/24', gatewayIp: '10.201.0.1' } }],
    ['bridge gw network', { bridge: { name: 'dbcbr0', cidr: '10.200.0.0/24', gatewayIp: '10.200.0.0' } }],
    ['bridge in isolated', { isolatedPrefix: 'dbc' }],
    ['prefix', { isolatedPrefix: 'dlb*' }],
    ['prefix empty', { isolatedPrefix: '' }],
    ['host ip', { hostIps: ['1.2.3.4 }'] }],
    ['host ip cidr', { hostIps: ['1.2.3.0/24'] }],
    ['task id', { tasks: [task({ taskId: 'a; flush ruleset' })] }],
    ['task id dash', { tasks: [task({ taskId: 'a-b' })] }],
    ['task id long', { tasks: [task({ taskId: 'x'.repeat(65) })] }],
    ['task id dup', { tasks: [task(), task({ vmIp: '10.200.0.6', forwards: [] })] }],
    ['vm ip', { tasks: [task({ vmIp: '10.200.0.5; flush ruleset' })] }],
    ['vm ip outside', { tasks: [task({ vmIp: '10.201.0.5' })] }],
    ['vm ip gateway', { tasks: [task({ vmIp: '10.200.0.1' })] }],
    ['vm ip broadcast', { tasks: [task({ vmIp: '10.200.0.255' })] }],
    ['vm ip shared', { tasks: [task(), task({ taskId: 'b', forwards: [] })] }],
    ['port 0', { tasks: [task({ forwards: [{ proto: 'tcp', hostFrom: 0, hostTo: 0, guestFrom: 22, guestTo: 22 }] })] }],
    ['port big', { tasks: [task({ forwards: [{ proto: 'tcp', hostFrom: 70000, hostTo: 70000, guestFrom: 22, guestTo: 22 }] })] }],
    ['port float', { tasks: [task({ forwards: [{ proto: 'tcp', hostFrom: 22.5, hostTo: 22.5, guestFrom: 22, guestTo: 22 }] })] }],
    ['port range', { tasks: [task({ forwards: [{ proto: 'tcp', hostFrom: 10, hostTo: 20, guestFrom: 10, guestTo: 15 }] })] }],
    ['port reversed', { tasks: [task({ forwards: [{ proto: 'tcp', hostFrom: 20, hostTo: 10, guestFrom: 20, guestTo: 10 }] })] }],
    ['proto', { tasks: [task({ forwards: [{ proto: 'sctp' as 'tcp', hostFrom: 22, hostTo: 22, guestFrom: 22, guestTo: 22 }] })] }],
    [
      'filter cidr',
      {
        tasks: [task({ filters: [{ text: 'x', dir: 'in', protos: ['all'], portFrom: null, portTo: null, cidr: '1.2.3.4/24 drop;', action: 'drop' }] })],
      },
    ],
    [
      'filter action',
      {
        tasks: [task({ filters: [{ text: 'x', dir: 'in', protos: ['all'], portFrom: null, portTo: null, cidr: null, action: 'jump' as 'drop' }] })],
      },
    ],
    [
      'filter port on icmp',
      {
        tasks: [task({ filters: [{ text: 'x', dir: 'in', protos: ['icmp'], portFrom: 1, portTo: 1, cidr: null, action: 'drop' }] })],
      },
    ],
    [
      'filter mixed protos',
      {
        tasks: [task({ filters: [{ text: 'x', dir: 'in', protos: ['icmp', 'tcp'], portFrom: null, portTo: null, cidr: null, action: 'drop' }] })],
      },
    ],
  ];
  for (const [name, over] of bad) {
    assert.throws(
      () => renderRuleset(state(over)),
      (e: unknown) => e instanceof Error && /^nft: /.test(e.message),
      name,
    );
  }
});

test('the filter text itself never reaches the ruleset', () => {
  const [rule] = parseNetworkFilters(['in,tcp,22,any,drop']);
  const text = renderRuleset(state({ tasks: [task({ filters: [{ ...rule!, text: '"; flush ruleset' }] })] }));
  assert.ok(!text.includes('flush'));
});

test('a host port forwarded twice is reported, not fatal: the first task by id gets it', () => {
  const b = task({
    taskId: 'b',
    vmIp: '10.200.0.6',
    forwards: [
      { proto: 'udp', hostFrom: 7005, hostTo: 7006, guestFrom: 1, guestTo: 2 },
      { proto: 'tcp', hostFrom: 2222, hostTo: 2222, guestFrom: 22, guestTo: 22 },
    ],
  });
  const s = state({ tasks: [task(), b] });
  assert.deepEqual(forwardConflicts(s), ['tcp/2222: b, vm_a', 'udp/7005: b, vm_a', 'udp/7006: b, vm_a']);
  assert.deepEqual(chainLines(renderRuleset(s), 'portfwd').slice(1), ['jump t_b', 'jump t_vm_a']);
  assert.deepEqual(forwardConflicts(state()), []);
});
