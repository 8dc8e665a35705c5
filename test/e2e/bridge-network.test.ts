// Bridge mode between two GPU "hosts" (network namespaces A and B, each running `dbc up --network bridge`), joined by
// a switch namespace, with a third namespace as "the internet" and the test process on the switch as the API user:
//  - a VM on each host joins the same LAN and they ping each other over unicast VXLAN; a VM of another renter on a
//    LAN with the same subnet cannot reach them;
//  - from the internet namespace, SSH to host_ip:ssh_port reaches the VM (nftables DNAT) and a custom UDP range
//    forwards; a `drop` filter blocks new SSH connections and `accept` re-opens them;
//  - stopping a VM removes its rules and taps;
//  - after kill -9 of the daemon and a restart, the nftables table equals the one before (stale rules added
//    meanwhile are gone) and the VM is still reachable.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cryptoReady } from '../../src/auth/verify.js';
import { cliPath, post, repoRoot, signedBody, sleep, startDevnet, vncHandshake, waitFor, type Devnet } from '../helpers/devnet.js';
import { removeTopology } from '../helpers/netns-topology.js';
import { freeVncPort, waitStatus } from '../helpers/tasks.js';

const R = randomBytes(2).toString('hex');
const NS = { sw: `dbsw${R}`, a: `dbha${R}`, b: `dbhb${R}`, inet: `dbin${R}` };
const ROOT_IF = `dbt${R}`;
const IP = { root: '10.77.0.1', a: '10.77.0.2', b: '10.77.0.3', inet: '10.77.0.4' };

function sh(args: string[], input?: string): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', input, timeout: 30_000 });
}
const inNs = (ns: string, args: string[], input?: string) => sh(['ip', 'netns', 'exec', ns, ...args], input);

