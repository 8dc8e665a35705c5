// What a renter may read of a failure or a file: no host path, no raw QEMU stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DbcError, NodeErrors, publicErrorText } from '../../src/protocol/errors.js';
import { shownPath } from '../../src/images/names.js';

test('our own error texts pass unchanged', () => {
  assert.equal(publicErrorText(NodeErrors.taskNotExist()), 'task_id not exist');
  assert.equal(publicErrorText(new DbcError('X', -3, 'data_file_name is not exist, path: /data/x.qcow2')), 'data_file_name is not exist, path: /data/x.qcow2');
});

test('QEMU stderr is dropped, host paths are cut to their last component', () => {
  const qemu = new Error(
    "QEMU for VM abc exited during start: qemu-system-x86_64: -drive file=/root/.dbc/vms/abc/vda.qcow2,if=none: Could not open '/root/.dbc/images/base.qcow2': Permission denied",
  );
  assert.equal(publicErrorText(qemu), 'QEMU for VM abc exited during start (details in the node log)');
  const qmp = new Error('QMP /var/lib/dbc/vms/Xy12/run/qmp.sock: connect ENOENT /var/lib/dbc/vms/Xy12/run/qmp.sock');
  assert.equal(publicErrorText(qmp), 'QMP qmp.sock: connect ENOENT qmp.sock');
  const multi = new Error('qemu-img: Could not create "/srv/dbc/images/data_x.qcow2.part": No space left\nsecond line /etc/shadow');
  const text = publicErrorText(multi);
  assert.ok(!text.includes('/srv') && !text.includes('second line'), text);
  assert.ok(publicErrorText('x'.repeat(5000)).length <= 500);
});

test('files are shown under /data, never under the node directory', () => {
  const imageDir = '/var/lib/dbc/images';
  const task = { taskId: 'T1', dir: '/var/lib/dbc/vms/T1' };
  assert.equal(shownPath('/var/lib/dbc/images/data_ab_T1.qcow2', imageDir, task), '/data/data_ab_T1.qcow2');
  assert.equal(shownPath('/var/lib/dbc/images', imageDir, task), '/data');
  assert.equal(shownPath('/var/lib/dbc/vms/T1/vda.qcow2', imageDir, task), '/data/vm/T1/vda.qcow2');
  assert.equal(shownPath('/var/lib/dbc/vms/T1/snapshots/snap_a.qcow2', imageDir, task), '/data/vm/T1/snapshots/snap_a.qcow2');
  // a directory the renter named in mount_dir is theirs to see
  assert.equal(shownPath('/mnt/big/data_x.qcow2', imageDir, task), '/mnt/big/data_x.qcow2');
});
