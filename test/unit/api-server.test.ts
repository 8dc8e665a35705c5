import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { InProcessTransport } from '../../src/api/in-process.js';
import { buildApi } from '../../src/api/server.js';
import { DbcError, NodeErrors } from '../../src/protocol/errors.js';
import { ROUTES } from '../../src/protocol/routes.js';
import type { NodeReply, NodeRequest, NodeTransport } from '../../src/protocol/types.js';

const NODE = '5e'.repeat(32);
const WALLET = { wallet: '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY', nonce: 'n1', sign: '0xabc' };

type Answer = (req: NodeRequest) => Promise<NodeReply>;

/** Records every request and answers with `answer` (default: echo the request back). */
class RecordingTransport implements NodeTransport {
  readonly calls: Array<{ nodeId: string; req: NodeRequest; timeoutMs: number | undefined }> = [];
  constructor(private readonly answer: Answer = async (req) => ({ errcode: 0, message: { echo: req } })) {}
  knownNodes() {
    return [{ node_id: NODE, name: 'gpu-1', version: '0.1.0' }];
  }
  request(nodeId: string, req: NodeRequest, opts?: { timeoutMs?: number }): Promise<NodeReply> {
    this.calls.push({ nodeId, req, timeoutMs: opts?.timeoutMs });
    return this.answer(req);
  }
}

async function withApi(
  transport: NodeTransport,
  fn: (app: FastifyInstance) => Promise<void>,
  extra: { bodyLimit?: number; requestTimeoutMs?: number; authBudget?: { limit?: number; windowMs?: number } } = {},
): Promise<void> {
  const app = await buildApi({ transport, logger: false, ...extra });
  try {
    await fn(app);
  } finally {
    await app.close();
  }
}

const body = (extra: Record<string, unknown> = {}) => JSON.stringify({ peer_nodes_list: [NODE], additional: {}, ...WALLET, ...extra });

async function post(app: FastifyInstance, url: string, payload?: string, headers: Record<string, string> = {}) {
  const res = await app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json', ...headers } });
  return { status: res.statusCode, headers: res.headers, raw: res.body, json: JSON.parse(res.body) as { errcode: number; message: unknown } };
}

