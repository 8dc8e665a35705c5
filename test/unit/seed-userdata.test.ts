// The NoCloud user-data a stock cloud image gets: resolvable hostname, password SSH, the user in sudo, the data disk
// formatted once by its serial and mounted at /data with nofail; bad disk names are refused before any file exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderUserData, validateSeedOptions } from '../../src/storage/seed.js';

const base = { instanceId: 'task-1', hostname: 'dbc-task-1', user: 'dbc', password: 'Pa ss-1!' };

test('user-data: manage_etc_hosts, ssh_pwauth, sudo, and the data disk by serial, never reformatted, nofail', () => {
  const u = renderUserData({ ...base, dataDisk: 'vdb' });
  const lines = u.split('\n');
  assert.equal(lines[0], '#cloud-config');
  for (const l of ['manage_etc_hosts: localhost', 'ssh_pwauth: true', '    groups: [sudo]', "    plain_text_passwd: 'Pa ss-1!'"])
    assert.ok(lines.includes(l), l);
  const fs = lines.indexOf('fs_setup:');
  assert.deepEqual(lines.slice(fs, fs + 6), [
    'fs_setup:',
    '  - label: dbc-data',
    '    filesystem: ext4',
    '    device: /dev/disk/by-id/virtio-vdb',
    '    partition: none',
    '    overwrite: false',
  ]);
  assert.ok(lines.includes('  - [LABEL=dbc-data, /data, ext4, "defaults,nofail", "0", "2"]'));
  // every top-level key once (YAML would keep only the last of duplicates)
  const keys = lines.filter((l) => /^[a-z_]+:/.test(l)).map((l) => l.split(':')[0]);
  assert.equal(new Set(keys).size, keys.length, keys.join(','));
});

test('user-data without a data disk has no fs_setup or mounts', () => {
  const u = renderUserData(base);
  assert.ok(!u.includes('fs_setup') && !u.includes('mounts'));
});

test('a data disk name that is not vdX is refused', () => {
  for (const bad of ['sda', 'vdb;rm', '../vdb', 'vd', 'vdabc']) assert.throws(() => validateSeedOptions({ ...base, dataDisk: bad }), /invalid seed data disk/);
  validateSeedOptions({ ...base, dataDisk: 'vdaa' });
});
