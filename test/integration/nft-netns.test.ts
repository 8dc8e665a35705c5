// The bridge mode's nftables table against the real kernel, inside network namespaces this test creates (never the
// root namespace's ruleset or links):
//
//   client ns  eth0 10.211.0.2/24 (+10.213.0.2/24)  <--veth-->  ext0 10.211.0.1/24   host ns
//                                                               dbcbr0 10.200.0.1/24 (bridge) -- tap5 <--veth--> eth0 10.200.0.5/24  vm ns
//                                                               dlb0 10.212.0.1/24 (isolated)  <--veth--> lan0 10.212.0.5/24        vm ns
//                                                               dbcbr0 -- tap7 <--veth--> eth0 10.200.0.7/24                         vm2 ns
//
// The table is applied and listed by test/helpers/nft-apply.js run inside the host namespace.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { run, CommandError } from '../../src/net/exec.js';
import { parseNetworkFilters } from '../../src/net/filters.js';
import { renderRuleset, type NftState, type NftTask } from '../../src/net/nft.js';

const HELPER = fileURLToPath(new URL('../helpers/nft-apply.js', import.meta.url));
const ID = randomBytes(3).toString('hex');
const HOST = `dbcnft${ID}h`;
const CLIENT = `dbcnft${ID}c`;
const VM = `dbcnft${ID}v`;
const VM2 = `dbcnft${ID}w`;
const TABLE = 'dbctest';
/** how long a dropped connection attempt is waited for; an allowed one answers within milliseconds */
const BLOCKED_MS = 800;
/** the limit for an attempt that should succeed (generous: only a failure waits for it) */
const ALLOWED_MS = 5000;

// --- probes: small node programs started inside a namespace ----------------------------------------------------
// servers: args "tcp:PORT" / "udp:PORT"; a TCP peer gets "hello PORT <its address>", a UDP datagram is echoed as
// "echo PORT <its address> <text>"; prints "ready" once every socket listens
const SERVER = `
const net = require('node:net'), dgram = require('node:dgram');
let pending = 0;
const up = () => { if (--pending === 0) process.stdout.write('ready\\n'); };
for (const spec of process.argv.slice(1)) {
  const [proto, port] = spec.split(':');
  pending++;
  if (proto === 'tcp') {
    net.createServer((s) => { s.on('error', () => {}); s.end('hello ' + port + ' ' + s.remoteAddress + '\\n'); })
      .listen(Number(port), '0.0.0.0', up);
  } else {
    const u = dgram.createSocket('udp4');
    u.on('message', (m, r) => u.send('echo ' + port + ' ' + r.address + ' ' + m, r.port, r.address));
    u.bind(Number(port), '0.0.0.0', up);
  }
}`;
// client: args PROTO HOST PORT TIMEOUT_MS; prints the reply, TIMEOUT, or ERR:<code>
const PROBE = `
const net = require('node:net'), dgram = require('node:dgram');
const [proto, host, port, ms] = process.argv.slice(1);
const done = (t) => { process.stdout.write(String(t).trim()); process.exit(0); };
setTimeout(() => done('TIMEOUT'), Number(ms));
if (proto === 'tcp') {
  let buf = '';
  const s = net.connect(Number(port), host);
  s.on('data', (d) => { buf += d; });
  s.on('end', () => done(buf));
  s.on('error', (e) => done('ERR:' + e.code));
} else {
  const u = dgram.createSocket('udp4');
  u.on('message', (m) => done(m));
  u.on('error', (e) => done('ERR:' + e.code));
  u.send('ping', Number(port), host);
}`;

const children: ChildProcess[] = [];
let skipReason: string | false = false;

function ip(args: string[]): Promise<string> {
  return run('ip', args);
}

function inNs(ns: string, cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], { timeoutMs });
}

function probe(ns: string, proto: 'tcp' | 'udp', host: string, port: number, ms = ALLOWED_MS): Promise<string> {
  return inNs(ns, process.execPath, ['-e', PROBE, proto, host, String(port), String(ms)]);
}

async function assertBlocked(ns: string, proto: 'tcp' | 'udp', host: string, port: number): Promise<void> {
  assert.equal(await probe(ns, proto, host, port, BLOCKED_MS), 'TIMEOUT', `${proto} ${host}:${port} from ${ns}`);
}

