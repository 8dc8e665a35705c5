// The client gateway's storage routes: URI rules of /images, /disk, /snapshot; image_server IDs resolved from
// the client's configuration and shipped to the node; what the client answers itself with an empty peer list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server.js';
import { resolve } from '../../src/api/router.js';
import { ClientImages } from '../../src/images/client.js';
import { parseImageServer } from '../../src/images/servers.js';
import { DbcError } from '../../src/protocol/errors.js';
import type { NodeReply, NodeRequest, NodeTransport } from '../../src/protocol/types.js';

const NODE = '5e'.repeat(32);
const WALLET = { wallet: '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY', nonce: 'n1', sign: '0xabc' };

class Recording implements NodeTransport {
  readonly calls: NodeRequest[] = [];
  knownNodes() {
    return [{ node_id: NODE, name: 'gpu', version: '0.1.0' }];
  }
  async request(_nodeId: string, req: NodeRequest): Promise<NodeReply> {
    this.calls.push(req);
    return { errcode: 0, message: 'ok' };
  }
}

function refusal(method: string, url: string): { status: number; errcode: number; message: string } {
  try {
    resolve(method, url);
  } catch (err) {
    if (err instanceof DbcError) return { status: err.httpStatus, errcode: err.errcode, message: err.message };
    throw err;
  }
  throw new Error(`${url} resolved`);
}