test('version route, CORS and content type on every reply', async () => {
  await withApi(new RecordingTransport(), async (app) => {
    for (const method of ['GET', 'POST', 'PUT'] as const) {
      const res = await app.inject({ method, url: '/api/v1/' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.body, '{"errcode":0,"message":{"client_version":"0.4.1.8"}}');
      assert.equal(res.headers['access-control-allow-origin'], '*');
      assert.equal(res.headers['content-type'], 'application/json');
    }
    const err = await post(app, '/api/v1/nothing', body());
    assert.equal(err.headers['access-control-allow-origin'], '*');
    assert.equal(err.headers['content-type'], 'application/json');
  });
});

test('a node reply passes through byte-equal with HTTP 200, node errors included', async () => {
  const replies: NodeReply[] = [
    { errcode: 0, message: { task_id: '7abc', status: 'creating', login: { ssh_port: '5684', note: 'a "quoted" ü' } } },
    { errcode: -3, message: 'task_id not exist' },
  ];
  for (const reply of replies) {
    await withApi(new RecordingTransport(async () => reply), async (app) => {
      const res = await post(app, '/api/v1/tasks/7abc', body());
      assert.equal(res.status, 200);
      assert.equal(res.raw, JSON.stringify(reply));
    });
  }
});

test('the NodeRequest carries route, raw params, query and the parsed body to peer_nodes_list[0]', async () => {
  const t = new RecordingTransport();
  await withApi(t, async (app) => {
    const res = await post(
      app,
      '/api/v1/tasks/restart/7AbCdEfGhIjKlMnOpQrS?force_reboot=true',
      body({ additional: { x: '1' }, rent_order: '37', unknown_key: 1, peer_nodes_list: [NODE, 'ignored'] }),
    );
    assert.equal(res.status, 200);
    assert.equal(t.calls.length, 1);
    assert.equal(t.calls[0]!.nodeId, NODE);
    assert.equal(t.calls[0]!.timeoutMs, 30_000);
    assert.deepEqual(t.calls[0]!.req, {
      route: 'tasks.restart',
      params: { task_id: '7AbCdEfGhIjKlMnOpQrS' },
      query: { force_reboot: 'true' },
      body: { peer_nodes_list: [NODE], additional: { x: '1' }, ...WALLET, rent_order: '37' },
    });
  });
});

test('20-char and path-like task ids go to the node raw (the node validates them)', async () => {
  const t = new RecordingTransport();
  await withApi(t, async (app) => {
    for (const [url, id] of [
      ['/api/v1/tasks/delete/abcdefghij0123456789', 'abcdefghij0123456789'],
      ['/api/v1/tasks/delete/..%2F..%2Fetc%2Fpasswd', '..%2F..%2Fetc%2Fpasswd'],
      ['/api/v1/tasks/start/.%2E%2Froot', '.%2E%2Froot'],
    ] as const) {
      assert.equal((await post(app, url, body())).status, 200);
      assert.equal(t.calls.at(-1)!.req.params.task_id, id);
    }
  });
});

test('a body without any content type is read like the original', async () => {
  const t = new RecordingTransport();
  await withApi(t, async (app) => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/tasks', payload: body() });
    assert.equal(res.statusCode, 200);
    const form = await post(app, '/api/v1/tasks', body(), { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(form.status, 200);
    assert.equal(t.calls.length, 2);
  });
});

test('envelope errors: status, errcode and text', async () => {
  const t = new RecordingTransport();
  await withApi(t, async (app) => {
    const cases: Array<[string, string | undefined, number, number, string | RegExp]> = [
      ['/api/v1/tasks', undefined, 400, -25, 'http request body is empty'],
      ['/api/v1/tasks', '{bad', 400, -25, /^json parse error: /],
      ['/api/v1/tasks', '[]', 400, -25, 'invalid json'],
      ['/api/v1/tasks', '{"additional":{}}', 400, -25, 'has no peer_nodes_list'],
      ['/api/v1/tasks', '{"peer_nodes_list":[],"additional":{}}', 400, -25, 'peer_nodeid is empty'],
      ['/api/v1/tasks', '{"peer_nodes_list":[""],"additional":{}}', 400, -25, 'peer_nodeid is empty'],
      ['/api/v1/tasks', JSON.stringify({ peer_nodes_list: [NODE], additional: {} }), 400, -25, 'wallet_sign and multisig_wallets all invalid'],
      ['/api/v1/tasks/start', JSON.stringify({ peer_nodes_list: [NODE], additional: {} }), 400, -25, 'session_id and wallet all invalid'],
      ['/api/v1/tasks', body({ peer_nodes_list: ['not-a-node'] }), 400, -32701, 'create node request failed'],
      ['/api/v1/tasks/a/b/c', body(), 400, -32600, 'invalid requests uri'],
      ['/api/v1/tasks/reboot/T1', body(), 500, -32701, 'Unhandled request'],
      ['/api/v1/stat', body(), 500, -32701, 'Unhandled request'],
      ['/api/v1/monitor', body(), 404, -32601, 'not support uri:/api/v1/monitor'],
      ['/api/v1/lan/testnet1', '{"peer_nodes_list":[],"additional":{}}', 400, -25, 'network name not exist'],
      ['/api/v1/lan/create', '{"peer_nodes_list":[],"additional":{}}', 400, -25, 'peer_nodeid is empty'],
      ['/other', body(), 400, -32600, 'request uri is invalid, uri:/other'],
    ];
    for (const [url, payload, status, errcode, message] of cases) {
      const res = await post(app, url, payload);
      assert.equal(res.status, status, `${url} ${payload}`);
      assert.equal(res.json.errcode, errcode, `${url} ${payload}`);
      if (typeof message === 'string') assert.equal(res.json.message, message);
      else assert.match(String(res.json.message), message);
    }
    const get = await app.inject({ method: 'GET', url: '/api/v1/tasks' });
    assert.equal(get.statusCode, 400);
    assert.deepEqual(JSON.parse(get.body), { errcode: -32600, message: 'only support POST request' });
    assert.equal(t.calls.length, 0, 'no refused request reaches the node');
  });
});

test('an oversize body is a 413 envelope', async () => {
  await withApi(
    new RecordingTransport(),
    async (app) => {
      const res = await post(app, '/api/v1/tasks', body({ additional: { pad: 'x'.repeat(4096) } }));
      assert.equal(res.status, 413);
      assert.equal(res.json.errcode, -25);
      assert.equal(res.json.message, 'http request body is too large (limit 1024 bytes)');
    },
    { bodyLimit: 1024 },
  );
});

test('fastify-level refusals come out as the DBC envelope', async () => {
  await withApi(new RecordingTransport(), async (app) => {
    const badUrl = await post(app, '/api/v1/tasks/%zz', body());
    assert.equal(badUrl.status, 400);
    assert.equal(badUrl.json.errcode, -32600);
    assert.equal(typeof badUrl.json.message, 'string');
    // a request target that the router cannot place still gets our answer (not-found handler)
    const star = await app.inject({ method: 'OPTIONS', url: '*' });
    assert.equal(star.headers['content-type'], 'application/json');
    assert.notEqual(JSON.parse(star.body).errcode, 0);
  });
});

test('a malformed HTTP request gets a 400 envelope on the socket', async () => {
  await withApi(new RecordingTransport(), async (app) => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as net.AddressInfo;
    const raw = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('POST /api/v1/tasks HTTP/1.1\r\nContent-Length: abc\r\n\r\n'));
      let data = '';
      s.on('data', (d: Buffer) => (data += d.toString()));
      s.on('end', () => resolve(data));
      s.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 400 /);
    const json = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { errcode: number; message: string };
    assert.equal(json.errcode, -32600);
    assert.match(raw, /Access-Control-Allow-Origin: \*/);
  });
});

