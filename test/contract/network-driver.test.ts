// The NetworkDriver contract (js-libp2p interface-compliance style): networkDriverSuite() runs the same cases
// through the NetworkDriver interface against every network mode:
//   user   - UserNetwork in this process (LAN DHCP answered on loopback multicast; forwards on a recording monitor).
//   bridge - BridgeNetwork inside a network namespace this file creates: Node cannot enter a namespace, so the file
//            starts itself again with `ip netns exec NS node <this file>` and DBC_NETDRV_NETNS set; that child runs
//            the bridge suite against the namespace's own links, dnsmasq and nftables, and its exit code is checked
//            here. The namespace (with its links and processes) is removed in `after`, also on failure. There the
//            namespace's reverse-path filter is strict (rp_filter=1, as many distributions set it), and LAN DHCP is
//            asked for by busybox udhcpc in a client namespace whose veth joins the LAN bridge.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fakeTask } from '../helpers/storage-fakes.js';
import type { Task } from '../../src/domain/task.js';
import { BridgeNetwork, LAN_BRIDGE, LAN_VXLAN, TAP_LAN, TAP_MAIN } from '../../src/net/bridge-mode.js';
import { UserNetwork, type NetworkDriver } from '../../src/net/driver.js';
import { run } from '../../src/net/exec.js';
import type { ForwardChange } from '../../src/net/forwarder.js';
import { LanService } from '../../src/net/lan-service.js';
import { listLinks, setSysctl } from '../../src/net/links.js';
import { ifSuffix, nicMac } from '../../src/net/mac.js';
import { DbcError } from '../../src/protocol/errors.js';
import type { NetworkRow } from '../../src/store/networks.js';
import { openDb } from '../../src/store/db.js';
import { NetworkStore } from '../../src/store/networks.js';
import { quietLogger } from '../../src/util/logger.js';
import type { HostForward } from '../../src/vm/types.js';

export interface MonitorCall {
  op: 'add' | 'remove';
  taskId: string;
  fwd: HostForward;
}

export interface NetworkDriverHarness {
  /** the driver under test; not initialised yet */
  driver: NetworkDriver;
  /** its networks/addresses tables */
  store: NetworkStore;
  /** forwards the driver changed on the hypervisor's monitor (user mode) */
  monitor: MonitorCall[];
  /** from now on the monitor refuses every forward change (or accepts them again) */
  monitorFails(on: boolean): void;
  /** user mode: the address hostfwd binds to; absent where the kernel forwards */
  forwardHost?: string;
  /** where the kernel forwards: the host ports DNATed now (`nft list ruleset` in the driver's namespace) */
  kernelPorts?(): Promise<number[]>;
  /** where the mode makes devices: the links whose name starts with prefix */
  links?(prefix: string): Promise<string[]>;
  /**
   * where a real DHCP client can join a LAN: a guest NIC with `mac` on the LAN asks for an address; `ip` is the
   * lease (null: no answer), `serverArp` whether the host then answers ARP for the LAN's DHCP server address (the
   * first step of a unicast lease renewal)
   */
  lanClient?(lan: NetworkRow, mac: string, server: string): Promise<{ ip: string | null; serverArp: boolean }>;
  close(): Promise<void>;
}

let seq = 0;
/** a task as the store gives it; a fresh id each time */
function taskOf(p: Partial<Task> = {}): Task {
  const id = `cn${randomBytes(4).toString('hex')}${String(++seq).padStart(12, '0')}`;
  return fakeTask(id, { status: 'running', want_running: true, ...p });
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof DbcError, String(err));
    return err.message;
  }
  assert.fail('expected a refusal');
}

/** a ForwardChange whose commit() stores `after` and whose resync() syncs the driver to what is stored */
function changeOf(h: NetworkDriverHarness, before: Task, after: Task, running: boolean) {
  const state = { stored: before, commits: 0, resyncs: 0 };
  const change: ForwardChange = {
    running,
    commit: () => {
      state.commits++;
      state.stored = after;
    },
    resync: async () => {
      state.resyncs++;
      await h.driver.sync(running ? [state.stored] : []);
    },
  };
  return { state, change };
}

