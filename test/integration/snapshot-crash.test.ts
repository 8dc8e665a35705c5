// A node killed (kill -9) while a snapshot was uploading: at the next start the record must say what really
// happened. The upload completed meanwhile (the orphaned rsync finished it) -> done, verified on the centre; it did
// not -> it starts again and completes; neither is possible -> failed, with the reason, never stuck `uploading`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startRsyncDaemon, type RsyncDaemon } from '../../src/images/daemon.js';
import { ImageServerSecrets } from '../../src/images/secrets.js';
import { formatImageServer } from '../../src/images/servers.js';
import { TransferManager } from '../../src/images/transfers.js';
import { openDb, type Db } from '../../src/store/db.js';
import { TaskStore, type SnapshotRow } from '../../src/store/tasks.js';
import { createDisk } from '../../src/storage/qemu-img.js';
import { SnapshotService } from '../../src/storage/snapshots.js';
import { fakeDeps, fakeTask, FakeHv } from '../helpers/storage-fakes.js';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const T = 'C1234567890123456789AB';

describe('snapshot uploads cut by a node crash', { timeout: 120_000 }, () => {
  let root: string;
  let daemon: RsyncDaemon;
  let db: Db;
  let store: TaskStore;
  let snapDir: string;
  const secrets = new ImageServerSecrets();

  /** the state a kill -9 leaves: the record says uploading, no transfer record, the operation still running */
  async function crashed(name: string, server = formatImageServer(daemon.server)): Promise<SnapshotRow> {
    const file = join(snapDir, `snap_${name}_x.qcow2`);
    await createDisk(file, 1);
    const op = store.createOperation({ id: `op-${name}`, task_id: T, wallet: 'w1', kind: 'snapshot_create', status: 'running' });
    const now = Date.now();
    const row: SnapshotRow = {
      task_id: T,
      name,
      wallet: 'w1',
      description: '',
      file,
      image_name: `snap_${name}_x.qcow2`,
      base_image: 'base.qcow2',
      image_server: server,
      status: 'uploading',
      error: '',
      size_bytes: readFileSync(file).length,
      operation_id: op.id,
      create_time: '2026-12-05 00:00:00',
      created_at: now,
      updated_at: now,
    };
    store.insertSnapshot(row);
    return row;
  }

  async function restart(): Promise<{ snaps: SnapshotService; transfers: TransferManager }> {
    // a fresh operations layer over the same store, as a restarted daemon builds; ops.recover() runs the resumers
    const deps = fakeDeps(store, new FakeHv(), join(root, 'images'), join(root, 'vms'));
    const transfers = new TransferManager({ repo: store, ops: deps.ops, log: quiet, secrets });
    const snaps = new SnapshotService(deps, transfers);
    await snaps.init();
    await transfers.init();
    await deps.ops.recover();
    return { snaps, transfers };
  }

  async function settled(name: string): Promise<SnapshotRow> {
    for (let i = 0; i < 400; i++) {
      const s = store.snapshot(T, name)!;
      if (s.status !== 'uploading') return s;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${name} still uploading`);
  }

  before(async () => {
    root = mkdtempSync(join(os.tmpdir(), 'dbc-snapcrash-'));
    mkdirSync(join(root, 'images'), { recursive: true });
    snapDir = join(root, 'vms', T, 'snapshots');
    mkdirSync(snapDir, { recursive: true });
    daemon = await startRsyncDaemon({ dir: join(root, 'centre') });
    secrets.set(daemon.server, daemon.upload);
    db = openDb(join(root, 'node.db'));
    store = new TaskStore(db);
    store.insert(fakeTask(T), []);
  });
  after(async () => {
    db?.close();
    await daemon?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  test('an upload that completed before the restart is recorded as done, verified on the centre', async () => {
    const s = await crashed('done1');
    copyFileSync(s.file, join(daemon.path, s.image_name)); // what the orphaned rsync finished
    const { transfers } = await restart();
    const after = await settled('done1');
    assert.equal(after.status, 'none', after.error);
    const op = store.operation(s.operation_id)!;
    assert.equal(op.status, 'done');
    assert.match(op.stage, /verified on the centre/);
    await transfers.close();
  });

  test('an upload that did not complete starts again and completes', async () => {
    const s = await crashed('again1');
    const { transfers } = await restart();
    const after = await settled('again1');
    assert.equal(after.status, 'none', after.error);
    assert.deepEqual(readFileSync(join(daemon.path, s.image_name)), readFileSync(s.file), 'the centre has the same bytes');
    assert.equal(store.operation(s.operation_id)!.status, 'done');
    await transfers.close();
  });

  test('neither possible: failed definitely, with the reason', async () => {
    const gone = await crashed('gone1');
    rmSync(gone.file);
    const dead = await crashed('dead1', `ID_9,127.0.0.1,1,images`);
    const { transfers } = await restart();
    const a = store.snapshot(T, 'gone1')!;
    assert.equal(a.status, 'failed');
    assert.match(a.error, /snapshot file is gone/);
    const b = store.snapshot(T, 'dead1')!;
    assert.equal(b.status, 'failed');
    assert.match(b.error, /image centre did not answer/);
    assert.equal(store.operation(dead.operation_id)!.status, 'failed');
    assert.ok(!b.error.includes(root), 'no host path');
    await transfers.close();
  });
});
