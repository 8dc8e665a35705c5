// One contract, two topologies: the same route-family scenarios run against `dbc up` (two processes, each a gateway
// and a GPU node) and against the P2P network (seed, two `dbc node`s, one `dbc client`; every request through the
// client), with real QEMU guests and a real rsync image centre. Each scenario asserts what a renter would notice and
// appends the replies, normalised (ids, times, ports, passwords, paths become placeholders), to a per-topology
// transcript; the last test requires both transcripts to be equal.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cliPath, freeTcpPort, post, sessionBody, sha256, signedBody, sshExec, waitFor, type Reply } from '../helpers/devnet.js';
import { freeVncPort, waitOperation, waitStatus } from '../helpers/tasks.js';
import { startTopology, type Topology, type TopologyKind, type TopologyNode } from '../helpers/topology.js';

// --- transcripts ------------------------------------------------------------------------------------------------

interface Entry {
  step: string;
  route: string;
  status: number;
  errcode: number;
  message: unknown;
  /** the envelope carried an operation_id */
  operation?: true;
}

const TIME_RE = /\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?/g;
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** the value of a volatile key, or undefined when the key says nothing */
function byKey(key: string, value: unknown): string | undefined {
  const present = (typeof value === 'string' && value !== '') || typeof value === 'number';
  if (key === 'log_content' && Array.isArray(value)) return value.length > 0 ? '<log>' : undefined;
  if (!present) return undefined;
  if (/password$/.test(key)) return '<pw>';
  if (key === 'session_id') return '<session>';
  if (key === 'mac_address') return '<mac>';
  if (key === 'operation_id') return '<op>';
  if (key === 'wallet') return '<wallet>';
  if (/(^|_)time$/.test(key) || key === 'created_at' || key === 'updated_at') return '<time>';
  if (/(^|_)port$/.test(key) && /^\d+$/.test(String(value))) return '<port>';
  // a LAN's VXLAN id and multicast segment derive from the renter's wallet
  if (key === 'vxlan_vni') return '<vni>';
  if (key === 'segment' || key === 'dhcp_interface') return String(value).replace(/\d+\.\d+\.\d+\.\d+:\d+/, '<segment>');
  // transferred bytes of a snapshot depend on what the guest wrote
  if (['bytes', 'total_bytes', 'bytes_done', 'bytes_total'].includes(key)) return '<bytes>';
  return undefined;
}

class Transcript {
  readonly entries: Entry[] = [];
  private readonly known = new Map<string, string>();
  private tokens: Array<[RegExp, string]> = [];
  private readonly counts = new Map<string, number>();

  /** every later occurrence of literal (a whole value or inside a text) becomes placeholder */
  name(literal: string, placeholder: string): string {
    const had = this.known.get(literal);
    if (had) return had;
    this.known.set(literal, placeholder);
    this.tokens.push([new RegExp(`(?<![A-Za-z0-9])${escapeRe(literal)}(?![A-Za-z0-9])`, 'g'), placeholder]);
    // longer literals first (a data dir before a path inside it)
    this.tokens = this.tokens.sort((a, b) => b[0].source.length - a[0].source.length);
    return placeholder;
  }

  /** <kind1>, <kind2>, ... in order of first appearance */
  numbered(literal: string, kind: string): string {
    const had = this.known.get(literal);
    if (had) return had;
    const n = (this.counts.get(kind) ?? 0) + 1;
    this.counts.set(kind, n);
    return this.name(literal, `<${kind}${n}>`);
  }

  /** task ids and operation ids anywhere in a reply are learnt before it is normalised */
  private learn(x: unknown, key = ''): void {
    if (typeof x === 'string') {
      if (x === '') return;
      if (key === 'task_id') this.numbered(x, 'task');
      if (key === 'operation_id') this.name(x, '<op>');
    } else if (Array.isArray(x)) {
      for (const v of x) this.learn(v, key === 'members' ? 'task_id' : key);
    } else if (x && typeof x === 'object') {
      for (const [k, v] of Object.entries(x)) this.learn(v, k);
    }
  }

  text(s: string): string {
    let out = s;
    for (const [re, ph] of this.tokens) out = out.replace(re, ph);
    return out
      .replace(TIME_RE, '<time>')
      .replace(/data_[A-Za-z0-9]+_/g, 'data_<rand>_')
      .replace(/snap_([A-Za-z0-9_-]+)_[0-9a-z]{8}\.qcow2/g, 'snap_$1_<rand>.qcow2');
  }

  norm(x: unknown, key = ''): unknown {
    const k = byKey(key, x);
    if (k !== undefined) return k;
    if (typeof x === 'string') return this.text(x);
    if (Array.isArray(x)) return x.map((v) => this.norm(v, key));
    if (x && typeof x === 'object') {
      const o = x as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const [kk, v] of Object.entries(o)) out[kk] = this.norm(v, kk);
      // a snapshot's size depends on what the guest wrote
      if (typeof o.snapshot_name === 'string' && 'size' in o) out.size = '<size>';
      if (typeof o.image_name === 'string' && o.image_name.startsWith('snap_') && 'image_size' in o) out.image_size = '<size>';
      return out;
    }
    return x;
  }

  record(step: string, route: string, r: Reply): void {
    this.learn(r.body);
    this.add(step, route, r.status, r.body.errcode, r.body.message, r.body.operation_id !== undefined);
  }

  add(step: string, route: string, status: number, errcode: number, message: unknown, operation = false): void {
    this.entries.push({
      step: this.text(step),
      route: this.text(route),
      status,
      errcode,
      message: this.norm(message),
      ...(operation ? { operation: true as const } : {}),
    });
  }
}

