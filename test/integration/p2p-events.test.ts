// Events and tickets through the real deployment: seed, GPU node and client gateway as three processes on loopback.
// The client opens a /dbc/channel/1.0.0 stream to the node; an image download's operation is pushed to the
// renter's SSE stream as it happens (no polling in the chain); a reused or forged ticket is refused by the node
// through the client; another renter's stream shows nothing; a console ticket for a VM that does not run is refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cliPath, post, signedBody, waitFor } from '../helpers/devnet.js';
import { LOOPBACK_LISTEN, seedArgs, startRole, type RoleProc } from '../helpers/p2p.js';
import { closeAllWebSockets, sse, wsOpen, type WsRefusal } from '../helpers/streams.js';

const renterSeed = `0x${randomBytes(32).toString('hex')}`;
const renter = identityFromSeed(renterSeed);
const otherSeed = `0x${randomBytes(32).toString('hex')}`;

describe('events over libp2p: seed, node and client as processes', { timeout: 120_000 }, () => {
  let seed: RoleProc;
  let node: RoleProc;
  let client: RoleProc;
  let api: string;
  let nodeId: string;
  const A = (additional: Record<string, unknown> = {}) => signedBody(nodeId, renterSeed, additional);
  const B = (additional: Record<string, unknown> = {}) => signedBody(nodeId, otherSeed, additional);

  before(async () => {
    seed = await startRole('seed', ['--listen', LOOPBACK_LISTEN]);
    [node, client] = await Promise.all([
      startRole('node', ['--listen', LOOPBACK_LISTEN, '--host', '127.0.0.1', '--name', 'events-node', ...seedArgs([seed])]),
      startRole('client', ['--listen', LOOPBACK_LISTEN, '--http-port', '0', '--refresh', '0.5', '--local-image-server', ...seedArgs([seed])]),
    ]);
    api = client.info.api!;
    nodeId = node.info.node_id!;
    for (const w of [renter.address, identityFromSeed(otherSeed).address]) {
      execFileSync(process.execPath, [cliPath, 'rental', 'grant', '--data-dir', node.dataDir, '--wallet', w, '--days', '1'], { stdio: 'pipe' });
    }
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(client.dataDir, 'image-server', 'ev.qcow2'), '4M']);
    await waitFor(
      'the node known to the client',
      async () => {
        const r = await post(api, 'mining_nodes', { peer_nodes_list: [], additional: {} });
        return (r.body.message.mining_nodes as Array<{ node_id: string }>).some((n) => n.node_id === nodeId);
      },
      30_000,
      200,
    );
  });

  after(async () => {
    closeAllWebSockets();
    await Promise.all([client, node, seed].map((r) => r?.destroy()));
  });

  test("an operation's progress arrives on the renter's stream through the client; another renter's stays empty", async () => {
    const t = await post(api, 'events/ticket', A());
    assert.equal(t.body.errcode, 0, t.text);
    const stream = await sse(`${api}${t.body.message.url as string}`);
    assert.equal(stream.status, 200);
    const tb = await post(api, 'events/ticket', B());
    const other = await sse(`${api}${tb.body.message.url as string}`);
    assert.equal(other.status, 200);
    const start = await post(api, 'images/download', A({ image_server: 'ID_1', image_filename: 'ev.qcow2', local_dir: '/data' }));
    assert.equal(start.body.errcode, 0, start.text);
    const opId = start.body.operation_id as string;
    const done = await stream.next((e) => e.data.type === 'operation.finished' && e.data.operation_id === opId, 60_000, 'the download finished by event');
    assert.equal(done.data.status, 'done');
    assert.equal(done.data.progress, 100);
    assert.ok(stream.events.some((e) => e.data.type === 'operation.started' && e.data.operation_id === opId));
    // resume through the client: after the started event, the finished one comes again, not the started one
    const started = stream.events.find((e) => e.data.type === 'operation.started' && e.data.operation_id === opId)!;
    const t2 = await post(api, 'events/ticket', A());
    const resumed = await sse(`${api}${t2.body.message.url as string}`, started.id);
    await resumed.next((e) => e.id === done.id, 10_000, 'the finished event again');
    assert.ok(!resumed.events.some((e) => e.id === started.id));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(other.events.length, 0, JSON.stringify(other.events));
    for (const s of [stream, other, resumed]) s.close();
  });

  test('a reused or forged ticket is refused by the node through the client; so is a console for no running VM', async () => {
    const t = await post(api, 'events/ticket', A());
    const url = `${api}${t.body.message.url as string}`;
    const first = await sse(url);
    assert.equal(first.status, 200);
    first.close();
    const again = await sse(url);
    assert.equal(again.status, 403);
    assert.deepEqual(JSON.parse(again.refusal), { errcode: -3, message: 'ticket is invalid or expired' });
    const forged = await sse(`${api}/api/v1/events?ticket=${'A'.repeat(43)}&node_id=${nodeId}`);
    assert.equal(forged.status, 403);
    const ws = (await wsOpen(`${api.replace(/^http/, 'ws')}/api/v1/console?ticket=${'B'.repeat(43)}&node_id=${nodeId}`).catch(
      (e: WsRefusal) => e,
    )) as WsRefusal;
    assert.equal(ws.status, 403);
    const c = await post(api, 'tasks/console/abcdefghijklmnopqrstuv', A());
    assert.deepEqual(c.body, { errcode: -3, message: 'task_id not exist' });
  });
});