export function networkDriverSuite(name: string, setup: () => Promise<NetworkDriverHarness>): void {
  describe(`NetworkDriver contract: ${name}`, { timeout: 120_000 }, () => {
    let h: NetworkDriverHarness;
    let d: NetworkDriver;
    const ready = (async () => {
      h = await setup();
      d = h.driver;
    })();
    after(async () => {
      await ready;
      await h.close();
    });

    test('init and close are idempotent; init again after close', async () => {
      await ready;
      await d.init();
      await d.init();
      await d.close();
      await d.close();
      await d.init();
    });

    test("checkCreate: no LAN, an unknown LAN and another renter's LAN; multicast groups and filters", async () => {
      await ready;
      assert.equal(d.checkCreate('w1', { networkName: '', multicast: [] }), undefined);
      d.lans.create('w2', 'othnet01', '192.168.92.0/24');
      for (const networkName of ['nosuch12', 'othnet01', 'x;reboot']) {
        assert.equal(
          refusal(() => d.checkCreate('w1', { networkName, multicast: [] })),
          'can not find network info',
          networkName,
        );
      }
      assert.equal(d.checkCreate('w2', { networkName: 'othnet01', multicast: ['239.1.2.3:5000'] })?.name, 'othnet01');
      assert.equal(
        refusal(() => d.checkCreate('w1', { networkName: '', multicast: ['239.1.2.3'] })),
        'multicast format: ip:port',
      );
      assert.match(
        refusal(() => d.checkCreate('w1', { networkName: '', multicast: ['239.254.0.1:5000'] })),
        /reserved by the node/,
      );
      assert.equal(d.filters(['in,tcp,22,0.0.0.0/0,drop', 'out,all,all,0.0.0.0/0,accept']).length, 2);
      assert.deepEqual(d.filters([]), []);
      assert.match(
        refusal(() => d.filters(['in,tcp,22'])),
        /^invalid network filter "in,tcp,22": /,
      );
      d.lans.remove('othnet01');
    });

    test("a LAN is created and deleted: the mode's fields, devices and DHCP", async () => {
      await ready;
      const row = d.lans.create('w1', 'lannet01', '192.168.93.0/24');
      await d.lanCreated(row);
      await d.lanCreated(row); // again: kept, leases refreshed
      const fields = d.lanFields(row);
      assert.equal(fields.network_mode, d.mode);
      assert.equal(fields.dhcp_server, d.lans.serverIp(row));
      if (h.links) {
        assert.deepEqual(await h.links(`${LAN_BRIDGE}lannet01`), [`${LAN_BRIDGE}lannet01`]);
        assert.deepEqual(await h.links(`${LAN_VXLAN}lannet01`), [`${LAN_VXLAN}lannet01`]);
      }
      await d.lanDeleted(row);
      d.lans.remove(row.name);
      await d.lanDeleted(row); // again: nothing left to remove
      if (h.links) assert.deepEqual(await h.links(`${LAN_BRIDGE}lannet01`), []);
      assert.equal(d.lans.get('lannet01'), undefined);
    });

    test('LanService over the driver: create, list, detail, remove', async () => {
      await ready;
      const lans = new LanService(d, quietLogger, { idleMs: 60_000 });
      const made = await lans.create('w1', { name: 'svcnet01', ipCidr: '192.168.94.0/24' });
      assert.equal(made.network_name, 'svcnet01');
      assert.equal(made.ip_cidr, '192.168.94.0/24');
      assert.equal(made.network_mode, d.mode);
      assert.deepEqual(
        lans.list('w1').map((l) => l.network_name),
        ['svcnet01'],
      );
      assert.deepEqual(lans.list('w2'), []);
      assert.deepEqual(lans.detail('w1', 'svcnet01').members_local_address, []);
      assert.equal(
        refusal(() => lans.detail('w2', 'svcnet01')),
        'network name not exist',
      );
      await assert.rejects(lans.remove('w2', 'svcnet01'), /not the owner/);
      await lans.cleanIdle(); // just made: not idle
      assert.equal(lans.list('w1').length, 1);
      await lans.remove('w1', 'svcnet01');
      assert.deepEqual(lans.list('w1'), []);
      if (h.links) assert.deepEqual(await h.links(`${LAN_BRIDGE}svcnet01`), []);
    });

    test('two LANs of one renter with the same subnet: separate devices and DHCP, neither disturbs the other', async () => {
      await ready;
      const a = d.lans.create('w1', 'dupnet01', '192.168.96.0/24');
      const b = d.lans.create('w1', 'dupnet02', '192.168.96.0/24');
      assert.notEqual(a.vni, b.vni, 'separate segments');
      await d.lanCreated(a);
      await d.lanCreated(b);
      const fa = d.lanFields(a);
      const fb = d.lanFields(b);
      assert.equal(fa.dhcp_server, fb.dhcp_server, 'the same subnet: the same server address');
      assert.notEqual(fa.dhcp_interface, fb.dhcp_interface);
      // a VM on each; LAN B has one VM more, so the two VMs' addresses differ
      const vmA = taskOf({ network_name: 'dupnet01' });
      const filler = taskOf({ network_name: 'dupnet02' });
      const vmB = taskOf({ network_name: 'dupnet02' });
      const lanA = (await d.prepare(vmA)).extraNics[0];
      await d.prepare(filler);
      const lanB = (await d.prepare(vmB)).extraNics[0];
      assert.equal(d.addresses(vmA).local_address?.[0], '192.168.96.1');
      assert.equal(d.addresses(vmB).local_address?.[0], '192.168.96.2');
      assert.ok(lanA && lanB);
      if (lanA.kind === 'mcast' && lanB.kind === 'mcast') assert.notEqual(`${lanA.group}:${lanA.port}`, `${lanB.group}:${lanB.port}`);
      if (lanA.kind === 'tap' && lanB.kind === 'tap') assert.notEqual(lanA.ifname, lanB.ifname);
      if (h.links) {
        for (const prefix of [LAN_BRIDGE, LAN_VXLAN]) {
          assert.deepEqual(await h.links(`${prefix}dupnet`), [`${prefix}dupnet01`, `${prefix}dupnet02`]);
        }
      }
      if (h.lanClient) {
        const server = String(fa.dhcp_server);
        // each VM's MAC gets its own LAN's lease, and the host answers ARP for the server address on both LANs
        assert.deepEqual(await h.lanClient(a, lanA.mac, server), { ip: '192.168.96.1', serverArp: true });
        assert.deepEqual(await h.lanClient(b, lanB.mac, server), { ip: '192.168.96.2', serverArp: true });
        // a MAC of the other LAN gets nothing
        assert.equal((await h.lanClient(b, lanA.mac, server)).ip, null);
        assert.equal((await h.lanClient(a, lanB.mac, server)).ip, null);
      }
      for (const t of [vmA, filler, vmB]) {
        await d.release(t.task_id);
        await d.forget(t);
      }
      // deleting one leaves the other working
      await d.lanDeleted(a);
      d.lans.remove(a.name);
      if (h.links) assert.deepEqual(await h.links(`${LAN_BRIDGE}dupnet`), [`${LAN_BRIDGE}dupnet02`]);
      if (h.lanClient) {
        const again = taskOf({ network_name: 'dupnet02' });
        const nic = (await d.prepare(again)).extraNics[0];
        assert.deepEqual(await h.lanClient(b, nic!.mac, String(fb.dhcp_server)), { ip: '192.168.96.1', serverArp: true });
        await d.release(again.task_id);
        await d.forget(again);
      }
      await d.lanDeleted(b);
      d.lans.remove(b.name);
      if (h.links) assert.deepEqual(await h.links(`${LAN_BRIDGE}dupnet`), []);
    });

    test('prepare gives the NICs of the mode; addresses are kept across boots', async () => {
      await ready;
      const lan = d.lans.create('w1', 'vmnet001', '192.168.95.0/24');
      await d.lanCreated(lan);
      const task = taskOf({ network_name: 'vmnet001', multicast: ['239.1.2.3:5000'] });
      const vmNet = await d.prepare(task);
      const types = d.nicTypes();
      assert.equal(vmNet.tap !== undefined, types.main === 'bridge', 'a tap exactly when the main NIC is bridged');
      assert.deepEqual(
        vmNet.extraNics.map((n) => n.id),
        ['lan0', 'mc0'],
      );
      const [lan0, mc0] = vmNet.extraNics;
      assert.equal(lan0?.kind, types.lan === 'bridge' ? 'tap' : 'mcast');
      assert.equal(lan0?.mac, nicMac(task.task_id, 'lan0'));
      assert.ok(mc0?.kind === 'mcast' && mc0.group === '239.1.2.3' && mc0.port === 5000, JSON.stringify(mc0));
      assert.equal(mc0?.mac, nicMac(task.task_id, 'mc0'));
      const lanIp = d.lans.address(task.task_id, 'vmnet001')?.ip;
      assert.equal(lanIp, '192.168.95.1');
      const addrs = d.addresses(task);
      assert.deepEqual(addrs.local_address, [lanIp]);
      assert.equal(addrs.local_ip !== undefined, types.main === 'bridge', 'an address on the node bridge in bridge mode only');
      if (h.links && vmNet.tap) {
        assert.deepEqual(await h.links(vmNet.tap), [vmNet.tap]);
        assert.ok(lan0?.kind === 'tap' && (await h.links(lan0.ifname)).length === 1);
      }
      const again = await d.prepare(task);
      assert.deepEqual(again, vmNet);
      assert.deepEqual(d.addresses(task), addrs, 'kept across boots');

      await d.release(task.task_id);
      await d.forget(task);
      assert.deepEqual(d.addresses(task), {});
      await d.lanDeleted(lan);
      d.lans.remove(lan.name);
    });

    test('sync follows the running VMs: rules for them, none once they stop; busy VMs keep their taps', async () => {
      await ready;
      const task = taskOf({ ssh_port: 22001, custom_ports: ['tcp,22010-22011:8000-8001', 'udp,22020'] });
      const vmNet = await d.prepare(task);
      await d.sync([task]);
      await d.sync([task]); // idempotent
      if (h.kernelPorts) assert.deepEqual((await h.kernelPorts()).sort(), [22001, 22010, 22011, 22020]);
      await d.sync([], new Set([task.task_id]));
      if (h.kernelPorts) assert.deepEqual(await h.kernelPorts(), []);
      if (h.links && vmNet.tap) assert.deepEqual(await h.links(vmNet.tap), [vmNet.tap], 'a busy VM keeps its tap');
      await d.sync([]);
      if (h.links && vmNet.tap) assert.deepEqual(await h.links(vmNet.tap), [], "a stopped VM's tap goes");
      await d.forget(task);
    });

    test('release lets the taps go and keeps the addresses; forget drops them', async () => {
      await ready;
      const task = taskOf();
      const vmNet = await d.prepare(task);
      const before = d.addresses(task);
      await d.release(task.task_id);
      await d.release(task.task_id);
      if (h.links) {
        assert.deepEqual(await h.links(`${TAP_MAIN}${ifSuffix(task.task_id)}`), []);
        assert.deepEqual(await h.links(`${TAP_LAN}${ifSuffix(task.task_id)}`), []);
      }
      assert.deepEqual(d.addresses(task), before);
      assert.equal(vmNet.tap === undefined, h.store.address(task.task_id, '') === undefined);
      await d.forget(task);
      await d.forget(task);
      assert.deepEqual(d.addresses(task), {});
      assert.equal(h.store.address(task.task_id, ''), undefined);
    });

    test('forwarder.bootForwards: ssh and custom ports on the forward host, none where the kernel forwards', async () => {
      await ready;
      const task = taskOf({ ssh_port: 22001, custom_ports: ['tcp,22010-22011:8000-8001', 'udp,22020'] });
      const host = h.forwardHost;
      const want: HostForward[] =
        host === undefined
          ? []
          : [
              { proto: 'tcp', hostAddr: host, hostPort: 22001, guestPort: 22 },
              { proto: 'tcp', hostAddr: host, hostPort: 22010, guestPort: 8000 },
              { proto: 'tcp', hostAddr: host, hostPort: 22011, guestPort: 8001 },
              { proto: 'udp', hostAddr: host, hostPort: 22020, guestPort: 22020 },
            ];
      assert.deepEqual(d.forwarder.bootForwards(task), want);
      const win = taskOf({ os: 'windows', rdp_port: 23389 });
      assert.deepEqual(d.forwarder.bootForwards(win), host === undefined ? [] : [{ proto: 'tcp', hostAddr: host, hostPort: 23389, guestPort: 3389 }]);
    });

    test('forwarder.apply: a running VM gets the new ports, the change is committed exactly once', async () => {
      await ready;
      const before = taskOf({ ssh_port: 22001, custom_ports: ['tcp,22010'] });
      const next: Task = { ...before, custom_ports: ['tcp,22030'] };
      await d.prepare(before);
      await d.sync([before]);
      if (h.kernelPorts) assert.deepEqual((await h.kernelPorts()).sort(), [22001, 22010]);
      h.monitor.length = 0;
      const { state, change } = changeOf(h, before, next, true);
      await d.forwarder.apply(before, next, change);
      assert.equal(state.commits, 1);
      assert.equal(state.stored, next);
      const host = h.forwardHost;
      assert.deepEqual(
        h.monitor,
        host === undefined
          ? []
          : [
              { op: 'remove', taskId: before.task_id, fwd: { proto: 'tcp', hostAddr: host, hostPort: 22010, guestPort: 22010 } },
              { op: 'add', taskId: before.task_id, fwd: { proto: 'tcp', hostAddr: host, hostPort: 22030, guestPort: 22030 } },
            ],
      );
      if (h.kernelPorts) {
        assert.ok(state.resyncs >= 1, 'the kernel rules were rebuilt');
        assert.deepEqual((await h.kernelPorts()).sort(), [22001, 22030]);
      }

      // a VM that is not running: recorded, nothing touched on the monitor
      h.monitor.length = 0;
      const stopped = changeOf(h, next, before, false);
      await d.forwarder.apply(next, before, stopped.change);
      assert.equal(stopped.state.commits, 1);
      assert.deepEqual(h.monitor, []);
      if (h.kernelPorts) assert.deepEqual(await h.kernelPorts(), []);
      await d.sync([]);
      await d.forget(before);
    });

    test('forwarder.apply: a change the mode cannot make live is not committed (user) or reported (bridge)', async () => {
      await ready;
      const before = taskOf({ ssh_port: 22001 });
      const next: Task = { ...before, ssh_port: 22002 };
      let commits = 0;
      const change: ForwardChange = {
        running: true,
        commit: () => void commits++,
        resync: async () => {
          throw new Error('rules cannot be applied');
        },
      };
      h.monitorFails(true);
      try {
        await assert.rejects(d.forwarder.apply(before, next, change));
      } finally {
        h.monitorFails(false);
      }
      // hostfwd: the monitor refused before the change was recorded; kernel: recorded, then the sync failed loudly
      assert.equal(commits, h.forwardHost !== undefined ? 0 : 1);
    });
  });
}

