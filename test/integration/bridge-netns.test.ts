// Host plumbing on the real kernel, entirely inside network namespaces this file creates (never the root
// namespace's links): idempotent bridge/tap/vxlan management (src/net/links.ts), dnsmasq with static leases handing
// a real QEMU guest its address and being adopted after its starter is gone (src/net/dnsmasq.ts), and unicast
// VXLAN private LANs between two "hosts" with VNI isolation and peer re-sync.
// Module code runs inside a namespace through `ip netns exec NS node dist/test/helpers/netns-run.js '<json>'`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NetnsOp } from '../helpers/netns-run.js';
import type { DnsmasqConfig, DhcpLease } from '../../src/net/dnsmasq.js';
import { Dnsmasq } from '../../src/net/dnsmasq.js';
import { ensureBridge, ensureTap, ensureVxlan, deleteLink, setSysctl, listLinks } from '../../src/net/links.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const HELPER = path.join(REPO, 'dist/test/helpers/netns-run.js');
const IMAGE = path.join(REPO, '.cache/images/dbc-test.qcow2');
const TAG = randomBytes(3).toString('hex');
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : false;

let dir = '';
const namespaces: string[] = [];
const vms: ChildProcess[] = [];
const dnsmasqPidFiles = new Set<string>();

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(bin: string, args: string[], timeout = 30_000): Promise<Result> {
  return new Promise((res) => {
    execFile(bin, args, { timeout }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      res({ code, stdout: String(stdout), stderr: String(stderr) || (err ? err.message : '') });
    });
  });
}

