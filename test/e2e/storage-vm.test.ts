// Disks, snapshots and images through `dbc up`, with real QEMU guests and real rsync image centres:
// node A (its own image centre ID_1) and node B (which also knows A's centre as ID_A).
//  - a disk hot-added to a running VM appears in the guest, grows online, is deleted with the VM off;
//  - a snapshot of A's VM goes to A's centre, B downloads it and boots a VM that has the file written before it;
//  - a download over the API shows real progress, stops at about half, resumes, and ends equal to the source;
//  - bad input gets clear envelope errors and leaves nothing behind.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeTcpPort, killRsyncUnder, post, sha256, signedBody, sleep, sshExec, startDevnet, waitFor, type Devnet } from '../helpers/devnet.js';
import { freeVncPort, hostPathOf, waitOperation, waitStatus } from '../helpers/tasks.js';
import { freeBytes } from '../../src/images/names.js';

describe('storage: disks, snapshots, images with real VMs and image centres', { timeout: 900_000 }, () => {
  let a: Devnet;
  let b: Devnet;
  let centreA: { id: string; host: string; port: number; module: string };
  let vm1 = '';
  let vm1Ssh = 0;
  let vm1Password = '';
  let snapImage = '';
  const signedA = (additional: Record<string, unknown> = {}) => signedBody(a.node_id, a.renter.seed, additional);
  const signedB = (additional: Record<string, unknown> = {}) => signedBody(b.node_id, b.renter.seed, additional);

  async function createVm(d: Devnet, image: string): Promise<{ taskId: string; ssh: number; password: string }> {
    const ssh = await freeTcpPort();
    const r = await post(
      d.api,
      'tasks/start',
      signedBody(d.node_id, d.renter.seed, {
        image_name: image,
        ssh_port: String(ssh),
        vnc_port: String(await freeVncPort()),
        cpu_cores: '1',
        mem_size: '1',
        disk_size: '1',
      }),
    );
    assert.equal(r.body.errcode, 0, r.text);
    const detail = await waitStatus(d, r.body.message.task_id, 'running', 180_000);
    await waitFor('ssh', () => sshExec('127.0.0.1', ssh, 'dbc', detail.login_password, 'true'), 120_000, 2000);
    return { taskId: r.body.message.task_id, ssh, password: detail.login_password };
  }

  before(async () => {
    a = await startDevnet({ shutdownTimeoutS: 30 });
    centreA = a.image_servers![0]!;
    assert.equal(centreA.id, 'ID_1');
    b = await startDevnet({
      shutdownTimeoutS: 30,
      extraArgs: ['--image-server', `ID_A,${centreA.host},${centreA.port},${centreA.module}`],
      // 8 MiB/s, so that a download can be watched and stopped half way
      env: { DBC_RSYNC_BWLIMIT: '8192' },
    });
  });
  after(async () => {
    for (const d of [b, a]) {
      if (!d) continue;
      await d.destroy().catch(() => undefined);
      killRsyncUnder(d.dataDir);
    }
  });

  test('image centres: /images/servers, the centre list (client side) and the node list', async () => {
    const servers = await post(b.api, 'images/servers', { peer_nodes_list: [], additional: {} });
    assert.deepEqual(servers.body, { errcode: 0, message: { image_server: ['ID_1', 'ID_A'] } });
    const centre = await post(b.api, 'images', { peer_nodes_list: [], additional: { image_server: 'ID_A' } });
    assert.equal(centre.body.errcode, 0, centre.text);
    assert.deepEqual(
      centre.body.message.map((i: any) => i.image_name),
      [a.image],
    );
    const nodeList = await post(b.api, 'images', { peer_nodes_list: [b.node_id], additional: {} });
    assert.ok(nodeList.body.message.some((i: any) => i.image_name === b.image && i['image_name:'] === b.image));
    const unknown = await post(b.api, 'images', { peer_nodes_list: [], additional: { image_server: 'ID_9' } });
    assert.deepEqual([unknown.status, unknown.body], [400, { errcode: -25, message: 'image_server not exist' }]);
  });

  test('a disk hot-added to a running VM is seen by the guest, grows online, and is deleted with the VM off', async () => {
    ({ taskId: vm1, ssh: vm1Ssh, password: vm1Password } = await createVm(a, a.image));
    // root in the guest (formatting needs it): the guest agent sets its password
    const pw = await post(a.api, `tasks/passwd/${vm1}`, signedA({ username: 'root', password: 'Root-pass_1' }));
    assert.equal(pw.body.errcode, 0, pw.text);
    const root = (cmd: string) => sshExec('127.0.0.1', vm1Ssh, 'root', 'Root-pass_1', cmd, 60_000);

    const add = await post(a.api, `disk/add/${vm1}`, signedA({ size: 1 }));
    assert.deepEqual(add.body.message, 'ok', add.text);
    assert.equal((await waitOperation(a, add.body.operation_id!, 10_000)).status, 'done');
    const list = await post(a.api, `disk/list/${vm1}`, signedA());
    const vdc = list.body.message.find((d: any) => d.name === 'vdc');
    assert.equal(vdc?.size, '1G', list.text);
    assert.match(vdc.file, /^\/data\/data_/, 'shown under /data');
    assert.ok(existsSync(hostPathOf(a, vdc.file)));

    // the hot-added disk carries its name as serial; the guest names block devices in probe order
    const findDev = 'for d in /sys/block/vd*; do [ "$(cat $d/serial 2>/dev/null)" = vdc ] && echo ${d##*/}; done';
    const dev = (await waitFor('disk in guest', async () => (await root(findDev)).trim() || undefined, 30_000, 1000)).trim();
    assert.match(dev, /^vd[a-z]$/);
    assert.equal((await root(`cat /sys/block/${dev}/size`)).trim(), String(1024 ** 3 / 512));
    const out = await root(
      `/bin/mke2fs -q -F -t ext4 /dev/${dev} && mkdir -p /mnt/x && mount /dev/${dev} /mnt/x && echo hello > /mnt/x/f && cat /mnt/x/f && umount /mnt/x`,
    );
    assert.match(out, /^hello$/m);

    const grow = await post(a.api, `disk/resize/${vm1}`, signedA({ disk: 'vdc', size: 2 }));
    assert.equal(grow.body.errcode, 0, grow.text);
    await waitFor('grown in guest', async () => (await root(`cat /sys/block/${dev}/size`)).trim() === String((3 * 1024 ** 3) / 512), 20_000, 500);
    assert.equal((await post(a.api, `disk/list/${vm1}`, signedA())).body.message.find((d: any) => d.name === 'vdc').size, '3G');

    const busy = await post(a.api, `disk/delete/${vm1}`, signedA({ disk: 'vdc' }));
    assert.deepEqual(busy.body, { errcode: -3, message: 'please close task first and try again' });

    // a file for the snapshot test, then power off
    await sshExec('127.0.0.1', vm1Ssh, 'dbc', vm1Password, 'echo written-before-the-snapshot > ~/marker; sync');
    assert.equal((await post(a.api, `tasks/shutdown/${vm1}`, signedA())).body.errcode, 0);
    await waitStatus(a, vm1, 'closed', 60_000);
    const del = await post(a.api, `disk/delete/${vm1}`, signedA({ disk: 'vdc' }));
    assert.equal(del.body.errcode, 0, del.text);
    assert.ok(!existsSync(hostPathOf(a, vdc.file)), 'the disk file is gone');
    const after = await post(a.api, `disk/list/${vm1}`, signedA());
    assert.deepEqual(
      after.body.message.map((d: any) => d.name),
      ['vda', 'vdb'],
    );
    assert.deepEqual((await post(a.api, `disk/delete/${vm1}`, signedA({ disk: 'vda' }))).body.message, "can not allowed to delete disk:'vda'");
  });

  test("snapshot on A -> A's image centre -> download on B -> a VM on B has the file written before the snapshot", async () => {
    assert.ok(vm1, 'needs the VM of the disk test');
    const bad = await post(a.api, `snapshot/create/${vm1}`, signedA({ snapshot_name: '../s', image_server: 'ID_1' }));
    assert.match(bad.body.message, /'snapshot_name' is invalid/);
    const r = await post(a.api, `snapshot/create/${vm1}`, signedA({ snapshot_name: 'before', desc: 'marker inside', image_server: 'ID_1' }));
    assert.equal(r.body.errcode, 0, r.text);
    const op = await waitOperation(a, r.body.operation_id!, 120_000);
    assert.equal(op.status, 'done', op.error);
    assert.equal(op.kind, 'snapshot_create');
    const one = await post(a.api, `snapshot/list/${vm1}/before`, signedA());
    assert.equal(one.body.message.status, 'none', one.text);
    assert.equal(one.body.message.description, 'marker inside');
    assert.equal(one.body.message.image_server, 'ID_1');
    snapImage = one.body.message.image_name;
    const list = await post(a.api, `snapshot/list/${vm1}`, signedA());
    assert.deepEqual(
      list.body.message.map((s: any) => s.snapshot_name),
      ['before'],
    );
    const ops = await post(a.api, 'operations', signedA({ task_id: vm1 }));
    assert.ok(
      ops.body.message.some((o: any) => o.kind === 'snapshot_create' && o.status === 'done'),
      ops.text,
    );

    // B sees it on A's centre, downloads it into its image directory (/data) and boots it
    const centre = await post(b.api, 'images', { peer_nodes_list: [], additional: { image_server: 'ID_A' } });
    assert.ok(centre.body.message.some((i: any) => i.image_name === snapImage));
    const dl = await post(b.api, 'images/download', signedB({ image_server: 'ID_A', image_filename: snapImage, local_dir: '/data' }));
    assert.equal(dl.body.errcode, 0, dl.text);
    const done = await waitFor(
      'download',
      async () => {
        const p = await post(b.api, 'images/downloadprogress', signedB({ image_filename: snapImage }));
        return p.body.message.status === 'done' ? p.body.message : p.body.message.status === 'failed' ? Promise.reject(new Error(p.text)) : undefined;
      },
      60_000,
      300,
    );
    assert.equal(done.progress, '100%');
    assert.equal(sha256(join(b.dataDir, 'images', snapImage)), sha256(join(a.dataDir, 'image-server', snapImage)));

    const vm2 = await createVm(b, snapImage);
    const marker = await sshExec('127.0.0.1', vm2.ssh, 'dbc', vm2.password, 'cat ~/marker');
    assert.equal(marker.trim(), 'written-before-the-snapshot');

    const inUse = await post(b.api, 'images/delete', signedB({ image_filename: snapImage }));
    assert.equal(inUse.body.message, `image file:${snapImage} is in use by task ${vm2.taskId}`);
    assert.ok(existsSync(join(b.dataDir, 'images', snapImage)));

    const del = await post(a.api, `snapshot/delete/${vm1}/before`, signedA());
    assert.equal(del.body.errcode, 0, del.text);
    assert.deepEqual((await post(a.api, `snapshot/list/${vm1}`, signedA())).body.message, []);
    assert.ok(existsSync(join(a.dataDir, 'image-server', snapImage)), 'the centre keeps its copy');
  });

  test('download over the API: real progress, stop at about 50 %, resume, checksum equal to the source', async () => {
    // a 48 MiB qcow2 on A's centre
    const src = join(a.dataDir, 'image-server', 'big.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', src, '1G']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 48M', src]);
    const size = readFileSync(src).length;
    const start = await post(b.api, 'images/download', signedB({ image_server: 'ID_A', image_filename: 'big.qcow2', local_dir: '/data' }));
    assert.equal(start.body.errcode, 0, start.text);
    const twice = await post(b.api, 'images/download', signedB({ image_server: 'ID_A', image_filename: 'big.qcow2', local_dir: '/data' }));
    assert.deepEqual(twice.body, { errcode: -3, message: 'image:big.qcow2 in downloading' });
    const seen: number[] = [];
    await waitFor(
      'half',
      async () => {
        const p = (await post(b.api, 'images/downloadprogress', signedB({ image_filename: 'big.qcow2' }))).body.message;
        assert.equal(p.status, 'downloading');
        assert.equal(p.total_bytes, size);
        seen.push(p.bytes);
        return p.bytes >= size * 0.4;
      },
      60_000,
      200,
    );
    const stop = await post(b.api, 'images/download_stop', signedB({ image_filename: 'big.qcow2' }));
    assert.equal(stop.body.errcode, 0, stop.text);
    const stopped = (await post(b.api, 'images/downloadprogress', signedB({ image_filename: 'big.qcow2' }))).body.message;
    assert.equal(stopped.status, 'stopped');
    assert.ok(stopped.bytes > 0 && stopped.bytes < size, JSON.stringify(stopped));
    assert.match(stopped.progress, /^\d+%$/);
    assert.ok(
      seen.some((v) => v > 0 && v < size * 0.4),
      `intermediate progress seen: ${seen.join(',')}`,
    );
    assert.ok(!existsSync(join(b.dataDir, 'images', 'big.qcow2')), 'no image under the final name while partial');
    const stopOp = await waitOperation(b, start.body.operation_id!, 5000).catch(() => undefined);
    assert.notEqual(stopOp?.status, 'done');

    const resume = await post(b.api, 'images/download', signedB({ image_server: 'ID_A', image_filename: 'big.qcow2', local_dir: '/data' }));
    assert.equal(resume.body.errcode, 0, resume.text);
    const first = (await post(b.api, 'images/downloadprogress', signedB({ image_filename: 'big.qcow2' }))).body.message;
    assert.ok(first.bytes >= stopped.bytes, `resumed at ${first.bytes}, stopped at ${stopped.bytes}`);
    const op = await waitOperation(b, resume.body.operation_id!, 60_000);
    assert.equal(op.status, 'done', op.error);
    assert.equal(sha256(join(b.dataDir, 'images', 'big.qcow2')), sha256(src));
  });

  test('bad input: clear envelope errors, no partial file, no half record', async () => {
    const imagesB = join(b.dataDir, 'images');
    const before = readdirSync(imagesB).sort();
    const dl = (additional: Record<string, unknown>) => post(b.api, 'images/download', signedB(additional));
    const cases: Array<[Promise<{ status: number; body: any }>, number, string | RegExp]> = [
      [dl({ image_server: 'ID_A', image_filename: '../etc/passwd', local_dir: '/data' }), 200, /^image_filename is invalid/],
      [dl({ image_server: 'ID_A', image_filename: 'a;rm -rf.qcow2', local_dir: '/data' }), 200, /^image_filename is invalid/],
      [dl({ image_server: 'ID_A', image_filename: 'x.qcow2', local_dir: '/data/../../etc' }), 200, 'local_dir:/data/../../etc is invalid'],
      [dl({ image_server: 'ID_A', image_filename: 'x.qcow2', local_dir: '/etc' }), 200, 'local_dir:/etc is not allowed on this node'],
      [dl({ image_server: 'ID_A', image_filename: 'x.qcow2' }), 200, 'additional no local_dir'],
      [dl({ image_server: 'ID_A', image_filename: 'missing.qcow2', local_dir: '/data' }), 200, 'image:missing.qcow2 not exist'],
      [dl({ image_server: 'ID_NOPE', image_filename: 'x.qcow2', local_dir: '/data' }), 400, 'image_server not exist'],
      [dl({ image_filename: 'x.qcow2', local_dir: '/data' }), 400, 'no image_server'],
      [post(b.api, 'images/delete', signedB({ image_filename: b.image })), 200, `image file:${b.image} was not downloaded by this renter`],
      [post(b.api, 'images/delete', signedB({ image_filename: '../images/x.qcow2' })), 200, /^image_filename is invalid/],
      [post(b.api, 'images/download_stop', signedB({ image_filename: 'x.qcow2' })), 200, 'image:x.qcow2 is not in downloading'],
      [post(b.api, 'images/upload', signedB({ image_server: 'ID_A', image_filename: 'none.qcow2' })), 200, 'image file:none.qcow2 is not exist'],
    ];
    for (const [p, status, message] of cases) {
      const r = await p;
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.notEqual(r.body.errcode, 0);
      if (typeof message === 'string') assert.equal(r.body.message, message);
      else assert.match(r.body.message, message);
    }
    // a full disk: an image larger than B's free space (sparse on the centre)
    const huge = join(a.dataDir, 'image-server', 'huge.qcow2');
    writeFileSync(huge, '');
    truncateSync(huge, freeBytes(imagesB) + 2 * 1024 ** 3);
    const full = await dl({ image_server: 'ID_A', image_filename: 'huge.qcow2', local_dir: '/data' });
    assert.match(full.body.message, /have no enough space/);
    rmSync(huge);
    // an image that changes under the transfer (it shrinks on the centre): the download fails, nothing stays
    const moving = join(a.dataDir, 'image-server', 'moving.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', moving, '1G']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x33 0 32M', moving]);
    assert.equal((await dl({ image_server: 'ID_A', image_filename: 'moving.qcow2', local_dir: '/data' })).body.errcode, 0);
    await waitFor(
      'some bytes',
      async () => (await post(b.api, 'images/downloadprogress', signedB({ image_filename: 'moving.qcow2' }))).body.message.bytes > 2 * 1024 ** 2,
      30_000,
      100,
    );
    truncateSync(moving, 1024 * 1024);
    const failed = await waitFor(
      'failed',
      async () => {
        const m = (await post(b.api, 'images/downloadprogress', signedB({ image_filename: 'moving.qcow2' }))).body.message;
        return m.status === 'failed' ? m : undefined;
      },
      60_000,
      300,
    );
    assert.ok(failed.error, JSON.stringify(failed));
    await sleep(200);
    assert.deepEqual(readdirSync(imagesB).sort(), before, 'no new file in the image directory');
    assert.deepEqual(readdirSync(join(imagesB, '.dbc-transfers')), [], 'no partial file');

    // disks and snapshots: names and sizes
    const vm = (await post(b.api, 'tasks', signedB())).body.message[0].task_id as string;
    const disksBefore = (await post(b.api, `disk/list/${vm}`, signedB())).body.message;
    const dcases: Array<[string, Record<string, unknown>, string | RegExp]> = [
      [`disk/resize/${vm}`, { disk: '../vdb', size: 1 }, "'disk' is invalid (usage: vdb .. vdz)"],
      [`disk/resize/${vm}`, { disk: 'vdb', size: -1 }, /disks only grow/],
      [`disk/add/${vm}`, { size: 1, mount_dir: '/data/../../etc' }, 'mount_dir:/data/../../etc is invalid'],
      [`disk/add/${vm}`, { size: 1, mount_dir: '/root' }, 'mount_dir:/root is not allowed on this node'],
      [`disk/add/${vm}`, { size: 60000 }, 'mount directory:/data have no enough space'],
      [`disk/add/${vm}`, { size: 'ten' }, "'size' is invalid"],
      [`snapshot/create/${vm}`, { snapshot_name: 'a/b', image_server: 'ID_1' }, /'snapshot_name' is invalid/],
      [`snapshot/create/${vm}`, { snapshot_name: 'ok', image_server: 'ID_1' }, 'please close task first and try again'],
    ];
    for (const [path, additional, message] of dcases) {
      const r = await post(b.api, path, signedB(additional));
      assert.equal(r.body.errcode, -3, `${path} ${r.text}`);
      if (typeof message === 'string') assert.equal(r.body.message, message);
      else assert.match(r.body.message, message);
    }
    assert.deepEqual((await post(b.api, `disk/list/${vm}`, signedB())).body.message, disksBefore);
    assert.deepEqual((await post(b.api, `snapshot/list/${vm}`, signedB())).body.message, []);
    assert.deepEqual(readdirSync(imagesB).sort(), before);
  });
});
