// The multiplexed request protocol (/dbc/rpc-mux/1.0.0) on in-memory libp2p streams: many requests on one stream,
// answered out of order and matched by id; per-request errors by id; a broken stream fails what is in flight.
import '../../src/p2p/polyfill.js';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { lpStream, streamPair } from '@libp2p/utils';
import { MuxChannel, serveMuxStream } from '../../src/p2p/mux.js';
import { parseReplyFrame, type RpcRequestFrame } from '../../src/p2p/rpc.js';
import type { NodeReply, NodeRequest } from '../../src/protocol/types.js';

const alive = setInterval(() => undefined, 1000);
after(() => clearInterval(alive));

const NODE = 'ab'.repeat(32);
const req = (task: string): NodeRequest => ({ route: 'tasks.detail', params: { task_id: task }, query: {}, body: { peer_nodes_list: [NODE], additional: {} } });
const base = (task: string, over: Partial<RpcRequestFrame> = {}) => ({ v: 1 as const, node_id: NODE, req: req(task), deadline_ms: 5000, ...over });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pair(
  handle: (r: NodeRequest) => Promise<NodeReply>,
  o: Partial<Parameters<typeof serveMuxStream>[1]> = {},
  client: ConstructorParameters<typeof MuxChannel>[1] = {},
) {
  const [c, s] = await streamPair();
  const served = serveMuxStream(s, { nodeId: NODE, handle, ...o });
  return { ch: new MuxChannel(c, client), served, server: s };
}

test('many requests on one stream, answered out of order, each reply to its caller', async () => {
  const { ch } = await pair(async (r) => {
    const n = Number(r.params.task_id);
    await sleep((50 - n) % 7);
    return { errcode: 0, message: { n } };
  });
  const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => ch.call(base(String(i)), AbortSignal.timeout(5000))));
  replies.forEach((f, i) => assert.deepEqual(f.ok && f.reply.message, { n: i }));
  assert.equal(ch.inflight, 0);
  ch.close();
});

test('per-request errors come back by id: wrong node, busy stream, handler failure, oversize reply', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const { ch } = await pair(
    async (r) => {
      if (r.params.task_id === 'boom') throw new Error('boom');
      if (r.params.task_id === 'big') return { errcode: 0, message: 'x'.repeat(5000) };
      if (r.params.task_id === 'slow') await gate;
      return { errcode: 0, message: 'ok' };
    },
    { maxInflightPerStream: 2, maxReplyBytes: 1000 },
  );
  const sig = () => AbortSignal.timeout(5000);
  const wrong = await ch.call(base('1', { node_id: 'cd'.repeat(32) }), sig());
  assert.equal(!wrong.ok && wrong.error.code, 'WRONG_NODE');
  const boom = await ch.call(base('boom'), sig());
  assert.deepEqual(!boom.ok && boom.error, { code: 'INTERNAL', message: 'boom' });
  const big = await ch.call(base('big'), sig());
  assert.equal(!big.ok && big.error.code, 'TOO_LARGE');
  const slow1 = ch.call(base('slow'), sig());
  const slow2 = ch.call(base('slow'), sig());
  await sleep(20);
  const busy = await ch.call(base('3'), sig());
  assert.equal(!busy.ok && busy.error.code, 'BUSY');
  release();
  assert.equal((await slow1).ok, true);
  assert.equal((await slow2).ok, true);
  // the stream still serves after all of that
  assert.equal((await ch.call(base('4'), sig())).ok, true);
  ch.close();
});

test('a request past its deadline is abandoned; the late reply is dropped and others are unaffected', async () => {
  const { ch } = await pair(async (r) => {
    if (r.params.task_id === 'late') await sleep(300);
    return { errcode: 0, message: r.params.task_id };
  });
  const late = ch.call(base('late'), AbortSignal.timeout(50));
  const quick = await ch.call(base('quick'), AbortSignal.timeout(5000));
  assert.equal(quick.ok && quick.reply.message, 'quick');
  await assert.rejects(late, (e: Error) => e.name === 'TimeoutError');
  await sleep(400);
  assert.equal(ch.inflight, 0);
  assert.equal((await ch.call(base('after'), AbortSignal.timeout(5000))).ok, true);
  ch.close();
});

test('a reply above the client limit breaks the channel: everything in flight fails, nothing hangs', async () => {
  const { ch } = await pair(
    async (r) => {
      if (r.params.task_id === 'other') await sleep(100);
      return { errcode: 0, message: r.params.task_id === 'big' ? 'y'.repeat(50_000) : 'ok' };
    },
    {},
    { maxReplyBytes: 10_000 },
  );
  const other = ch.call(base('other'), AbortSignal.timeout(5000));
  await assert.rejects(ch.call(base('big'), AbortSignal.timeout(5000)), /larger than 10000 bytes/);
  await assert.rejects(other, /larger than 10000 bytes/);
  assert.equal(ch.open, false);
  await assert.rejects(ch.call(base('again'), AbortSignal.timeout(5000)), /larger than/);
});

test('malformed frames: with an id the node answers BAD_FRAME by id; without one it closes the stream', async () => {
  const [c, s] = await streamPair();
  const served = serveMuxStream(s, { nodeId: NODE, handle: async () => ({ errcode: 0, message: 1 }) });
  const lp = lpStream(c);
  const enc = new TextEncoder();
  await lp.write(enc.encode(JSON.stringify({ v: 1, id: 7, node_id: NODE, req: { route: 'nope' }, deadline_ms: 1 })));
  const r1 = parseReplyFrame((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray());
  assert.deepEqual([r1.id, !r1.ok && r1.error.code], [7, 'BAD_FRAME']);
  await lp.write(enc.encode(JSON.stringify({ ...base('1') })));
  const r2 = parseReplyFrame((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray());
  assert.equal(!r2.ok && r2.error.message, 'id missing');
  await lp.write(enc.encode('garbage'));
  const r3 = parseReplyFrame((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray());
  assert.equal(!r3.ok && r3.error.code, 'BAD_FRAME');
  await served;
  assert.notEqual(s.writeStatus, 'writable');
});

test('a node stream that dies fails every request in flight at once', async () => {
  const { ch, server } = await pair(() => new Promise<NodeReply>(() => undefined));
  const a = ch.call(base('a'), AbortSignal.timeout(5000));
  const b = ch.call(base('b'), AbortSignal.timeout(5000));
  await sleep(20);
  const t0 = Date.now();
  server.abort(new Error('node went away'));
  await assert.rejects(a);
  await assert.rejects(b);
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(ch.open, false);
});
