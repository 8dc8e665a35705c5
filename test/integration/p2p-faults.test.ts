// Bad input and faults on real libp2p hosts (one process, TCP on 127.0.0.1): every one ends in a clear envelope
// error or a closed stream, never a hung HTTP call or a crashed node. Plus a node behind "NAT" (announcing only its
// relayed address) reached through the seed's circuit relay.
import '../../src/p2p/polyfill.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server.js';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cryptoReady } from '../../src/auth/verify.js';
import { makeBinding } from '../../src/p2p/binding.js';
import { BindingDirectory } from '../../src/p2p/directory.js';
import { createHost, type Host } from '../../src/p2p/host.js';
import { RPC_MUX_PROTOCOL } from '../../src/p2p/mux.js';
import { parseReplyFrame, RPC_PROTOCOL } from '../../src/p2p/rpc.js';
import { NodeService } from '../../src/p2p/serve.js';
import { P2PTransport } from '../../src/p2p/transport.js';
import type { NodeReply, NodeRequest } from '../../src/protocol/types.js';
import { waitFor } from '../helpers/devnet.js';

const LISTEN = ['/ip4/127.0.0.1/tcp/0'];
const nodeKey = identityFromSeed('0x' + '31'.repeat(32));
const silentKey = identityFromSeed('0x' + '32'.repeat(32));
const natKey = identityFromSeed('0x' + '33'.repeat(32));
const body = (nodeId: string) => ({ peer_nodes_list: [nodeId], additional: {} });
const req = (nodeId: string, route: NodeRequest['route'] = 'tasks.list'): NodeRequest => ({ route, params: {}, query: {}, body: body(nodeId) });

async function handle(r: NodeRequest): Promise<NodeReply> {
  if (r.route === 'mining_nodes.info') return { errcode: 0, message: { blob: 'x'.repeat(100_000) } };
  return { errcode: 0, message: [] };
}

