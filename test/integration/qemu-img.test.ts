import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { QemuImg, QemuImgError, assertSafeImagePath } from '../../src/storage/qemu-img.js';

const GiB = 1024 ** 3;
const qemuImg = new QemuImg();
let dir = '';

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dbc-qemu-img-'));
});
after(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test('an overlay on a 10 GiB base is created at once and points at its base', async () => {
  const base = path.join(dir, 'base.qcow2');
  const overlay = path.join(dir, 'task1.qcow2');
  await qemuImg.createDisk(base, 10);
  const t0 = performance.now();
  await qemuImg.createOverlay(base, overlay);
  const ms = performance.now() - t0;
  assert.ok(ms < 500, `overlay took ${ms.toFixed(0)} ms`);
  const info = await qemuImg.info(overlay);
  assert.equal(info.format, 'qcow2');
  assert.equal(info.virtualSize, 10 * GiB);
  assert.equal(info.backingFile, base);
  assert.equal(info.backingFormat, 'qcow2');
  assert.ok(info.actualSize < 10 * 1024 * 1024, `overlay holds ${info.actualSize} bytes, expected a few KiB`);
  const baseInfo = await qemuImg.info(base);
  assert.equal(baseInfo.backingFile, undefined);
});

test('an overlay may be larger than its base', async () => {
  const base = path.join(dir, 'small.qcow2');
  const overlay = path.join(dir, 'big-overlay.qcow2');
  await qemuImg.createDisk(base, 1);
  await qemuImg.createOverlay(base, overlay, 3);
  assert.equal((await qemuImg.info(overlay)).virtualSize, 3 * GiB);
});

test('resize grows a disk and refuses to shrink it', async () => {
  const disk = path.join(dir, 'data.qcow2');
  await qemuImg.createDisk(disk, 2);
  await qemuImg.resize(disk, 5);
  assert.equal((await qemuImg.info(disk)).virtualSize, 5 * GiB);
  await assert.rejects(qemuImg.resize(disk, 1), (e: unknown) => e instanceof QemuImgError && /shrink/i.test(e.stderr));
  assert.equal((await qemuImg.info(disk)).virtualSize, 5 * GiB);
});

test('check reports a clean image; convert with -B writes a new overlay on the same base', async () => {
  const base = path.join(dir, 'cbase.qcow2');
  const overlay = path.join(dir, 'cov.qcow2');
  const snap = path.join(dir, 'snap.qcow2');
  await qemuImg.createDisk(base, 1);
  await qemuImg.createOverlay(base, overlay);
  assert.equal((await qemuImg.check(overlay)).ok, true);
  await qemuImg.convert(overlay, snap, { backing: base });
  const info = await qemuImg.info(snap);
  assert.equal(info.backingFile, base);
  assert.equal(info.virtualSize, 1 * GiB);
});

test('errors carry the stderr of qemu-img', async () => {
  const missing = path.join(dir, 'missing.qcow2');
  await assert.rejects(qemuImg.info(missing), (e: unknown) => {
    assert.ok(e instanceof QemuImgError);
    assert.match(e.stderr, /No such file|Could not open/);
    assert.match(e.message, /missing\.qcow2/);
    return true;
  });
  await assert.rejects(qemuImg.createOverlay(missing, path.join(dir, 'orphan.qcow2')), QemuImgError);
});

test('unsafe paths never reach qemu-img', async () => {
  for (const bad of [
    'relative.qcow2',
    '/tmp/../etc/passwd',
    '/tmp/a b.qcow2',
    '/tmp/x;rm -rf.qcow2',
    '/tmp/$(id).qcow2',
    '/tmp/a\n.qcow2',
    '',
    '/tmp/ü.qcow2',
    '/tmp/a,b.qcow2',
  ]) {
    assert.throws(() => assertSafeImagePath(bad), /unsafe image path/, bad);
    await assert.rejects(qemuImg.info(bad), /unsafe image path/);
    await assert.rejects(qemuImg.createOverlay(path.join(dir, 'base.qcow2'), bad), /unsafe image path/);
  }
  await assert.rejects(qemuImg.createDisk(path.join(dir, 'x.qcow2'), 0), /invalid disk size/);
  await assert.rejects(qemuImg.createDisk(path.join(dir, 'x.qcow2'), 1.5), /invalid disk size/);
  await assert.rejects(fs.access(path.join(dir, 'x.qcow2')));
  assert.equal(assertSafeImagePath('/data/dbc/images/ubuntu-22.04_v2.qcow2'), '/data/dbc/images/ubuntu-22.04_v2.qcow2');
});
