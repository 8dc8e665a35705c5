import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve, splitPath, splitQuery } from '../../src/api/router.js';
import { DbcError } from '../../src/protocol/errors.js';

function refusal(method: string, url: string): { status: number; errcode: number; message: string } {
  try {
    resolve(method, url);
  } catch (e) {
    assert.ok(e instanceof DbcError, `expected a DbcError for ${method} ${url}`);
    return { status: e.httpStatus, errcode: e.errcode, message: e.message };
  }
  assert.fail(`${method} ${url} was accepted`);
}

test('split_path keeps inner empty segments, drops the trailing one and the query', () => {
  assert.deepEqual(splitPath(''), []);
  assert.deepEqual(splitPath('/'), []);
  assert.deepEqual(splitPath('/a/b?x=1/2'), ['a', 'b']);
  assert.deepEqual(splitPath('/a//b/'), ['a', '', 'b']);
  assert.deepEqual(splitPath('foo'), ['foo']);
});

test('query pairs: & then =, items without exactly two parts ignored, no url-decoding', () => {
  assert.deepEqual(splitQuery('/x?a=1&b=%20&c&d=1=2&e=&=f&a=3'), { a: '3', b: '%20', '': 'f' });
  assert.deepEqual(splitQuery('/x'), {});
  assert.deepEqual(splitQuery('/x?'), {});
});

test('URIs outside /api/v1 are refused with the URI in the text', () => {
  assert.deepEqual(refusal('POST', '/api/v2/tasks'), {
    status: 400,
    errcode: -32600,
    message: 'request uri is invalid, uri:/api/v2/tasks',
  });
  assert.deepEqual(refusal('GET', '/'), { status: 400, errcode: -32600, message: 'request uri is invalid, uri:/' });
});

test('version answers /api/v1/ and /api/v1 for any method', () => {
  for (const m of ['GET', 'POST', 'PUT', 'DELETE']) {
    assert.deepEqual(resolve(m, '/api/v1/'), { kind: 'version' });
    assert.deepEqual(resolve(m, '/api/v1'), { kind: 'version' });
  }
});

test('openapi.json answers GET and POST', () => {
  assert.deepEqual(resolve('GET', '/api/v1/openapi.json'), { kind: 'openapi' });
  assert.deepEqual(resolve('POST', '/api/v1/openapi.json'), { kind: 'openapi' });
  assert.equal(refusal('PUT', '/api/v1/openapi.json').message, 'only support POST request');
});

test('/tasks segment dispatch as the original', () => {
  assert.deepEqual(resolve('POST', '/api/v1/tasks'), { kind: 'node', route: 'tasks.list', params: {}, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/tasks/'), { kind: 'node', route: 'tasks.list', params: {}, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/tasks/start'), { kind: 'node', route: 'tasks.create', params: {}, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/tasks/7abcdefghijk12345678X'), {
    kind: 'node',
    route: 'tasks.detail',
    params: { task_id: '7abcdefghijk12345678X' },
    query: {},
  });
  for (const verb of ['start', 'shutdown', 'poweroff', 'stop', 'restart', 'reset', 'delete', 'logs', 'modify', 'passwd']) {
    assert.deepEqual(resolve('POST', `/api/v1/tasks/${verb}/T1`), {
      kind: 'node',
      route: `tasks.${verb}`,
      params: { task_id: 'T1' },
      query: {},
    });
  }
  // raw prefix matching: /tasksfoo is /tasks with path "foo"
  assert.deepEqual(resolve('POST', '/api/v1/tasksfoo'), {
    kind: 'node',
    route: 'tasks.detail',
    params: { task_id: 'foo' },
    query: {},
  });
});

test('/tasks query strings reach the node raw', () => {
  assert.deepEqual(resolve('POST', '/api/v1/tasks/restart/T1?force_reboot=true'), {
    kind: 'node',
    route: 'tasks.restart',
    params: { task_id: 'T1' },
    query: { force_reboot: 'true' },
  });
  assert.deepEqual(resolve('POST', '/api/v1/tasks/logs/T1?flag=head&line_num=5%30'), {
    kind: 'node',
    route: 'tasks.logs',
    params: { task_id: 'T1' },
    query: { flag: 'head', line_num: '5%30' },
  });
});

test('/tasks refusals: unknown verb 500, too many segments 400, non-POST 400', () => {
  assert.deepEqual(refusal('POST', '/api/v1/tasks/reboot/T1'), { status: 500, errcode: -32701, message: 'Unhandled request' });
  assert.deepEqual(refusal('POST', '/api/v1/tasks/a/b/c'), { status: 400, errcode: -32600, message: 'invalid requests uri' });
  assert.deepEqual(refusal('GET', '/api/v1/tasks'), { status: 400, errcode: -32600, message: 'only support POST request' });
  assert.deepEqual(refusal('PUT', '/api/v1/tasks/start/T1'), { status: 400, errcode: -32600, message: 'only support POST request' });
  assert.deepEqual(refusal('POST', '/api/v1/tasks/start//'), { status: 400, errcode: -25, message: 'task_id is empty' });
});

