// `dbc client` holds image centres as `dbc up` does (issue 12, item 1): seed, GPU node and client as separate
// processes on loopback; the client runs its own rsync centre (--local-image-server) and knows one more
// (--image-server). images/servers lists both, images/download through the client reaches the node and reports
// progress to done, and the client-local forms (a centre's list, an upload from the client's image directory by an
// allowed wallet) are answered by the client itself.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cliPath, post, signedBody, waitFor } from '../helpers/devnet.js';
import { LOOPBACK_LISTEN, seedArgs, startRole, type RoleProc } from '../helpers/p2p.js';

const renterSeed = `0x${randomBytes(32).toString('hex')}`;
const renter = identityFromSeed(renterSeed);
const strangerSeed = `0x${randomBytes(32).toString('hex')}`;

function hasQemuImg(): boolean {
  try {
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** a small plain qcow2 (the node refuses anything else as an image) */
function qcow2(file: string, fill: number): void {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '4M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P ${fill} 0 1M`, file], { stdio: 'ignore' });
}

describe('dbc client with image centres, seed and node as three processes', { timeout: 90_000, skip: !hasQemuImg() && 'qemu-img not installed' }, () => {
  let seed: RoleProc;
  let node: RoleProc;
  let client: RoleProc;
  let api: string;
  let nodeId: string;
  const local = (extra: Record<string, unknown>, who = renterSeed) => signedBody('', who, extra, { peer_nodes_list: [] });

  before(async () => {
    seed = await startRole('seed', ['--listen', LOOPBACK_LISTEN]);
    [node, client] = await Promise.all([
      startRole('node', ['--listen', LOOPBACK_LISTEN, '--host', '127.0.0.1', '--name', 'images-node', ...seedArgs([seed])]),
      startRole('client', [
        '--listen',
        LOOPBACK_LISTEN,
        '--http-port',
        '0',
        '--refresh',
        '0.5',
        '--local-image-server',
        // a second centre, configured only: listed, never contacted here
        '--image-server',
        'ID_CENTRE,127.0.0.1,1,images',
        '--upload-wallet',
        renter.address,
        ...seedArgs([seed]),
      ]),
    ]);
    api = client.info.api!;
    nodeId = node.info.node_id!;
    execFileSync(process.execPath, [cliPath, 'rental', 'grant', '--data-dir', node.dataDir, '--wallet', renter.address, '--days', '1'], { stdio: 'pipe' });
    qcow2(join(client.dataDir, 'image-server', 'small.qcow2'), 0x5a);
  });

  after(async () => {
    await Promise.all([client, node, seed].map((r) => r?.destroy()));
  });

  test('images/servers lists the local centre and the configured one', async () => {
    const r = await post(api, 'images/servers', {});
    assert.deepEqual(r.body, { errcode: 0, message: { image_server: ['ID_1', 'ID_CENTRE'] } });
    const unknown = await post(api, 'images/download', signedBody(nodeId, renterSeed, { image_server: 'ID_9', image_filename: 'small.qcow2' }));
    assert.deepEqual(unknown.body, { errcode: -25, message: 'image_server not exist' });
  });

  test('images with an empty peer list lists the client centre', async () => {
    const r = await post(api, 'images', { peer_nodes_list: [], additional: { image_server: 'ID_1' } });
    assert.equal(r.body.errcode, 0, r.text);
    const names = (r.body.message as Array<{ image_name: string }>).map((i) => i.image_name);
    assert.ok(names.includes('small.qcow2'), r.text);
  });

  test('images/download through the client reaches the node and reports progress to done', async () => {
    await waitFor(
      'the node known to the client',
      async () => {
        const r = await post(api, 'mining_nodes', { peer_nodes_list: [], additional: {} });
        return (r.body.message.mining_nodes as Array<{ node_id: string }>).some((n) => n.node_id === nodeId);
      },
      30_000,
      200,
    );
    const start = await post(
      api,
      'images/download',
      signedBody(nodeId, renterSeed, { image_server: 'ID_1', image_filename: 'small.qcow2', local_dir: '/data' }),
    );
    assert.equal(start.body.errcode, 0, start.text);
    const seen: string[] = [];
    await waitFor(
      'download done',
      async () => {
        const p = (await post(api, 'images/downloadprogress', signedBody(nodeId, renterSeed, { image_filename: 'small.qcow2' }))).body;
        assert.equal(p.errcode, 0, JSON.stringify(p));
        seen.push(p.message.status as string);
        return p.message.status === 'done' ? p.message : undefined;
      },
      30_000,
      200,
    );
    assert.ok(
      seen.every((s) => s === 'downloading' || s === 'done'),
      seen.join(' '),
    );
    const got = join(node.dataDir, 'images', 'small.qcow2');
    assert.ok(existsSync(got), got);
    assert.ok(readFileSync(got).equals(readFileSync(join(client.dataDir, 'image-server', 'small.qcow2'))));
  });

  test('a client-local upload: an allowed wallet sends a file of the client image directory to its centre', async () => {
    mkdirSync(join(client.dataDir, 'images'), { recursive: true });
    qcow2(join(client.dataDir, 'images', 'mine.qcow2'), 0x33);
    const refused = await post(api, 'images/upload', local({ image_server: 'ID_1', image_filename: 'mine.qcow2' }, strangerSeed));
    assert.deepEqual(refused.body, { errcode: -3, message: 'check authority failed: wallet not rented' });
    const r = await post(api, 'images/upload', local({ image_server: 'ID_1', image_filename: 'mine.qcow2' }));
    assert.equal(r.body.errcode, 0, r.text);
    await waitFor(
      'upload done',
      async () => {
        const p = (await post(api, 'images/uploadprogress', local({ image_filename: 'mine.qcow2' }))).body;
        return p.message?.status === 'done' ? p : undefined;
      },
      30_000,
      200,
    );
    const sent = join(client.dataDir, 'image-server', 'mine.qcow2');
    assert.ok(readFileSync(sent).equals(readFileSync(join(client.dataDir, 'images', 'mine.qcow2'))));
  });
});