/** where two values differ, as `path: a | b` lines */
function differences(a: unknown, b: unknown, path: string, out: string[]): void {
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys)
      differences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}${Array.isArray(a) ? `[${k}]` : `.${k}`}`, out);
    return;
  }
  out.push(`    ${path}:\n      up:  ${JSON.stringify(a)}\n      p2p: ${JSON.stringify(b)}`);
}

function transcriptDiff(up: Entry[], p2p: Entry[]): string {
  const out: string[] = [];
  for (let i = 0; i < Math.max(up.length, p2p.length); i++) {
    const [a, b] = [up[i], p2p[i]];
    if (JSON.stringify(a) === JSON.stringify(b)) continue;
    out.push(`#${i} ${a?.step ?? '-'} (${a?.route ?? '-'}) | ${b?.step ?? '-'} (${b?.route ?? '-'})`);
    const lines: string[] = [];
    differences(a, b, 'entry', lines);
    out.push(...lines);
  }
  return out.join('\n');
}

/** keys and value types, for replies whose values are the host's (cpu load, free memory) */
function shape(x: unknown): unknown {
  if (Array.isArray(x)) return x.length > 0 ? [shape(x[0])] : [];
  if (x && typeof x === 'object') {
    return Object.fromEntries(
      Object.keys(x)
        .sort()
        .map((k) => [k, shape((x as Record<string, unknown>)[k])]),
    );
  }
  return typeof x;
}

const transcripts: Partial<Record<TopologyKind, Transcript>> = {};
const MARKER = 'written-before-the-snapshot';

// --- the scenarios ----------------------------------------------------------------------------------------------

