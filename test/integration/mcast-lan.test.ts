// Private LAN of the unprivileged "user" network mode, end to end with real QEMU: each test guest gets a second NIC
// on a QEMU socket-multicast segment (-netdev socket,mcast=GROUP:PORT,localaddr=127.0.0.1), the node's
// McastDhcpResponder hands out static leases on it, and the guests reach each other over it (ICMP as the non-root
// login user, TCP to sshd). A third guest on another group is isolated from the first segment.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { McastDhcpResponder } from '../../src/net/mcast-dhcp.js';
import type { Logger } from '../../src/util/logger.js';
import { writeNoCloudSeed } from '../../src/storage/seed.js';
import { ensureTestImage, freeTcpPort, sshExec, waitFor } from '../helpers/devnet.js';

const BOOT_TIMEOUT_MS = 90_000;
const SERVER_IP = '192.168.66.1';
const SERVER_MAC = '02:db:c0:a8:42:01';
const MTU = 1450;
const LEASE_SECS = 16; // renewal (unicast to the server, after an ARP for it) within the test's lifetime

interface Vm {
  name: string;
  proc: ChildProcess;
  serial: string;
  sshPort: number;
  lanMac: string;
  t0: number;
}

let dir = '';
const vms: Vm[] = [];
const responders: McastDhcpResponder[] = [];
const password = `pw-${randomBytes(6).toString('hex')}`;

function exec(bin: string, args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    execFile(bin, args, { timeout: 60_000 }, (err, stdout, stderr) => (err ? rej(new Error(`${bin}: ${stderr || err.message}`)) : res(stdout)));
  });
}

function exited(p: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(true);
  return new Promise((res) => {
    const timer = setTimeout(() => res(false), timeoutMs);
    p.once('exit', () => {
      clearTimeout(timer);
      res(true);
    });
  });
}