async function sh(bin: string, args: string[], timeout = 30_000): Promise<string> {
  const r = await exec(bin, args, timeout);
  if (r.code !== 0) throw new Error(`${bin} ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Runs a command inside namespace `ns`. */
const inNs = (ns: string, args: string[], timeout?: number) => sh('ip', ['netns', 'exec', ns, ...args], timeout);
const tryNs = (ns: string, args: string[], timeout?: number) => exec('ip', ['netns', 'exec', ns, ...args], timeout);

/** Runs one links/dnsmasq call inside `ns` through the helper; rejects with the module's error message. */
async function op<T = unknown>(ns: string, c: NetnsOp): Promise<T> {
  const r = await exec('ip', ['netns', 'exec', ns, process.execPath, HELPER, JSON.stringify(c)]);
  let parsed: { ok: boolean; result?: T; error?: string };
  try {
    parsed = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as typeof parsed;
  } catch {
    throw new Error(`netns-run ${c.op}: exit ${r.code}: ${r.stdout}${r.stderr}`);
  }
  if (!parsed.ok) throw new Error(parsed.error ?? 'netns-run failed');
  return parsed.result as T;
}

async function addNs(suffix: string): Promise<string> {
  const ns = `dbcbr${TAG}${suffix}`;
  await sh('ip', ['netns', 'add', ns]);
  namespaces.push(ns);
  await inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  return ns;
}

/** A veth pair: `local` in namespace `ns`, `remote` moved into namespace `peerNs`. */
async function veth(ns: string, local: string, peerNs: string, remote: string): Promise<void> {
  await inNs(ns, ['ip', 'link', 'add', local, 'type', 'veth', 'peer', 'name', remote, 'netns', peerNs]);
}

async function ping(ns: string, ip: string, count = 1, extra: string[] = []): Promise<boolean> {
  const r = await tryNs(ns, ['busybox', 'ping', '-c', String(count), '-W', '2', ...extra, ip], 15_000);
  return r.code === 0;
}

function pidState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}
const alive = (pid: number) => {
  const s = pidState(pid);
  return s !== null && s !== 'Z' && s !== 'X';
};

function exited(vm: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (vm.exitCode !== null || vm.signalCode !== null) return Promise.resolve(true);
  return new Promise((res) => {
    const timer = setTimeout(() => res(false), timeoutMs);
    vm.once('exit', () => {
      clearTimeout(timer);
      res(true);
    });
  });
}

before(async () => {
  if (skip) return;
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dbc-bridge-netns-'));
  await fs.chmod(dir, 0o755); // dnsmasq (dropped to nobody) re-reads its hosts file below here on SIGHUP
});

after(async () => {
  for (const vm of vms) if (vm.exitCode === null && vm.signalCode === null) vm.kill('SIGKILL');
  await Promise.all(vms.map((vm) => exited(vm, 5_000)));
  for (const pidFile of dnsmasqPidFiles) {
    const pid = Number(await fs.readFile(pidFile, 'utf8').catch(() => ''));
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const argv = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (argv.split('\0').includes(`--pid-file=${pidFile}`)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  for (const ns of namespaces) await exec('ip', ['netns', 'del', ns]);
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test('arguments are validated before any command runs', { skip }, async () => {
  // none of these may reach `ip`: they run in this (root-namespace) process
  await assert.rejects(ensureBridge('bad name'), /invalid link name/);
  await assert.rejects(ensureBridge('x'.repeat(16)), /invalid link name/);
  await assert.rejects(ensureBridge('..'), /invalid link name/);
  await assert.rejects(ensureBridge('dbcok0', { address: '10.200.0.300/24' }), /invalid bridge address/);
  await assert.rejects(ensureBridge('dbcok0', { address: '10.200.0.1' }), /invalid bridge address/);
  await assert.rejects(ensureBridge('dbcok0', { mtu: 40 }), /invalid mtu/);
  await assert.rejects(ensureTap('tap;x', 'br0'), /invalid link name/);
  await assert.rejects(ensureTap('tap0', 'br 0'), /invalid bridge name/);
  await assert.rejects(ensureVxlan('vx0', { vni: 0, local: '10.0.0.1', bridge: 'br0', peers: [] }), /invalid vni/);
  await assert.rejects(ensureVxlan('vx0', { vni: 1 << 24, local: '10.0.0.1', bridge: 'br0', peers: [] }), /invalid vni/);
  await assert.rejects(ensureVxlan('vx0', { vni: 7, local: '10.0.0.01', bridge: 'br0', peers: [] }), /invalid vxlan local/);
  await assert.rejects(ensureVxlan('vx0', { vni: 7, local: '10.0.0.1', bridge: 'br0', peers: ['x'] }), /invalid vxlan peer/);
  await assert.rejects(ensureVxlan('vx0', { vni: 7, local: '10.0.0.1', port: 0, bridge: 'br0', peers: [] }), /invalid vxlan port/);
  await assert.rejects(deleteLink('a/b'), /invalid link name/);
  await assert.rejects(listLinks('a b'), /invalid link prefix/);
  await assert.rejects(setSysctl('../../etc/passwd', '1'), /invalid sysctl key/);
  await assert.rejects(setSysctl('net/../../x', '1'), /invalid sysctl key/);
  await assert.rejects(setSysctl('net.ipv4.ip_forward', '1\n0'), /invalid sysctl value/);

  const cfg: DnsmasqConfig = { iface: 'br0', dir: path.join(dir, 'v'), network: '10.9.0.0/24', router: '10.9.0.1', hosts: [] };
  const bad: Array<[Partial<DnsmasqConfig>, RegExp]> = [
    [{ iface: 'br 0' }, /interface/],
    [{ dir: 'relative/dir' }, /state dir/],
    [{ dir: '/tmp/a,b' }, /state dir/],
    [{ dir: '/tmp/a\nb' }, /state dir/],
    [{ dir: '/tmp/../etc' }, /state dir/],
    [{ network: '10.9.0.1/24' }, /network/],
    [{ leaseTime: '12h;x' }, /lease time/],
    [{ router: '10.9.0' }, /router/],
    [{ dns: ['8.8.8.8', 'x'] }, /dns server/],
    [{ mtu: 100 }, /mtu/],
    [{ bin: 'dns masq' }, /binary/],
    [{ hosts: [{ mac: '52:54:00:00:00:0g', ip: '10.9.0.5' }] }, /host mac/],
    [{ hosts: [{ mac: '52:54:00:00:00:01', ip: '10.9.1.5' }] }, /host ip/],
    [{ hosts: [{ mac: '52:54:00:00:00:01', ip: '10.9.0.255' }] }, /host ip/],
    [
      {
        hosts: [
          { mac: '52:54:00:00:00:01', ip: '10.9.0.5' },
          { mac: '52:54:00:00:00:01', ip: '10.9.0.6' },
        ],
      },
      /duplicate/,
    ],
    [
      {
        hosts: [
          { mac: '52:54:00:00:00:01', ip: '10.9.0.5' },
          { mac: '52:54:00:00:00:02', ip: '10.9.0.5' },
        ],
      },
      /duplicate/,
    ],
  ];
  for (const [patch, re] of bad) assert.throws(() => new Dnsmasq({ ...cfg, ...patch }), re, JSON.stringify(patch));
  assert.deepEqual(new Dnsmasq({ ...cfg, dns: ['1.1.1.1', '9.9.9.9'], mtu: 1450, router: null, leaseTime: '5m' }).args(), [
    '--conf-file=/dev/null',
    '--port=0',
    '--interface=br0',
    '--bind-interfaces',
    '--except-interface=lo',
    `--pid-file=${cfg.dir}/dnsmasq.pid`,
    '--dhcp-range=10.9.0.0,static,255.255.255.0,5m',
    `--dhcp-hostsfile=${cfg.dir}/hosts`,
    `--dhcp-leasefile=${cfg.dir}/leases`,
    '--dhcp-authoritative',
    `--log-facility=${cfg.dir}/dnsmasq.log`,
    '--log-dhcp',
    '--dhcp-option=3',
    '--dhcp-option=option:dns-server,1.1.1.1,9.9.9.9',
    '--dhcp-option=option:mtu,1450',
  ]);
});

test('ensureBridge/ensureTap/ensureVxlan/deleteLink are idempotent; listLinks, isolation, sysctl, default route', { skip, timeout: 30_000 }, async () => {
  const ns = await addNs('l');
  for (let i = 0; i < 2; i++) {
    await op(ns, { op: 'ensureBridge', name: 'dbcbr0', address: '10.200.0.1/24', mtu: 1500 });
    await op(ns, { op: 'ensureTap', name: 'dbctap0', bridge: 'dbcbr0', isolated: true });
    await op(ns, { op: 'ensureTap', name: 'dbctap1', bridge: 'dbcbr0', mtu: 1400 });
    await op(ns, { op: 'ensureVxlan', name: 'dbcvx0', vni: 100, local: '10.0.0.1', bridge: 'dbcbr0', peers: ['10.0.0.2', '10.0.0.3', '10.0.0.2'], mtu: 1450 });
  }
  const br = JSON.parse(await inNs(ns, ['ip', '-j', '-d', 'addr', 'show', 'dev', 'dbcbr0'])) as Array<{
    flags: string[];
    addr_info: Array<{ family: string; local: string; prefixlen: number }>;
    linkinfo: { info_kind: string; info_data: { stp_state: number; forward_delay: number } };
  }>;
  assert.equal(br[0]!.linkinfo.info_kind, 'bridge');
  assert.equal(br[0]!.linkinfo.info_data.stp_state, 0);
  assert.equal(br[0]!.linkinfo.info_data.forward_delay, 0);
  assert.ok(br[0]!.flags.includes('UP'));
  assert.deepEqual(
    br[0]!.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
    ['10.200.0.1/24'],
  );

  type Port = { ifname: string; master: string; isolated: boolean; mtu: number };
  const ports = async () => JSON.parse(await inNs(ns, ['bridge', '-d', '-j', 'link', 'show'])) as Port[];
  let p = await ports();
  const byName = (n: string) => p.find((x) => x.ifname === n);
  assert.equal(byName('dbctap0')?.master, 'dbcbr0');
  assert.equal(byName('dbctap0')?.isolated, true);
  assert.equal(byName('dbctap1')?.isolated, false);
  assert.equal(byName('dbctap1')?.mtu, 1400);
  assert.equal(byName('dbcvx0')?.master, 'dbcbr0');
  const tap = JSON.parse(await inNs(ns, ['ip', '-j', '-d', 'link', 'show', 'dev', 'dbctap0'])) as Array<{
    linkinfo: { info_data: { type: string; persist: boolean } };
  }>;
  assert.deepEqual([tap[0]!.linkinfo.info_data.type, tap[0]!.linkinfo.info_data.persist], ['tap', true]);
  const fdb = JSON.parse(await inNs(ns, ['bridge', '-j', 'fdb', 'show', 'dev', 'dbcvx0'])) as Array<{ mac: string; dst?: string }>;
  assert.deepEqual(
    fdb
      .filter((e) => e.mac === '00:00:00:00:00:00')
      .map((e) => e.dst)
      .sort(),
    ['10.0.0.2', '10.0.0.3'],
  );

  // the flag follows the wanted state both ways
  await op(ns, { op: 'ensureTap', name: 'dbctap0', bridge: 'dbcbr0', isolated: false });
  p = await ports();
  assert.equal(byName('dbctap0')?.isolated, false);
  // a changed VNI recreates the device
  await op(ns, { op: 'ensureVxlan', name: 'dbcvx0', vni: 101, local: '10.0.0.1', bridge: 'dbcbr0', peers: ['10.0.0.2'] });
  const vx = JSON.parse(await inNs(ns, ['ip', '-j', '-d', 'link', 'show', 'dev', 'dbcvx0'])) as Array<{
    master: string;
    linkinfo: { info_data: { id: number; port: number; learning: boolean } };
  }>;
  assert.deepEqual(
    [vx[0]!.linkinfo.info_data.id, vx[0]!.linkinfo.info_data.port, vx[0]!.linkinfo.info_data.learning, vx[0]!.master],
    [101, 4789, false, 'dbcbr0'],
  );

  assert.deepEqual(await op(ns, { op: 'listLinks', prefix: 'dbc' }), ['dbcbr0', 'dbctap0', 'dbctap1', 'dbcvx0']);
  assert.deepEqual(await op(ns, { op: 'listLinks', prefix: 'dbctap' }), ['dbctap0', 'dbctap1']);
  assert.equal(await op(ns, { op: 'linkExists', name: 'dbctap1' }), true);
  await assert.rejects(op(ns, { op: 'ensureBridge', name: 'dbctap1' }), /not a bridge/);
  await assert.rejects(op(ns, { op: 'ensureTap', name: 'dbcbr0', bridge: 'dbcbr0' }), /not a tap/);
  await assert.rejects(op(ns, { op: 'ensureTap', name: 'dbctap9', bridge: 'nosuchbr' }), /nosuchbr/);

  for (let i = 0; i < 2; i++) for (const n of ['dbctap0', 'dbctap1', 'dbctap9', 'dbcvx0', 'dbcbr0']) await op(ns, { op: 'deleteLink', name: n });
  assert.deepEqual(await op(ns, { op: 'listLinks', prefix: 'dbc' }), []);
  assert.equal(await op(ns, { op: 'linkExists', name: 'dbcbr0' }), false);

  await op(ns, { op: 'setSysctl', key: 'net.ipv4.ip_forward', value: '1' });
  assert.equal((await inNs(ns, ['cat', '/proc/sys/net/ipv4/ip_forward'])).trim(), '1');
  await assert.rejects(op(ns, { op: 'setSysctl', key: 'net.ipv4.no_such_knob', value: '1' }), /ENOENT/);

  assert.equal(await op(ns, { op: 'defaultRouteSource' }), null);
  const peer = await addNs('g');
  await veth(ns, 'up0', peer, 'eth0');
  await inNs(ns, ['ip', 'addr', 'add', '10.77.0.5/24', 'dev', 'up0']);
  await inNs(ns, ['ip', 'link', 'set', 'up0', 'up']);
  await inNs(ns, ['ip', 'route', 'add', 'default', 'via', '10.77.0.1', 'dev', 'up0']);
  assert.deepEqual(await op(ns, { op: 'defaultRouteSource' }), { dev: 'up0', src: '10.77.0.5' });
});

test('dnsmasq hands a real guest its static lease, is adopted by a new instance, reloads hosts on SIGHUP', { skip, timeout: 120_000 }, async (t) => {
  if (!existsSync(IMAGE)) await sh('bash', [path.join(REPO, 'scripts/build-test-image.sh')], 300_000);
  const host = await addNs('h');
  const client = await addNs('c');
  const VM_MAC = '52:54:00:5e:00:57';
  const CLIENT_MAC = '52:54:00:c1:1e:77';
  await op(host, { op: 'ensureBridge', name: 'dbcbr0', address: '10.200.0.1/24' });
  await op(host, { op: 'ensureTap', name: 'dbctap0', bridge: 'dbcbr0', isolated: true });
  const cfg: DnsmasqConfig = {
    iface: 'dbcbr0',
    dir: path.join(dir, 'dnsmasq-dbcbr0'),
    network: '10.200.0.0/24',
    router: '10.200.0.1',
    dns: ['10.200.0.1'],
    mtu: 1500,
    leaseTime: '1h',
    hosts: [{ mac: VM_MAC, ip: '10.200.0.57' }],
  };
  dnsmasqPidFiles.add(path.join(cfg.dir, 'dnsmasq.pid'));
  const first = await op<{ pid: number; adopted: boolean }>(host, { op: 'dnsmasqStart', cfg });
  assert.equal(first.adopted, false);
  assert.ok(alive(first.pid));
  // the helper that started it has exited: dnsmasq lives on, re-parented
  assert.equal(await fs.readFile(cfg.dir + '/hosts', 'utf8'), `${VM_MAC},10.200.0.57\n`);

  const overlay = path.join(dir, 'vm.qcow2');
  await sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', IMAGE, overlay]);
  const serial = path.join(dir, 'vm.serial');
  const t0 = Date.now();
  const vm = spawn(
    'ip',
    [
      'netns',
      'exec',
      host,
      'qemu-system-x86_64',
      '-accel',
      'tcg',
      '-m',
      '256',
      '-display',
      'none',
      '-monitor',
      'none',
      '-serial',
      `file:${serial}`,
      '-drive',
      `file=${overlay},if=virtio,format=qcow2`,
      '-netdev',
      'tap,id=net0,ifname=dbctap0,script=no,downscript=no',
      '-device',
      `virtio-net-pci,netdev=net0,mac=${VM_MAC}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  vms.push(vm);
  let qemuErr = '';
  vm.stderr?.on('data', (d: Buffer) => {
    qemuErr += d.toString();
  });

  // meanwhile: a client on the bridge whose MAC has no static lease gets nothing (static-only range)
  await veth(host, 'dbcvc0', client, 'eth0');
  await inNs(host, ['ip', 'link', 'set', 'dbcvc0', 'master', 'dbcbr0', 'up']);
  await inNs(client, ['ip', 'link', 'set', 'eth0', 'address', CLIENT_MAC, 'up']);
  const script = path.join(dir, 'udhcpc-report');
  await fs.writeFile(script, '#!/bin/sh\necho "event=$1 ip=$ip router=$router dns=$dns mtu=$mtu subnet=$subnet"\n', { mode: 0o755 });
  const udhcpc = ['busybox', 'udhcpc', '-i', 'eth0', '-f', '-q', '-n', '-t', '2', '-T', '1', '-O', 'mtu', '-s', script];
  const denied = await tryNs(client, udhcpc, 20_000);
  assert.notEqual(denied.code, 0, `unknown MAC got a lease: ${denied.stdout}`);
  assert.doesNotMatch(denied.stdout, /event=bound/);

  let line = '';
  while (!line) {
    if (vm.exitCode !== null || vm.signalCode !== null) throw new Error(`QEMU exited: ${qemuErr}`);
    if (Date.now() - t0 > 90_000) throw new Error(`no DHCP lease on the guest's console:\n${await fs.readFile(serial, 'utf8').catch(() => '')}`);
    line = /dbc-guest: ip \S+ dev \S+/.exec(await fs.readFile(serial, 'utf8').catch(() => ''))?.[0] ?? '';
    if (!line) await new Promise((r) => setTimeout(r, 100));
  }
  t.diagnostic(`guest lease after ${Date.now() - t0} ms: ${line}`);
  assert.equal(line, 'dbc-guest: ip 10.200.0.57 dev eth0');
  let leases: DhcpLease[] = [];
  for (let i = 0; i < 50 && !leases.some((l) => l.mac === VM_MAC); i++) {
    leases = await op<DhcpLease[]>(host, { op: 'dnsmasqLeases', cfg });
    if (!leases.some((l) => l.mac === VM_MAC)) await new Promise((r) => setTimeout(r, 100));
  }
  const vmLease = leases.find((l) => l.mac === VM_MAC);
  assert.ok(vmLease, JSON.stringify(leases));
  assert.equal(vmLease.ip, '10.200.0.57');
  assert.ok(vmLease.expires > Date.now() / 1000 + 3000 && vmLease.expires <= Date.now() / 1000 + 3601, `expires ${vmLease.expires}`);
  // the isolated tap still reaches the bridge (host side)
  assert.ok(await ping(host, '10.200.0.57', 1), 'host cannot ping the guest through its isolated tap');

  // a new Dnsmasq with the same config adopts the running daemon instead of starting a second one
  const again = await op<{ pid: number; adopted: boolean }>(host, { op: 'dnsmasqStart', cfg });
  assert.deepEqual(again, { pid: first.pid, adopted: true });
  assert.equal(await op(host, { op: 'dnsmasqPid', cfg }), first.pid);

  // new static lease for the client; SIGHUP makes dnsmasq (running as nobody) re-read the hosts file
  const hosts = [
    { mac: VM_MAC, ip: '10.200.0.57' },
    { mac: CLIENT_MAC.toUpperCase(), ip: '10.200.0.88' },
  ];
  assert.deepEqual(await op(host, { op: 'dnsmasqSetHosts', cfg, hosts }), { pid: first.pid });
  assert.equal(await fs.readFile(cfg.dir + '/hosts', 'utf8'), `${VM_MAC},10.200.0.57\n${CLIENT_MAC},10.200.0.88\n`);
  const granted = await tryNs(client, udhcpc, 20_000);
  assert.equal(granted.code, 0, granted.stdout + granted.stderr);
  assert.match(granted.stdout, /event=bound ip=10\.200\.0\.88 router=10\.200\.0\.1 dns=10\.200\.0\.1 mtu=1500 subnet=255\.255\.255\.0/);
  assert.ok(alive(first.pid), 'dnsmasq died after SIGHUP');
  leases = await op<DhcpLease[]>(host, { op: 'dnsmasqLeases', cfg });
  assert.deepEqual(leases.map((l) => `${l.mac} ${l.ip}`).sort(), [`${VM_MAC} 10.200.0.57`, `${CLIENT_MAC} 10.200.0.88`]);

  // a changed config (router none, MTU 1450) replaces the instance rather than adopting it
  const cfg2: DnsmasqConfig = { ...cfg, router: null, mtu: 1450, hosts };
  const replaced = await op<{ pid: number; adopted: boolean }>(host, { op: 'dnsmasqStart', cfg: cfg2 });
  assert.equal(replaced.adopted, false);
  assert.notEqual(replaced.pid, first.pid);
  assert.equal(alive(first.pid), false);
  const noRouter = await tryNs(client, udhcpc, 20_000);
  assert.equal(noRouter.code, 0, noRouter.stdout + noRouter.stderr);
  assert.match(noRouter.stdout, /event=bound ip=10\.200\.0\.88 router= dns=10\.200\.0\.1 mtu=1450 /);

  const uid = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  assert.notEqual(uid(replaced.pid), 0, 'dnsmasq should drop root when its state dir is reachable');

  // a state dir below a 0700 parent (mkdtemp): an unprivileged dnsmasq could not re-read its hosts file on SIGHUP,
  // so it keeps root there
  await op(host, { op: 'ensureBridge', name: 'dbcbr1', address: '10.201.0.1/24' });
  const closed = path.join(dir, 'closed');
  await fs.mkdir(closed, { mode: 0o700 });
  const cfg3: DnsmasqConfig = { iface: 'dbcbr1', dir: path.join(closed, 'dm'), network: '10.201.0.0/24', router: null, hosts: [] };
  dnsmasqPidFiles.add(path.join(cfg3.dir, 'dnsmasq.pid'));
  const rootOne = await op<{ pid: number; adopted: boolean }>(host, { op: 'dnsmasqStart', cfg: cfg3 });
  assert.equal(uid(rootOne.pid), 0);
  assert.ok(readFileSync(`/proc/${rootOne.pid}/cmdline`, 'utf8').split('\0').includes('--user=root'));
  await op(host, { op: 'dnsmasqSetHosts', cfg: cfg3, hosts: [{ mac: CLIENT_MAC, ip: '10.201.0.9' }] });
  const log3 = () => fs.readFile(path.join(cfg3.dir, 'dnsmasq.log'), 'utf8');
  for (let i = 0; i < 50 && ((await log3()).match(/read \S+\/hosts$/gm) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(((await log3()).match(/read \S+\/hosts$/gm) ?? []).length, 2, await log3());
  assert.doesNotMatch(await log3(), /cannot read/);
  assert.deepEqual(await op(host, { op: 'dnsmasqStart', cfg: cfg3 }), { pid: rootOne.pid, adopted: true });
  await op(host, { op: 'dnsmasqStop', cfg: cfg3 });
  assert.equal(alive(rootOne.pid), false);

  await op(host, { op: 'dnsmasqStop', cfg: cfg2 });
  assert.equal(alive(replaced.pid), false);
  assert.equal(existsSync(path.join(cfg.dir, 'dnsmasq.pid')), false);
  assert.equal(await op(host, { op: 'dnsmasqPid', cfg: cfg2 }), null);
  await op(host, { op: 'dnsmasqStop', cfg: cfg2 }); // stopping a stopped one is fine
  const log = await fs.readFile(path.join(cfg.dir, 'dnsmasq.log'), 'utf8');
  assert.ok((log.match(/read \S+\/hosts/g) ?? []).length >= 3, log);
  assert.doesNotMatch(log, /cannot read/);
  vm.kill('SIGKILL');
});

test("unicast VXLAN joins two hosts' LAN bridges; VNIs are isolated; the peer list re-syncs", { skip, timeout: 60_000 }, async () => {
  const [a, b] = [await addNs('A'), await addNs('B')];
  const vm: Record<string, string> = {};
  for (const n of ['A1', 'B1', 'A2', 'B2']) vm[n] = await addNs(n);
  await veth(a, 'ul0', b, 'ul0');
  for (const [ns, ip] of [
    [a, '10.212.0.1'],
    [b, '10.212.0.2'],
  ] as const) {
    await inNs(ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'ul0']);
    await inNs(ns, ['ip', 'link', 'set', 'ul0', 'up']);
  }
  // same subnet on both LANs: only the VNI keeps them apart
  const plan = [
    { host: a, local: '10.212.0.1', peer: '10.212.0.2', lan: 'lan1', vni: 4242, vmNs: vm['A1']!, ip: '192.168.66.11' },
    { host: b, local: '10.212.0.2', peer: '10.212.0.1', lan: 'lan1', vni: 4242, vmNs: vm['B1']!, ip: '192.168.66.12' },
    { host: a, local: '10.212.0.1', peer: '10.212.0.2', lan: 'lan2', vni: 4343, vmNs: vm['A2']!, ip: '192.168.66.21' },
    { host: b, local: '10.212.0.2', peer: '10.212.0.1', lan: 'lan2', vni: 4343, vmNs: vm['B2']!, ip: '192.168.66.22' },
  ];
  for (const p of plan) {
    await op(p.host, { op: 'ensureBridge', name: p.lan });
    await op(p.host, { op: 'ensureVxlan', name: `vx${p.vni}`, vni: p.vni, local: p.local, bridge: p.lan, peers: [p.peer], mtu: 1450 });
    const port = `v${p.lan}`;
    await veth(p.host, port, p.vmNs, 'eth0');
    await inNs(p.host, ['ip', 'link', 'set', port, 'master', p.lan, 'up']);
    await inNs(p.vmNs, ['ip', 'link', 'set', 'eth0', 'mtu', '1450', 'up']);
    await inNs(p.vmNs, ['ip', 'addr', 'add', `${p.ip}/24`, 'dev', 'eth0']);
  }
  const [A1, A2] = [vm['A1']!, vm['A2']!];
  assert.ok(await ping(A1, '192.168.66.12', 2), 'A1 cannot reach B1 over vni 4242');
  assert.ok(await ping(A2, '192.168.66.22', 1), 'A2 cannot reach B2 over vni 4343');
  // a full-MTU frame (1450 inside, 1500 on the underlay) crosses
  assert.ok(await ping(A1, '192.168.66.12', 1, ['-s', '1422']), '1450-byte packets do not cross the tunnel');
  assert.equal(await ping(A1, '192.168.66.22', 1), false, 'vni 4242 reached vni 4343');
  assert.equal(await ping(A2, '192.168.66.12', 1), false, 'vni 4343 reached vni 4242');

  type Fdb = Array<{ mac: string; dst?: string }>;
  const peersOf = async () =>
    (JSON.parse(await inNs(a, ['bridge', '-j', 'fdb', 'show', 'dev', 'vx4242'])) as Fdb)
      .filter((e) => e.mac === '00:00:00:00:00:00')
      .map((e) => e.dst)
      .sort();
  const resync = (peers: string[]) => op(a, { op: 'ensureVxlan', name: 'vx4242', vni: 4242, local: '10.212.0.1', bridge: 'lan1', peers, mtu: 1450 });
  await resync(['10.212.0.9', '10.212.0.2']);
  assert.deepEqual(await peersOf(), ['10.212.0.2', '10.212.0.9']);
  await resync(['10.212.0.9']);
  assert.deepEqual(await peersOf(), ['10.212.0.9']);
  assert.equal(await ping(A1, '192.168.66.12', 1), false, 'B1 still reachable after its host left the peer list');
  await resync(['10.212.0.2']);
  assert.deepEqual(await peersOf(), ['10.212.0.2']);
  assert.ok(await ping(A1, '192.168.66.12', 1), 'B1 unreachable after the peer came back');
});