test('/images: no segment is the list, one segment the action, servers is local', () => {
  assert.deepEqual(resolve('POST', '/api/v1/images'), { kind: 'node', route: 'images.list', params: {}, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/images/servers'), { kind: 'local', route: 'images.servers' });
  const actions: Record<string, string> = {
    download: 'images.download',
    downloadprogress: 'images.download_progress',
    download_stop: 'images.download_stop',
    upload: 'images.upload',
    uploadprogress: 'images.upload_progress',
    upload_stop: 'images.upload_stop',
    delete: 'images.delete',
  };
  for (const [seg, route] of Object.entries(actions)) {
    assert.deepEqual(resolve('POST', `/api/v1/images/${seg}`), { kind: 'node', route, params: {}, query: {} });
  }
  assert.equal(refusal('POST', '/api/v1/images/a/b').errcode, -25);
  assert.equal(refusal('POST', '/api/v1/images/other').status, 400);
  assert.equal(refusal('GET', '/api/v1/images').message, 'only support POST request');
});

test('/disk: exactly <verb>/<task_id>', () => {
  for (const verb of ['list', 'resize', 'add', 'delete']) {
    assert.deepEqual(resolve('POST', `/api/v1/disk/${verb}/T1`), { kind: 'node', route: `disk.${verb}`, params: { task_id: 'T1' }, query: {} });
  }
  assert.equal(refusal('POST', '/api/v1/disk/add').message, 'invalid uri, please use /disk/add/<task_id>');
  assert.equal(refusal('POST', '/api/v1/disk/delete/T1/x').message, 'invalid uri, please use /disk/delete/<task_id>');
  assert.equal(refusal('POST', '/api/v1/disk/grow/T1').message, 'invalid uri, please use /disk/<list|resize|add|delete>/<task_id>');
  assert.equal(refusal('POST', '/api/v1/disk').errcode, -25);
});

test('/snapshot: list/<task>[/<name>], create/<task>, delete/<task>/<name>', () => {
  assert.deepEqual(resolve('POST', '/api/v1/snapshot/list/T1'), { kind: 'node', route: 'snapshot.list', params: { task_id: 'T1' }, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/snapshot/list/T1/s1'), {
    kind: 'node',
    route: 'snapshot.list',
    params: { task_id: 'T1', snapshot_name: 's1' },
    query: {},
  });
  assert.deepEqual(resolve('POST', '/api/v1/snapshot/create/T1'), { kind: 'node', route: 'snapshot.create', params: { task_id: 'T1' }, query: {} });
  assert.deepEqual(resolve('POST', '/api/v1/snapshot/delete/T1/s1'), {
    kind: 'node',
    route: 'snapshot.delete',
    params: { task_id: 'T1', snapshot_name: 's1' },
    query: {},
  });
  assert.equal(refusal('POST', '/api/v1/snapshot/make/T1').message, 'invalid uri');
  assert.equal(refusal('POST', '/api/v1/snapshot').message, 'invalid uri');
  assert.equal(refusal('POST', '/api/v1/snapshot/create/T1/x').message, 'invalid uri, please use /snapshot/create/<task_id>');
  assert.equal(refusal('POST', '/api/v1/snapshot/delete/T1').message, 'invalid uri, please use /snapshot/delete/<task_id>/<snapshot_name>');
  assert.equal(refusal('POST', '/api/v1/snapshot/list').errcode, -25);
});

async function withApi(images: ClientImages | undefined, fn: (app: FastifyInstance, t: Recording) => Promise<void>): Promise<void> {
  const t = new Recording();
  const app = await buildApi({ transport: t, logger: false, images });
  try {
    await fn(app, t);
  } finally {
    await app.close();
    await images?.close();
  }
}

async function post(app: FastifyInstance, url: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await app.inject({ method: 'POST', url, payload: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.statusCode, json: JSON.parse(res.body) };
}

test('image_server IDs: resolved from the configuration and shipped whole; unknown -> 400; required ones checked', async () => {
  const images = new ClientImages({
    servers: [parseImageServer('ID_1,10.1.2.3,873,images'), parseImageServer('ID_7,img.example,8873,dbc')],
    localDir: '/nonexistent',
  });
  await withApi(images, async (app, t) => {
    const servers = await post(app, '/api/v1/images/servers', { peer_nodes_list: [], additional: {} });
    assert.deepEqual(servers, { status: 200, json: { errcode: 0, message: { image_server: ['ID_1', 'ID_7'] } } });
    assert.equal((await post(app, '/api/v1/images/servers', '[]')).json.message, 'invalid json');

    const dl = await post(app, '/api/v1/images/download', {
      peer_nodes_list: [NODE],
      additional: { image_server: 'ID_7', image_filename: 'a.qcow2', local_dir: '/data' },
      ...WALLET,
    });
    assert.equal(dl.status, 200);
    assert.deepEqual(t.calls.at(-1)!.image_server, { id: 'ID_7', host: 'img.example', port: 8873, module: 'dbc' });
    const snap = await post(app, '/api/v1/snapshot/create/T1', {
      peer_nodes_list: [NODE],
      additional: { snapshot_name: 's', image_server: 'ID_1' },
      ...WALLET,
    });
    assert.equal(snap.status, 200);
    assert.equal(t.calls.at(-1)!.image_server?.host, '10.1.2.3');
    const calls = t.calls.length;

    assert.deepEqual(await post(app, '/api/v1/images/download', { peer_nodes_list: [NODE], additional: { image_server: 'ID_9' }, ...WALLET }), {
      status: 400,
      json: { errcode: -25, message: 'image_server not exist' },
    });
    assert.deepEqual(await post(app, '/api/v1/snapshot/create/T1', { peer_nodes_list: [NODE], additional: { snapshot_name: 's' }, ...WALLET }), {
      status: 400,
      json: { errcode: -25, message: 'no image_server' },
    });
    assert.deepEqual(await post(app, '/api/v1/images', { peer_nodes_list: [NODE], additional: { image_server: 'nope' } }), {
      status: 400,
      json: { errcode: -25, message: 'image_server not exist' },
    });
    assert.deepEqual(await post(app, '/api/v1/images', { peer_nodes_list: [], additional: {} }), {
      status: 400,
      json: { errcode: -25, message: 'no image_server' },
    });
    assert.equal(t.calls.length, calls, 'refused requests never reach the node');

    // optional for the node list: absent is fine and ships nothing
    await post(app, '/api/v1/images', { peer_nodes_list: [NODE], additional: {} });
    assert.equal(t.calls.at(-1)!.route, 'images.list');
    assert.equal(t.calls.at(-1)!.image_server, undefined);
    // routes that do not use an image centre ignore the field
    await post(app, '/api/v1/tasks', { peer_nodes_list: [NODE], additional: { image_server: 'nope' }, ...WALLET });
    assert.equal(t.calls.at(-1)!.route, 'tasks.list');
    // disk and snapshot routes need a credential at the client, as the original
    assert.equal(
      (await post(app, '/api/v1/disk/list/T1', { peer_nodes_list: [NODE], additional: {} })).json.message,
      'wallet_sign and multisig_wallets all invalid',
    );
  });
});

test('empty peer_nodes_list: the client uploads from its own image directory, for an authenticated caller only', async () => {
  const dir = mkdtempSync(join(os.tmpdir(), 'dbc-client-'));
  try {
    writeFileSync(join(dir, 'mine.qcow2'), 'x');
    writeFileSync(join(dir, 'data_abc123_T1.qcow2'), 'renter data');
    writeFileSync(join(dir, 'disk_T2_vdb.qcow2'), 'renter disk');
    const images = new ClientImages({
      servers: [parseImageServer('ID_1,127.0.0.1,1,images')],
      localDir: dir,
      // a stand-in for the node's Authenticator: session sA is renter A
      authenticate: (b) => {
        if (b.session_id === 'sA') return 'A';
        throw new DbcError('TEST_AUTH', -3, 'wallet_sign and multisig_wallets all invalid', 400);
      },
      isTaskDisk: (f) => f === 'disk_T2_vdb.qcow2',
    });
    const A = { session_id: 'sA', session_id_sign: 'x' };
    await withApi(images, async (app, t) => {
      // no credential: refused before anything else
      for (const route of ['upload', 'uploadprogress', 'upload_stop']) {
        const r = await post(app, `/api/v1/images/${route}`, { peer_nodes_list: [], additional: { image_server: 'ID_1', image_filename: 'mine.qcow2' } });
        assert.equal(r.json.message, 'wallet_sign and multisig_wallets all invalid', route);
      }
      const notExist = (f: string) => ({ status: 400, json: { errcode: -25, message: `image_filename: /data/${f} not exist` } });
      assert.deepEqual(
        await post(app, '/api/v1/images/upload', { peer_nodes_list: [], additional: { image_server: 'ID_1', image_filename: 'none.qcow2' }, ...A }),
        notExist('none.qcow2'),
      );
      // renters' disks: the same answer as a file that does not exist
      assert.deepEqual(
        await post(app, '/api/v1/images/upload', { peer_nodes_list: [], additional: { image_server: 'ID_1', image_filename: 'data_abc123_T1.qcow2' }, ...A }),
        notExist('data_abc123_T1.qcow2'),
      );
      assert.deepEqual(
        await post(app, '/api/v1/images/upload', { peer_nodes_list: [], additional: { image_server: 'ID_1', image_filename: 'disk_T2_vdb.qcow2' }, ...A }),
        notExist('disk_T2_vdb.qcow2'),
      );
      assert.equal(
        (await post(app, '/api/v1/images/upload', { peer_nodes_list: [], additional: { image_server: 'ID_1', image_filename: '../etc/passwd' }, ...A })).json
          .message,
        'image_filename is invalid',
      );
      assert.deepEqual(await post(app, '/api/v1/images/uploadprogress', { peer_nodes_list: [], additional: { image_filename: 'mine.qcow2' }, ...A }), {
        status: 200,
        json: { errcode: 0, message: { status: 'done', progress: '100%' } },
      });
      // port 1 is closed: the upload is refused before anything starts, with a short text
      const r = await post(app, '/api/v1/images/upload', { peer_nodes_list: [], additional: { image_server: 'ID_1', image_filename: 'mine.qcow2' }, ...A });
      assert.equal(r.json.errcode, -3);
      assert.equal(r.json.message, 'upload to image_server failed: the image server is unreachable');
      assert.equal((await post(app, '/api/v1/images/download', { peer_nodes_list: [], additional: {} })).json.message, 'peer_nodeid is empty');
      assert.equal(t.calls.length, 0);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a gateway without an authenticate function refuses local uploads', async () => {
  const dir = mkdtempSync(join(os.tmpdir(), 'dbc-client-'));
  try {
    writeFileSync(join(dir, 'mine.qcow2'), 'x');
    const images = new ClientImages({ servers: [parseImageServer('ID_1,127.0.0.1,1,images')], localDir: dir });
    await withApi(images, async (app) => {
      const r = await post(app, '/api/v1/images/upload', {
        peer_nodes_list: [],
        additional: { image_server: 'ID_1', image_filename: 'mine.qcow2' },
        ...WALLET,
      });
      assert.equal(r.status, 400);
      assert.match(r.json.message, /needs a wallet signature or a session/);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without image configuration every ID is unknown and the server list is empty', async () => {
  await withApi(undefined, async (app) => {
    assert.deepEqual((await post(app, '/api/v1/images/servers', '')).json, { errcode: 0, message: { image_server: [] } });
    assert.equal(
      (await post(app, '/api/v1/images/download', { peer_nodes_list: [NODE], additional: { image_server: 'ID_1' }, ...WALLET })).json.message,
      'image_server not exist',
    );
  });
});
