// snapshot/create refusals (before any file is written) and the names it gives snapshots.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { MemoryTransferRepo, TransferManager } from '../../src/images/transfers.js';
import { isImageFilename } from '../../src/images/names.js';
import { openDb, type Db } from '../../src/store/db.js';
import { TaskStore } from '../../src/store/tasks.js';
import { createDisk, createOverlay } from '../../src/storage/qemu-img.js';
import { SnapshotService, snapshotImageName } from '../../src/storage/snapshots.js';
import { snapshotCreateArgs } from '../../src/node/commands/storage.js';
import type { ImageServer } from '../../src/images/servers.js';
import type { Task } from '../../src/domain/task.js';
import { fakeDeps, fakeTask, FakeHv } from '../helpers/storage-fakes.js';

const quiet = { info() {}, warn() {}, error() {} };
const SERVER = { id: 'ID_1', host: '127.0.0.1', port: 1, module: 'images' };

describe('snapshots', () => {
  let root: string;
  let db: Db;
  let store: TaskStore;
  let hv: FakeHv;
  let service: SnapshotService;
  /** what the handler calls: `additional` parsed at the edge, then the service */
  const snaps = {
    create: async (task: Task, name: unknown, desc: unknown, server: ImageServer | undefined) => {
      const a = snapshotCreateArgs(task, { snapshot_name: name, desc }, server);
      return service.create(task, a.name, a.desc, a.server);
    },
    get: (task: Task, name: string) => service.get(task, name),
    remove: (task: Task, name: string) => service.remove(task, name),
  };
  const busy = new Set<string>();
  const T = 'S1234567890123456789AB';
  const NOBASE = 'N1234567890123456789AB';

  before(async () => {
    root = mkdtempSync(join(os.tmpdir(), 'dbc-snaps-'));
    const imageDir = join(root, 'images');
    mkdirSync(imageDir);
    mkdirSync(join(root, 'vms', T), { recursive: true });
    mkdirSync(join(root, 'vms', NOBASE), { recursive: true });
    db = openDb(join(root, 'node.db'));
    store = new TaskStore(db);
    hv = new FakeHv();
    const deps = fakeDeps(store, hv, imageDir, join(root, 'vms'), busy);
    service = new SnapshotService(deps, new TransferManager({ repo: new MemoryTransferRepo(), ops: deps.ops, log: quiet }));
    await createDisk(join(imageDir, 'base.qcow2'), 1);
    await createOverlay(join(imageDir, 'base.qcow2'), join(root, 'vms', T, 'vda.qcow2'));
    await createDisk(join(root, 'vms', NOBASE, 'vda.qcow2'), 1);
    store.insert(fakeTask(T), [{ task_id: T, name: 'vda', path: join(root, 'vms', T, 'vda.qcow2'), size_gb: 0, kind: 'os', owned: true }]);
    store.insert(fakeTask(NOBASE), [{ task_id: NOBASE, name: 'vda', path: join(root, 'vms', NOBASE, 'vda.qcow2'), size_gb: 0, kind: 'os', owned: true }]);
  });
  after(() => {
    db.close();
    rmSync(root, { recursive: true, force: true });
  });

  test('image names on the centre are valid image file names, unique, and carry the snapshot name', () => {
    const a = snapshotImageName('s1');
    const b = snapshotImageName('s1');
    assert.ok(isImageFilename(a) && isImageFilename(b), a);
    assert.match(a, /^snap_s1_[0-9a-z]{8}\.qcow2$/);
    assert.notEqual(a, b);
    assert.ok(isImageFilename(snapshotImageName('x'.repeat(64))));
  });

  test('refusals: bad names, no image centre, VM running or busy, pxe, no base image; nothing is left behind', async () => {
    const task = store.get(T)!;
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      [() => snaps.create(task, undefined, '', SERVER), /: 'snapshot_name' is empty$/],
      [() => snaps.create(task, '', '', SERVER), /: 'snapshot_name' is empty$/],
      [() => snaps.create(task, '../x', '', SERVER), /'snapshot_name' is invalid/],
      [() => snaps.create(task, 'a b', '', SERVER), /'snapshot_name' is invalid/],
      [() => snaps.create(task, 'x'.repeat(65), '', SERVER), /'snapshot_name' is invalid/],
      [() => snaps.create(task, 7, '', SERVER), /'snapshot_name' is invalid/],
      [() => snaps.create(task, 's1', '', undefined), /no image_server/],
      [() => snaps.create({ ...task, bios_mode: 'pxe' }, 's1', '', SERVER), /pxe not support snapshot/],
      [() => snaps.create(store.get(NOBASE)!, 's1', '', SERVER), /vda has no base image/],
    ];
    for (const [fn, re] of cases) await assert.rejects(fn, re);
    hv.state_ = 'running';
    await assert.rejects(snaps.create(task, 's1', '', SERVER), /please close task first and try again/);
    hv.state_ = 'shutoff';
    busy.add(T);
    await assert.rejects(snaps.create(task, 's1', '', SERVER), /task is closed, please try again later/);
    busy.delete(T);
    assert.deepEqual(store.snapshots(T), []);
    assert.equal(existsSync(join(root, 'vms', T, 'snapshots')) ? readdirSync(join(root, 'vms', T, 'snapshots')).length : 0, 0);
    assert.throws(() => snaps.get(task, 'none'), /snapshot_name not exist/);
    await assert.rejects(snaps.remove(task, 'none'), /none not exist/);
  });

  test('an unreachable image centre: the snapshot is converted, then marked failed with the reason', async () => {
    const { operationId } = await snaps.create(store.get(T)!, 'unreach', 'd', SERVER);
    for (let i = 0; i < 100 && store.operation(operationId)!.status === 'running'; i++) await new Promise((r) => setTimeout(r, 50));
    const op = store.operation(operationId)!;
    assert.equal(op.status, 'failed');
    assert.match(op.error, /upload to image_server failed/);
    const s = store.snapshot(T, 'unreach')!;
    assert.equal(s.status, 'failed');
    assert.ok(existsSync(s.file), 'the converted file stays until the snapshot is deleted');
    await snaps.remove(store.get(T)!, 'unreach');
    assert.ok(!existsSync(s.file));
    assert.equal(store.snapshot(T, 'unreach'), undefined);
  });
});