test('/mining_nodes: info, session_id, free_memory, else a usage text', () => {
  assert.deepEqual(resolve('POST', '/api/v1/mining_nodes'), { kind: 'node', route: 'mining_nodes.info', params: {}, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/mining_nodes/session_id'), {
    kind: 'node',
    route: 'mining_nodes.session_id',
    params: {},
    query: {},
  });
  assert.deepEqual(resolve('POST', '/api/v1/mining_nodes/free_memory'), {
    kind: 'node',
    route: 'mining_nodes.free_memory',
    params: {},
    query: {},
  });
  const r = refusal('POST', '/api/v1/mining_nodes/gpu');
  assert.equal(r.status, 400);
  assert.equal(r.errcode, -25);
  assert.match(r.message, /^invalid uri, please use \/mining_nodes/);
  assert.equal(refusal('POST', '/api/v1/mining_nodes/session_id/x').errcode, -25);
  assert.equal(refusal('GET', '/api/v1/mining_nodes').message, 'only support POST request');
});

test('/operations/<id> is ours: one segment, or <id>/wait', () => {
  assert.deepEqual(resolve('POST', '/api/v1/operations/op-1'), {
    kind: 'node',
    route: 'operations.get',
    params: { operation_id: 'op-1' },
    query: {},
  });
  assert.deepEqual(resolve('POST', '/api/v1/operations'), { kind: 'node', route: 'operations.list', params: {}, query: {} });
  assert.equal(refusal('POST', '/api/v1/operations//').message, 'invalid uri, please use /operations/<operation_id> or /operations/<operation_id>/wait');
  assert.equal(refusal('POST', '/api/v1/operations/a/b').errcode, -25);
});

test('/peers: active and global are local, other options refused', () => {
  assert.deepEqual(resolve('POST', '/api/v1/peers/active'), { kind: 'local', route: 'peers.active' });
  assert.deepEqual(resolve('POST', '/api/v1/peers/global'), { kind: 'local', route: 'peers.global' });
  assert.deepEqual(refusal('POST', '/api/v1/peers/lan'), {
    status: 400,
    errcode: -25,
    message: 'invalid option. the option is active or global',
  });
  assert.equal(refusal('POST', '/api/v1/peers').errcode, -25);
});

test('/stat and /config are never answered by the original: 500 Unhandled', () => {
  for (const url of ['/api/v1/stat', '/api/v1/config', '/api/v1/statistics']) {
    assert.deepEqual(refusal('POST', url), { status: 500, errcode: -32701, message: 'Unhandled request' });
  }
});

test('/lan: list, create (the literal first), delete/<name>, <name>', () => {
  assert.deepEqual(resolve('POST', '/api/v1/lan'), { kind: 'node', route: 'lan.list', params: {}, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/lan/create'), { kind: 'node', route: 'lan.create', params: {}, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/lan/delete/testnet1'), { kind: 'node', route: 'lan.delete', params: { network_name: 'testnet1' }, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/lan/testnet1'), { kind: 'node', route: 'lan.detail', params: { network_name: 'testnet1' }, query: {} });
  assert.equal(refusal('POST', '/api/v1/lan/delete').message, 'invalid uri, please use /lan/delete/<network_name>');
  assert.equal(refusal('POST', '/api/v1/lan/delete/a/b').errcode, -25);
  assert.equal(refusal('POST', '/api/v1/lan/a/b').errcode, -25);
  assert.equal(refusal('GET', '/api/v1/lan').message, 'only support POST request');
});

test('families not built yet and unknown URIs are 404 not support uri', () => {
  for (const url of ['/api/v1/rent_orders', '/api/v1/monitor', '/api/v1/bare_metal', '/api/v1/deeplink', '/api/v1/nothing', '/api/v1tasks']) {
    assert.deepEqual(refusal('POST', url), { status: 404, errcode: -32601, message: `not support uri:${url}` });
  }
});

test('streams (ours): POST /events/ticket, GET /events and /events/ws, GET /console and /vnc; tickets and wait as node routes', () => {
  assert.deepEqual(resolve('POST', '/api/v1/events/ticket'), { kind: 'node', route: 'events.ticket', params: {}, query: {} });
  assert.deepEqual(resolve('GET', '/api/v1/events?ticket=abc&task_id=t1'), { kind: 'stream', stream: 'events', query: { ticket: 'abc', task_id: 't1' } });
  assert.deepEqual(resolve('GET', '/api/v1/events/ws?ticket=abc'), { kind: 'stream', stream: 'events.ws', query: { ticket: 'abc' } });
  assert.deepEqual(resolve('GET', '/api/v1/console?ticket=abc'), { kind: 'stream', stream: 'console.ws', query: { ticket: 'abc' } });
  assert.deepEqual(resolve('GET', '/api/v1/vnc?ticket=abc'), { kind: 'stream', stream: 'vnc.ws', query: { ticket: 'abc' } });
  assert.deepEqual(resolve('POST', '/api/v1/tasks/console/T1'), { kind: 'node', route: 'tasks.console', params: { task_id: 'T1' }, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/tasks/vnc/T1'), { kind: 'node', route: 'tasks.vnc', params: { task_id: 'T1' }, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/operations/op1/wait'), { kind: 'node', route: 'operations.wait', params: { operation_id: 'op1' }, query: {} });
  // a stream asked with POST, a ticket asked with GET, extra segments: the usage
  assert.match(refusal('POST', '/api/v1/events').message, /^invalid uri, please use POST \/events\/ticket/);
  assert.equal(refusal('GET', '/api/v1/events/ticket').message, 'only support POST request');
  assert.match(refusal('GET', '/api/v1/console/x').message, /^invalid uri, please use GET \/console\?ticket=/);
  assert.match(refusal('GET', '/api/v1/operations/op1/wait').message, /only support POST/);
});