function randomMac(): string {
  return ['52', '54', '00', ...[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

function randomSegment(): { group: string; port: number } {
  return { group: `239.255.${randomInt(0, 256)}.${randomInt(1, 255)}`, port: randomInt(20_000, 60_000) };
}

function recordingLog(lines: string[]): Pick<Logger, 'info' | 'warn' | 'debug'> {
  const rec = (level: string) => (obj: unknown, msg?: string) => lines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  return { info: rec('info'), warn: rec('warn'), debug: rec('debug') };
}

async function bootVm(name: string, image: string, seg: { group: string; port: number }, lanMac: string): Promise<Vm> {
  const overlay = path.join(dir, `${name}.qcow2`);
  const seed = path.join(dir, `${name}-seed.iso`);
  const serial = path.join(dir, `${name}.serial`);
  await Promise.all([
    exec('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', image, overlay]),
    writeNoCloudSeed(seed, { instanceId: `lan-${name}`, hostname: name, user: 'dbc', password }),
  ]);
  const sshPort = await freeTcpPort();
  const t0 = Date.now();
  const proc = spawn(
    'qemu-system-x86_64',
    [
      '-accel',
      'tcg',
      '-m',
      '256',
      '-display',
      'none',
      '-monitor',
      'none',
      '-nodefaults',
      '-serial',
      `file:${serial}`,
      '-drive',
      `file=${overlay},if=virtio,format=qcow2`,
      '-drive',
      `file=${seed},if=virtio,format=raw,readonly=on`,
      // NIC 1 (eth0): the way out and the SSH forward; NIC 2 (eth1): the LAN segment. romfile= skips the iPXE option
      // ROMs (no network boot here): ~4 s less SeaBIOS time per guest under TCG
      '-netdev',
      `user,id=net0,hostfwd=tcp:127.0.0.1:${sshPort}-:22`,
      '-device',
      'virtio-net-pci,netdev=net0,romfile=',
      '-netdev',
      `socket,id=lan0,mcast=${seg.group}:${seg.port},localaddr=127.0.0.1`,
      '-device',
      `virtio-net-pci,netdev=lan0,mac=${lanMac},romfile=`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.once('exit', (code, sig) => {
    if (stderr.trim()) console.error(`${name}: qemu exited (${code ?? sig}): ${stderr.trim()}`);
  });
  const vm: Vm = { name, proc, serial, sshPort, lanMac, t0 };
  vms.push(vm);
  return vm;
}

async function serialText(vm: Vm): Promise<string> {
  return fs.readFile(vm.serial, 'utf8').catch(() => '');
}

/** ms from QEMU start until `re` shows on the serial console */
async function waitSerial(vm: Vm, re: RegExp, timeoutMs = BOOT_TIMEOUT_MS): Promise<number> {
  const end = vm.t0 + timeoutMs;
  while (Date.now() < end) {
    if (vm.proc.exitCode !== null || vm.proc.signalCode !== null) throw new Error(`${vm.name}: QEMU exited before ${re}`);
    if (re.test(await serialText(vm))) return Date.now() - vm.t0;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${vm.name}: no ${re} within ${timeoutMs} ms; serial:\n${await serialText(vm)}`);
}

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dbc-mcast-lan-'));
});

after(async () => {
  for (const vm of vms) if (vm.proc.exitCode === null && vm.proc.signalCode === null) vm.proc.kill('SIGKILL');
  await Promise.all(vms.map((vm) => exited(vm.proc, 5_000)));
  await Promise.all(responders.map((r) => r.close()));
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test(
  'two guests on one socket-multicast segment get static leases from the node and reach each other; a third segment is isolated',
  { timeout: 240_000 },
  async (t) => {
    const image = ensureTestImage();
    const segA = randomSegment();
    let segB = randomSegment();
    while (segB.group === segA.group || segB.port === segA.port) segB = randomSegment();

    const [mac1, mac2, mac3] = [randomMac(), randomMac(), randomMac()];
    // VM 3's MAC is known to segment A's responder too (with another address): only isolation keeps it from answering
    const logA: string[] = [];
    const logB: string[] = [];
    const respA = new McastDhcpResponder(
      {
        ...segA,
        localAddr: '127.0.0.1',
        serverIp: SERVER_IP,
        netmask: '255.255.255.0',
        router: null,
        mtu: MTU,
        leaseSecs: LEASE_SECS,
        hosts: new Map([
          [mac1, '192.168.66.11'],
          [mac2, '192.168.66.12'],
          [mac3, '192.168.66.99'],
        ]),
      },
      recordingLog(logA),
    );
    const respB = new McastDhcpResponder(
      {
        ...segB,
        localAddr: '127.0.0.1',
        serverIp: SERVER_IP,
        netmask: '255.255.255.0',
        router: null,
        mtu: MTU,
        leaseSecs: 3600,
        hosts: new Map([[mac3, '192.168.66.13']]),
      },
      recordingLog(logB),
    );
    responders.push(respA, respB);
    await Promise.all([respA.start(), respB.start()]);

    const t0 = Date.now();
    const [vm1, vm2, vm3] = await Promise.all([
      bootVm('lan-vm1', image, segA, mac1),
      bootVm('lan-vm2', image, segA, mac2),
      bootVm('lan-vm3', image, segB, mac3),
    ]);

    const leased = await Promise.all([
      waitSerial(vm1, /dbc-guest: ip 192\.168\.66\.11 dev eth1/),
      waitSerial(vm2, /dbc-guest: ip 192\.168\.66\.12 dev eth1/),
      waitSerial(vm3, /dbc-guest: ip 192\.168\.66\.13 dev eth1/),
    ]);
    t.diagnostic(`QEMU start to LAN lease: vm1 ${leased[0]} ms, vm2 ${leased[1]} ms, vm3 ${leased[2]} ms (3 guests booting at once)`);
    const ready = await Promise.all([vm1, vm2, vm3].map((vm) => waitSerial(vm, /DBC_GUEST_READY/)));
    t.diagnostic(`QEMU start to DBC_GUEST_READY: ${ready.join(' / ')} ms`);
    for (const vm of [vm1, vm2, vm3]) {
      const log = await serialText(vm);
      const up = (marker: string) => log.match(new RegExp(`${marker} uptime=([0-9.]+)`))?.[1] ?? '?';
      t.diagnostic(`${vm.name} guest uptime: initramfs ${up('DBC_GUEST_BOOT_OK')} s, ready ${up('DBC_GUEST_READY')} s`);
    }
    for (const vm of [vm1, vm2, vm3]) assert.match(await serialText(vm), /dbc-guest: ip 10\.0\.2\.15 dev eth0/, `${vm.name} eth0 lease`);
    assert.doesNotMatch(await serialText(vm3), /192\.168\.66\.99/, 'segment A answered VM 3');
    assert.ok(!logA.some((l) => l.includes(vm3.lanMac)), `segment A's responder saw VM 3:\n${logA.join('\n')}`);

    // `ping` as typed in a login shell (/etc/profile routes it to the image's unprivileged /bin/ping: busybox ash
    // would otherwise run its own raw-socket ping applet, root only)
    const probe = (target: string) =>
      `sh -lc 'ping -c 2 -W 2 ${target}'; echo "ping=$?"; ` + `echo | nc -w 3 ${target} 22 | head -c 24 | tr -d '\\r'; echo; echo "nc-done"`;
    const [out1, out3] = await Promise.all([
      sshExec(
        '127.0.0.1',
        vm1.sshPort,
        'dbc',
        password,
        [
          'id -un',
          'echo "range=$(cat /proc/sys/net/ipv4/ping_group_range)"',
          probe('192.168.66.12'),
          '/bin/ping -c 1 -W 2 192.168.66.12 >/dev/null; echo "direct-ping=$?"',
          'ip -o link show dev eth1',
          'ip -o -4 addr show dev eth1',
          'echo "routes:"; ip route',
          'echo "resolv:"; cat /etc/resolv.conf',
        ].join('; '),
        60_000,
      ),
      sshExec('127.0.0.1', vm3.sshPort, 'dbc', password, ['id -un', probe('192.168.66.12'), 'ip -o -4 addr show dev eth1'].join('; '), 60_000),
    ]);
    t.diagnostic(`vm1:\n${out1}`);
    t.diagnostic(`vm3:\n${out3}`);

    // vm1 -> vm2 over the LAN: ICMP echo as the non-root login user, and a TCP connection to vm2's sshd
    assert.equal(out1.split('\n')[0], 'dbc', 'logged in as the non-root seed user');
    assert.match(out1, /^range=0\s+2147483647$/m, 'rcS opened net.ipv4.ping_group_range');
    const noPing = 'ICMP echo as dbc failed: is /bin/ping the dbc-ping helper (the image build needs gcc and libc6-dev)?';
    assert.match(out1, /2 packets transmitted, 2 packets received/, noPing);
    assert.match(out1, /^ping=0$/m, noPing);
    assert.match(out1, /^direct-ping=0$/m, noPing);
    assert.match(out1, /^SSH-2\.0-/m, 'dropbear banner of vm2 over the LAN');
    assert.match(out1, new RegExp(`eth1: .* mtu ${MTU} `), 'DHCP option 26 applied');
    assert.match(out1, /inet 192\.168\.66\.11\/24 /);
    // the LAN lease (no router, no DNS) left eth0's default route and resolv.conf alone
    assert.match(out1, /^default via 10\.0\.2\.2 dev eth0/m);
    assert.doesNotMatch(out1, /^default .* dev eth1/m);
    assert.match(out1, /resolv:\nnameserver 10\.0\.2\.3/);

    // vm3 on another segment, same subnet: nothing of segment A is reachable
    assert.equal(out3.split('\n')[0], 'dbc');
    assert.match(out3, /inet 192\.168\.66\.13\/24 /);
    assert.match(out3, /^ping=1$/m);
    assert.match(out3, /0 packets received/);
    assert.doesNotMatch(out3, /SSH-2\.0/);

    // unicast renewal: the guest ARPs for the server address (answered by the responder) and sends its REQUEST
    // straight to it; the ACK count grows past the two initial leases
    const acksFor = (m: string) => logA.filter((l) => l.includes('lan dhcp ack') && l.includes(m)).length;
    await waitFor('vm1 renewing its lease by unicast', () => acksFor(mac1) >= 2 && respA.stats.arps >= 1, 20_000, 200);
    const neigh = await sshExec('127.0.0.1', vm1.sshPort, 'dbc', password, 'ip neigh', 30_000);
    assert.match(neigh, new RegExp(`^${SERVER_IP.replace(/\./g, '\\.')} dev eth1 lladdr ${SERVER_MAC}`, 'm'), `server ARP entry:\n${neigh}`);
    assert.equal(respA.stats.naks, 0);
    assert.equal(respB.stats.offers >= 1 && respB.stats.acks >= 1, true);
    t.diagnostic(`segment A stats ${JSON.stringify(respA.stats)}, segment B ${JSON.stringify(respB.stats)}; total ${Date.now() - t0} ms`);
  },
);