for (const rpcMode of ['stream', 'mux'] as const)
  describe(`faults on the request path (--rpc-mode ${rpcMode})`, { timeout: 120_000 }, () => {
    const hosts: Host[] = [];
    let seed: Host;
    let nodeHost: Host;
    let node: NodeService;
    let silent: Host;
    let natHost: Host;
    let nat: NodeService;
    let client: Host;
    let transport: P2PTransport;
    let app: FastifyInstance;
    const alive = setInterval(() => undefined, 1000);

    const newHost = async (o: Partial<Parameters<typeof createHost>[0]> & { role: 'seed' | 'node' | 'client' }) => {
      const h = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: LISTEN, ...o });
      hosts.push(h);
      return h;
    };

    before(async () => {
      await cryptoReady();
      seed = await newHost({ role: 'seed' });
      const seeds = [seed.getMultiaddrs()[0]!.toString()];
      await new BindingDirectory(seed, { serveList: true }).start();

      nodeHost = await newHost({ role: 'node', seeds });
      node = new NodeService({
        host: nodeHost,
        sign: nodeKey.sign,
        readTimeoutMs: 1000,
        node: { nodeId: nodeKey.nodeId, name: 'faulty', version: '0.4.1.8', handle },
      });
      await node.start();

      // a peer with a valid binding that accepts request streams and never answers
      silent = await newHost({ role: 'node', seeds });
      await silent.handle([RPC_PROTOCOL, RPC_MUX_PROTOCOL], () => undefined, { runOnLimitedConnection: true });

      // a node that announces only its relayed address
      natHost = await newHost({ role: 'node', seeds, relayOnly: true });
      nat = new NodeService({ host: natHost, sign: natKey.sign, node: { nodeId: natKey.nodeId, name: 'behind-nat', version: '0.4.1.8', handle } });
      await nat.start();

      client = await newHost({ role: 'client', seeds });
      transport = new P2PTransport(client, { refreshMs: 300, resolveTimeoutMs: 1000, rpcMode });
      await transport.start();
      transport.directory.offer(
        makeBinding({
          nodeId: silentKey.nodeId,
          sign: silentKey.sign,
          peerId: silent.peerId.toString(),
          addrs: silent.getMultiaddrs().map(String),
          version: '0.4.1.8',
          name: 'silent',
        }),
        'test',
      );
      app = await buildApi({ transport, logger: false, requestTimeoutMs: 800 });
      await waitFor('the node known', () => transport.knownNodes().some((n) => n.node_id === nodeKey.nodeId), 15_000, 50);
    });

    after(async () => {
      clearInterval(alive);
      await app?.close();
      await transport?.stop();
      await node?.stop();
      await nat?.stop();
      await Promise.all(
        hosts.map(async (h) => {
          await h.stop();
        }),
      );
    });

    const api = async (route: string, b: unknown) => {
      const res = await app.inject({ method: 'POST', url: `/api/v1/${route}`, payload: JSON.stringify(b) });
      return { status: res.statusCode, json: JSON.parse(res.body) as { errcode: number; message: unknown } };
    };

    test('a node that never answers: `<op> timeout` at the deadline', async () => {
      const t0 = Date.now();
      const r = await api('tasks', { ...body(silentKey.nodeId), session_id: 's', session_id_sign: 'x' });
      assert.deepEqual([r.status, r.json], [500, { errcode: -1, message: 'list task timeout' }]);
      assert.ok(Date.now() - t0 < 5000);
      await assert.rejects(transport.request(silentKey.nodeId, req(silentKey.nodeId), { timeoutMs: 300 }), (e: Error) => e.name === 'TimeoutError');
    });

    test('an oversize reply is refused unread: `<op> failed`, and the next request works', async () => {
      const small = new P2PTransport(client, { maxReplyBytes: 10_000, rpcMode });
      small.directory.offer(transport.directory.cache.get(nodeKey.nodeId), 'test');
      await assert.rejects(small.request(nodeKey.nodeId, req(nodeKey.nodeId, 'mining_nodes.info'), { timeoutMs: 5000 }), /larger than 10000 bytes/);
      const smallApi = await buildApi({ transport: small, logger: false });
      try {
        const res = await smallApi.inject({ method: 'POST', url: '/api/v1/mining_nodes', payload: JSON.stringify(body(nodeKey.nodeId)) });
        assert.equal(res.statusCode, 500);
        assert.deepEqual(JSON.parse(res.body), { errcode: -1, message: 'query node info failed: frame larger than 10000 bytes' });
      } finally {
        await smallApi.close();
      }
      const ok = await transport.request(nodeKey.nodeId, req(nodeKey.nodeId, 'mining_nodes.info'), { timeoutMs: 5000 });
      assert.equal(ok.errcode, 0);
    });

    test('a malformed frame on a real connection gets BAD_FRAME and a closed stream', async () => {
      const stream = await client.dialProtocol(peerIdFromString(nodeHost.peerId.toString()), RPC_PROTOCOL);
      const lp = lpStream(stream);
      await lp.write(new TextEncoder().encode('{"v":1,"req":{"route":"tasks.list"'));
      await stream.close();
      const reply = parseReplyFrame((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray());
      assert.equal(!reply.ok && reply.error.code, 'BAD_FRAME');
    });

    test('a peer that floods request streams: extra streams are reset, idle ones closed, the node keeps serving', async () => {
      const flooder = await newHost({ role: 'client' });
      await flooder.dial(nodeHost.getMultiaddrs()[0]!);
      const opened: Stream[] = [];
      let refused = 0;
      await Promise.all(
        Array.from({ length: 1100 }, async () => {
          try {
            const s = await flooder.dialProtocol(nodeHost.peerId, RPC_PROTOCOL, { maxOutboundStreams: 5000, signal: AbortSignal.timeout(10_000) });
            opened.push(s);
          } catch {
            refused++;
          }
        }),
      );
      // meanwhile other peers are served
      const during = await transport.request(nodeKey.nodeId, req(nodeKey.nodeId), { timeoutMs: 5000 });
      assert.equal(during.errcode, 0);
      // the node closes streams that never send a request (readTimeoutMs 1 s here)
      await waitFor('idle flood streams closed by the node', () => opened.every((s) => s.status !== 'open' || s.remoteWriteStatus !== 'writable'), 15_000, 200);
      assert.ok(opened.length + refused === 1100);
      const afterFlood = await transport.request(nodeKey.nodeId, req(nodeKey.nodeId), { timeoutMs: 5000 });
      assert.equal(afterFlood.errcode, 0);
      await flooder.stop();
    });

    test('an unknown node and a forged binding: create node request failed, quickly', async () => {
      const t0 = Date.now();
      const r = await api('tasks', { ...body('ab'.repeat(32)), session_id: 's', session_id_sign: 'x' });
      assert.deepEqual([r.status, r.json], [400, { errcode: -32701, message: 'create node request failed' }]);
      assert.ok(Date.now() - t0 < 3000);
      const forged = {
        ...makeBinding({ nodeId: nodeKey.nodeId, sign: silentKey.sign, peerId: silent.peerId.toString(), addrs: [], version: 'x', name: 'evil' }),
      };
      assert.match(transport.directory.offer(forged, 'test'), /^rejected: bad signature/);
      assert.equal(transport.directory.cache.get(nodeKey.nodeId)?.peer_id, nodeHost.peerId.toString());
    });

    test('a node behind NAT is reached through the seed relay', async () => {
      const b = await waitFor(
        'relayed binding',
        () => {
          const got = transport.directory.cache.get(natKey.nodeId);
          return got && got.addrs.length > 0 && got.addrs.every((a) => a.includes('/p2p-circuit')) ? got : undefined;
        },
        20_000,
        100,
      );
      assert.ok(b.addrs[0]!.includes(seed.peerId.toString()));
      const reply = await transport.request(natKey.nodeId, req(natKey.nodeId), { timeoutMs: 10_000 });
      assert.deepEqual(reply, { errcode: 0, message: [] });
      const conns = client.getConnections(natHost.peerId);
      assert.ok(
        conns.some((c) => c.remoteAddr.toString().includes('/p2p-circuit')),
        conns.map((c) => c.remoteAddr.toString()).join(' '),
      );
    });
  });
