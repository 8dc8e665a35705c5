// Names, directories and image-centre strings: what may reach rsync, qemu-img and QEMU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { imageFilenameOf, isDiskName, isImageFilename, isSnapshotName, resolveRequestedDir } from '../../src/images/names.js';
import { formatImageServer, ImageServerRegistry, parseImageServer, rsyncUrl, validImageServer } from '../../src/images/servers.js';
import { parseListing, rsyncReason } from '../../src/images/rsync.js';

test('image file names: a safe name ending in .qcow2, nothing that could be a path or an option', () => {
  for (const ok of ['a.qcow2', 'dbc-test.qcow2', 'snap_s1_ab12.qcow2', 'Ubuntu22.04.qcow2', `${'a'.repeat(122)}.qcow2`]) {
    assert.ok(isImageFilename(ok), ok);
  }
  for (const bad of [
    '',
    '.qcow2',
    '..qcow2',
    '../a.qcow2',
    'a/b.qcow2',
    '-a.qcow2',
    '.a.qcow2',
    'a b.qcow2',
    'a.img',
    'a,b.qcow2',
    'a..b.qcow2',
    'a\n.qcow2',
    `${'a'.repeat(123)}.qcow2`,
    'ä.qcow2',
    'a.qcow2 ',
    5,
    null,
  ]) {
    assert.ok(!isImageFilename(bad), String(bad));
  }
  assert.equal(imageFilenameOf('/data/x.qcow2'), 'x.qcow2');
  assert.equal(imageFilenameOf('x.qcow2'), 'x.qcow2');
  assert.equal(imageFilenameOf('/etc/x.qcow2'), undefined);
  assert.equal(imageFilenameOf('/data/../x.qcow2'), undefined);
  assert.equal(imageFilenameOf('/data/sub/x.qcow2'), undefined);
});

test('snapshot and disk names', () => {
  assert.ok(isSnapshotName('s1') && isSnapshotName('my-snap.2024_01') && isSnapshotName('a'.repeat(64)));
  for (const bad of ['', '-x', 'a/b', '..', 'a..b', 'a b', 'a'.repeat(65), 'x;rm', '$(id)']) assert.ok(!isSnapshotName(bad), bad);
  assert.ok(isDiskName('vdb') && isDiskName('vdz') && isDiskName('vda'));
  for (const bad of ['vd', 'vdaa', 'sda', 'vdB', '../vdb', 'vd1']) assert.ok(!isDiskName(bad), bad);
});

