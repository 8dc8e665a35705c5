// NAT traversal for real: a seed on the "internet" (a namespace with a bridge, 198.51.100.0/24), a GPU node and a
// client gateway each in a private network (10.10.x.0/24) behind its own router namespace that masquerades with
// nftables and drops whatever comes in unasked, as a home router does. Neither can dial the other; the node takes a
// relay reservation on the seed. AutoNAT tells both they are behind NAT; the client's first request reaches the
// node through the relay, DCUtR punches a direct TCP connection, and later requests use it (the client's
// /peers/active shows the node at its router's public address instead of the seed's). A router that maps every
// connection to a random port (a symmetric NAT) defeats the punch: requests keep working through the relay.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { repoRoot, waitFor } from '../helpers/devnet.js';
import { startRole, type RoleProc } from '../helpers/p2p.js';
import { removeTopology } from '../helpers/netns-topology.js';

const tag = randomBytes(2).toString('hex');
const NS = { pub: `dn${tag}pub`, ra: `dn${tag}ra`, ha: `dn${tag}ha`, rb: `dn${tag}rb`, hb: `dn${tag}hb` };
const SEED_IP = '198.51.100.1';
const RA_WAN = '198.51.100.2';
const RB_WAN = '198.51.100.3';
const netnsClient = join(repoRoot, 'dist', 'test', 'helpers', 'netns-client.js');

function sh(args: string[], input?: string): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', input, timeout: 30_000 });
}
const inNs = (ns: string, args: string[], input?: string) => sh(['ip', 'netns', 'exec', ns, ...args], input);