function setupTopology(): void {
  sh(['ip', 'netns', 'add', NS.sw]);
  inNs(NS.sw, ['ip', 'link', 'set', 'lo', 'up']);
  inNs(NS.sw, ['ip', 'link', 'add', 'sw0', 'type', 'bridge']);
  inNs(NS.sw, ['ip', 'link', 'set', 'sw0', 'up']);
  for (const [key, ns] of [
    ['a', NS.a],
    ['b', NS.b],
    ['inet', NS.inet],
  ] as const) {
    sh(['ip', 'netns', 'add', ns]);
    inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
    inNs(NS.sw, ['ip', 'link', 'add', `p${key}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    inNs(NS.sw, ['ip', 'link', 'set', `p${key}`, 'master', 'sw0', 'up']);
    inNs(ns, ['ip', 'addr', 'add', `${IP[key]}/24`, 'dev', 'eth0']);
    inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    inNs(ns, ['ip', 'route', 'add', 'default', 'via', IP.root]);
  }
  // the test process reaches the APIs through one veth from the root namespace into the switch
  sh(['ip', 'link', 'add', ROOT_IF, 'type', 'veth', 'peer', 'name', 'proot', 'netns', NS.sw]);
  inNs(NS.sw, ['ip', 'link', 'set', 'proot', 'master', 'sw0', 'up']);
  sh(['ip', 'addr', 'add', `${IP.root}/24`, 'dev', ROOT_IF]);
  sh(['ip', 'link', 'set', ROOT_IF, 'up']);
}

function teardownTopology(): void {
  removeTopology(ROOT_IF, Object.values(NS));
}

/** one SSH command or UDP burst from the internet namespace */
function fromInternet(c: Record<string, unknown>): { ok: boolean; out?: string; error?: string } {
  const out = inNs(NS.inet, [process.execPath, join(repoRoot, 'dist/test/helpers/netns-client.js'), JSON.stringify(c)]);
  return JSON.parse(out.trim().split('\n').pop()!);
}

function nftTable(ns: string): string {
  return inNs(ns, ['nft', 'list', 'table', 'ip', 'dbc']);
}

describe('bridge mode: two hosts, VXLAN LANs, kernel port forwards, filters, restart', { timeout: 900_000 }, () => {
  let A: Devnet;
  let B: Devnet;
  let seed2 = '';
  const vm: Record<string, { id: string; ssh: number; password: string; lanIp: string }> = {};
  const bodyA = (additional: Record<string, unknown> = {}) => signedBody(A.node_id, A.renter.seed, additional);
  const bodyB = (additional: Record<string, unknown> = {}, seed = B.renter.seed) => signedBody(B.node_id, seed, additional);

  const bridgeArgs = (self: string, peer: string) => [
    '--host',
    self,
    '--network',
    'bridge',
    '--lan-local',
    self,
    '--lan-peer',
    peer,
    '--no-local-image-server',
  ];

  before(async () => {
    await cryptoReady();
    teardownTopology();
    setupTopology();
    A = await startDevnet({ netns: NS.a, shutdownTimeoutS: 20, extraArgs: bridgeArgs(IP.a, IP.b) });
    // host B serves the same renter: `dbc up` keeps the renter of an existing devnet.json
    const dirB = mkdtempSync(join(os.tmpdir(), 'dbc-e2e-'));
    writeFileSync(join(dirB, 'devnet.json'), JSON.stringify({ renter: { seed: A.renter.seed } }));
    B = await startDevnet({ netns: NS.b, dataDir: dirB, shutdownTimeoutS: 20, extraArgs: bridgeArgs(IP.b, IP.a) });
    assert.equal(B.renter.wallet, A.renter.wallet);
    // a second renter on host B
    seed2 = `0x${randomBytes(32).toString('hex')}`;
    sh([process.execPath, cliPath, 'rental', 'grant', '--data-dir', B.dataDir, '--wallet', identityFromSeed(seed2).address]);
  });

  after(async () => {
    for (const d of [A, B]) await d?.destroy().catch(() => undefined);
    teardownTopology();
  });

  async function createVm(d: Devnet, key: string, additional: Record<string, unknown>, seed = d.renter.seed): Promise<void> {
    const ssh = 20000 + Math.floor(Math.random() * 20000);
    const r = await post(
      d.api,
      'tasks/start',
      signedBody(d.node_id, seed, {
        image_name: d.image,
        ssh_port: String(ssh),
        vnc_port: String(await freeVncPort()),
        cpu_cores: '1',
        mem_size: '1',
        disk_size: '1',
        ...additional,
      }),
    );
    assert.equal(r.body.errcode, 0, r.text);
    vm[key] = { id: r.body.message.task_id, ssh, password: '', lanIp: '' };
  }

  test("both hosts run in bridge mode; the same renter's LAN has the same VXLAN id on both", async () => {
    const info = await post(A.api, 'mining_nodes', { peer_nodes_list: [A.node_id], additional: {} });
    assert.equal(info.body.message.network_mode, 'bridge');
    const la = await post(A.api, 'lan/create', bodyA({ network_name: 'shared01', ip_cidr: '192.168.77.0/24' }));
    const lb = await post(B.api, 'lan/create', bodyB({ network_name: 'shared01', ip_cidr: '192.168.77.0/24' }));
    assert.equal(la.body.errcode, 0, la.text);
    assert.equal(lb.body.errcode, 0, lb.text);
    assert.equal(la.body.message.vxlan_vni, lb.body.message.vxlan_vni);
    assert.notEqual(la.body.message.dhcp_server, lb.body.message.dhcp_server);
    // another renter may use the same subnet on host B: a separate segment
    const other = await post(B.api, 'lan/create', bodyB({ network_name: 'other001', ip_cidr: '192.168.77.0/24' }, seed2));
    assert.equal(other.body.errcode, 0, other.text);
    assert.notEqual(other.body.message.vxlan_vni, lb.body.message.vxlan_vni);
  });

  test('VMs boot on both hosts and get their addresses by DHCP', async () => {
    await createVm(A, 'a1', { network_name: 'shared01', custom_port: ['udp,7001-7002'] });
    await createVm(B, 'b1', { network_name: 'shared01' });
    await createVm(B, 'b2', { network_name: 'other001' }, seed2);
    for (const [key, d, seed] of [
      ['a1', A, A.renter.seed],
      ['b1', B, B.renter.seed],
      ['b2', B, seed2],
    ] as const) {
      const detail = await waitStatus(d, vm[key]!.id, 'running', 300_000, seed);
      vm[key]!.password = detail.login_password;
      vm[key]!.lanIp = detail.local_address?.[0] ?? '';
      assert.match(detail.local_ip ?? '', /^10\.200\.0\.\d+$/, JSON.stringify(detail));
      assert.match(vm[key]!.lanIp, /^192\.168\.77\.\d+$/, JSON.stringify(detail));
    }
  });

  test('from the internet, SSH to host_ip:ssh_port reaches the VM (kernel DNAT)', async () => {
    const a1 = vm.a1!;
    const r = await waitFor(
      'ssh from the internet',
      () => {
        const x = fromInternet({ op: 'ssh', host: IP.a, port: a1.ssh, password: a1.password, cmd: 'ip -4 -o addr show', timeoutMs: 10_000 });
        return x.ok ? x : undefined;
      },
      180_000,
      3000,
    );
    assert.match(r.out!, new RegExp(`inet ${a1.lanIp.replace(/\./g, '\\.')}/24`));
    // no user-space proxy: nothing on host A listens on the SSH port, the kernel forwards it
    const listening = inNs(NS.a, ['ss', '-Hltn', `sport = :${a1.ssh}`]);
    assert.equal(listening.trim(), '');
    assert.match(nftTable(NS.a), new RegExp(`dport ${a1.ssh} dnat to 10\\.200\\.0\\.\\d+:22`));
    // VNC answers on the host address
    const detail = (await post(A.api, `tasks/${a1.id}`, bodyA())).body.message;
    assert.equal((await vncHandshake(IP.a, Number(detail.vnc_port))).version, 'RFB 003.008');
  });

  test("a VM reaches none of the host's services (API, listeners on 127.0.0.1 and 0.0.0.0); the internet it does", async () => {
    const a1 = vm.a1!;
    const base = 40000 + Math.floor(Math.random() * 5000);
    const greet = (ns: string, host: string, port: number, text: string) =>
      spawn(
        'ip',
        [
          'netns',
          'exec',
          ns,
          process.execPath,
          '-e',
          `require('net').createServer((s)=>{s.on('error',()=>{});s.end(${JSON.stringify(text + '\n')})}).listen(${port},${JSON.stringify(host)},()=>console.log('up'))`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
    const servers = [
      greet(NS.a, '127.0.0.1', base, 'SECRET_LOOPBACK'),
      greet(NS.a, '0.0.0.0', base + 1, 'SECRET_ANYADDR'),
      greet(NS.inet, '0.0.0.0', base + 2, 'HELLO_INTERNET'),
    ];
    try {
      for (const s of servers) await new Promise((r) => s.stdout.once('data', r));
      const api = Number(new URL(A.api).port);
      const probe = (name: string, host: string, port: number, send = '') =>
        `echo "${name}=$(printf '${send}' | timeout 8 nc -w 4 ${host} ${port} 2>/dev/null | head -c 40 | tr -d '\\r\\n')";`;
      const cmd = [
        probe('API', IP.a, api, 'GET / HTTP/1.0\\r\\n\\r\\n'),
        probe('APIGW', '10.200.0.1', api, 'GET / HTTP/1.0\\r\\n\\r\\n'),
        probe('LOOP', '10.200.0.1', base),
        probe('ANYGW', '10.200.0.1', base + 1),
        probe('ANY', IP.a, base + 1),
        probe('INET', IP.inet, base + 2),
        'echo DONE',
      ].join(' ');
      const x = fromInternet({ op: 'ssh', host: IP.a, port: a1.ssh, password: a1.password, cmd, timeoutMs: 90_000 });
      assert.ok(x.ok, JSON.stringify(x));
      assert.match(x.out!, /INET=HELLO_INTERNET/, x.out);
      assert.doesNotMatch(x.out!, /HTTP|SECRET/, x.out);
    } finally {
      for (const s of servers) s.kill('SIGKILL');
    }
  });

  test('the VMs of one LAN ping each other across hosts over VXLAN; another LAN cannot reach them', async () => {
    const a1 = vm.a1!;
    const b1 = vm.b1!;
    const b2 = vm.b2!;
    await waitFor(
      'b1 ssh',
      () => (fromInternet({ op: 'ssh', host: IP.b, port: b1.ssh, password: b1.password, timeoutMs: 10_000 }).ok ? true : undefined),
      180_000,
      3000,
    );
    await waitFor(
      'b2 ssh',
      () => (fromInternet({ op: 'ssh', host: IP.b, port: b2.ssh, password: b2.password, timeoutMs: 10_000 }).ok ? true : undefined),
      180_000,
      3000,
    );
    const ping = await waitFor(
      'LAN ping a1 -> b1',
      () => {
        const x = fromInternet({
          op: 'ssh',
          host: IP.a,
          port: a1.ssh,
          password: a1.password,
          cmd: `/bin/ping -c 2 -W 2 ${b1.lanIp} && echo PING_OK`,
          timeoutMs: 20_000,
        });
        return x.ok && x.out!.includes('PING_OK') ? x.out : undefined;
      },
      60_000,
      2000,
    );
    assert.match(ping, /PING_OK/);
    const back = fromInternet({
      op: 'ssh',
      host: IP.b,
      port: b1.ssh,
      password: b1.password,
      cmd: `echo | nc -w 3 ${a1.lanIp} 22 | head -c 7`,
      timeoutMs: 20_000,
    });
    assert.equal(back.out?.trim(), 'SSH-2.0', JSON.stringify(back));
    // b2 is on another renter's LAN with the same subnet: neither a1 nor b1 answers it (b2 may hold the same address
    // as b1, from host B's slice of a different segment: then only a1 is a meaningful target)
    const targets = [a1.lanIp, b1.lanIp].filter((ip) => ip !== b2.lanIp);
    assert.ok(targets.includes(a1.lanIp), `${a1.lanIp} ${b2.lanIp}`);
    const isolated = fromInternet({
      op: 'ssh',
      host: IP.b,
      port: b2.ssh,
      password: b2.password,
      cmd: `${targets.map((ip) => `/bin/ping -c 2 -W 2 ${ip} >/dev/null 2>&1 && echo REACHED_${ip};`).join(' ')} /bin/ping -c 1 -W 3 10.200.0.1 >/dev/null 2>&1 && echo GATEWAY_OK; echo DONE`,
      timeoutMs: 30_000,
    });
    assert.ok(isolated.ok, JSON.stringify(isolated));
    assert.match(isolated.out!, /GATEWAY_OK/, 'ping itself works from b2');
    assert.doesNotMatch(isolated.out!, /REACHED/);
  });

  test("stopping a VM removes its forwards and taps; the other VM's stay", async () => {
    const b1 = vm.b1!;
    const b2 = vm.b2!;
    assert.match(nftTable(NS.b), new RegExp(`dport ${b2.ssh} `));
    const r = await post(B.api, `tasks/poweroff/${b2.id}`, bodyB({}, seed2));
    assert.equal(r.body.errcode, 0, r.text);
    await waitStatus(B, b2.id, 'closed', 60_000, seed2);
    await waitFor('b2 rules gone', () => (nftTable(NS.b).includes(`dport ${b2.ssh} `) ? undefined : true), 30_000, 300);
    assert.match(nftTable(NS.b), new RegExp(`dport ${b1.ssh} `));
    const taps = new Set(inNs(NS.b, ['ip', '-o', 'link', 'show']).match(/dt[ml][0-9a-f]{10}/g) ?? []);
    assert.equal(taps.size, 2, [...taps].join(' '));
  });

  test('a custom UDP range forwards to the VM', async () => {
    const a1 = vm.a1!;
    const start = fromInternet({
      op: 'ssh',
      host: IP.a,
      port: a1.ssh,
      password: a1.password,
      cmd: '(dbc-udp-echo 7002 60 >/dev/null 2>&1 &) ; sleep 0.5; echo STARTED',
      timeoutMs: 15_000,
    });
    assert.match(start.out ?? '', /STARTED/, JSON.stringify(start));
    const echo = fromInternet({ op: 'udp', host: IP.a, port: 7002, text: 'hello-over-udp', count: 20 });
    assert.equal(echo.ok, true, JSON.stringify(echo));
    assert.equal(echo.out, 'echo:hello-over-udp\n');
    // 7003 is outside the range: nothing answers
    const outside = fromInternet({ op: 'udp', host: IP.a, port: 7003, text: 'x', count: 3 });
    assert.equal(outside.ok, false);
  });

  test('a drop filter blocks new SSH connections; accept re-opens them', async () => {
    const a1 = vm.a1!;
    const drop = await post(A.api, `tasks/modify/${a1.id}`, bodyA({ new_network_filters: ['in,tcp,22,0.0.0.0/0,drop'] }));
    assert.equal(drop.body.errcode, 0, drop.text);
    const blocked = fromInternet({ op: 'ssh', host: IP.a, port: a1.ssh, password: a1.password, timeoutMs: 6000 });
    assert.equal(blocked.ok, false, 'ssh must be blocked by the drop filter');
    const lockout = await post(A.api, `tasks/modify/${a1.id}`, bodyA({ new_network_filters: ['in,all,0,10.200.0.1,drop'] }));
    assert.equal(lockout.body.errcode, -3);
    assert.match(lockout.body.message, /cut the node/);
    const accept = await post(A.api, `tasks/modify/${a1.id}`, bodyA({ new_network_filters: ['in,tcp,22,0.0.0.0/0,accept', 'in,all,0,0.0.0.0/0,drop'] }));
    assert.equal(accept.body.errcode, 0, accept.text);
    const open = fromInternet({ op: 'ssh', host: IP.a, port: a1.ssh, password: a1.password, timeoutMs: 15_000 });
    assert.equal(open.ok, true, JSON.stringify(open));
    assert.equal((await post(A.api, `tasks/modify/${a1.id}`, bodyA({ new_network_filters: [] }))).body.errcode, 0);
  });

  test('kill -9 and restart: the ruleset equals the expected one, stale rules are gone, the VM stays reachable', async () => {
    const a1 = vm.a1!;
    const before = nftTable(NS.a);
    await A.kill9();
    // meanwhile someone leaves junk in our table
    inNs(NS.a, ['nft', 'add', 'chain', 'ip', 'dbc', 'stale_chain']);
    inNs(NS.a, ['nft', 'insert', 'rule', 'ip', 'dbc', 'prerouting', 'tcp', 'dport', '9999', 'dnat', 'to', '10.200.0.250:22']);
    assert.match(nftTable(NS.a), /9999/);
    await A.restart();
    const after = await waitFor(
      'table rebuilt',
      () => {
        const t = nftTable(NS.a);
        return t.includes('9999') || t.includes('stale_chain') ? undefined : t;
      },
      60_000,
      500,
    );
    assert.equal(after, before);
    const detail = await waitStatus(A, a1.id, 'running', 60_000);
    assert.equal(detail.status, 'running');
    const ok = fromInternet({ op: 'ssh', host: IP.a, port: a1.ssh, password: a1.password, timeoutMs: 15_000 });
    assert.equal(ok.ok, true, JSON.stringify(ok));
    // deleting the VM removes every rule that mentions it
    assert.equal((await post(A.api, `tasks/delete/${a1.id}`, bodyA())).body.errcode, 0);
    await waitFor('rules of a1 gone', () => (nftTable(NS.a).includes(`dport ${a1.ssh}`) ? undefined : true), 60_000, 500);
    assert.doesNotMatch(nftTable(NS.a), new RegExp(a1.id));
    await sleep(10);
  });
});
