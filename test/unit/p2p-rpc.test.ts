// The request protocol on a pair of in-memory libp2p streams: one request frame, one reply frame; size limits
// both ways; malformed frames answered BAD_FRAME; a silent peer or node never hangs either side.
import '../../src/p2p/polyfill.js';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { lpStream, streamPair } from '@libp2p/utils';
import { callOnStream, encodeFrame, FrameError, parseReplyFrame, parseRequestFrame, serveStream, type RpcRequestFrame } from '../../src/p2p/rpc.js';
import type { NodeReply, NodeRequest } from '../../src/protocol/types.js';

const NODE = 'ab'.repeat(32);
const req: NodeRequest = {
  route: 'tasks.list',
  params: {},
  query: { a: 'b' },
  body: { peer_nodes_list: [NODE], additional: {}, session_id: 's', session_id_sign: 'x' },
};
const frame = (over: Partial<RpcRequestFrame> = {}): RpcRequestFrame => ({ v: 1, node_id: NODE, req, deadline_ms: 5000, ...over });
const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

test('request frames are checked field by field before the node sees them', () => {
  assert.deepEqual(parseRequestFrame(encodeFrame(frame())).req, req);
  const bad = (v: unknown, re: RegExp) => {
    assert.throws(
      () => parseRequestFrame(typeof v === 'string' ? new TextEncoder().encode(v) : bytes(v)),
      (e: unknown) => {
        assert.ok(e instanceof FrameError);
        assert.equal(e.code, 'BAD_FRAME');
        assert.match(e.message, re);
        return true;
      },
    );
  };
  bad('{not json', /not JSON/);
  bad([1], /not a dbc rpc v1 frame/);
  bad({ ...frame(), v: 2 }, /not a dbc rpc v1 frame/);
  bad({ ...frame(), node_id: 5 }, /node_id/);
  bad({ ...frame(), deadline_ms: -1 }, /deadline_ms/);
  bad({ ...frame(), req: { ...req, route: 'tasks.nope' } }, /unknown route/);
  bad({ ...frame(), req: { ...req, route: '__proto__' } }, /unknown route/);
  bad({ ...frame(), req: { ...req, route: 'constructor' } }, /unknown route/);
  bad({ ...frame(), req: { ...req, params: { task_id: 5 } } }, /params or query/);
  bad({ ...frame(), req: { ...req, body: [] } }, /body is not an object/);
  bad({ ...frame(), req: { ...req, body: { ...req.body, peer_nodes_list: [1] } } }, /peer_nodes_list/);
  bad({ ...frame(), req: { ...req, body: { ...req.body, additional: 'x' } } }, /additional/);
  bad({ ...frame(), req: { ...req, body: { ...req.body, wallet: 7 } } }, /wallet is not a string/);
  bad({ ...frame(), req: { ...req, body: { ...req.body, multisig_accounts: { wallets: ['a'], threshold: 2, signs: [] } } } }, /multisig/);
  bad({ ...frame(), req: { ...req, body: { ...req.body, multisig_accounts: { wallets: ['a'], threshold: '1', signs: [{ wallet: 'a' }] } } } }, /multisig/);
  bad({ ...frame(), req: { ...req, image_server: { id: 'x', host: 'h', port: 0, module: 'm' } } }, /image_server/);
  bad({ ...frame(), id: -1 }, /id invalid/);
  const withImage = { ...frame(), req: { ...req, image_server: { id: 'x', host: 'h', port: 873, module: 'm' } } };
  assert.deepEqual(parseRequestFrame(bytes(withImage)).req, withImage.req);
});

test('reply frames must carry an errcode or an error', () => {
  assert.deepEqual(parseReplyFrame(bytes({ v: 1, ok: true, reply: { errcode: 0, message: 'x' } })), { v: 1, ok: true, reply: { errcode: 0, message: 'x' } });
  assert.throws(() => parseReplyFrame(bytes({ v: 1, ok: true, reply: { message: 'x' } })), /errcode/);
  assert.throws(() => parseReplyFrame(bytes({ v: 1, ok: false })), /malformed/);
  assert.throws(() => parseReplyFrame(bytes({ ok: true })), /not a dbc rpc v1 reply/);
});

async function exchange(
  handle: (r: NodeRequest) => Promise<NodeReply>,
  o: { serve?: Partial<Parameters<typeof serveStream>[1]>; call?: Parameters<typeof callOnStream>[2]; frame?: RpcRequestFrame } = {},
) {
  const [client, server] = await streamPair();
  const served = serveStream(server, { nodeId: NODE, handle, ...o.serve });
  try {
    return await callOnStream(client, o.frame ?? frame(), o.call);
  } finally {
    await served;
  }
}

test('one request, one reply; the node sees a copy of the request', async () => {
  let seen: NodeRequest | undefined;
  const r = await exchange(async (got) => {
    seen = got;
    return { errcode: 0, message: { ok: 1 }, operation_id: 'op1' };
  });
  assert.deepEqual(r, { v: 1, ok: true, reply: { errcode: 0, message: { ok: 1 }, operation_id: 'op1' } });
  assert.deepEqual(seen, req);
});