async function serve(ns: string, specs: string[]): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, ...specs], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`server in ${ns} not ready: ${err}`)), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server in ${ns} exited ${String(code)}: ${err}`));
    });
  });
}

async function helper(cmd: 'apply' | 'list' | 'delete', arg: string): Promise<string> {
  return inNs(HOST, process.execPath, [HELPER, cmd, arg]);
}

async function apply(s: NftState): Promise<void> {
  await helper('apply', JSON.stringify(s));
}

async function list(): Promise<string | null> {
  try {
    return await helper('list', TABLE);
  } catch (e) {
    if (e instanceof CommandError && e.code === 3) return null;
    throw e;
  }
}

const vmA: NftTask = {
  taskId: 'task_a',
  vmIp: '10.200.0.5',
  forwards: [
    { proto: 'tcp', hostFrom: 2222, hostTo: 2222, guestFrom: 22, guestTo: 22 },
    { proto: 'udp', hostFrom: 7000, hostTo: 7010, guestFrom: 7000, guestTo: 7010 },
    { proto: 'tcp', hostFrom: 9000, hostTo: 9002, guestFrom: 8000, guestTo: 8002 },
  ],
  filters: [],
};
// a second real VM (hairpin)
const vmC: NftTask = {
  taskId: 'task_c',
  vmIp: '10.200.0.7',
  forwards: [{ proto: 'tcp', hostFrom: 4444, hostTo: 4444, guestFrom: 22, guestTo: 22 }],
  filters: [],
};
// a VM that only exists in the ruleset
const vmB: NftTask = {
  taskId: 'task_b',
  vmIp: '10.200.0.6',
  forwards: [{ proto: 'tcp', hostFrom: 3333, hostTo: 3333, guestFrom: 22, guestTo: 22 }],
  filters: parseNetworkFilters(['in,tcp,22,0.0.0.0/0,drop', 'out,all,all,0.0.0.0/0,accept']),
};

function state(tasks: NftTask[], hostIps: string[] = ['10.211.0.1']): NftState {
  return {
    table: TABLE,
    hostIps,
    bridge: { name: 'dbcbr0', cidr: '10.200.0.0/24', gatewayIp: '10.200.0.1' },
    isolatedPrefix: 'dlb',
    tasks,
  };
}

function withFilters(items: string[]): NftTask {
  return { ...vmA, filters: parseNetworkFilters(items) };
}

before(async () => {
  if (process.getuid?.() !== 0) {
    skipReason = 'needs root';
    return;
  }
  try {
    await run('nft', ['--version']);
    await ip(['netns', 'add', HOST]);
  } catch (e) {
    skipReason = `no nft or network namespaces here: ${(e as Error).message}`;
    return;
  }
  await ip(['netns', 'add', CLIENT]);
  await ip(['netns', 'add', VM]);
  await ip(['netns', 'add', VM2]);
  for (const ns of [HOST, CLIENT, VM, VM2]) await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  // client <-> host
  await ip(['-n', HOST, 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', CLIENT]);
  await ip(['-n', HOST, 'addr', 'add', '10.211.0.1/24', 'dev', 'ext0']);
  await ip(['-n', HOST, 'link', 'set', 'ext0', 'up']);
  await ip(['-n', CLIENT, 'addr', 'add', '10.211.0.2/24', 'dev', 'eth0']);
  await ip(['-n', CLIENT, 'addr', 'add', '10.213.0.2/24', 'dev', 'eth0']);
  await ip(['-n', CLIENT, 'link', 'set', 'eth0', 'up']);
  // the client only knows the way back to the LAN test net, never to the VMs' bridge net
  await ip(['-n', CLIENT, 'route', 'add', '10.212.0.0/24', 'via', '10.211.0.1']);
  await ip(['-n', HOST, 'route', 'add', '10.213.0.0/24', 'via', '10.211.0.2']);
  // host bridge with the vm on a port
  await ip(['-n', HOST, 'link', 'add', 'dbcbr0', 'type', 'bridge']);
  await ip(['-n', HOST, 'addr', 'add', '10.200.0.1/24', 'dev', 'dbcbr0']);
  await ip(['-n', HOST, 'link', 'set', 'dbcbr0', 'up']);
  await ip(['-n', HOST, 'link', 'add', 'tap5', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', VM]);
  await ip(['-n', HOST, 'link', 'set', 'tap5', 'master', 'dbcbr0']);
  await ip(['-n', HOST, 'link', 'set', 'tap5', 'up']);
  await ip(['-n', VM, 'addr', 'add', '10.200.0.5/24', 'dev', 'eth0']);
  await ip(['-n', VM, 'link', 'set', 'eth0', 'up']);
  await ip(['-n', VM, 'route', 'add', 'default', 'via', '10.200.0.1']);
  await ip(['-n', HOST, 'link', 'add', 'tap7', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', VM2]);
  await ip(['-n', HOST, 'link', 'set', 'tap7', 'master', 'dbcbr0']);
  await ip(['-n', HOST, 'link', 'set', 'tap7', 'up']);
  await ip(['-n', VM2, 'addr', 'add', '10.200.0.7/24', 'dev', 'eth0']);
  await ip(['-n', VM2, 'link', 'set', 'eth0', 'up']);
  await ip(['-n', VM2, 'route', 'add', 'default', 'via', '10.200.0.1']);
  // an isolated (LAN) interface of the host, also reaching the vm
  await ip(['-n', HOST, 'link', 'add', 'dlb0', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', VM]);
  await ip(['-n', HOST, 'addr', 'add', '10.212.0.1/24', 'dev', 'dlb0']);
  await ip(['-n', HOST, 'link', 'set', 'dlb0', 'up']);
  await ip(['-n', VM, 'addr', 'add', '10.212.0.5/24', 'dev', 'lan0']);
  await ip(['-n', VM, 'link', 'set', 'lan0', 'up']);
  await ip(['-n', VM, 'route', 'add', '10.213.0.0/24', 'via', '10.212.0.1']);
  await inNs(HOST, 'busybox', ['sysctl', '-w', 'net.ipv4.ip_forward=1']);

  await Promise.all([serve(VM, ['tcp:22', 'tcp:8001', 'udp:7001']), serve(HOST, ['tcp:8080', 'udp:67']), serve(CLIENT, ['tcp:5555']), serve(VM2, ['tcp:22'])]);
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => new Promise((r) => c.once('exit', r))));
  for (const ns of [HOST, CLIENT, VM, VM2]) {
    await ip(['netns', 'del', ns]).catch(() => undefined);
  }
});

// every test after the first depends on the previous ones' table; node:test runs them in order
const t = (name: string, fn: () => Promise<void>): void => {
  test(name, async (ctx) => {
    if (skipReason) {
      ctx.skip(skipReason);
      return;
    }
    await fn();
  });
};

t('baseline without the table: the vm reaches the host and the LAN route, nothing is forwarded', async () => {
  assert.equal(await list(), null);
  assert.equal(await probe(VM, 'tcp', '10.200.0.1', 8080), 'hello 8080 10.200.0.5');
  assert.equal(await probe(VM, 'tcp', '10.213.0.2', 5555), 'hello 5555 10.212.0.5');
  assert.equal(await probe(CLIENT, 'tcp', '10.211.0.1', 2222), 'ERR:ECONNREFUSED');
});

t('apply: the listing equals the rendered table, and applying again changes nothing', async () => {
  const s = state([vmA]);
  await apply(s);
  const first = await list();
  assert.equal(first, renderRuleset(s));
  await apply(s);
  assert.equal(await list(), first);
});

t('forwards: tcp 2222 -> vm:22, a shifted tcp range, a udp range; from the host itself', async () => {
  // the vm sees the client's own address (no SNAT on the way in)
  assert.equal(await probe(CLIENT, 'tcp', '10.211.0.1', 2222), 'hello 22 10.211.0.2');
  assert.equal(await probe(CLIENT, 'tcp', '10.211.0.1', 9001), 'hello 8001 10.211.0.2');
  assert.equal(await probe(CLIENT, 'udp', '10.211.0.1', 7001), 'echo 7001 10.211.0.2 ping');
  // the host itself (output hook)
  assert.equal(await probe(HOST, 'tcp', '10.211.0.1', 2222), 'hello 22 10.211.0.1');
  // the vm's private address is not routed to directly
  await ip(['-n', CLIENT, 'route', 'add', '10.200.0.0/24', 'via', '10.211.0.1']);
  try {
    await assertBlocked(CLIENT, 'tcp', '10.200.0.5', 22);
  } finally {
    await ip(['-n', CLIENT, 'route', 'del', '10.200.0.0/24', 'via', '10.211.0.1']);
  }
});

t("hairpin: a vm reaches another vm through the host's forwarded port (masqueraded to the gateway)", async () => {
  await apply(state([vmA, vmC]));
  assert.equal(await probe(VM, 'tcp', '10.211.0.1', 4444), 'hello 22 10.200.0.1');
  assert.equal(await probe(VM2, 'tcp', '10.211.0.1', 2222), 'hello 22 10.200.0.1');
  // a vm with no task in the state is not forwarded at all (unknown source on the bridge)
  await apply(state([vmA]));
  await assertBlocked(VM2, 'tcp', '10.211.0.1', 2222);
  await assertBlocked(VM2, 'tcp', '10.211.0.2', 5555);
});

t('input: the vm gets no host services but DHCP and ping; the LAN interface is never routed', async () => {
  await assertBlocked(VM, 'tcp', '10.200.0.1', 8080);
  assert.equal(await probe(VM, 'udp', '10.200.0.1', 67), 'echo 67 10.200.0.5 ping');
  await inNs(VM, 'busybox', ['ping', '-c', '1', '-W', '1', '10.200.0.1']);
  await assertBlocked(VM, 'tcp', '10.212.0.1', 8080);
  assert.equal(await probe(VM, 'udp', '10.212.0.1', 67), 'echo 67 10.212.0.5 ping');
  await assertBlocked(VM, 'tcp', '10.213.0.2', 5555);
});

t('outbound traffic of the vm is masqueraded', async () => {
  assert.equal(await probe(VM, 'tcp', '10.211.0.2', 5555), 'hello 5555 10.211.0.1');
});

t('filters: a drop blocks new connections, an earlier accept or no rule re-opens them', async () => {
  await apply(state([withFilters(['in,tcp,22,0.0.0.0/0,drop'])]));
  await assertBlocked(CLIENT, 'tcp', '10.211.0.1', 2222);
  assert.equal(await probe(CLIENT, 'tcp', '10.211.0.1', 9001), 'hello 8001 10.211.0.2'); // guest port 8001: no match
  await apply(state([withFilters(['in,ssh,,10.211.0.2,accept', 'in,tcp,22,0.0.0.0/0,drop'])]));
  assert.equal(await probe(CLIENT, 'tcp', '10.211.0.1', 2222), 'hello 22 10.211.0.2');
  await apply(state([withFilters(['in,tcp,22,0.0.0.0/0,drop', 'in,all,all,any,accept'])])); // catch-all accept first
  assert.equal(await probe(CLIENT, 'tcp', '10.211.0.1', 2222), 'hello 22 10.211.0.2');
  await apply(state([withFilters(['out,tcp,5555,10.211.0.2,drop', 'in,udp,7001,any,drop'])]));
  await assertBlocked(VM, 'tcp', '10.211.0.2', 5555);
  await assertBlocked(CLIENT, 'udp', '10.211.0.1', 7001);
  assert.equal(await probe(CLIENT, 'tcp', '10.211.0.1', 2222), 'hello 22 10.211.0.2');
  await apply(state([vmA]));
  assert.equal(await probe(VM, 'tcp', '10.211.0.2', 5555), 'hello 5555 10.211.0.1');
  assert.equal(await probe(CLIENT, 'udp', '10.211.0.1', 7001), 'echo 7001 10.211.0.2 ping');
});

t('no host ips: every local address forwards, loopback does not', async () => {
  const s = state([vmA], []);
  await apply(s);
  assert.equal(await list(), renderRuleset(s));
  assert.equal(await probe(CLIENT, 'tcp', '10.211.0.1', 2222), 'hello 22 10.211.0.2');
  assert.equal(await probe(HOST, 'tcp', '127.0.0.1', 2222), 'ERR:ECONNREFUSED');
});

t('removing a task removes every rule that mentions it', async () => {
  await apply(state([vmA, vmB]));
  const both = await list();
  assert.ok(both?.includes('10.200.0.6') && both.includes('t_task_b') && both.includes('f_task_b_in'), both ?? '');
  await apply(state([vmA]));
  const one = await list();
  assert.ok(one !== null && !one.includes('10.200.0.6') && !one.includes('task_b'), one ?? '');
  assert.equal(one, renderRuleset(state([vmA])));
});

t('rules and chains added by hand disappear on the next apply', async () => {
  const s = state([vmA]);
  await inNs(HOST, 'nft', ['add', 'rule', 'ip', TABLE, 'forward', 'ip', 'saddr', '1.2.3.4', 'counter', 'drop']);
  await inNs(HOST, 'nft', ['insert', 'rule', 'ip', TABLE, 't_task_a', 'tcp', 'dport', '1', 'dnat', 'to', '10.200.0.5:1']);
  await inNs(HOST, 'nft', ['add', 'chain', 'ip', TABLE, 'junk']);
  const dirty = await list();
  assert.notEqual(dirty, renderRuleset(s));
  assert.ok(dirty?.includes('1.2.3.4') && dirty.includes('chain junk'));
  await apply(s);
  assert.equal(await list(), renderRuleset(s));
});

t('deleteTable removes the table, twice is fine, and the host is reachable again', async () => {
  await helper('delete', TABLE);
  assert.equal(await list(), null);
  await helper('delete', TABLE);
  assert.equal(await probe(VM, 'tcp', '10.200.0.1', 8080), 'hello 8080 10.200.0.5');
  assert.equal(await probe(CLIENT, 'tcp', '10.211.0.1', 2222), 'ERR:ECONNREFUSED');
});
