// Issue 10, finding 3: a guest in user network mode must reach nothing on the host except what is forwarded for it.
// `dbc up --network user --host 0.0.0.0` runs in a namespace "host" (API and rsync centre on every address, so on
// 127.0.0.1 too); the test process reaches it over a veth from the root namespace, and a namespace "inet" (another
// veth on the host) plays the internet. From inside the VM (SSH through the forwarded port) the test attacks
// 10.0.2.2:<api>, 10.0.2.2:<rsync centre>, 10.0.2.2:<a listener on the host's 127.0.0.1> and <the host's veth
// address>:<a listener on 0.0.0.0>, and checks a TCP server in "inet" answers. A hot-added disk must still work
// with QEMU running as the guard's uid.
// DBC_GUEST_GUARD=off runs the same attack without the guard (the attack then succeeds and the test fails).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { post, signedBody, sshExec, startDevnet, waitFor, type Devnet } from '../helpers/devnet.js';
import { removeTopology } from '../helpers/netns-topology.js';
import { freeVncPort, waitOperation, waitStatus } from '../helpers/tasks.js';
import { GUARD_UID } from '../../src/net/guest-guard.js';
import { cryptoReady } from '../../src/auth/verify.js';

const R = randomBytes(2).toString('hex');
const NS = { host: `dbgh${R}`, inet: `dbgi${R}` };
const ROOT_IF = `dbg${R}`;
const IP = { root: '10.78.0.1', host: '10.78.0.2', hostOut: '10.79.0.2', inet: '10.79.0.4' };
const GUARD = (process.env.DBC_GUEST_GUARD ?? 'on') as 'on' | 'off';

function sh(args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 30_000 });
}
const inNs = (ns: string, args: string[]) => sh(['ip', 'netns', 'exec', ns, ...args]);

function setup(): void {
  for (const ns of Object.values(NS)) {
    sh(['ip', 'netns', 'add', ns]);
    inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  }
  sh(['ip', 'link', 'add', ROOT_IF, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.host]);
  sh(['ip', 'addr', 'add', `${IP.root}/24`, 'dev', ROOT_IF]);
  sh(['ip', 'link', 'set', ROOT_IF, 'up']);
  inNs(NS.host, ['ip', 'addr', 'add', `${IP.host}/24`, 'dev', 'eth0']);
  inNs(NS.host, ['ip', 'link', 'set', 'eth0', 'up']);
  inNs(NS.host, ['ip', 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.inet]);
  inNs(NS.host, ['ip', 'addr', 'add', `${IP.hostOut}/24`, 'dev', 'eth1']);
  inNs(NS.host, ['ip', 'link', 'set', 'eth1', 'up']);
  inNs(NS.inet, ['ip', 'addr', 'add', `${IP.inet}/24`, 'dev', 'eth0']);
  inNs(NS.inet, ['ip', 'link', 'set', 'eth0', 'up']);
}

function teardown(): void {
  removeTopology(ROOT_IF, Object.values(NS));
}

/** a TCP server in a namespace that greets every connection with `banner` */
function banner(ns: string, host: string, port: number, text: string): ChildProcess {
  const code = `require('net').createServer((s)=>{s.on('error',()=>{});s.end(${JSON.stringify(text + '\n')})}).listen(${port},${JSON.stringify(host)},()=>console.log('up'))`;
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
}