test('a request for another node, a busy node and a failing handler are answered with errors', async () => {
  const ok = async () => ({ errcode: 0, message: 'x' });
  const wrong = await exchange(ok, { frame: frame({ node_id: 'cd'.repeat(32) }) });
  assert.equal(!wrong.ok && wrong.error.code, 'WRONG_NODE');
  const busy = await exchange(ok, { serve: { busy: () => true } });
  assert.equal(!busy.ok && busy.error.code, 'BUSY');
  const boom = await exchange(async () => {
    throw new Error('boom');
  });
  assert.deepEqual(!boom.ok && boom.error, { code: 'INTERNAL', message: 'boom' });
});

test('an oversize reply: the node replaces it with TOO_LARGE; a client with a lower limit refuses it unread', async () => {
  const big = async () => ({ errcode: 0, message: 'x'.repeat(200_000) });
  const capped = await exchange(big, { serve: { maxReplyBytes: 100_000 } });
  assert.deepEqual(!capped.ok && capped.error.code, 'TOO_LARGE');
  await assert.rejects(exchange(big, { call: { maxReplyBytes: 50_000 } }), (e: unknown) => {
    assert.ok(e instanceof FrameError, String(e));
    assert.equal(e.code, 'TOO_LARGE');
    return true;
  });
});

test('an oversize request is refused by the client before sending, and by the node unread', async () => {
  const huge = frame({ req: { ...req, body: { ...req.body, additional: { blob: 'y'.repeat(300_000) } } } });
  await assert.rejects(
    exchange(async () => ({ errcode: 0, message: 1 }), { frame: huge, call: { maxRequestBytes: 100_000 } }),
    /request larger than/,
  );
  const r = await exchange(async () => ({ errcode: 0, message: 1 }), { frame: huge, serve: { maxRequestBytes: 100_000 } }).catch((e: Error) => e);
  // the node answers TOO_LARGE when the stream still lets it, else the stream is simply closed: never a hang
  if (r instanceof Error) assert.match(r.message, /./);
  else assert.equal(!r.ok && r.error.code, 'TOO_LARGE');
});

test('malformed bytes on the wire get BAD_FRAME', async () => {
  const [client, server] = await streamPair();
  const served = serveStream(server, { nodeId: NODE, handle: async () => ({ errcode: 0, message: 1 }) });
  const lp = lpStream(client);
  await lp.write(new TextEncoder().encode('{"v":1,"node_id":'));
  await client.close();
  const reply = parseReplyFrame((await lp.read()).subarray());
  assert.equal(!reply.ok && reply.error.code, 'BAD_FRAME');
  await served;
});

test('a peer that never sends its request is dropped after readTimeoutMs; a node that never answers hits the deadline', async () => {
  // AbortSignal.timeout timers do not keep the event loop alive; sockets do in a real process
  const alive = setInterval(() => undefined, 1000);
  after(() => clearInterval(alive));
  const [client, server] = await streamPair();
  const t0 = Date.now();
  await serveStream(server, { nodeId: NODE, handle: async () => ({ errcode: 0, message: 1 }), readTimeoutMs: 200 });
  assert.ok(Date.now() - t0 < 2000);
  assert.notEqual(server.status, 'open');
  client.abort(new Error('done'));

  const never = new Promise<NodeReply>(() => undefined);
  const [c2, s2] = await streamPair();
  void serveStream(s2, { nodeId: NODE, handle: () => never });
  const t1 = Date.now();
  await assert.rejects(callOnStream(c2, frame(), { signal: AbortSignal.timeout(300) }), (e: Error) => e.name === 'TimeoutError' || e.name === 'AbortError');
  assert.ok(Date.now() - t1 < 2000);
  s2.abort(new Error('done'));
});

test('the node holds the request deadline: a handler slower than deadline_ms is answered `<op> timeout` when it passes', async () => {
  const alive = setInterval(() => undefined, 1000);
  after(() => clearInterval(alive));
  const never = new Promise<NodeReply>(() => undefined);
  let timedOut: NodeRequest | undefined;
  const { replyTo } = await import('../../src/p2p/rpc.js');
  const t0 = Date.now();
  const reply = await replyTo(frame({ deadline_ms: 200, id: 7 }), { nodeId: NODE, handle: () => never, onDeadline: (r) => (timedOut = r) });
  const took = Date.now() - t0;
  assert.ok(took >= 190 && took < 2000, `answered after ${took} ms`);
  assert.deepEqual(reply, { v: 1, id: 7, ok: true, reply: { errcode: -1, message: 'list task timeout' } });
  assert.equal(timedOut?.route, 'tasks.list');
  // a handler within its deadline is answered as it is
  const fast = await replyTo(frame({ deadline_ms: 5000 }), { nodeId: NODE, handle: async () => ({ errcode: 0, message: 'ok' }) });
  assert.deepEqual(fast, { v: 1, ok: true, reply: { errcode: 0, message: 'ok' } });
});
