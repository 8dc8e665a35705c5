// Two processes, real libp2p over TCP on 127.0.0.1: a `dbc node` child and a client host in this process. Fails
// loudly when the Node 20 polyfill is missing or the libp2p packages stop fitting together (streams drain with
// Promise.withResolvers, ping and yamux too).
import '../../src/p2p/polyfill.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { cryptoReady } from '../../src/auth/verify.js';
import { bindingDhtKey, decodeBinding, verifyBinding } from '../../src/p2p/binding.js';
import { createHost, loadOrCreatePeerKey, type Host } from '../../src/p2p/host.js';
import { NATIVE_WITH_RESOLVERS } from '../../src/p2p/polyfill.js';
import { P2PTransport } from '../../src/p2p/transport.js';
import { repoRoot, waitFor } from '../helpers/devnet.js';
import { dialAddr, LOOPBACK_LISTEN, startRole, type RoleProc } from '../helpers/p2p.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';

function pkgVersion(name: string, from = repoRoot): string {
  return (JSON.parse(readFileSync(join(from, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

/** every installed copy of a package under node_modules (nested ones too) */
function copiesOf(name: string, dir = join(repoRoot, 'node_modules'), depth = 0, out: string[] = []): string[] {
  const direct = join(dir, name, 'package.json');
  if (existsSync(direct)) out.push((JSON.parse(readFileSync(direct, 'utf8')) as { version: string }).version);
  if (depth > 3) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const sub = entry.name.startsWith('@') ? readdirSync(join(dir, entry.name)).map((n) => join(dir, entry.name, n)) : [join(dir, entry.name)];
    for (const pkg of sub) {
      const nested = join(pkg, 'node_modules');
      if (existsSync(nested)) copiesOf(name, nested, depth + 1, out);
    }
  }
  return out;
}

test('Node 20 gets Promise.withResolvers from our polyfill, and the libp2p packages are one compatible set', () => {
  assert.equal(typeof Promise.withResolvers, 'function', 'src/p2p/polyfill.ts did not install Promise.withResolvers');
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22) assert.equal(NATIVE_WITH_RESOLVERS, false, 'Node < 22 unexpectedly has Promise.withResolvers');
  const { promise, resolve } = Promise.withResolvers<number>();
  resolve(7);
  return promise.then((v) => assert.equal(v, 7));
});

test('installed libp2p majors are the ones this code is written for', () => {
  const want: Record<string, number> = {
    libp2p: 3,
    '@libp2p/tcp': 11,
    '@libp2p/identify': 4,
    '@libp2p/bootstrap': 12,
    '@libp2p/ping': 3,
    '@libp2p/kad-dht': 16,
    '@libp2p/crypto': 5,
    '@libp2p/peer-id': 6,
    '@libp2p/interface': 3,
    '@libp2p/utils': 7,
    '@libp2p/circuit-relay-v2': 4,
    '@chainsafe/libp2p-noise': 17,
    '@chainsafe/libp2p-yamux': 8,
    '@multiformats/multiaddr': 13,
  };
  for (const [name, major] of Object.entries(want)) {
    assert.equal(Number(pkgVersion(name).split('.')[0]), major, `${name} ${pkgVersion(name)}: expected major ${major}`);
  }
  // two copies of the interface package would split instanceof checks and event types between modules
  const interfaces = new Set(copiesOf('@libp2p/interface').map((v) => v.split('.')[0]));
  assert.deepEqual([...interfaces], ['3'], `@libp2p/interface majors installed: ${[...interfaces].join(', ')}`);
});

describe('two processes over libp2p', { timeout: 120_000 }, () => {
  let node: RoleProc;
  let host: Host;
  let transport: P2PTransport;
  let clientDir: string;

  before(async () => {
    await cryptoReady();
    node = await startRole('node', ['--listen', LOOPBACK_LISTEN, '--host', '127.0.0.1', '--name', 'smoke-node']);
    clientDir = mkdtempSync(join(os.tmpdir(), 'dbc-p2p-smoke-'));
    host = await createHost({
      role: 'client',
      privateKey: await loadOrCreatePeerKey(clientDir),
      listen: [LOOPBACK_LISTEN],
      seeds: [dialAddr(node)],
    });
    transport = new P2PTransport(host, { refreshMs: 500 });
    await transport.start();
  });

  after(async () => {
    await transport?.stop();
    await host?.stop();
    await node?.destroy();
    if (clientDir) rmSync(clientDir, { recursive: true, force: true });
  });

  test('dial, identify and ping the node process', async () => {
    const peer = peerIdFromString(node.info.peer_id);
    await waitFor('connection to the node', () => host.getConnections(peer).length > 0, 15_000, 50);
    const rtt = await host.services.ping.ping(peer, { signal: AbortSignal.timeout(5000) });
    assert.ok(rtt >= 0 && rtt < 5000, `ping ${rtt} ms`);
    // identify tells us what the node speaks
    let protocols: string[] = [];
    await waitFor(
      'identify',
      async () => {
        protocols = (await host.peerStore.get(peer)).protocols;
        return protocols.includes('/dbc/rpc/1.0.0');
      },
      10_000,
      50,
    ).catch(() => assert.fail(`node protocols after identify: ${protocols.join(' ')}`));
    for (const p of ['/dbc/rpc-mux/1.0.0', '/dbc/kad/1.0.0', '/ipfs/id/1.0.0', '/ipfs/ping/1.0.0']) assert.ok(protocols.includes(p), p);
  });

  test('the node pushes its signed binding; a request over /dbc/rpc/1.0.0 reaches GpuNode.handle', async () => {
    const nodeId = node.info.node_id!;
    const known = await waitFor('binding from the node', () => transport.knownNodes().find((n) => n.node_id === nodeId), 15_000, 50);
    assert.equal(known.name, 'smoke-node');
    const reply = await transport.request(
      nodeId,
      {
        route: 'mining_nodes.info',
        params: {},
        query: {},
        body: { peer_nodes_list: [nodeId], additional: {} },
      },
      { timeoutMs: 10_000 },
    );
    assert.equal(reply.errcode, 0, JSON.stringify(reply));
    assert.equal((reply.message as { version: string }).version, '0.4.1.8');
    // many at once on one connection, one stream each
    const many = await Promise.all(
      Array.from({ length: 50 }, () =>
        transport.request(
          nodeId,
          {
            route: 'tasks.list',
            params: {},
            query: {},
            body: { peer_nodes_list: [nodeId], additional: {} },
          },
          { timeoutMs: 10_000 },
        ),
      ),
    );
    assert.ok(many.every((r) => typeof r.errcode === 'number'));
    assert.equal(host.getConnections(peerIdFromString(node.info.peer_id)).length, 1);
  });

  test('the node put its binding in the DHT under /dbc/<node_id>', async () => {
    const nodeId = node.info.node_id!;
    const seen: string[] = [];
    const value = await waitFor(
      'DHT record',
      async () => {
        for await (const ev of host.services.dht.get(bindingDhtKey(nodeId), { signal: AbortSignal.timeout(3000) })) {
          seen.push(ev.name === 'QUERY_ERROR' ? `${ev.name}: ${ev.error.message}` : ev.name);
          if (ev.name === 'VALUE') return ev.value;
        }
        return undefined;
      },
      15_000,
      200,
    ).catch((err: Error) => {
      const rt = (host.services.dht as unknown as { routingTable?: { size: number } }).routingTable?.size;
      throw new Error(`${err.message}; query events: ${seen.join(', ')}; routing table size ${rt}`);
    });
    const check = verifyBinding(decodeBinding(value));
    assert.ok(check.ok, JSON.stringify(check));
    assert.equal(check.ok && check.binding.peer_id, node.info.peer_id);
    assert.ok(check.ok && check.binding.addrs.some((a) => multiaddr(a).toString().includes('/127.0.0.1/tcp/')));
  });
});