test('a node that never answers gives `create task timeout` within the deadline', async () => {
  const t = new RecordingTransport(() => new Promise<NodeReply>(() => {}));
  await withApi(
    t,
    async (app) => {
      const started = Date.now();
      const res = await post(app, '/api/v1/tasks/start', body());
      const elapsed = Date.now() - started;
      assert.equal(res.status, 500);
      assert.deepEqual(res.json, { errcode: -1, message: 'create task timeout' });
      assert.ok(elapsed >= 140 && elapsed < 2000, `answered after ${elapsed} ms`);
      assert.equal(t.calls[0]!.timeoutMs, 150);
    },
    { requestTimeoutMs: 150 },
  );
});

test('transport failures: TimeoutError, DbcError and other errors', async () => {
  const timeout = new RecordingTransport(async () => {
    const e = new Error('late');
    e.name = 'TimeoutError';
    throw e;
  });
  await withApi(timeout, async (app) => {
    const res = await post(app, '/api/v1/tasks/poweroff/T1', body());
    assert.deepEqual([res.status, res.json], [500, { errcode: -1, message: 'stop task timeout' }]);
  });
  const unknown = new RecordingTransport(async () => {
    throw new DbcError('DBC_ERR_NODE_UNKNOWN', -32701, 'create node request failed', 400);
  });
  await withApi(unknown, async (app) => {
    const res = await post(app, '/api/v1/tasks', body());
    assert.deepEqual([res.status, res.json], [400, { errcode: -32701, message: 'create node request failed' }]);
  });
  const broken = new RecordingTransport(async () => {
    throw new Error('stream reset');
  });
  await withApi(broken, async (app) => {
    const res = await post(app, '/api/v1/mining_nodes/session_id', body());
    assert.deepEqual([res.status, res.json], [500, { errcode: -1, message: 'query node session_id failed: stream reset' }]);
  });
  const garbage = new RecordingTransport(async () => 'not an envelope' as unknown as NodeReply);
  await withApi(garbage, async (app) => {
    const res = await post(app, '/api/v1/tasks', body());
    assert.deepEqual([res.status, res.json], [500, { errcode: -1, message: 'response parse error' }]);
  });
});

test('mining_nodes without a peer lists the known network; with a peer it asks the node without credentials', async () => {
  const t = new RecordingTransport();
  await withApi(t, async (app) => {
    const list = await post(app, '/api/v1/mining_nodes', '{"peer_nodes_list":[],"additional":{}}');
    assert.equal(list.status, 200);
    assert.deepEqual(list.json, { errcode: 0, message: { mining_nodes: [{ node_id: NODE, name: 'gpu-1', version: '0.1.0' }] } });
    const info = await post(app, '/api/v1/mining_nodes', JSON.stringify({ peer_nodes_list: [NODE], additional: {} }));
    assert.equal(info.status, 200);
    assert.equal(t.calls.length, 1);
    assert.equal(t.calls[0]!.req.route, 'mining_nodes.info');
  });
});