describe(`guest isolation in user mode (guard ${GUARD})`, { timeout: 900_000 }, () => {
  let d: Devnet;
  const servers: ChildProcess[] = [];
  let vm = { id: '', ssh: 0, password: '' };
  const ports = { loop: 0, any: 0, inet: 0 };

  before(async () => {
    await cryptoReady();
    teardown();
    setup();
    d = await startDevnet({ netns: NS.host, shutdownTimeoutS: 10, extraArgs: ['--host', '0.0.0.0', '--guest-guard', GUARD] });
    // the API listens on every address of the host namespace; the test reaches it over the veth
    d.api = d.api.replace('127.0.0.1', IP.host);
    ports.loop = 30000 + Math.floor(Math.random() * 5000);
    ports.any = ports.loop + 1;
    ports.inet = ports.loop + 2;
    servers.push(banner(NS.host, '127.0.0.1', ports.loop, 'SECRET_LOOPBACK'));
    servers.push(banner(NS.host, '0.0.0.0', ports.any, 'SECRET_ANYADDR'));
    servers.push(banner(NS.inet, '0.0.0.0', ports.inet, 'HELLO_INTERNET'));
    for (const s of servers) await new Promise((r) => s.stdout!.once('data', r));
  });

  after(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await d?.destroy().catch(() => undefined);
    teardown();
  });

  test('the guard is what the node says it is', () => {
    const tables = inNs(NS.host, ['nft', 'list', 'tables']);
    if (GUARD === 'on') {
      assert.match(tables, /table inet dbc_guard/);
      assert.match(readFileSync(join(d.dataDir, 'dbc.log'), 'utf8'), /guest guard on/);
    } else {
      assert.doesNotMatch(tables, /dbc_guard/);
    }
  });

  test('a VM boots and SSH through the forwarded port works; QEMU runs as the guard uid', async () => {
    const ssh = 20000 + Math.floor(Math.random() * 9000);
    const r = await post(
      d.api,
      'tasks/start',
      signedBody(d.node_id, d.renter.seed, {
        image_name: d.image,
        ssh_port: String(ssh),
        vnc_port: String(await freeVncPort()),
        cpu_cores: '1',
        mem_size: '1',
        disk_size: '1',
      }),
    );
    assert.equal(r.body.errcode, 0, r.text);
    const detail = await waitStatus(d, r.body.message.task_id, 'running', 300_000);
    vm = { id: r.body.message.task_id, ssh, password: detail.login_password };
    const out = await waitFor(
      'ssh',
      async () => {
        try {
          return await sshExec(IP.host, ssh, 'dbc', vm.password, 'echo SSH_OK', 10_000);
        } catch {
          return undefined;
        }
      },
      240_000,
      3000,
    );
    assert.match(out, /SSH_OK/);
    const uids = inNs(NS.host, ['ps', '-o', 'uid=', '-C', 'qemu-system-x86_64'])
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
    if (GUARD === 'on') assert.ok(uids.length > 0 && uids.every((u) => u === String(GUARD_UID)), uids.join(','));
  });

  test("from inside the guest: the host's services are unreachable, the internet is reachable", async () => {
    const api = Number(new URL(d.api).port);
    const rsync = d.image_servers?.[0]?.port;
    assert.ok(rsync, JSON.stringify(d.image_servers));
    const probe = (name: string, host: string, port: number, send = '') =>
      `echo "${name}=$(printf '${send}' | timeout 8 nc -w 4 ${host} ${port} 2>/dev/null | head -c 40 | tr -d '\\r\\n')";`;
    const cmd = [
      probe('API', '10.0.2.2', api, 'GET / HTTP/1.0\\r\\n\\r\\n'),
      probe('RSYNC', '10.0.2.2', rsync),
      probe('LOOP', '10.0.2.2', ports.loop),
      probe('LOOP5', '10.0.2.5', ports.loop),
      probe('ANY', IP.host, ports.any),
      probe('ANYOUT', IP.hostOut, ports.any),
      probe('INET', IP.inet, ports.inet),
      'echo DONE',
    ].join(' ');
    const out = await sshExec(IP.host, vm.ssh, 'dbc', vm.password, cmd, 120_000);
    const got = Object.fromEntries(
      out
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    // outbound to another machine works
    assert.match(got.INET ?? '', /HELLO_INTERNET/, out);
    // the node's API, its rsync centre and every other host listener stay out of reach
    assert.doesNotMatch(got.API ?? '', /HTTP/, out);
    assert.doesNotMatch(got.RSYNC ?? '', /RSYNCD/, out);
    assert.doesNotMatch(got.LOOP ?? '', /SECRET/, out);
    assert.doesNotMatch(got.LOOP5 ?? '', /SECRET/, out);
    assert.doesNotMatch(got.ANY ?? '', /SECRET/, out);
    assert.doesNotMatch(got.ANYOUT ?? '', /SECRET/, out);
  });

  test('a disk hot-added to the running VM works under the dropped uid', async () => {
    const add = await post(d.api, `disk/add/${vm.id}`, signedBody(d.node_id, d.renter.seed, { size: 1 }));
    assert.equal(add.body.errcode, 0, add.text);
    const op = await waitOperation(d, add.body.operation_id!, 60_000);
    assert.equal(op.status, 'done', JSON.stringify(op));
    const out = await waitFor(
      'vdb in the guest',
      async () => {
        const o = await sshExec(IP.host, vm.ssh, 'dbc', vm.password, 'cat /sys/block/vdb/size 2>/dev/null; echo END', 20_000).catch(() => '');
        return /^\d+/.test(o.trim()) && Number(o.trim().split('\n')[0]) > 0 ? o : undefined;
      },
      60_000,
      2000,
    );
    assert.equal(Number(out.trim().split('\n')[0]) * 512, 1024 ** 3);
  });
});