for (const kind of ['up', 'p2p'] as const) {
  describe(`contract through ${kind === 'up' ? 'two dbc up processes' : 'seed, two dbc nodes and a dbc client'}`, { timeout: 900_000 }, () => {
    const t = new Transcript();
    transcripts[kind] = t;
    let topo: Topology;
    let n1: TopologyNode;
    let n2: TopologyNode;
    let t0 = 0;
    // node 1's VM (lifecycle, disks, snapshot)
    const vm1 = { id: '', ssh: 0, password: '' };
    let snapImage = '';
    const strangerSeed = `0x${randomBytes(32).toString('hex')}`;
    const otherSeed = `0x${randomBytes(32).toString('hex')}`;

    const body = (n: TopologyNode, additional: Record<string, unknown> = {}, seed = n.renter.seed) => signedBody(n.node_id, seed, additional);
    /** post and append the reply to the transcript */
    const call = async (step: string, n: TopologyNode, route: string, reqBody: unknown, raw = false): Promise<Reply> => {
      const r = await post(n.api, route, reqBody, raw);
      t.record(step, route, r);
      return r;
    };
    const why = (r: Reply) => `${r.text}\n${topo.output().slice(-4000)}`;
    const port = async (tcp = true) => {
      const p = tcp ? await freeTcpPort() : await freeVncPort();
      t.name(String(p), '<port>');
      return p;
    };
    const ssh = (p: number, password: string, cmd: string) => sshExec('127.0.0.1', p, 'dbc', password, cmd, 30_000);
    const waitSsh = (p: number, password: string, cmd: string) => waitFor(`ssh ${cmd}`, () => ssh(p, password, cmd), 180_000, 2000);
    const vmArgs = async (n: TopologyNode, image = n.image) => ({
      image_name: image,
      ssh_port: String(await port()),
      vnc_port: String(await port(false)),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: '1',
    });
    /** tasks/start: answered at once with `creating`, then running with SSH working */
    async function startVm(step: string, n: TopologyNode, image = n.image) {
      const args = await vmArgs(n, image);
      const r = await call(`${step}: tasks/start`, n, 'tasks/start', body(n, args));
      assert.equal(r.status, 200, why(r));
      assert.equal(r.body.errcode, 0, why(r));
      assert.equal(r.body.message.status, 'creating');
      assert.match(r.body.message.task_id, /^[A-Za-z0-9]{20,22}$/);
      const id = r.body.message.task_id as string;
      // the create operation finishes with the VM running (the details below show it done)
      const created = await waitOperation(n.devnet, r.body.operation_id!, 240_000);
      assert.equal(created.status, 'done', JSON.stringify(created));
      const detail = await waitStatus(n.devnet, id, 'running', 10_000);
      assert.equal(detail.ssh_port, args.ssh_port);
      assert.equal(detail.user_name, 'dbc');
      t.name(detail.login_password, '<pw>');
      const who = await waitSsh(Number(args.ssh_port), detail.login_password, 'id -un');
      assert.match(who, /^dbc$/m);
      return { id, ssh: Number(args.ssh_port), password: detail.login_password as string };
    }
    async function opDone(step: string, n: TopologyNode, r: Reply, timeoutMs: number): Promise<any> {
      assert.equal(r.body.errcode, 0, why(r));
      assert.ok(r.body.operation_id, why(r));
      const op = await waitOperation(n.devnet, r.body.operation_id, timeoutMs);
      assert.equal(op.status, 'done', JSON.stringify(op));
      t.add(`${step}: the operation when finished`, 'operations/<op>', 200, 0, op);
      return op;
    }
    async function waitGone(n: TopologyNode, id: string): Promise<void> {
      await waitFor('task gone', async () => (await post(n.api, `tasks/${id}`, body(n))).body.message === 'task_id not exist', 90_000, 500);
    }

    before(async () => {
      t0 = Date.now();
      topo = await startTopology(kind);
      [n1, n2] = topo.nodes;
      t.name(n1.node_id, '<node1>');
      t.name(n2.node_id, '<node2>');
      for (const n of topo.nodes) {
        t.name(n.renter.wallet, '<wallet>');
        t.name(n.dataDir, '<datadir>');
        t.name(n.centre, '<centre>');
      }
      console.log(`# ${kind}: topology up after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    });
    after(async () => {
      await topo?.destroy();
      console.log(`# ${kind}: ${((Date.now() - t0) / 1000).toFixed(1)} s in all`);
    });

    test('mining_nodes: machine info with the fields clients read, the node list, a session id', async () => {
      const info = await post(n1.api, 'mining_nodes', { peer_nodes_list: [n1.node_id], additional: {} });
      assert.equal(info.body.errcode, 0, why(info));
      const m = info.body.message;
      assert.equal(typeof m.cpu.hz, 'string');
      assert.equal(typeof m.gpu.gpu_count, 'number');
      assert.equal(typeof m.gpu.gpu_used, 'number');
      assert.deepEqual(
        m.disk_data.map((x: any) => x.path),
        ['/data'],
      );
      assert.ok(
        m.images.some((i: any) => i.image_name === n1.image),
        why(info),
      );
      // the values are the host's (load, free memory): the shape and the images
      t.add('mining_nodes of node 1 (shape)', 'mining_nodes', info.status, info.body.errcode, { shape: shape(m), version: m.version, images: m.images });

      // the gateway's list: dbc up knows its own node, a client every node; the entry of each node is the same
      const list = await post(n1.api, 'mining_nodes', { peer_nodes_list: [], additional: {} });
      assert.equal(list.body.errcode, 0, why(list));
      for (const n of [n1, n2]) {
        const api = n.api;
        const l = api === n1.api ? list : await post(api, 'mining_nodes', { peer_nodes_list: [], additional: {} });
        const mine = (l.body.message.mining_nodes as Array<Record<string, unknown>>).filter((x) => x.node_id === n.node_id);
        assert.equal(mine.length, 1, why(l));
        assert.equal(mine[0]!.version, m.version);
        t.add(
          `mining_nodes list: the entry of ${n === n1 ? 'node 1' : 'node 2'}`,
          'mining_nodes',
          l.status,
          l.body.errcode,
          mine.map((x) => ({ ...x, name: typeof x.name === 'string' && x.name !== '' ? '<name>' : x.name })),
        );
      }

      const sid = await call('session id', n1, 'mining_nodes/session_id', body(n1));
      assert.equal(sid.body.errcode, 0, why(sid));
      assert.match(sid.body.message.session_id, /^[1-9A-HJ-NP-Za-km-z]{50,60}$/);
      const viaSession = await call('tasks with a session', n1, 'tasks', sessionBody(n1.node_id, sid.body.message.session_id, n1.renter.seed));
      assert.deepEqual(viaSession.body, { errcode: 0, message: [] });
      const mixed = await call('a session signed by another key', n1, 'tasks', sessionBody(n1.node_id, sid.body.message.session_id, strangerSeed));
      assert.deepEqual(mixed.body, { errcode: -3, message: 'check authority failed: session_id is invalid' });
    });

    test('images: the centres, a centre list, a node list, unknown centres', async () => {
      for (const [name, n] of [
        ['node 1', n1],
        ['node 2', n2],
      ] as const) {
        const servers = await call(`images/servers through ${name}'s API`, n, 'images/servers', { peer_nodes_list: [], additional: {} });
        assert.deepEqual(servers.body, { errcode: 0, message: { image_server: [n.centre] } });
      }
      const centre = await call("the centre's list through node 2's API", n2, 'images', { peer_nodes_list: [], additional: { image_server: n2.centre } });
      assert.equal(centre.body.errcode, 0, why(centre));
      assert.deepEqual(
        centre.body.message.map((i: any) => i.image_name),
        [n1.image],
      );
      const nodeList = await call("node 2's images", n2, 'images', { peer_nodes_list: [n2.node_id], additional: {} });
      assert.ok(
        nodeList.body.message.some((i: any) => i.image_name === n2.image && i['image_name:'] === n2.image),
        why(nodeList),
      );
      const unknown = await call('images of an unknown centre', n2, 'images', { peer_nodes_list: [], additional: { image_server: 'ID_9' } });
      assert.deepEqual([unknown.status, unknown.body], [400, { errcode: -25, message: 'image_server not exist' }]);
    });

    test('lan: create with the original checks, two overlapping 192.168.66.0/24 LANs, list, detail, delete', async () => {
      const create = (step: string, additional: Record<string, unknown>) => call(`lan/create ${step}`, n1, 'lan/create', body(n1, additional));
      assert.deepEqual((await create('empty name', { network_name: '', ip_cidr: '192.168.66.0/24' })).body, {
        errcode: -3,
        message: 'network name can not be empty',
      });
      for (const bad of ['abc', 'bad-name1', '../etc1']) {
        assert.deepEqual((await create(`bad name ${bad}`, { network_name: bad, ip_cidr: '192.168.66.0/24' })).body, {
          errcode: -3,
          message: 'network name requires a combination of 6 to 10 letters or numbers',
        });
      }
      assert.deepEqual((await create('no cidr', { network_name: 'testnet1' })).body, { errcode: -3, message: 'ip cidr can not be empty' });
      for (const bad of ['192.168.66.0', '192.168.66.0/33', '10.0.0.0/8']) {
        const r = await create(`bad cidr ${bad}`, { network_name: 'testnet1', ip_cidr: bad });
        assert.equal(r.body.errcode, -3);
        assert.match(r.body.message, /^invalid ip cidr/);
      }
      const one = await create('testnet1', { network_name: 'testnet1', ip_cidr: '192.168.66.0/24' });
      assert.equal(one.body.errcode, 0, why(one));
      assert.equal(one.body.message.network_name, 'testnet1');
      assert.equal(one.body.message.ip_cidr, '192.168.66.0/24');
      // the rental website creates every LAN with 192.168.66.0/24: a second one of the same renter is its own segment
      const two = await create('testnet2, the same subnet', { network_name: 'testnet2', ip_cidr: '192.168.66.0/24' });
      assert.equal(two.body.errcode, 0, why(two));
      assert.equal(two.body.message.ip_cidr, '192.168.66.0/24');
      assert.notEqual(two.body.message.vxlan_vni, one.body.message.vxlan_vni);
      assert.notEqual(two.body.message.segment, one.body.message.segment);
      assert.deepEqual((await create('testnet1 again', { network_name: 'testnet1', ip_cidr: '192.168.67.0/24' })).body, {
        errcode: -3,
        message: 'network name already existed',
      });
      const list = await call('lan list', n1, 'lan', body(n1));
      assert.deepEqual(list.body.message.map((x: any) => x.network_name).sort(), ['testnet1', 'testnet2']);
      const detail = await call('lan detail', n1, 'lan/testnet1', body(n1));
      assert.equal(detail.body.errcode, 0, why(detail));
      assert.equal(detail.body.message.ip_cidr, '192.168.66.0/24');
      const local = await call('lan list on the client host', n1, 'lan', { peer_nodes_list: [], additional: {} });
      assert.deepEqual(local.body, { errcode: 0, message: { networks: [] } });
      for (const name of ['testnet1', 'testnet2']) {
        assert.deepEqual((await call(`lan/delete ${name}`, n1, `lan/delete/${name}`, body(n1))).body, { errcode: 0, message: 'ok' });
      }
      assert.deepEqual((await call('lan/delete unknown', n1, 'lan/delete/nosuch12', body(n1))).body, { errcode: -3, message: 'network name not exist' });
      assert.deepEqual((await call('lan detail unknown', n1, 'lan/testnet1', body(n1))).body, { errcode: -3, message: 'network name not exist' });
      assert.deepEqual((await call('lan list when empty', n1, 'lan', body(n1))).body, { errcode: 0, message: [] });
    });

    test('tasks/start answers creating, the guest runs, SSH works; detail, list, logs', async () => {
      Object.assign(vm1, await startVm('node 1 VM', n1));
      await ssh(vm1.ssh, vm1.password, `echo ${MARKER} > ~/marker; sync`);
      const detail = await call('detail of the running VM', n1, `tasks/${vm1.id}`, body(n1));
      assert.equal(detail.body.message.status, 'running');
      assert.equal(detail.body.message.ssh_ip, '127.0.0.1');
      assert.equal(detail.body.message.login_password, vm1.password);
      assert.deepEqual(
        detail.body.message.disks.map((d: any) => d.name),
        ['vda', 'vdb'],
      );
      const list = await call('tasks list', n1, 'tasks', body(n1));
      assert.deepEqual(
        list.body.message.map((x: any) => [x.task_id, x.status]),
        [[vm1.id, 'running']],
      );
      const other = await call("tasks list of node 2 (the VM is node 1's)", n2, 'tasks', body(n2));
      assert.deepEqual(other.body, { errcode: 0, message: [] });
      const elsewhere = await call("node 1's task asked of node 2", n2, `tasks/${vm1.id}`, body(n2));
      assert.deepEqual(elsewhere.body, { errcode: -3, message: 'task_id not exist' });
      const head = await call('logs head', n1, `tasks/logs/${vm1.id}?flag=head&line_num=100`, body(n1));
      assert.equal(head.body.errcode, 0, why(head));
      assert.equal(head.body.message.task_id, vm1.id);
      assert.ok(head.body.message.log_content.length > 0);
      assert.ok(Buffer.byteLength(head.body.message.log_content.join('\n')) <= 1024);
      const tail = await post(n1.api, `tasks/logs/${vm1.id}?flag=tail&line_num=3`, body(n1));
      assert.equal(tail.body.errcode, 0, why(tail));
      assert.ok(tail.body.message.log_content.length <= 3);
      const sid = (await post(n1.api, 'mining_nodes/session_id', body(n1))).body.message.session_id;
      const bySession = await call('detail with a session', n1, `tasks/${vm1.id}`, sessionBody(n1.node_id, sid, n1.renter.seed));
      assert.equal(bySession.body.message.task_id, vm1.id);
    });

    test('the original error texts: bad create parameters, ports, logs bounds, credentials, routes', async () => {
      assert.ok(vm1.id, 'needs the VM');
      const before = (await post(n1.api, 'tasks', body(n1))).body.message.length;
      const base = await vmArgs(n1);
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ ...base, image_name: '' }, 'image_name is empty'],
        [{ ...base, image_name: 'nope.img' }, "'image_name' extension name is invalid"],
        [{ ...base, image_name: 'missing.qcow2' }, "'image_name' is not exist (path:/data/missing.qcow2)"],
        [{ ...base, image_name: '../../etc/x.qcow2' }, "'image_name' is not exist (path:/data/../../etc/x.qcow2)"],
        [{ ...base, vnc_port: '5000' }, 'vnc_port is invalid (usage: [5900, 65535])'],
        [{ ...base, vnc_port: '' }, 'vnc_port is empty'],
        [{ ...base, ssh_port: '22a' }, 'ssh_port is not digit'],
        [{ ...base, ssh_port: '70000' }, 'ssh_port is invalid (usage: [1, 65535])'],
        [{ ...base, cpu_cores: '0' }, 'cpu_cores is invalid'],
        [{ ...base, mem_size: 'x' }, 'mem_size is invalid'],
        [{ ...base, disk_size: '-1' }, 'disk_size is invalid (usage: disk_size > 0)'],
        [{ ...base, gpu_count: '1' }, 'gpu_count exceeds number of leases'],
        [{ ...base, custom_port: ['tcp,70000'] }, 'custom_port is invalid: tcp,70000'],
        [{ ...base, operation_system: 'plan9' }, "unsupported operation system: plan9 (usage: 'linux' 'windows')"],
        [{ ...base, bios_mode: 'coreboot' }, "unsupported bios mode: coreboot (usage: 'legacy' 'uefi' 'pxe')"],
        [{ ...base, task_id: 'short' }, 'wrong task id length'],
        [{ ...base, task_id: vm1.id }, 'task id already existed'],
        [{ ...base, network_name: 'nolan1' }, 'can not find network info'],
        [{ ...base, multicast: ['239.1.2.3'] }, 'multicast format: ip:port'],
        [{ ...base, ssh_port: String(vm1.ssh) }, `port conflict, exist ssh_port = ${vm1.ssh}`],
        [{ ...base, disk_size: '60000' }, 'allocate disk failed'],
      ];
      for (const [additional, message] of cases) {
        const r = await call(`tasks/start refused: ${message}`, n1, 'tasks/start', body(n1, additional));
        assert.deepEqual(r.body, { errcode: -3, message }, JSON.stringify(additional));
      }
      // a port some other program on the host listens on
      const squatter = net.createServer().listen(0, '127.0.0.1');
      await new Promise((r) => squatter.once('listening', r));
      const busy = (squatter.address() as net.AddressInfo).port;
      t.name(String(busy), '<port>');
      const occupied = await call('tasks/start on an occupied port', n1, 'tasks/start', body(n1, { ...base, ssh_port: String(busy) }));
      squatter.close();
      assert.deepEqual(occupied.body, { errcode: -3, message: 'ssh_port is occupied' });
      assert.equal((await post(n1.api, 'tasks', body(n1))).body.message.length, before, 'nothing was created');

      // unknown tasks, logs bounds, operations
      for (const id of ['nosuchtask1234567890ab', '..%2F..%2Fetc']) {
        assert.deepEqual((await call(`unknown task ${id}`, n1, `tasks/${id}`, body(n1))).body, { errcode: -3, message: 'task_id not exist' });
      }
      assert.deepEqual((await call('poweroff of an unknown task', n1, 'tasks/poweroff/nosuchtask1234567890ab', body(n1))).body, {
        errcode: -3,
        message: 'task_id not exist',
      });
      const zero = await call('logs line_num=0', n1, `tasks/logs/${vm1.id}?flag=tail&line_num=0`, body(n1));
      assert.deepEqual([zero.status, zero.body], [400, { errcode: -25, message: 'invalid line num' }]);
      const flag = await call('logs flag=middle', n1, `tasks/logs/${vm1.id}?flag=middle`, body(n1));
      assert.deepEqual([flag.status, flag.body], [400, { errcode: -25, message: 'head_or_tail is invalid"' }]);
      const noOp = await call('an unknown operation', n1, 'operations/nosuchoperation', body(n1));
      assert.equal(noOp.body.errcode, -3, why(noOp));
      const empty = await call('passwd with an empty password', n1, `tasks/passwd/${vm1.id}`, body(n1, { username: 'dbc', password: '' }));
      assert.deepEqual(empty.body, { errcode: -3, message: 'password can not be empty' });

      // credentials
      const signed = body(n1);
      assert.equal((await call('a signed request', n1, 'tasks', signed)).body.errcode, 0);
      const replay = await call('the same nonce again', n1, 'tasks', signed);
      assert.deepEqual(replay.body, { errcode: -3, message: 'check authority failed: nonce check failed' });
      const stranger = await call('a wallet without a rental', n1, 'tasks', body(n1, {}, strangerSeed));
      assert.deepEqual(stranger.body, { errcode: -3, message: 'check authority failed: wallet not rented' });
      const forged = await call('a signature by another key', n1, 'tasks', { ...body(n1, {}, strangerSeed), wallet: n1.renter.wallet });
      assert.deepEqual(forged.body, { errcode: -3, message: 'check authority failed: nonce check failed' });
      // another renter of the same machine sees nothing of the VM
      execFileSync(process.execPath, [cliPath, 'rental', 'grant', '--data-dir', n1.dataDir, '--wallet', identityFromSeed(otherSeed).address, '--days', '1'], {
        stdio: 'pipe',
      });
      const otherList = await call("another renter's tasks", n1, 'tasks', body(n1, {}, otherSeed));
      assert.deepEqual(otherList.body, { errcode: 0, message: [] });
      for (const path of [`tasks/${vm1.id}`, `tasks/poweroff/${vm1.id}`, `disk/list/${vm1.id}`]) {
        const r = await call(`another renter: ${path.split('/').slice(0, -1).join('/') || 'tasks'}`, n1, path, body(n1, {}, otherSeed));
        assert.deepEqual(r.body, { errcode: -3, message: 'task_id not exist' }, path);
      }

      // the gateway: unknown routes, bad bodies, no credential, an unknown node
      const unknown = await call('an unknown route', n1, 'nothing/here', {});
      assert.deepEqual([unknown.status, unknown.body], [404, { errcode: -32601, message: 'not support uri:/api/v1/nothing/here' }]);
      const bad = await call('a broken JSON body', n1, 'tasks', '{"peer_nodes_list":', true);
      assert.equal(bad.status, 400);
      assert.equal(bad.body.errcode, -25);
      assert.match(bad.body.message, /^json parse error/);
      const noAuth = await call('no credential', n1, 'tasks', { peer_nodes_list: [n1.node_id], additional: {} });
      assert.deepEqual([noAuth.status, noAuth.body], [400, { errcode: -25, message: 'wallet_sign and multisig_wallets all invalid' }]);
      const noAuthCreate = await call('tasks/start without a credential', n1, 'tasks/start', { peer_nodes_list: [n1.node_id], additional: {} });
      assert.deepEqual([noAuthCreate.status, noAuthCreate.body], [400, { errcode: -25, message: 'session_id and wallet all invalid' }]);
      const wrongNode = await call('an unknown node id', n1, 'tasks', signedBody('ab'.repeat(32), n1.renter.seed));
      assert.deepEqual(wrongNode.body, { errcode: -32701, message: 'create node request failed' });
      const mine = await post(n1.api, `tasks/${vm1.id}`, body(n1));
      assert.equal(mine.body.message.status, 'running', 'still running after all that');
    });

    test('disk/*: a disk hot-added to the running VM shows in disk/list and in the guest; bad input refused', async () => {
      assert.ok(vm1.id, 'needs the VM');
      const add = await call('disk/add 1 GB', n1, `disk/add/${vm1.id}`, body(n1, { size: 1 }));
      assert.equal(add.body.message, 'ok', why(add));
      await opDone('disk/add', n1, add, 30_000);
      const list = await call('disk/list with vdc', n1, `disk/list/${vm1.id}`, body(n1));
      assert.deepEqual(
        list.body.message.map((d: any) => d.name),
        ['vda', 'vdb', 'vdc'],
        why(list),
      );
      const vdc = list.body.message.find((d: any) => d.name === 'vdc');
      assert.equal(vdc?.size, '1G', why(list));
      assert.match(vdc.file, /^\/data\/data_/);
      // the hot-added disk carries its name as serial
      const findDev = 'for d in /sys/block/vd*; do [ "$(cat $d/serial 2>/dev/null)" = vdc ] && echo ${d##*/}; done';
      const dev = await waitFor('the disk in the guest', async () => (await ssh(vm1.ssh, vm1.password, findDev)).trim() || undefined, 30_000, 1000);
      assert.equal((await ssh(vm1.ssh, vm1.password, `cat /sys/block/${dev}/size`)).trim(), String(1024 ** 3 / 512));

      const dcases: Array<[string, string, Record<string, unknown>, string | RegExp]> = [
        ['disk/resize bad name', `disk/resize/${vm1.id}`, { disk: '../vdb', size: 1 }, "'disk' is invalid (usage: vdb .. vdz)"],
        ['disk/resize shrink', `disk/resize/${vm1.id}`, { disk: 'vdb', size: -1 }, /disks only grow/],
        ['disk/add bad mount_dir', `disk/add/${vm1.id}`, { size: 1, mount_dir: '/data/../../etc' }, 'mount_dir:/data/../../etc is invalid'],
        ['disk/add mount_dir not allowed', `disk/add/${vm1.id}`, { size: 1, mount_dir: '/root' }, 'mount_dir:/root is not allowed on this node'],
        ['disk/add too big', `disk/add/${vm1.id}`, { size: 60000 }, 'mount directory:/data have no enough space'],
        ['disk/add bad size', `disk/add/${vm1.id}`, { size: 'ten' }, "'size' is invalid"],
        ['disk/delete while running', `disk/delete/${vm1.id}`, { disk: 'vdc' }, 'please close task first and try again'],
        ['snapshot/create bad name', `snapshot/create/${vm1.id}`, { snapshot_name: 'a/b', image_server: n1.centre }, /'snapshot_name' is invalid/],
        [
          'snapshot/create while running',
          `snapshot/create/${vm1.id}`,
          { snapshot_name: 'ok', image_server: n1.centre },
          'please close task first and try again',
        ],
      ];
      for (const [step, path, additional, message] of dcases) {
        const r = await call(step, n1, path, body(n1, additional));
        assert.equal(r.body.errcode, -3, `${path} ${r.text}`);
        if (typeof message === 'string') assert.equal(r.body.message, message);
        else assert.match(r.body.message, message);
      }
      const same = await call('disk/list unchanged', n1, `disk/list/${vm1.id}`, body(n1));
      assert.deepEqual(same.body.message, list.body.message);
    });

    test('restart: the guest reboots and keeps its files', async () => {
      assert.ok(vm1.id, 'needs the VM');
      const r = await call('tasks/restart', n1, `tasks/restart/${vm1.id}`, body(n1));
      assert.equal(r.body.message, 'ok', why(r));
      await opDone('tasks/restart', n1, r, 180_000);
      const detail = await call('detail after the restart', n1, `tasks/${vm1.id}`, body(n1));
      assert.equal(detail.body.message.status, 'running');
      assert.equal((await waitSsh(vm1.ssh, vm1.password, 'cat ~/marker')).trim(), MARKER);
    });

    test('shutdown -> closed; disk/delete with the VM off; snapshot/create to the image centre', async () => {
      assert.ok(vm1.id, 'needs the VM');
      const off = await call('tasks/shutdown', n1, `tasks/shutdown/${vm1.id}`, body(n1));
      assert.equal(off.body.message, 'ok', why(off));
      const op = await opDone('tasks/shutdown', n1, off, 90_000);
      assert.match(op.stage, /ACPI shutdown/);
      const closed = await call('detail when closed', n1, `tasks/${vm1.id}`, body(n1));
      assert.equal(closed.body.message.status, 'closed');
      const again = await call('tasks/shutdown again', n1, `tasks/shutdown/${vm1.id}`, body(n1));
      assert.deepEqual(again.body, { errcode: -3, message: 'task is shut_off' });

      const vdc = (await post(n1.api, `disk/list/${vm1.id}`, body(n1))).body.message.find((d: any) => d.name === 'vdc');
      const del = await call('disk/delete vdc', n1, `disk/delete/${vm1.id}`, body(n1, { disk: 'vdc' }));
      assert.equal(del.body.errcode, 0, why(del));
      if (del.body.operation_id) await opDone('disk/delete', n1, del, 30_000);
      assert.ok(!existsSync(join(n1.dataDir, 'images', vdc.file.slice('/data/'.length))), 'the disk file is gone');
      const disks = await call('disk/list after the delete', n1, `disk/list/${vm1.id}`, body(n1));
      assert.deepEqual(
        disks.body.message.map((d: any) => d.name),
        ['vda', 'vdb'],
      );
      const vda = await call('disk/delete vda', n1, `disk/delete/${vm1.id}`, body(n1, { disk: 'vda' }));
      assert.deepEqual(vda.body, { errcode: -3, message: "can not allowed to delete disk:'vda'" });

      const snap = await call(
        'snapshot/create',
        n1,
        `snapshot/create/${vm1.id}`,
        body(n1, { snapshot_name: 'before', desc: 'marker inside', image_server: n1.centre }),
      );
      const sop = await opDone('snapshot/create', n1, snap, 180_000);
      assert.equal(sop.kind, 'snapshot_create');
      const one = await call('snapshot/list one', n1, `snapshot/list/${vm1.id}/before`, body(n1));
      assert.equal(one.body.message.status, 'none', why(one));
      assert.equal(one.body.message.description, 'marker inside');
      assert.equal(one.body.message.image_server, n1.centre);
      snapImage = one.body.message.image_name;
      assert.match(snapImage, /^snap_before_[a-z0-9]+\.qcow2$/);
      const all = await call('snapshot/list', n1, `snapshot/list/${vm1.id}`, body(n1));
      assert.deepEqual(
        all.body.message.map((s: any) => s.snapshot_name),
        ['before'],
      );
      const dup = await call('snapshot/create the same name', n1, `snapshot/create/${vm1.id}`, body(n1, { snapshot_name: 'before', image_server: n1.centre }));
      assert.equal(dup.body.errcode, -3, why(dup));
      assert.ok(existsSync(join(n1.centreDir, snapImage)), 'the snapshot is on the centre');
      const ops = await post(n1.api, 'operations', body(n1, { task_id: vm1.id }));
      assert.ok(
        ops.body.message.some((o: any) => o.kind === 'snapshot_create' && o.status === 'done'),
        why(ops),
      );
      const mineOnNode = await call("node 1's images with the renter's credential", n1, 'images', body(n1));
      assert.equal(mineOnNode.body.errcode, 0, why(mineOnNode));
    });

    test("images/download of node 1's snapshot on node 2 with progress; a VM booted from it has the file", async () => {
      assert.ok(snapImage, 'needs the snapshot');
      const centre = await call("the centre's list with the snapshot", n2, 'images', { peer_nodes_list: [], additional: { image_server: n2.centre } });
      assert.deepEqual(centre.body.message.map((i: any) => i.image_name).sort(), [n1.image, snapImage].sort());
      const dl = await call('images/download', n2, 'images/download', body(n2, { image_server: n2.centre, image_filename: snapImage, local_dir: '/data' }));
      assert.equal(dl.body.message, 'ok', why(dl));
      const seen: string[] = [];
      const done = await waitFor(
        'download done',
        async () => {
          const p = await post(n2.api, 'images/downloadprogress', body(n2, { image_filename: snapImage }));
          assert.equal(p.body.errcode, 0, why(p));
          seen.push(p.body.message.status);
          if (p.body.message.status === 'failed') throw new Error(why(p));
          return p.body.message.status === 'done' ? p : undefined;
        },
        120_000,
        300,
      );
      assert.ok(
        seen.every((s) => s === 'downloading' || s === 'done'),
        seen.join(' '),
      );
      t.record('images/downloadprogress when done', 'images/downloadprogress', done);
      assert.equal(done.body.message.progress, '100%');
      assert.equal(done.body.message.bytes, done.body.message.total_bytes);
      await opDone('images/download', n2, dl, 30_000);
      assert.equal(sha256(join(n2.dataDir, 'images', snapImage)), sha256(join(n1.centreDir, snapImage)));
      const twice = await call('images/download_stop when done', n2, 'images/download_stop', body(n2, { image_filename: snapImage }));
      assert.equal(twice.body.errcode, -3, why(twice));

      const vm2 = await startVm('node 2 VM from the snapshot', n2, snapImage);
      assert.equal((await ssh(vm2.ssh, vm2.password, 'cat ~/marker')).trim(), MARKER);
      const detail = await call('detail of the VM from the snapshot', n2, `tasks/${vm2.id}`, body(n2));
      assert.equal(detail.body.message.image_name, snapImage);
      const inUse = await call('images/delete of an image in use', n2, 'images/delete', body(n2, { image_filename: snapImage }));
      assert.equal(inUse.body.message, `image file:${snapImage} is in use by task ${vm2.id}`);

      // bad downloads and deletes get the original texts
      const dlCases: Array<[string, Record<string, unknown>, number, string | RegExp]> = [
        ['a path as file name', { image_server: n2.centre, image_filename: '../etc/passwd', local_dir: '/data' }, 200, /^image_filename is invalid/],
        ['a bad local_dir', { image_server: n2.centre, image_filename: 'x.qcow2', local_dir: '/data/../../etc' }, 200, 'local_dir:/data/../../etc is invalid'],
        [
          'a local_dir not allowed',
          { image_server: n2.centre, image_filename: 'x.qcow2', local_dir: '/etc' },
          200,
          'local_dir:/etc is not allowed on this node',
        ],
        ['no local_dir', { image_server: n2.centre, image_filename: 'x.qcow2' }, 200, 'additional no local_dir'],
        ['a file the centre lacks', { image_server: n2.centre, image_filename: 'missing.qcow2', local_dir: '/data' }, 200, 'image:missing.qcow2 not exist'],
        ['an unknown centre', { image_server: 'ID_NOPE', image_filename: 'x.qcow2', local_dir: '/data' }, 400, 'image_server not exist'],
        ['no centre', { image_filename: 'x.qcow2', local_dir: '/data' }, 400, 'no image_server'],
      ];
      for (const [step, additional, status, message] of dlCases) {
        const r = await call(`images/download refused: ${step}`, n2, 'images/download', body(n2, additional));
        assert.equal(r.status, status, why(r));
        assert.notEqual(r.body.errcode, 0);
        if (typeof message === 'string') assert.equal(r.body.message, message);
        else assert.match(r.body.message, message);
      }
      const others: Array<[string, string, Record<string, unknown>, string]> = [
        ['images/delete of the base image', 'images/delete', { image_filename: n2.image }, `image file:${n2.image} was not downloaded by this renter`],
        ['images/download_stop of nothing', 'images/download_stop', { image_filename: 'x.qcow2' }, 'image:x.qcow2 is not in downloading'],
        ['images/upload of a missing file', 'images/upload', { image_server: n2.centre, image_filename: 'none.qcow2' }, 'image file:none.qcow2 is not exist'],
      ];
      for (const [step, route, additional, message] of others) {
        const r = await call(step, n2, route, body(n2, additional));
        assert.equal(r.body.message, message, why(r));
      }

      // the VM goes, then the downloaded image can go
      const del = await call('tasks/delete of the VM from the snapshot', n2, `tasks/delete/${vm2.id}`, body(n2));
      assert.equal(del.body.errcode, 0, why(del));
      await waitGone(n2, vm2.id);
      const gone = await call('images/delete of the downloaded snapshot', n2, 'images/delete', body(n2, { image_filename: snapImage }));
      assert.deepEqual(gone.body, { errcode: 0, message: 'ok' });
      assert.ok(!existsSync(join(n2.dataDir, 'images', snapImage)));
    });

    test('start -> running with the data kept; poweroff -> closed; delete -> gone', async () => {
      assert.ok(vm1.id, 'needs the VM');
      const sdel = await call('snapshot/delete', n1, `snapshot/delete/${vm1.id}/before`, body(n1));
      assert.deepEqual(sdel.body, { errcode: 0, message: 'ok' });
      assert.deepEqual((await call('snapshot/list when empty', n1, `snapshot/list/${vm1.id}`, body(n1))).body, { errcode: 0, message: [] });
      assert.deepEqual((await call('snapshot/list of a deleted snapshot', n1, `snapshot/list/${vm1.id}/before`, body(n1))).body.errcode, -3);

      const s = await call('tasks/start of the closed VM', n1, `tasks/start/${vm1.id}`, body(n1));
      await opDone('tasks/start', n1, s, 180_000);
      await waitStatus(n1.devnet, vm1.id, 'running', 10_000);
      assert.equal((await waitSsh(vm1.ssh, vm1.password, 'cat ~/marker')).trim(), MARKER);
      const running = await call('detail when running again', n1, `tasks/${vm1.id}`, body(n1));
      assert.equal(running.body.message.status, 'running');

      const off = await call('tasks/poweroff', n1, `tasks/poweroff/${vm1.id}`, body(n1));
      assert.equal(off.body.message, 'ok', why(off));
      await opDone('tasks/poweroff', n1, off, 60_000);
      const closed = await call('detail after the poweroff', n1, `tasks/${vm1.id}`, body(n1));
      assert.equal(closed.body.message.status, 'closed');

      const vmDir = join(n1.dataDir, 'vms', vm1.id);
      assert.ok(existsSync(vmDir));
      const del = await call('tasks/delete', n1, `tasks/delete/${vm1.id}`, body(n1));
      assert.equal(del.body.errcode, 0, why(del));
      await waitGone(n1, vm1.id);
      assert.deepEqual((await call('detail after the delete', n1, `tasks/${vm1.id}`, body(n1))).body, { errcode: -3, message: 'task_id not exist' });
      assert.ok(!existsSync(vmDir), 'the VM folder is removed');
      assert.deepEqual((await call('tasks list at the end', n1, 'tasks', body(n1))).body, { errcode: 0, message: [] });
    });
  });
}

describe('the two topologies answer alike', () => {
  test('the normalised transcripts of dbc up and of the P2P network are equal', () => {
    const up = transcripts.up?.entries ?? [];
    const p2p = transcripts.p2p?.entries ?? [];
    assert.ok(up.length > 0 && p2p.length > 0, `transcripts: up ${up.length} entries, p2p ${p2p.length}`);
    // DBC_TRANSCRIPTS=DIR keeps both transcripts for reading
    if (process.env.DBC_TRANSCRIPTS) {
      mkdirSync(process.env.DBC_TRANSCRIPTS, { recursive: true });
      for (const [name, entries] of [
        ['up', up],
        ['p2p', p2p],
      ] as const) {
        writeFileSync(join(process.env.DBC_TRANSCRIPTS, `${name}.json`), entries.map((e) => JSON.stringify(e)).join('\n') + '\n');
      }
    }
    const diff = transcriptDiff(up, p2p);
    if (diff) console.log(`# transcript differences (up | p2p):\n${diff}`);
    assert.equal(diff, '', `the topologies differ:\n${diff}`);
    assert.deepEqual(p2p, up);
  });
});