test('tasks/logs: client-side flag and line_num rules', async () => {
  const t = new RecordingTransport();
  await withApi(t, async (app) => {
    const sent = async (q: string) => {
      const res = await post(app, `/api/v1/tasks/logs/T1${q}`, body());
      assert.equal(res.status, 200, q);
      return t.calls.at(-1)!.req.query;
    };
    assert.deepEqual(await sent(''), { flag: 'tail', line_num: '100' });
    assert.deepEqual(await sent('?line_num=5'), { flag: 'tail', line_num: '100' }); // no flag: line_num ignored
    assert.deepEqual(await sent('?flag=head'), { flag: 'head', line_num: '100' });
    assert.deepEqual(await sent('?flag=head&line_num=7'), { flag: 'head', line_num: '7' });
    assert.deepEqual(await sent('?flag=tail&line_num=101'), { flag: 'tail', line_num: '99' });
    assert.deepEqual(await sent('?flag=tail&line_num=100'), { flag: 'tail', line_num: '100' });

    const refused = async (q: string, message: string) => {
      const res = await post(app, `/api/v1/tasks/logs/T1${q}`); // no body: the query checks come first
      assert.deepEqual([res.status, res.json], [400, { errcode: -25, message }], q);
    };
    await refused('?flag=middle', 'head_or_tail is invalid"');
    await refused('?flag=head&line_num=0', 'invalid line num');
    await refused('?flag=head&line_num=-4', 'invalid line num');
    await refused('?flag=head&line_num=abc', 'invalid line num');
  });
});

test('peers are answered locally', async () => {
  const t = new RecordingTransport();
  await withApi(t, async (app) => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/peers/active' });
    assert.equal(res.body, '{"errcode":0,"message":{"peer_nodes_list":[]}}');
    const bad = await post(app, '/api/v1/peers/lan');
    assert.deepEqual([bad.status, bad.json], [400, { errcode: -25, message: 'invalid option. the option is active or global' }]);
    assert.equal(t.calls.length, 0);
  });
});

test('openapi.json documents every route', async () => {
  await withApi(new RecordingTransport(), async (app) => {
    for (const method of ['GET', 'POST'] as const) {
      const res = await app.inject({ method, url: '/api/v1/openapi.json' });
      assert.equal(res.statusCode, 200);
      const doc = JSON.parse(res.body) as { openapi: string; paths: Record<string, { post?: { operationId: string; requestBody: unknown } }> };
      assert.match(doc.openapi, /^3\.0\./);
      for (const route of Object.values(ROUTES)) {
        assert.ok(doc.paths[route.path]?.post, `missing ${route.path}`);
        assert.equal(doc.paths[route.path]!.post!.operationId, route.id);
      }
      const create = JSON.stringify(doc.paths['/api/v1/tasks/start']!.post!.requestBody);
      assert.match(create, /image_name/);
      assert.match(create, /peer_nodes_list/);
    }
  });
});

test('InProcessTransport: copies the request, refuses unknown nodes, times out', async () => {
  let seen: NodeRequest | undefined;
  const node = {
    nodeId: NODE,
    name: 'local',
    version: '0.1.0',
    async handle(req: NodeRequest): Promise<NodeReply> {
      seen = req;
      req.params.task_id = 'changed-by-node';
      return { errcode: 0, message: 'ok' };
    },
  };
  const transport = new InProcessTransport(node);
  assert.deepEqual(transport.knownNodes(), [{ node_id: NODE, name: 'local', version: '0.1.0' }]);
  const req: NodeRequest = { route: 'tasks.start', params: { task_id: 'T1' }, query: {}, body: { peer_nodes_list: [NODE], additional: {} } };
  assert.deepEqual(await transport.request(NODE, req), { errcode: 0, message: 'ok' });
  assert.equal(req.params.task_id, 'T1');
  assert.notEqual(seen, req);

  await assert.rejects(
    transport.request('ff'.repeat(32), req),
    (e: unknown) => e instanceof DbcError && e.message === 'create node request failed' && e.httpStatus === 400,
  );

  const slow = new InProcessTransport({ ...node, handle: () => new Promise<NodeReply>(() => {}) });
  await assert.rejects(slow.request(NODE, req, { timeoutMs: 20 }), (e: unknown) => e instanceof Error && e.name === 'TimeoutError');
});

test('InProcessTransport behind the API: node errors arrive as HTTP 200', async () => {
  const transport = new InProcessTransport({
    nodeId: NODE,
    name: 'local',
    version: '0.1.0',
    handle: async () => NodeErrors.taskNotExist().toEnvelope(),
  });
  await withApi(transport, async (app) => {
    const res = await post(app, '/api/v1/tasks/T1', body());
    assert.deepEqual([res.status, res.json], [200, { errcode: -3, message: 'task_id not exist' }]);
    const other = await post(app, '/api/v1/tasks/T1', body({ peer_nodes_list: ['ee'.repeat(32)] }));
    assert.deepEqual([other.status, other.json], [400, { errcode: -32701, message: 'create node request failed' }]);
  });
});