test('requested directories: /data is the image dir; others only inside allowed roots, symlinks resolved', () => {
  const root = mkdtempSync(join(os.tmpdir(), 'dbc-dirs-'));
  try {
    const home = join(root, 'images');
    const allowed = join(root, 'allowed');
    const outside = join(root, 'outside');
    for (const d of [home, allowed, outside, join(allowed, 'sub')]) mkdirSync(d, { recursive: true });
    symlinkSync(outside, join(allowed, 'escape'));
    assert.deepEqual(resolveRequestedDir('/data', home, []), { ok: true, dir: home });
    assert.deepEqual(resolveRequestedDir('/data/', home, []), { ok: true, dir: home });
    assert.deepEqual(resolveRequestedDir(allowed, home, [allowed]), { ok: true, dir: allowed });
    assert.deepEqual(resolveRequestedDir(join(allowed, 'sub'), home, [allowed]), { ok: true, dir: join(allowed, 'sub') });
    assert.deepEqual(resolveRequestedDir(join(allowed, 'escape'), home, [allowed]), { ok: false, reason: 'not_allowed' });
    assert.deepEqual(resolveRequestedDir(outside, home, [allowed]), { ok: false, reason: 'not_allowed' });
    assert.deepEqual(resolveRequestedDir(join(allowed, 'none'), home, [allowed]), { ok: false, reason: 'not_exist' });
    assert.deepEqual(resolveRequestedDir('/etc/none', home, [allowed]), { ok: false, reason: 'not_allowed' });
    for (const bad of ['relative', `${allowed}/../outside`, '/a b', '/a,b', '/tmp//x', '/data/..', '']) {
      assert.equal(resolveRequestedDir(bad, home, [allowed]).ok, false, bad);
    }
    assert.equal((resolveRequestedDir(`${allowed}/../outside`, home, [allowed]) as { reason: string }).reason, 'invalid');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('image centres: ID,host,port,module (and the 5-field variant), validated; URLs', () => {
  assert.deepEqual(parseImageServer('ID_1,127.0.0.1,873,images'), { id: 'ID_1', host: '127.0.0.1', port: 873, module: 'images' });
  assert.deepEqual(parseImageServer(' ID_2 , img.example.com , 8873 , dbc '), { id: 'ID_2', host: 'img.example.com', port: 8873, module: 'dbc' });
  assert.deepEqual(parseImageServer('ID_1,127.0.0.1,22,873,images'), { id: 'ID_1', host: '127.0.0.1', port: 873, module: 'images' });
  for (const bad of [
    'ID_1,127.0.0.1,873',
    'ID_1,127.0.0.1,x,images',
    'ID_1,127.0.0.1,0,images',
    'ID_1,127.0.0.1,70000,images',
    'ID_1,-oProxy,873,images',
    'ID_1,host name,873,images',
    'ID 1,h,873,images',
    'ID_1,h,873,mod/ule',
    ',h,873,images',
  ]) {
    assert.throws(() => parseImageServer(bad), /image server/, bad);
  }
  assert.equal(rsyncUrl(parseImageServer('ID_1,10.0.0.1,873,images'), 'a.qcow2'), 'rsync://10.0.0.1:873/images/a.qcow2');
  assert.equal(rsyncUrl({ id: 'x', host: '::1', port: 873, module: 'm' }), 'rsync://[::1]:873/m/');
  assert.equal(formatImageServer(parseImageServer('ID_1,h,1,m')), 'ID_1,h,1,m');
  assert.equal(validImageServer({ id: 'ID_1', host: 'h', port: '873', module: 'm' }), undefined, 'the wire form has a numeric port');
  assert.equal(validImageServer({ id: 'ID_1', host: 'h;id', port: 873, module: 'm' }), undefined);
  const reg = new ImageServerRegistry([parseImageServer('ID_1,a,1,m'), parseImageServer('ID_2,b,2,m'), parseImageServer('ID_1,c,3,m')]);
  assert.deepEqual(reg.ids(), ['ID_1', 'ID_2']);
  assert.equal(reg.get('ID_1')?.host, 'c');
});

test('rsync output: listings and error reasons', () => {
  const listing = [
    'drwxr-xr-x          4,096 2026/11/27 14:27:31 .',
    '-rw-r--r--    314,572,800 2026/11/27 14:27:36 big.qcow2',
    'lrwxrwxrwx             10 2026/11/27 14:27:36 link.qcow2',
    '-rw-r--r--              7 2026/11/27 14:27:36 notes.txt',
  ].join('\n');
  assert.deepEqual(parseListing(listing), [
    { name: 'big.qcow2', size: 314572800, mtime: '2026/11/27 14:27:36' },
    { name: 'notes.txt', size: 7, mtime: '2026/11/27 14:27:36' },
  ]);
  assert.equal(
    rsyncReason(
      'rsync: [sender] link_stat "/x/a.qcow2" (in images) failed: No such file or directory (2)\nrsync error: some files/attrs were not transferred (see previous errors) (code 23)\n',
      23,
    ),
    '[sender] link_stat "/x/a.qcow2" (in images) failed: No such file or directory (2)',
  );
  assert.equal(rsyncReason("@ERROR: Unknown module 'x'\nrsync error: error starting client-server protocol (code 5)", 5), "@ERROR: Unknown module 'x'");
  assert.equal(rsyncReason('', 10), 'rsync exited with 10');
});
