// Issue 10, findings 2, 4 and 5 against a real `dbc up`: its image centre is no way into the node's base image,
// client-local uploads need a credential and never send a renter's disk, and transfers belong to their wallet.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { identityFromSeed } from '../../src/auth/identity.js';
import {
  cliPath,
  ensureTestImage,
  freeTcpPort,
  killRsyncUnder,
  post,
  sha256,
  signedBody,
  startDevnet,
  waitFor,
  type Devnet,
  type Reply,
} from '../helpers/devnet.js';
import { freeVncPort } from '../helpers/tasks.js';

describe('image centres and transfers are no way around tenant isolation', { timeout: 600_000 }, () => {
  let d: Devnet;
  let seedB = '';
  let centre: { id: string; host: string; port: number; module: string };
  /** every reply of this file: none may carry the upload password or a host path */
  const replies: Reply[] = [];
  const call = async (path: string, body: unknown) => {
    const r = await post(d.api, path, body);
    replies.push(r);
    return r;
  };
  const A = (additional: Record<string, unknown> = {}) => signedBody(d.node_id, d.renter.seed, additional);
  const B = (additional: Record<string, unknown> = {}) => signedBody(d.node_id, seedB, additional);
  const localA = (additional: Record<string, unknown>) => ({ ...A(additional), peer_nodes_list: [] });
  const localB = (additional: Record<string, unknown>) => ({ ...B(additional), peer_nodes_list: [] });
  const imageDir = () => join(d.dataDir, 'images');
  const centreDir = () => join(d.dataDir, 'image-server');
  /** a valid qcow2 of 16 MiB of real data: 16 s at the 1 MiB/s limit of this devnet */
  const qcow2 = (path: string) => execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'preallocation=full', path, '16M']);
  /** the same reply for another file name: what a caller sees for a file nobody transfers */
  const sameAs = (r: Reply, other: Reply, file: string, otherFile: string) =>
    assert.deepEqual(r.body, JSON.parse(other.text.split(otherFile).join(file)), `${r.text} vs ${other.text}`);

  before(async () => {
    d = await startDevnet({ env: { DBC_RSYNC_BWLIMIT: '1024' } });
    centre = d.image_servers![0]!;
    assert.equal(centre.id, 'ID_1');
    seedB = `0x${randomBytes(32).toString('hex')}`;
    execFileSync(process.execPath, [cliPath, 'rental', 'grant', '--data-dir', d.dataDir, '--wallet', identityFromSeed(seedB).address, '--days', '1'], {
      encoding: 'utf8',
    });
  });
  after(async () => {
    if (d) {
      const pwFile = join(d.dataDir, 'rsyncd.password');
      const password = existsSync(pwFile) ? readFileSync(pwFile, 'utf8').trim() : '\u0000none';
      await d.destroy().catch(() => undefined);
      killRsyncUnder(d.dataDir);
      for (const r of replies) {
        assert.equal(r.text.includes(password), false, `the upload password in a reply: ${r.text}`);
        assert.equal(r.text.includes(d.dataDir), false, `a host path in a reply: ${r.text}`);
      }
    }
  });

  test('finding 2: the centre holds its own copy; an anonymous rsync --inplace changes nothing and is refused', async () => {
    const base = join(imageDir(), d.image);
    const copy = join(centreDir(), d.image);
    const source = ensureTestImage();
    const [b, c, s] = [statSync(base), statSync(copy), statSync(source)];
    assert.notEqual(b.ino, c.ino, 'the centre file is not the base image');
    assert.notEqual(b.ino, s.ino, 'the base image is not the --image source');
    assert.notEqual(c.ino, s.ino);
    assert.equal(b.nlink, 1);
    assert.equal(b.mode & 0o222, 0, 'placed base images are read-only');
    const before = sha256(base);
    const centreBefore = sha256(copy);
    const junk = join(d.dataDir, 'junk.qcow2');
    writeFileSync(junk, randomBytes(1024 * 1024));
    const url = `rsync://${centre.host}:${centre.port}/${centre.module}/${d.image}`;
    const r = spawnSync('rsync', ['--inplace', junk, url], { encoding: 'utf8', env: { ...process.env, RSYNC_PASSWORD: undefined } });
    assert.notEqual(r.status, 0, 'refused');
    assert.match(r.stderr, /read only/);
    // the upload module wants a password it does not get
    const up = spawnSync('rsync', ['--inplace', junk, `rsync://${centre.host}:${centre.port}/${centre.module}-upload/${d.image}`], {
      encoding: 'utf8',
      env: { ...process.env, RSYNC_PASSWORD: 'guess' },
    });
    assert.notEqual(up.status, 0);
    assert.equal(sha256(base), before, 'the node base image is unchanged');
    assert.equal(sha256(copy), centreBefore, 'the centre copy is unchanged');
    // anonymous listing still works
    const list = await call('images', { peer_nodes_list: [], additional: { image_server: 'ID_1' } });
    assert.ok(
      list.body.message.some((i: { image_name: string }) => i.image_name === d.image),
      list.text,
    );
  });

  test("finding 4: client-local upload of a renter's data disk: refused without a credential and with another renter's", async () => {
    const ssh = await freeTcpPort();
    const start = await call(
      'tasks/start',
      A({
        image_name: d.image,
        ssh_port: String(ssh),
        vnc_port: String(await freeVncPort()),
        cpu_cores: '1',
        mem_size: '1',
        disk_size: '1',
      }),
    );
    assert.equal(start.body.errcode, 0, start.text);
    const taskId = start.body.message.task_id as string;
    const disk = await waitFor('the data disk', () => readdirSync(imageDir()).find((f) => f.startsWith('data_') && f.includes(taskId)), 60_000, 200);
    const none = await call('images/upload', { peer_nodes_list: [], additional: { image_server: 'ID_1', image_filename: disk } });
    assert.notEqual(none.body.errcode, 0, `no credential: ${none.text}`);
    const missing = await call('images/upload', localB({ image_server: 'ID_1', image_filename: 'data_zzzzzz_nobody.qcow2' }));
    const other = await call('images/upload', localB({ image_server: 'ID_1', image_filename: disk }));
    assert.notEqual(other.body.errcode, 0, `another renter: ${other.text}`);
    sameAs(other, missing, disk, 'data_zzzzzz_nobody.qcow2');
    // not even its owner sends it this way
    const own = await call('images/upload', localA({ image_server: 'ID_1', image_filename: disk }));
    assert.notEqual(own.body.errcode, 0, own.text);
    assert.equal(existsSync(join(centreDir(), disk)), false, 'the disk never reached the centre');
    assert.equal(existsSync(join(centreDir(), '.dbc-partial', disk)), false);
    await call('tasks/delete/' + taskId, A());
  });

  test("finding 5: renter B neither reads nor stops A's download or upload; A still can", async () => {
    qcow2(join(centreDir(), 'big.qcow2'));
    qcow2(join(imageDir(), 'up.qcow2'));
    qcow2(join(imageDir(), 'up2.qcow2'));

    // a download of A
    const dl = await call('images/download', A({ image_server: 'ID_1', image_filename: 'big.qcow2', local_dir: '/data' }));
    assert.equal(dl.body.errcode, 0, dl.text);
    const nobodyDl = await call('images/downloadprogress', B({ image_filename: 'nobody.qcow2' }));
    sameAs(await call('images/downloadprogress', B({ image_filename: 'big.qcow2' })), nobodyDl, 'big.qcow2', 'nobody.qcow2');
    const nobodyStop = await call('images/download_stop', B({ image_filename: 'nobody.qcow2' }));
    sameAs(await call('images/download_stop', B({ image_filename: 'big.qcow2' })), nobodyStop, 'big.qcow2', 'nobody.qcow2');
    assert.equal((await call('images/downloadprogress', A({ image_filename: 'big.qcow2' }))).body.message.status, 'downloading', 'B did not stop it');

    // an upload of A through the node (the node holds the centre's upload credentials from dbc up)
    const up = await call('images/upload', A({ image_server: 'ID_1', image_filename: 'up.qcow2' }));
    assert.equal(up.body.errcode, 0, up.text);
    const nobodyUp = await call('images/uploadprogress', B({ image_filename: 'nobody.qcow2' }));
    sameAs(await call('images/uploadprogress', B({ image_filename: 'up.qcow2' })), nobodyUp, 'up.qcow2', 'nobody.qcow2');
    const nobodyUpStop = await call('images/upload_stop', B({ image_filename: 'nobody.qcow2' }));
    sameAs(await call('images/upload_stop', B({ image_filename: 'up.qcow2' })), nobodyUpStop, 'up.qcow2', 'nobody.qcow2');
    assert.equal((await call('images/uploadprogress', A({ image_filename: 'up.qcow2' }))).body.message.status, 'uploading');

    // a client-local upload of A (empty peer list)
    const local = await call('images/upload', localA({ image_server: 'ID_1', image_filename: 'up2.qcow2' }));
    assert.deepEqual(local.body, { errcode: 0, message: 'ok' }, local.text);
    const nobodyLocal = await call('images/uploadprogress', localB({ image_filename: 'nobody.qcow2' }));
    sameAs(await call('images/uploadprogress', localB({ image_filename: 'up2.qcow2' })), nobodyLocal, 'up2.qcow2', 'nobody.qcow2');
    const nobodyLocalStop = await call('images/upload_stop', localB({ image_filename: 'nobody.qcow2' }));
    sameAs(await call('images/upload_stop', localB({ image_filename: 'up2.qcow2' })), nobodyLocalStop, 'up2.qcow2', 'nobody.qcow2');
    assert.equal((await call('images/uploadprogress', localA({ image_filename: 'up2.qcow2' }))).body.message.status, 'uploading');
    const noCred = await call('images/uploadprogress', { peer_nodes_list: [], additional: { image_filename: 'up2.qcow2' } });
    assert.notEqual(noCred.body.errcode, 0, noCred.text);

    // A stops all three
    assert.equal((await call('images/download_stop', A({ image_filename: 'big.qcow2' }))).body.errcode, 0);
    assert.equal((await call('images/downloadprogress', A({ image_filename: 'big.qcow2' }))).body.message.status, 'stopped');
    assert.equal((await call('images/upload_stop', A({ image_filename: 'up.qcow2' }))).body.errcode, 0);
    assert.equal((await call('images/uploadprogress', A({ image_filename: 'up.qcow2' }))).body.message.status, 'stopped');
    assert.equal((await call('images/upload_stop', localA({ image_filename: 'up2.qcow2' }))).body.errcode, 0);
    assert.equal((await call('images/uploadprogress', localA({ image_filename: 'up2.qcow2' }))).body.message.status, 'stopped');
  });
});