test('any Content-Type is read as the body text, invalid media types and none included', async () => {
  const t = new RecordingTransport();
  await withApi(t, async (app) => {
    const types = [
      'json',
      'text',
      'application/json, text/plain',
      'application/json',
      'text/plain; charset=utf-8',
      '',
      ';;;',
      'a/b/c',
      '*/*',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      'Ω/ü'.replace(/[^\x20-\x7e]/g, 'x'),
    ];
    for (const ct of types) {
      const res = await app.inject({ method: 'POST', url: '/api/v1/tasks', payload: body(), headers: { 'content-type': ct } });
      assert.equal(res.statusCode, 200, `${JSON.stringify(ct)}: ${res.body}`);
      assert.equal(JSON.parse(res.body).errcode, 0, ct);
      // and the body is still parsed as JSON: a broken one is the envelope's json parse error, not 415
      const bad = await app.inject({ method: 'POST', url: '/api/v1/tasks', payload: '{bad', headers: { 'content-type': ct } });
      assert.equal(bad.statusCode, 400, ct);
      assert.match(JSON.parse(bad.body).message, /^json parse error: /, ct);
    }
    const none = await app.inject({ method: 'POST', url: '/api/v1/tasks', payload: body() });
    assert.equal(none.statusCode, 200);
    assert.equal(t.calls.length, types.length + 1);
    assert.equal(t.calls.at(-1)!.req.body.wallet, WALLET.wallet);
  });
});

test('per-address failed-auth budget: refused after the limit without relaying, other addresses unaffected, window ends it', async () => {
  const t = new RecordingTransport(async () => ({ errcode: -3, message: 'check authority failed: nonce check failed' }));
  await withApi(
    t,
    async (app) => {
      const from = (ip: string) => app.inject({ method: 'POST', url: '/api/v1/tasks', payload: body(), remoteAddress: ip });
      for (let i = 0; i < 3; i++) assert.equal(JSON.parse((await from('10.0.0.1')).body).message, 'check authority failed: nonce check failed');
      const blocked = await from('10.0.0.1');
      assert.equal(blocked.statusCode, 429);
      assert.deepEqual(JSON.parse(blocked.body), {
        errcode: -3,
        message: 'check authority failed: too many failed attempts from this address, try again later',
      });
      assert.ok(Number(blocked.headers['retry-after']) >= 1);
      assert.equal(t.calls.length, 3, 'nothing relayed once blocked');
      // the version route is not a node route
      assert.equal((await app.inject({ method: 'GET', url: '/api/v1', remoteAddress: '10.0.0.1' })).statusCode, 200);
      // another address, and an IPv6 /64 counted as one
      assert.equal((await from('10.0.0.2')).statusCode, 200);
      for (let i = 0; i < 3; i++) await from(`2001:db8::${i + 1}`);
      assert.equal((await from('2001:db8::99')).statusCode, 429);
      assert.equal((await from('2001:db8:0:1::1')).statusCode, 200);
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal((await from('10.0.0.1')).statusCode, 200, 'the window ended');
    },
    { authBudget: { limit: 3, windowMs: 1000 } },
  );
});

test('failed-auth budget memory is bounded', async () => {
  const { AuthBudget } = await import('../../src/api/auth-budget.js');
  const b = new AuthBudget({ limit: 2, windowMs: 60_000, maxAddresses: 100 });
  for (let i = 0; i < 10_000; i++) b.note(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 'check authority failed: x');
  assert.equal(b.size, 100);
  b.note('10.9.9.9', 'task is running'); // not a failure
  assert.equal(b.blockedFor('10.9.9.9'), 0);
  const off = new AuthBudget({ limit: 0 });
  for (let i = 0; i < 10; i++) off.note('1.2.3.4', 'check authority failed: x');
  assert.equal(off.blockedFor('1.2.3.4'), 0);
  assert.equal(off.size, 0);
});

test('HTTP limits reach the Node server', async () => {
  const app = await buildApi({
    transport: new RecordingTransport(),
    logger: false,
    http: { maxConnections: 77, headersTimeoutMs: 3000, requestTimeoutMs: 9000, keepAliveTimeoutMs: 1500, maxRequestsPerSocket: 12 },
  });
  try {
    assert.equal(app.server.maxConnections, 77);
    assert.equal(app.server.headersTimeout, 3000);
    assert.equal(app.server.requestTimeout, 9000);
    assert.equal(app.server.keepAliveTimeout, 1500);
    assert.equal(app.server.maxRequestsPerSocket, 12);
  } finally {
    await app.close();
  }
});