/** a router namespace: WAN on the internet bridge, LAN towards one host namespace, masquerade, drop unsolicited */
function router(r: string, h: string, wanIp: string, lanNet: string, random: boolean): void {
  const wan = `${r}w`;
  sh(['ip', 'link', 'add', wan, 'netns', r, 'type', 'veth', 'peer', 'name', `${r}p`, 'netns', NS.pub]);
  inNs(NS.pub, ['ip', 'link', 'set', `${r}p`, 'master', 'br0', 'up']);
  inNs(r, ['ip', 'addr', 'add', `${wanIp}/24`, 'dev', wan]);
  inNs(r, ['ip', 'link', 'set', wan, 'up']);
  sh(['ip', 'link', 'add', `${r}l`, 'netns', r, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h]);
  inNs(r, ['ip', 'addr', 'add', `${lanNet}.1/24`, 'dev', `${r}l`]);
  inNs(r, ['ip', 'link', 'set', `${r}l`, 'up']);
  inNs(h, ['ip', 'addr', 'add', `${lanNet}.2/24`, 'dev', 'eth0']);
  inNs(h, ['ip', 'link', 'set', 'eth0', 'up']);
  inNs(h, ['ip', 'route', 'add', 'default', 'via', `${lanNet}.1`]);
  inNs(r, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  inNs(
    r,
    ['nft', '-f', '-'],
    `table ip nat {
  chain postrouting { type nat hook postrouting priority srcnat; oifname "${wan}" masquerade${random ? ' random,fully-random' : ''}; }
}
table inet filter {
  chain forward { type filter hook forward priority filter; policy drop; ct state established,related accept; iifname "${r}l" accept; }
  chain inbound { type filter hook input priority filter; policy drop; ct state established,related accept; iifname { "lo", "${r}l" } accept; }
}
`,
  );
}

function buildTopology(randomB: boolean): void {
  for (const ns of Object.values(NS)) {
    sh(['ip', 'netns', 'add', ns]);
    inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  }
  inNs(NS.pub, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
  inNs(NS.pub, ['ip', 'addr', 'add', `${SEED_IP}/24`, 'dev', 'br0']);
  inNs(NS.pub, ['ip', 'link', 'set', 'br0', 'up']);
  router(NS.ra, NS.ha, RA_WAN, '10.10.1', false);
  router(NS.rb, NS.hb, RB_WAN, '10.10.2', randomB);
}

/** POST from inside the client's namespace (its API listens on that namespace's loopback) */
function post(api: string, route: string, body: unknown, count = 1, inflight = 1): { first: any; ok: number; total: number; rps: number } {
  const out = JSON.parse(
    inNs(NS.hb, [process.execPath, netnsClient, JSON.stringify({ op: 'post', url: `${api}/api/v1/${route}`, body, count, inflight })]),
  ) as {
    ok: boolean;
    out: any;
    error?: string;
  };
  if (!out.ok) throw new Error(out.error);
  return out.out;
}

const logOf = (r: RoleProc) => readFileSync(join(r.dataDir, 'dbc.log'), 'utf8');
const logged = (r: RoleProc, re: RegExp) =>
  logOf(r)
    .split('\n')
    .some((l) => re.test(l));

async function natNetwork(randomB: boolean) {
  buildTopology(randomB);
  const seed = await startRole('seed', ['--listen', `/ip4/${SEED_IP}/tcp/4001`], { netns: NS.pub });
  const seedAddr = `/ip4/${SEED_IP}/tcp/4001/p2p/${seed.info.peer_id}`;
  const node = await startRole('node', ['--listen', '/ip4/0.0.0.0/tcp/4001', '--relay', '--seed', seedAddr, '--host', '127.0.0.1', '--name', 'natted'], {
    netns: NS.ha,
    timeoutMs: 90_000,
  });
  const client = await startRole('client', ['--listen', '/ip4/0.0.0.0/tcp/4001', '--seed', seedAddr, '--http-port', '5052', '--host', '127.0.0.1'], {
    netns: NS.hb,
  });
  return { seed, node, client };
}

describe('behind NAT: AutoNAT, relay, then a DCUtR hole punch to a direct connection', { timeout: 300_000 }, () => {
  let seed: RoleProc;
  let node: RoleProc;
  let client: RoleProc;
  before(async () => {
    ({ seed, node, client } = await natNetwork(false));
  });
  after(async () => {
    if (process.env.NAT_DEBUG) for (const r of [node, client, seed]) if (r) console.log(`--- ${r.role}\n${logOf(r).slice(-6000)}\n${r.output().slice(-20000)}`);
    await Promise.all([client, node, seed].map((r) => r?.destroy()));
    removeTopology(`dn${tag}none`, Object.values(NS));
  });

  test('the node cannot be dialled from outside its NAT, and AutoNAT tells the node and the client so', async () => {
    // a TCP connect from the seed's namespace to the router's public address goes nowhere (dropped)
    assert.throws(() => inNs(NS.pub, ['timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${RA_WAN}/4001`]));
    await waitFor('AutoNAT: node private', () => logged(node, /"reachability":"private"/), 30_000, 500);
    await waitFor('AutoNAT: client private', () => logged(client, /"reachability":"private"/), 30_000, 500);
  });

  test('the first request goes through the relay, the hole punch makes the connection direct, requests go on', async () => {
    const api = client.info.api!;
    const nodeId = node.info.node_id!;
    const body = { peer_nodes_list: [nodeId], additional: {} };
    const r = post(api, 'mining_nodes', body);
    assert.equal(r.first.errcode, 0, JSON.stringify(r.first));
    // the node was reached through the relay (an inbound relayed connection is what starts DCUtR on its side)
    await waitFor('hole punch logged by the node', () => logged(node, /hole punch: direct connection/), 30_000, 300);
    let last: unknown;
    const peers = await waitFor(
      'the client sees the node at its router public address',
      () => {
        const p = post(api, 'peers/active', { peer_nodes_list: [], additional: {} });
        const list = (p.first.message?.peer_nodes_list ?? []) as Array<{ node_id: string; addr: string }>;
        last = list;
        const entry = list.find((e) => e.node_id === nodeId);
        return entry && entry.addr.startsWith(`${RA_WAN}:`) ? list : undefined;
      },
      45_000,
      500,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last)}`);
    });
    assert.ok(peers.length >= 2);
    // direct now: 600 requests, 24 at a time, all answered
    const load = post(api, 'mining_nodes', body, 600, 24);
    assert.equal(load.ok, 600, JSON.stringify(load));
    console.log(`# direct after the punch: ${load.rps} req/s (mining_nodes, 24 in flight, includes process start)`);
    // the relayed connection is closed after its grace period; the node stays reachable
    const again = post(api, 'mining_nodes', body);
    assert.equal(again.first.errcode, 0);
  });
});

describe('behind a symmetric NAT the punch fails and the relay carries on', { timeout: 300_000 }, () => {
  let seed: RoleProc;
  let node: RoleProc;
  let client: RoleProc;
  before(async () => {
    ({ seed, node, client } = await natNetwork(true));
  });
  after(async () => {
    await Promise.all([client, node, seed].map((r) => r?.destroy()));
    removeTopology(`dn${tag}none`, Object.values(NS));
  });

  test('requests keep working through the relay; the node logs the failed punch', async () => {
    const api = client.info.api!;
    const nodeId = node.info.node_id!;
    const body = { peer_nodes_list: [nodeId], additional: {} };
    assert.equal(post(api, 'mining_nodes', body).first.errcode, 0);
    await waitFor('the failed punch logged', () => logged(node, /hole punch failed/), 60_000, 500);
    const p = post(api, 'peers/active', { peer_nodes_list: [], additional: {} });
    const entry = (p.first.message?.peer_nodes_list as Array<{ node_id: string; addr: string }>).find((e) => e.node_id === nodeId);
    assert.ok(entry?.addr.startsWith(`${SEED_IP}:`), JSON.stringify(p.first));
    const load = post(api, 'mining_nodes', body, 300, 24);
    assert.equal(load.ok, 300, JSON.stringify(load));
    console.log(`# through the relay: ${load.rps} req/s (mining_nodes, 24 in flight, includes process start)`);
  });
});
