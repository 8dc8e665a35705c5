// disk/add, disk/resize, disk/delete against real qemu-img files and a recording fake hypervisor (its disk seam);
// the arguments go through the edge's parsing (node/commands/storage.ts) as the handlers do.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { openDb, type Db } from '../../src/store/db.js';
import { TaskStore } from '../../src/store/tasks.js';
import { DiskService, nextDiskName } from '../../src/storage/disks.js';
import { diskAddArgs, diskRemoveArgs, diskResizeArgs, parseSizeGb } from '../../src/node/commands/storage.js';
import type { Task } from '../../src/domain/task.js';
import { blockNodeOf, hotplugCommands } from '../../src/vm/qemu-args.js';
import { createDisk, info } from '../../src/storage/qemu-img.js';
import { fakeDeps, fakeTask, FakeHv } from '../helpers/storage-fakes.js';

const GiB = 1024 ** 3;

describe('disks', () => {
  let root: string;
  let db: Db;
  let store: TaskStore;
  let hv: FakeHv;
  let disks: {
    list: DiskService['list'];
    allowDirs: (dirs: string[]) => void;
    add: (task: Task, size: unknown, mountDir: unknown) => ReturnType<DiskService['add']>;
    resize: (task: Task, disk: unknown, size: unknown) => ReturnType<DiskService['resize']>;
    remove: (task: Task, disk: unknown) => ReturnType<DiskService['remove']>;
  };
  let imageDir: string;
  const busy = new Set<string>();
  const T = 'T1234567890123456789AB';

  before(async () => {
    root = mkdtempSync(join(os.tmpdir(), 'dbc-disks-'));
    imageDir = join(root, 'images');
    mkdirSync(imageDir);
    mkdirSync(join(root, 'allowed'));
    db = openDb(join(root, 'node.db'));
    store = new TaskStore(db);
    hv = new FakeHv();
    const service = new DiskService(fakeDeps(store, hv, imageDir, join(root, 'vms'), busy));
    // what the handlers call: `additional` parsed at the edge, then the service
    disks = {
      list: (task: Task) => service.list(task),
      allowDirs: (dirs: string[]) => service.allowDirs(dirs),
      add: async (task: Task, size: unknown, mountDir: unknown) => {
        const a = diskAddArgs(task, { size, mount_dir: mountDir });
        return service.add(task, a.sizeGb, a.mountDir);
      },
      resize: async (task: Task, disk: unknown, size: unknown) => {
        const a = diskResizeArgs(task, { disk, size });
        return service.resize(task, a.disk, a.incGb);
      },
      remove: async (task: Task, disk: unknown) => service.remove(task, diskRemoveArgs(task, { disk }).disk),
    };
    disks.allowDirs([join(root, 'allowed')]);
    await createDisk(join(imageDir, 'vda.qcow2'), 1);
    await createDisk(join(imageDir, 'vdb.qcow2'), 1);
    store.insert(fakeTask(T), [
      { task_id: T, name: 'vda', path: join(imageDir, 'vda.qcow2'), size_gb: 0, kind: 'os', owned: true },
      { task_id: T, name: 'vdb', path: join(imageDir, 'vdb.qcow2'), size_gb: 1, kind: 'data', owned: true },
    ]);
  });
  after(() => {
    db.close();
    rmSync(root, { recursive: true, force: true });
  });

  test('helpers: next name, size parsing, QMP commands, block node lookup', () => {
    assert.equal(nextDiskName(['vda']), 'vdb');
    assert.equal(nextDiskName(['vda', 'vdb', 'vdd']), 'vde');
    assert.equal(nextDiskName(['vda', 'vdz']), undefined);
    assert.deepEqual([parseSizeGb(20), parseSizeGb('20'), parseSizeGb(' 3 '), parseSizeGb(-1)], [20, 20, 3, -1]);
    for (const bad of [1.5, '1.5', 'abc', '', null, {}, '1e3', true]) assert.equal(parseSizeGb(bad), undefined, String(bad));
    assert.deepEqual(hotplugCommands('vdc', '/d/x.qcow2'), [
      { execute: 'blockdev-add', arguments: { driver: 'qcow2', 'node-name': 'drive-vdc', file: { driver: 'file', filename: '/d/x.qcow2' } } },
      { execute: 'device_add', arguments: { driver: 'virtio-blk-pci', drive: 'drive-vdc', id: 'vdc', serial: 'vdc' } },
    ]);
    const entries = [
      { device: 'drive-vdb', qdev: '/machine/peripheral/vdb/virtio-backend', inserted: { 'node-name': '#block123', file: '/d/b' } },
      { device: '', qdev: '/machine/peripheral/vdc/virtio-backend', inserted: { 'node-name': 'drive-vdc', file: '/d/c' } },
    ];
    assert.equal(blockNodeOf(entries, 'vdb', '/d/b'), '#block123');
    assert.equal(blockNodeOf(entries, 'vdc', '/d/c'), 'drive-vdc');
    assert.equal(blockNodeOf(entries, 'vdd', '/d/d'), undefined);
  });

  test('list: name, file and the virtual size', async () => {
    const list = await disks.list(store.get(T)!);
    assert.deepEqual(
      list.map((d) => [d.name, d.size]),
      [
        ['vda', '1G'],
        ['vdb', '1G'],
      ],
    );
  });

  test('add with the VM off: a file in the image dir, the next name, attached at the next boot', async () => {
    const { disk } = await disks.add(store.get(T)!, 2, undefined);
    assert.equal(disk.name, 'vdc');
    assert.ok(disk.path.startsWith(`${imageDir}/data_`) && disk.path.endsWith(`_${T}_vdc.qcow2`));
    assert.equal((await info(disk.path)).virtualSize, 2 * GiB);
    assert.deepEqual(
      store.disks(T).map((d) => d.name),
      ['vda', 'vdb', 'vdc'],
    );
    assert.equal(hv.calls.length, 0);
    const inAllowed = await disks.add(store.get(T)!, '1', join(root, 'allowed'));
    assert.equal(inAllowed.disk.name, 'vdd');
    assert.ok(inAllowed.disk.path.startsWith(join(root, 'allowed') + '/'));
  });

  // the QMP side (blockdev-add + device_add, blockdev-del on failure) is the hypervisor's: test/unit of vm/qemu
  test('add with the VM running: hot-plugged through the hypervisor as this name and file; a failed hot-plug is rolled back', async () => {
    hv.state_ = 'running';
    const { disk } = await disks.add(store.get(T)!, 1, '/data');
    assert.equal(disk.name, 'vde');
    assert.deepEqual(hv.calls, [{ op: 'attachDisk', taskId: T, name: 'vde', path: disk.path }]);
    hv.calls.length = 0;
    hv.failOn = 'attachDisk';
    const before = readdirSync(imageDir).sort();
    await assert.rejects(disks.add(store.get(T)!, 1, '/data'), /does not support hotplugging/);
    assert.deepEqual(
      hv.calls.map((c) => [c.op, c.name]),
      [['attachDisk', 'vdf']],
    );
    assert.deepEqual(readdirSync(imageDir).sort(), before, 'no file left behind');
    assert.ok(!store.disks(T).some((d) => d.name === 'vdf'), 'no row left behind');
    hv.failOn = '';
    hv.calls.length = 0;
  });

  test('resize is an increment: offline with qemu-img, online through the hypervisor to the new size', async () => {
    hv.state_ = 'shutoff';
    const vdb = store.disks(T).find((d) => d.name === 'vdb')!;
    await disks.resize(store.get(T)!, 'vdb', 2);
    assert.equal((await info(vdb.path)).virtualSize, 3 * GiB);
    assert.equal(store.disks(T).find((d) => d.name === 'vdb')!.size_gb, 3);
    hv.state_ = 'running';
    const r = await disks.resize(store.get(T)!, 'vdb', '1');
    assert.equal(r.bytes, 4 * GiB);
    assert.deepEqual(hv.calls.at(-1), { op: 'growDisk', taskId: T, name: 'vdb', path: vdb.path, bytes: 4 * GiB });
    hv.state_ = 'shutoff';
  });

  test('bad input: a clear error, and nothing changes', async () => {
    const task = store.get(T)!;
    const rows = JSON.stringify(store.disks(T));
    const files = readdirSync(imageDir).sort().join();
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      [() => disks.add(task, 0, undefined), /: 'size' is invalid$/],
      [() => disks.add(task, 'abc', undefined), /: 'size' is invalid$/],
      [() => disks.add(task, 1.5, undefined), /: 'size' is invalid$/],
      [() => disks.add(task, 60000, undefined), /have no enough space/],
      [() => disks.add(task, 1, '/etc'), /mount_dir:\/etc is not allowed/],
      [() => disks.add(task, 1, `${root}/allowed/../images`), /is invalid/],
      [() => disks.add(task, 1, 'relative/dir'), /is invalid/],
      [() => disks.add(task, 1, `${root}/allowed/missing`), /is not exist/],
      [() => disks.resize(task, undefined, 1), /: 'disk' is empty$/],
      [() => disks.resize(task, '../vdb', 1), /'disk' is invalid/],
      [() => disks.resize(task, 'vdq', 1), /disk:vdq is not exist/],
      [() => disks.resize(task, 'vdb', 0), /disks only grow/],
      [() => disks.resize(task, 'vdb', -5), /disks only grow/],
      [() => disks.resize(task, 'vdb', 'x'), /: 'size' is invalid$/],
      [() => disks.remove(task, 'vda'), /can not allowed to delete disk:'vda'/],
      [() => disks.remove(task, ''), /: 'disk' is empty$/],
      [() => disks.remove(task, 'vdq'), /disk:vdq is not exist/],
      [() => disks.list({ ...task, bios_mode: 'pxe' }), /pxe not support disk/],
    ];
    for (const [p, re] of cases) await assert.rejects(p, re);
    hv.state_ = 'running';
    await assert.rejects(disks.remove(task, 'vdc'), /please close task first and try again/);
    hv.state_ = 'shutoff';
    busy.add(T);
    await assert.rejects(disks.add(task, 1, undefined), /task is closed, please try again later/);
    busy.delete(T);
    assert.equal(JSON.stringify(store.disks(T)), rows);
    assert.equal(readdirSync(imageDir).sort().join(), files);
  });

  test('delete with the VM off removes the row and the file (never a reused data file)', async () => {
    const vdc = store.disks(T).find((d) => d.name === 'vdc')!;
    await disks.remove(store.get(T)!, 'vdc');
    assert.ok(!existsSync(vdc.path));
    assert.ok(!store.disks(T).some((d) => d.name === 'vdc'));
    db.prepare('UPDATE disks SET owned = 0 WHERE task_id = ? AND name = ?').run(T, 'vdd');
    const vdd = store.disks(T).find((d) => d.name === 'vdd')!;
    await disks.remove(store.get(T)!, 'vdd');
    assert.ok(existsSync(vdd.path), 'a data_file_name disk stays');
    const ops = store.operationsOfTask(T).map((o) => `${o.kind}:${o.status}`);
    assert.ok(ops.includes('disk_delete:done') && ops.includes('disk_add:failed'), ops.join());
  });
});
