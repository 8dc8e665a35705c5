// A snapshot travels: incremental convert on node A, upload to a real rsync image centre, download on node B into
// its image directory, where its backing file resolves to B's base image; the data is the VM disk's. Downloaded
// images are checked (backing files, external data files), and images in use cannot be deleted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startRsyncDaemon, type RsyncDaemon } from '../../src/images/daemon.js';
import { ImageServerSecrets } from '../../src/images/secrets.js';
import { NodeImageService } from '../../src/images/node-images.js';
import { STAGING_DIR, TransferManager } from '../../src/images/transfers.js';
import { openDb, type Db } from '../../src/store/db.js';
import { TaskStore } from '../../src/store/tasks.js';
import { createDisk, createOverlay, info } from '../../src/storage/qemu-img.js';
import { SnapshotService } from '../../src/storage/snapshots.js';
import { fakeDeps, fakeTask, FakeHv } from '../helpers/storage-fakes.js';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

function qemuIo(image: string, cmd: string): string {
  return execFileSync('qemu-io', ['-f', 'qcow2', '-c', cmd, image], { encoding: 'utf8' });
}

interface FakeNode {
  dir: string;
  imageDir: string;
  db: Db;
  store: TaskStore;
  transfers: TransferManager;
  images: NodeImageService;
  snaps: SnapshotService;
}

/** the centre's upload credentials (set once it runs) */
const secrets = new ImageServerSecrets();

function node(root: string, name: string): FakeNode {
  const dir = join(root, name);
  const imageDir = join(dir, 'images');
  mkdirSync(imageDir, { recursive: true });
  const db = openDb(join(dir, 'node.db'));
  const store = new TaskStore(db);
  const host = fakeDeps(store, new FakeHv(), imageDir, join(dir, 'vms'));
  const transfers = new TransferManager({ repo: store, ops: host.ops, log: quiet, secrets });
  return { dir, imageDir, db, store, transfers, images: new NodeImageService(host, transfers), snaps: new SnapshotService(host, transfers) };
}