// --- the harnesses ---------------------------------------------------------------------------------------------

/** a hypervisor monitor that records the forwards it is asked to change, or refuses them */
function recordingMonitor() {
  const calls: MonitorCall[] = [];
  let fail = false;
  const call = (op: MonitorCall['op']) => async (taskId: string, fwd: HostForward) => {
    if (fail) throw new Error('could not set up host forwarding rule');
    calls.push({ op, taskId, fwd });
  };
  return { calls, hv: { addForward: call('add'), removeForward: call('remove') }, failing: (on: boolean) => void (fail = on) };
}

async function userHarness(): Promise<NetworkDriverHarness> {
  const db = openDb(':memory:');
  const store = new NetworkStore(db);
  const monitor = recordingMonitor();
  const driver = new UserNetwork({ store, log: quietLogger, now: () => Date.now(), hv: monitor.hv, forwardHost: '127.0.0.1' });
  return {
    driver,
    store,
    monitor: monitor.calls,
    monitorFails: monitor.failing,
    forwardHost: '127.0.0.1',
    async close() {
      await driver.close();
      db.close();
    },
  };
}

/** host ports with a DNAT rule in the namespace's ruleset */
async function dnatPorts(): Promise<number[]> {
  const ruleset = await run('nft', ['list', 'ruleset']);
  const ports: number[] = [];
  for (const m of ruleset.matchAll(/\b(?:tcp|udp) dport (\d+)(?:-(\d+))? dnat to /g)) {
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    for (let p = from; p <= to; p++) ports.push(p);
  }
  return ports;
}

