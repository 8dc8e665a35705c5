// /peers/active and /peers/global come from the transport when it has a network (NodeTransport.peers), in the
// original's shape {"errcode":0,"message":{"peer_nodes_list":[{"node_id","addr"}]}}; without one they are empty.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildApi } from '../../src/api/server.js';
import type { NodeReply, NodeTransport, PeerEntry } from '../../src/protocol/types.js';

class PeeredTransport implements NodeTransport {
  asked: string[] = [];
  knownNodes() {
    return [];
  }
  async request(): Promise<NodeReply> {
    throw new Error('not used');
  }
  async peers(kind: 'active' | 'global'): Promise<PeerEntry[]> {
    this.asked.push(kind);
    return kind === 'active'
      ? [{ node_id: 'ab'.repeat(32), addr: '127.0.0.1:4001', peer_id: '12D3KooWA' }]
      : [{ node_id: '12D3KooWB', addr: '10.0.0.2:4001', peer_id: '12D3KooWB' }];
  }
}

test('/peers/active and /peers/global list what the transport knows', async () => {
  const t = new PeeredTransport();
  const app = await buildApi({ transport: t, logger: false });
  try {
    const active = await app.inject({ method: 'POST', url: '/api/v1/peers/active' });
    assert.equal(active.statusCode, 200);
    assert.deepEqual(JSON.parse(active.body), {
      errcode: 0,
      message: { peer_nodes_list: [{ node_id: 'ab'.repeat(32), addr: '127.0.0.1:4001', peer_id: '12D3KooWA' }] },
    });
    const global = await app.inject({ method: 'POST', url: '/api/v1/peers/global', payload: '{}' });
    assert.deepEqual(JSON.parse(global.body).message.peer_nodes_list[0].addr, '10.0.0.2:4001');
    assert.deepEqual(t.asked, ['active', 'global']);
    const bad = await app.inject({ method: 'POST', url: '/api/v1/peers/lan' });
    assert.equal(bad.statusCode, 400);
    assert.deepEqual(t.asked, ['active', 'global']);
  } finally {
    await app.close();
  }
});