async function opDone(store: TaskStore, id: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const op = store.operation(id);
    if (op && op.status !== 'running') {
      assert.equal(op.status, 'done', op.error);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('operation did not finish');
}

async function transferEnd(n: FakeNode, file: string): Promise<{ status: string; error: string }> {
  const row = n.transfers.latest('download', file)!;
  return (await n.transfers.settled(row.id))!;
}

describe('snapshots and images across two nodes', { timeout: 120_000 }, () => {
  let root: string;
  let daemon: RsyncDaemon;
  let a: FakeNode;
  let b: FakeNode;
  const T = 'A1234567890123456789AB';

  before(async () => {
    root = mkdtempSync(join(os.tmpdir(), 'dbc-snapx-'));
    daemon = await startRsyncDaemon({ dir: join(root, 'centre') });
    secrets.set(daemon.server, daemon.upload);
    a = node(root, 'a');
    b = node(root, 'b');
    // the same base image on both nodes (as dbc-test.qcow2 is), with recognisable data
    await createDisk(join(a.imageDir, 'base.qcow2'), 1);
    qemuIo(join(a.imageDir, 'base.qcow2'), 'write -P 0x11 0 4M');
    copyFileSync(join(a.imageDir, 'base.qcow2'), join(b.imageDir, 'base.qcow2'));
    mkdirSync(join(a.dir, 'vms', T), { recursive: true });
    const vda = join(a.dir, 'vms', T, 'vda.qcow2');
    await createOverlay(join(a.imageDir, 'base.qcow2'), vda);
    qemuIo(vda, 'write -P 0x22 1M 1M');
    a.store.insert(fakeTask(T), [{ task_id: T, name: 'vda', path: vda, size_gb: 0, kind: 'os', owned: true }]);
  });
  after(async () => {
    await a?.transfers.close();
    await b?.transfers.close();
    a?.db.close();
    b?.db.close();
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  test('create: creating -> uploading -> none; an incremental file whose backing file is the bare base name', async () => {
    const { operationId, row } = await a.snaps.create(a.store.get(T)!, 's1', 'before the upgrade', daemon.server);
    assert.equal(row.status, 'creating');
    await opDone(a.store, operationId);
    const s = a.store.snapshot(T, 's1')!;
    assert.equal(s.status, 'none');
    assert.equal(s.description, 'before the upgrade');
    assert.ok(existsSync(join(daemon.path, s.image_name)), 'on the image centre');
    const facts = await info(join(daemon.path, s.image_name));
    assert.equal(facts.backingFile, 'base.qcow2');
    assert.ok(facts.actualSize < 4 * 1024 * 1024, `incremental: ${facts.actualSize} bytes`);
    assert.equal(a.store.operation(operationId)!.progress, 100);
    assert.deepEqual(a.snaps.entry(s).progress, '100%');
    await assert.rejects(a.snaps.create(a.store.get(T)!, 's1', '', daemon.server), /snapshot_name:s1 already exist/);
    // the renter's form of `images`: the node's images plus their own snapshots; others see only the node's
    const mine = a.images.list('w1').find((i) => i.image_name === s.image_name);
    assert.deepEqual([mine?.snapshot_name, mine?.task_id, mine?.image_server], ['s1', T, 'ID_1']);
    assert.equal(
      a.images.list('someone-else').some((i) => i.image_name === s.image_name),
      false,
    );
    assert.equal(
      a.images.list().some((i) => i.image_name === s.image_name),
      false,
    );
  });

  test("download on node B: the backing file resolves to B's base and the data equals the VM disk", async () => {
    const s = a.store.snapshot(T, 's1')!;
    await b.images.download('w1', daemon.server, s.image_name, '/data');
    const end = await transferEnd(b, s.image_name);
    assert.equal(end.status, 'done', end.error);
    const got = join(b.imageDir, s.image_name);
    assert.equal((await info(got)).fullBackingFile, join(b.imageDir, 'base.qcow2'));
    execFileSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', join(a.dir, 'vms', T, 'vda.qcow2'), got]);
    assert.match(qemuIo(got, 'read -P 0x22 1M 1M'), /read 1048576/);
    assert.match(qemuIo(got, 'read -P 0x11 0 1M'), /read 1048576/);
    assert.ok(b.images.list().some((i) => i.image_name === s.image_name));
  });

  test('images/delete: refused while a VM, a disk or another image uses the file, or when another renter downloaded it', async () => {
    const s = a.store.snapshot(T, 's1')!;
    await assert.rejects(b.images.remove('w1', 'base.qcow2'), /was not downloaded by this renter/);
    await assert.rejects(b.images.remove('w2', s.image_name), /was not downloaded by this renter/);
    b.store.insert(fakeTask('B1234567890123456789AB', { image_name: s.image_name }), []);
    await assert.rejects(b.images.remove('w1', s.image_name), /is in use by task B1234567890123456789AB/);
    b.store.remove('B1234567890123456789AB');
    await createOverlay(join(b.imageDir, s.image_name), join(b.imageDir, 'child.qcow2'));
    await assert.rejects(b.images.remove('w1', s.image_name), /is in use by image child.qcow2/);
    rmSync(join(b.imageDir, 'child.qcow2'));
    await assert.rejects(b.images.remove('w1', 'none.qcow2'), /image file:none.qcow2 is not exist/);
    await b.images.remove('w1', s.image_name);
    assert.ok(!existsSync(join(b.imageDir, s.image_name)));
  });

  test('downloaded images are checked: no foreign backing file, no external data file, no missing base', async () => {
    const centre = daemon.path;
    // backing file elsewhere on the host (e.g. another renter's disk, /etc/...)
    const secret = join(root, 'secret.qcow2');
    await createDisk(secret, 1);
    await createOverlay(secret, join(centre, 'evil-backing.qcow2'));
    // a base that node B does not have
    await createDisk(join(root, 'other-base.qcow2'), 1);
    await createOverlay(join(root, 'other-base.qcow2'), join(centre, 'no-base.qcow2'));
    // an external data file
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${join(root, 'raw.img')}`, join(centre, 'datafile.qcow2'), '16M']);
    // not an image at all
    execFileSync('truncate', ['-s', '1M', join(centre, 'raw.qcow2')]);
    // an absolute backing path naming B's base image from another directory: rewritten to the bare name
    await createOverlay(join(a.imageDir, 'base.qcow2'), join(centre, 'abs-base.qcow2'));

    const expect: Record<string, RegExp> = {
      'evil-backing.qcow2': /the base image secret.qcow2 of evil-backing.qcow2 is not on this node/,
      'no-base.qcow2': /the base image other-base.qcow2 of no-base.qcow2 is not on this node/,
      'datafile.qcow2': /uses an external data file/,
      'raw.qcow2': /is not a qcow2 image/,
    };
    for (const [file, re] of Object.entries(expect)) {
      await b.images.download('w1', daemon.server, file, '/data');
      const end = await transferEnd(b, file);
      assert.equal(end.status, 'failed', file);
      assert.match(end.error, re);
      assert.ok(!existsSync(join(b.imageDir, file)), `${file} not kept`);
    }
    assert.deepEqual(readdirSync(join(b.imageDir, STAGING_DIR)), [], 'no partial files');
    await b.images.download('w1', daemon.server, 'abs-base.qcow2', '/data');
    assert.equal((await transferEnd(b, 'abs-base.qcow2')).status, 'done');
    assert.equal((await info(join(b.imageDir, 'abs-base.qcow2'))).backingFile, 'base.qcow2');
  });

  test('upload from a node: only image files, never a task disk; progress answers after the fact', async () => {
    b.store.insert(fakeTask('C1234567890123456789AB'), [
      { task_id: 'C1234567890123456789AB', name: 'vdb', path: join(b.imageDir, 'data_x.qcow2'), size_gb: 1, kind: 'data', owned: true },
    ]);
    await createDisk(join(b.imageDir, 'data_x.qcow2'), 1);
    await assert.rejects(
      b.images.upload('w1', daemon.server, 'data_x.qcow2'),
      /image file:data_x.qcow2 is not exist/,
      'a task disk: the text of a missing file',
    );
    await assert.rejects(b.images.upload('w1', undefined, 'base.qcow2'), /no image_server/);
    const row = await b.images.upload('w1', daemon.server, '/data/base.qcow2');
    assert.equal((await b.transfers.settled(row.id))?.status, 'done');
    // every transfer now runs as an operation, so the reply names it (as a node's always did)
    assert.deepEqual(b.images.uploadProgress('w1', 'base.qcow2'), {
      status: 'done',
      progress: '100%',
      bytes: row.total_bytes,
      total_bytes: row.total_bytes,
      operation_id: row.operation_id,
    });
    execFileSync('cmp', [join(daemon.path, 'base.qcow2'), join(b.imageDir, 'base.qcow2')]);
    await assert.rejects(b.images.upload('w1', daemon.server, 'abs-base.qcow2'), /already exist/, 'the centre has it: never overwritten');
    assert.deepEqual(b.images.downloadProgress('w1', 'abs-base.qcow2').status, 'done');
    assert.throws(() => b.images.uploadProgress('w1', 'never.qcow2'), /is not in uploading/);
    // another wallet sees no such upload (issue 10, finding 5)
    assert.throws(() => b.images.uploadProgress('w2', 'base.qcow2'), /is not in uploading/);
  });
});