/** the exit code and output of a command that may fail */
function attempt(cmd: string, args: string[], timeout = 20_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (out += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

/**
 * A guest NIC on a LAN bridge, from inside the driver's namespace: a client namespace (seen by this process only)
 * whose eth0 carries `mac` and is the peer of a veth port of the bridge; busybox udhcpc asks for a lease, busybox
 * arping for the server's MAC from the leased address. Both go with the client namespace.
 */
async function lanClient(stateDir: string, lan: NetworkRow, mac: string, server: string): Promise<{ ip: string | null; serverArp: boolean }> {
  const tag = randomBytes(3).toString('hex');
  const ns = `dbclc${tag}`;
  const veth = `dcv${tag}`;
  const script = join(stateDir, 'udhcpc-script');
  writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface" && echo "bound $ip"\nexit 0\n');
  chmodSync(script, 0o755);
  await run('ip', ['netns', 'add', ns]);
  try {
    await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await run('ip', ['link', 'set', veth, 'master', `${LAN_BRIDGE}${lan.name}`, 'mtu', '1450', 'up']);
    await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'address', mac, 'mtu', '1450', 'up']);
    const inNs = ['netns', 'exec', ns, 'busybox'];
    const dhcp = await attempt('ip', [...inNs, 'udhcpc', '-i', 'eth0', '-f', '-q', '-n', '-t', '3', '-T', '1', '-s', script]);
    const ip = /^bound ([0-9.]+)$/m.exec(dhcp.out)?.[1] ?? null;
    if (ip === null) return { ip, serverArp: false };
    const arp = await attempt('ip', [...inNs, 'arping', '-c', '1', '-w', '2', '-I', 'eth0', '-s', ip, server]);
    return { ip, serverArp: arp.code === 0 };
  } finally {
    await run('ip', ['link', 'del', veth]).catch(() => undefined);
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
}

/** runs inside the namespace (DBC_NETDRV_NETNS): everything the driver makes is the namespace's */
async function bridgeHarness(): Promise<NetworkDriverHarness> {
  const db = openDb(':memory:');
  const store = new NetworkStore(db);
  const stateDir = mkdtempSync(join(tmpdir(), 'dbc-netdrv-'));
  // strict reverse-path filtering in this namespace (the driver must work where a distribution sets it)
  await setSysctl('net.ipv4.conf.all.rp_filter', '1');
  const busybox = (await attempt('sh', ['-c', 'command -v busybox'])).code === 0;
  const driver = new BridgeNetwork({
    store,
    log: quietLogger,
    now: () => Date.now(),
    bridge: 'dbccb0',
    cidr: '10.203.0.0/24',
    stateDir,
    hostIps: [],
    underlay: UNDERLAY,
    peers: [],
    table: 'dbc',
  });
  return {
    driver,
    store,
    monitor: [],
    monitorFails: () => undefined,
    kernelPorts: dnatPorts,
    links: async (prefix) => (await listLinks(prefix)).sort(),
    ...(busybox ? { lanClient: (lan: NetworkRow, mac: string, server: string) => lanClient(stateDir, lan, mac, server) } : {}),
    async close() {
      await driver.close();
      db.close();
      // dnsmasq daemons are the namespace's: the parent kills them with it; their files go here
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

// --- which suites this process runs ----------------------------------------------------------------------------

const UNDERLAY = '10.79.0.2';
const CHILD_ENV = 'DBC_NETDRV_NETNS';

if (process.env[CHILD_ENV]) {
  networkDriverSuite(`bridge mode (namespace ${process.env[CHILD_ENV]})`, bridgeHarness);
} else {
  networkDriverSuite('user mode', userHarness);

  describe('NetworkDriver contract: bridge mode in a network namespace', () => {
    const ns = `dbcnd${randomBytes(3).toString('hex')}`;
    const sh = (args: string[]) => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 20_000 });
    const missing = ['ip', 'nft', 'dnsmasq'].filter((c) => {
      try {
        sh(['sh', '-c', `command -v ${c}`]);
        return false;
      } catch {
        return true;
      }
    });
    const skip = process.getuid?.() !== 0 ? 'needs root' : missing.length > 0 ? `needs ${missing.join(', ')}` : false;

    after(() => {
      // every process in the namespace (dnsmasq), then the namespace with its links
      try {
        for (const pid of sh(['ip', 'netns', 'pids', ns]).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // none, or no namespace
      }
      try {
        sh(['ip', 'netns', 'del', ns]);
      } catch {
        // not created
      }
    });

    test('the bridge suite passes inside the namespace', { skip, timeout: 180_000 }, async (t) => {
      sh(['ip', 'netns', 'add', ns]);
      const inNs = (args: string[]) => sh(['ip', 'netns', 'exec', ns, ...args]);
      inNs(['ip', 'link', 'set', 'lo', 'up']);
      // the VXLAN underlay: an address of this "host"
      inNs(['ip', 'addr', 'add', `${UNDERLAY}/32`, 'dev', 'lo']);
      const env: NodeJS.ProcessEnv = { ...process.env, [CHILD_ENV]: ns };
      delete env.NODE_TEST_CONTEXT; // the child reports as a plain test run (TAP on stdout, exit code)
      const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--enable-source-maps', fileURLToPath(import.meta.url)], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (b) => (out += b));
      child.stderr.on('data', (b) => (out += b));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      for (const line of out.split('\n').filter((l) => /^# (tests|pass|fail) /.test(l))) t.diagnostic(line.slice(2));
      assert.equal(code, 0, `bridge suite in ${ns} failed:\n${out.slice(-8000)}`);
      assert.match(out, /^# pass [1-9]/m);
      assert.match(out, /^# fail 0$/m);
    });
  });
}
