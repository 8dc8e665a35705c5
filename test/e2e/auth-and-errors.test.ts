// Who may do what, and the exact errors renters and real clients see: through `dbc up` with a real VM.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statfsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cliPath, freeTcpPort, post, postLarge, sessionBody, signedBody, startDevnet, waitFor, type Devnet } from '../helpers/devnet.js';
import { freeVncPort, waitStatus } from '../helpers/tasks.js';

const newSeed = () => `0x${randomBytes(32).toString('hex')}`;

/** the module directory of dbc up's own image centre */
function centreDirOf(d: Devnet): string {
  return join(d.dataDir, 'image-server');
}

describe('authorisation and bad input through dbc up', { timeout: 600_000 }, () => {
  let d: Devnet;
  let taskA = '';
  let sshA = 0;
  let vncA = 0;
  const seedB = newSeed();
  const seedC = newSeed();
  const walletB = identityFromSeed(seedB).address;
  const walletC = identityFromSeed(seedC).address;
  const grant = (wallet: string, ...extra: string[]) =>
    execFileSync(process.execPath, [cliPath, 'rental', 'grant', '--data-dir', d.dataDir, '--wallet', wallet, ...extra], { encoding: 'utf8' });
  const create = (seed: string, additional: Record<string, unknown>) => post(d.api, 'tasks/start', signedBody(d.node_id, seed, additional));

  before(async () => {
    d = await startDevnet();
    sshA = await freeTcpPort();
    vncA = await freeVncPort();
    const r = await create(d.renter.seed, {
      image_name: d.image,
      ssh_port: String(sshA),
      vnc_port: String(vncA),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: '1',
    });
    assert.equal(r.body.errcode, 0, r.text);
    taskA = r.body.message.task_id;
    // renter B rents the machine too (granted on the running node by the CLI)
    assert.match(grant(walletB, '--days', '1'), /"gpus":0/);
    await waitStatus(d, taskA, 'running', 120_000);
  });
  after(async () => {
    await d?.destroy();
  });

  test('machine info needs no credential and has the fields real clients read', async () => {
    const r = await post(d.api, 'mining_nodes', { peer_nodes_list: [d.node_id], additional: {} });
    assert.equal(r.body.errcode, 0, r.text);
    assert.equal(typeof r.body.message.cpu.hz, 'string');
    assert.equal(typeof r.body.message.gpu.gpu_count, 'number');
    assert.equal(typeof r.body.message.gpu.gpu_used, 'number');
    assert.ok(r.body.message.images.some((i: any) => i.image_name === d.image));
    const list = await post(d.api, 'mining_nodes', { peer_nodes_list: [], additional: {} });
    assert.deepEqual(
      list.body.message.mining_nodes.map((n: any) => n.node_id),
      [d.node_id],
    );
  });

  test('a replayed nonce is refused', async () => {
    const body = signedBody(d.node_id, d.renter.seed);
    assert.equal((await post(d.api, 'tasks', body)).body.errcode, 0);
    const again = await post(d.api, 'tasks', body);
    assert.deepEqual(again.body, { errcode: -3, message: 'check authority failed: nonce check failed' });
  });

  test('a signature by another key is refused', async () => {
    const forged = { ...signedBody(d.node_id, seedB), wallet: d.renter.wallet };
    const r = await post(d.api, 'tasks', forged);
    assert.deepEqual(r.body, { errcode: -3, message: 'check authority failed: nonce check failed' });
  });

  test('a stranger without a rental is refused; an expired rental too', async () => {
    const stranger = await post(d.api, 'tasks', signedBody(d.node_id, seedC));
    assert.deepEqual(stranger.body, { errcode: -3, message: 'check authority failed: wallet not rented' });
    grant(walletC, '--until', new Date(Date.now() - 60_000).toISOString());
    const expired = await post(d.api, 'tasks', signedBody(d.node_id, seedC));
    assert.deepEqual(expired.body, { errcode: -3, message: 'check authority failed: wallet not rented' });
  });

  test("another renter cannot see or touch the renter's VM", async () => {
    const list = await post(d.api, 'tasks', signedBody(d.node_id, seedB));
    assert.equal(list.body.errcode, 0);
    assert.deepEqual(list.body.message, []);
    for (const path of [`tasks/${taskA}`, `tasks/poweroff/${taskA}`, `tasks/delete/${taskA}`, `tasks/logs/${taskA}`]) {
      const r = await post(d.api, path, signedBody(d.node_id, seedB));
      assert.deepEqual(r.body, { errcode: -3, message: 'task_id not exist' }, path);
    }
    const mine = await post(d.api, `tasks/${taskA}`, signedBody(d.node_id, d.renter.seed));
    assert.equal(mine.body.message.status, 'running', 'still running after the attempts');
  });

  test("session holders act for their renter only; another renter's session cannot reach the VM", async () => {
    const sidA = (await post(d.api, 'mining_nodes/session_id', signedBody(d.node_id, d.renter.seed))).body.message.session_id;
    const sidB = (await post(d.api, 'mining_nodes/session_id', signedBody(d.node_id, seedB))).body.message.session_id;
    assert.match(sidA, /^[1-9A-HJ-NP-Za-km-z]{50,60}$/);
    assert.notEqual(sidA, sidB);
    const withA = await post(d.api, `tasks/${taskA}`, sessionBody(d.node_id, sidA, d.renter.seed));
    assert.equal(withA.body.errcode, 0, withA.text);
    assert.equal(withA.body.message.task_id, taskA);
    // a session pair is reusable (no nonce), as real clients expect
    assert.equal((await post(d.api, `tasks/${taskA}`, sessionBody(d.node_id, sidA, d.renter.seed))).body.errcode, 0);
    const withB = await post(d.api, `tasks/${taskA}`, sessionBody(d.node_id, sidB, seedB));
    assert.deepEqual(withB.body, { errcode: -3, message: 'task_id not exist' });
    // B's session signed by A's key is not B's session
    const mixed = await post(d.api, 'tasks', sessionBody(d.node_id, sidB, d.renter.seed));
    assert.deepEqual(mixed.body, { errcode: -3, message: 'check authority failed: session_id is invalid' });
    // the session id itself needs the wallet, not a session
    const viaSession = await post(d.api, 'mining_nodes/session_id', sessionBody(d.node_id, sidA, d.renter.seed));
    assert.notEqual(viaSession.body.errcode, 0);
    // when B's rental ends, B's session stops working
    execFileSync(process.execPath, [cliPath, 'rental', 'revoke', '--data-dir', d.dataDir, '--wallet', walletB]);
    const ended = await post(d.api, 'tasks', sessionBody(d.node_id, sidB, seedB));
    assert.deepEqual(ended.body, { errcode: -3, message: 'check authority failed: machine has already expired' });
  });

  test('GPUs: a rental with GPUs on a host without passthrough GPUs is refused clearly', async () => {
    const seedD = newSeed();
    grant(identityFromSeed(seedD).address, '--gpus', '1', '--days', '1');
    const r = await create(seedD, {
      image_name: d.image,
      ssh_port: String(await freeTcpPort()),
      vnc_port: String(await freeVncPort()),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: '1',
      gpu_count: '1',
    });
    assert.deepEqual(r.body, { errcode: -3, message: 'allocate gpu failed: 1 requested, 0 available for passthrough on this host' });
  });

  test("data_file_name attaches only a data disk the renter brought; base images and other renters' disks are out of reach", async () => {
    const base = async () => ({
      image_name: d.image,
      ssh_port: String(await freeTcpPort()),
      vnc_port: String(await freeVncPort()),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: '1',
    });
    // another renter of the machine (B's rental was revoked above)
    const seedE = newSeed();
    grant(identityFromSeed(seedE).address, '--days', '1');
    const tasksBefore = (await post(d.api, 'tasks', signedBody(d.node_id, d.renter.seed))).body.message.length;
    const notExist = (name: string) => ({ errcode: -3, message: `data_file_name is not exist, path: /data/${name}` });
    // the operator's base image, and a second base placed by the operator: never attached writable
    const imageDir = join(d.dataDir, 'images');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(imageDir, 'base2.qcow2'), '1G']);
    for (const name of [d.image, 'base2.qcow2', 'nofile.qcow2']) {
      assert.deepEqual((await create(d.renter.seed, { ...(await base()), data_file_name: name })).body, notExist(name), name);
    }
    // renter A's live data disk: renter B can neither attach it nor build a VM on it (that would read A's data)
    const detailA = await post(d.api, `tasks/${taskA}`, signedBody(d.node_id, d.renter.seed));
    const vdbA = detailA.body.message.disks.find((x: any) => x.name === 'vdb').source_file as string;
    assert.match(vdbA, /^\/data\/data_[A-Za-z0-9]+_[A-Za-z0-9]+\.qcow2$/, 'disks are shown as /data/<name>, never the host path');
    const diskA = vdbA.slice('/data/'.length);
    assert.deepEqual((await create(seedE, { ...(await base()), data_file_name: diskA })).body, notExist(diskA), 'same text as a missing file');
    assert.deepEqual((await create(seedE, { ...(await base()), image_name: diskA })).body, {
      errcode: -3,
      message: `'image_name' is not exist (path:/data/${diskA})`,
    });
    // A's own disk of a live VM is in use
    const own = await create(d.renter.seed, { ...(await base()), data_file_name: diskA });
    assert.deepEqual(own.body, { errcode: -3, message: `data_file_name is used by another task: ${taskA}` });
    const tasksAfter = (await post(d.api, 'tasks', signedBody(d.node_id, d.renter.seed))).body.message.length;
    assert.equal(tasksAfter, tasksBefore, 'nothing was created');

    // a data disk the renter downloads to the node is theirs: attached as vdb, kept when the VM goes
    const centre = d.image_servers![0]!;
    const centreDir = centreDirOf(d);
    const mine = `data_mine_${Date.now()}.qcow2`;
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(centreDir, mine), '1G']);
    const dl = await post(
      d.api,
      'images/download',
      signedBody(d.node_id, d.renter.seed, { image_server: centre.id, image_filename: mine, local_dir: '/data' }),
    );
    assert.equal(dl.body.errcode, 0, dl.text);
    await waitFor(
      'download',
      async () =>
        (await post(d.api, 'images/downloadprogress', signedBody(d.node_id, d.renter.seed, { image_filename: mine }))).body.message?.status === 'done',
      60_000,
    );
    assert.deepEqual((await create(seedE, { ...(await base()), data_file_name: mine })).body, notExist(mine), "not B's");
    const r = await create(d.renter.seed, { ...(await base()), data_file_name: mine });
    assert.equal(r.body.errcode, 0, r.text);
    const id = r.body.message.task_id;
    const detail = await post(d.api, `tasks/${id}`, signedBody(d.node_id, d.renter.seed));
    assert.ok(
      detail.body.message.disks.some((x: any) => x.name === 'vdb' && x.source_file === `/data/${mine}`),
      JSON.stringify(detail.body.message.disks),
    );
    await waitStatus(d, id, 'running', 120_000);
    const del = await post(d.api, `tasks/delete/${id}`, signedBody(d.node_id, d.renter.seed));
    assert.equal(del.body.errcode, 0, del.text);
    await waitFor('deleted', async () => (await post(d.api, `tasks/${id}`, signedBody(d.node_id, d.renter.seed))).body.message === 'task_id not exist', 60_000);
    assert.ok(existsSync(join(imageDir, mine)), 'a reused data disk is not deleted with the VM');
  });

  test("no reply carries the node's data directory", async () => {
    const replies = [
      await post(d.api, 'mining_nodes', { peer_nodes_list: [d.node_id], additional: {} }),
      await post(d.api, `tasks/${taskA}`, signedBody(d.node_id, d.renter.seed)),
      await post(d.api, `disk/list/${taskA}`, signedBody(d.node_id, d.renter.seed)),
      await post(d.api, 'tasks', signedBody(d.node_id, d.renter.seed)),
    ];
    const info = replies[0]!.body.message;
    assert.deepEqual(
      info.disk_data.map((x: any) => x.path),
      ['/data'],
    );
    for (const r of replies) {
      assert.equal(r.body.errcode, 0, r.text);
      assert.ok(!r.text.includes(d.dataDir), r.text);
    }
    for (const disk of replies[2]!.body.message) assert.match(disk.file, /^\/data\//);
  });

  test('disk quota: no disk grows or appears beyond what the file system can hold', async () => {
    const noSpace = { errcode: -3, message: 'mount directory:/data have no enough space' };
    const big = await create(d.renter.seed, {
      image_name: d.image,
      ssh_port: String(await freeTcpPort()),
      vnc_port: String(await freeVncPort()),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: '60000',
    });
    assert.deepEqual(big.body, { errcode: -3, message: 'allocate disk failed' });
    const q = await create(d.renter.seed, {
      image_name: d.image,
      ssh_port: String(await freeTcpPort()),
      vnc_port: String(await freeVncPort()),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: '1',
    });
    assert.equal(q.body.errcode, 0, q.text);
    const id = q.body.message.task_id as string;
    await waitStatus(d, id, 'running', 120_000);
    assert.equal((await post(d.api, `tasks/poweroff/${id}`, signedBody(d.node_id, d.renter.seed))).body.errcode, 0);
    await waitStatus(d, id, 'closed', 60_000);
    // a thin grow far beyond the disk is refused, however often it is asked
    for (let i = 0; i < 3; i++) {
      assert.deepEqual((await post(d.api, `disk/resize/${id}`, signedBody(d.node_id, d.renter.seed, { disk: 'vdb', size: 40000 }))).body, noSpace);
    }
    // disks that each fit the free space are refused once their sum would pass the capacity
    const fs = statfsSync(join(d.dataDir, 'images'));
    const capacityGb = (Number(fs.blocks) * Number(fs.bsize)) / 1024 ** 3;
    const eachGb = Math.max(1, Math.floor((Number(fs.bavail) * Number(fs.bsize)) / 1024 ** 3) - 2);
    let added = 0;
    for (let i = 0; i < 24; i++) {
      const r = await post(d.api, `disk/add/${id}`, signedBody(d.node_id, d.renter.seed, { size: eachGb }));
      if (r.body.errcode !== 0) {
        assert.deepEqual(r.body, noSpace);
        break;
      }
      added++;
    }
    assert.ok(added * eachGb <= capacityGb, `${added} disks of ${eachGb}G promised on a ${capacityGb.toFixed(0)}G file system`);
    assert.ok(added < 24, 'the quota stopped the adds');
    const disks = (await post(d.api, `disk/list/${id}`, signedBody(d.node_id, d.renter.seed))).body.message;
    assert.equal(disks.find((x: any) => x.name === 'vdb').size, '1G', 'the disk did not grow');
    // a grow that fits is allowed again once the promises are gone
    for (const disk of disks) {
      if (disk.name === 'vda' || disk.name === 'vdb') continue;
      assert.equal((await post(d.api, `disk/delete/${id}`, signedBody(d.node_id, d.renter.seed, { disk: disk.name }))).body.errcode, 0);
    }
    const ok = await post(d.api, `disk/resize/${id}`, signedBody(d.node_id, d.renter.seed, { disk: 'vdb', size: 1 }));
    assert.equal(ok.body.errcode, 0, ok.text);
    assert.equal((await post(d.api, `tasks/delete/${id}`, signedBody(d.node_id, d.renter.seed))).body.errcode, 0);
    await waitFor('deleted', async () => (await post(d.api, `tasks/${id}`, signedBody(d.node_id, d.renter.seed))).body.message === 'task_id not exist', 60_000);
  });

  test('windows VMs forward rdp_port to 3389 and log in as Administrator; pxe VMs boot from the network', async () => {
    const rdp = await freeTcpPort();
    const win = await create(d.renter.seed, {
      image_name: d.image,
      rdp_port: String(rdp),
      ssh_port: 'undefined',
      vnc_port: String(await freeVncPort()),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: '1',
      operation_system: 'win',
      bios_mode: 'uefi',
    });
    assert.equal(win.body.errcode, 0, win.text);
    const w = await waitStatus(d, win.body.message.task_id, 'running', 120_000);
    assert.equal(w.os, 'windows');
    assert.equal(w.rdp_port, String(rdp));
    assert.equal(w.ssh_port, undefined);
    assert.equal(w.user_name, 'Administrator');
    await new Promise<void>((resolve, reject) => {
      const s = net.createConnection({ host: '127.0.0.1', port: rdp }, () => {
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
    const noRdp = await create(d.renter.seed, {
      image_name: d.image,
      vnc_port: String(await freeVncPort()),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: '1',
      operation_system: 'windows',
    });
    assert.deepEqual(noRdp.body, { errcode: -3, message: 'rdp_port is empty' });

    const pxe = await create(d.renter.seed, {
      image_name: d.image,
      ssh_port: String(await freeTcpPort()),
      vnc_port: String(await freeVncPort()),
      cpu_cores: '1',
      mem_size: '1',
      bios_mode: 'pxe',
      interface_model_type: 'e1000',
    });
    assert.equal(pxe.body.errcode, 0, pxe.text);
    const p = await waitStatus(d, pxe.body.message.task_id, 'running', 60_000);
    assert.deepEqual(p.disks, [], 'a pxe VM has no disks');
    for (const id of [win.body.message.task_id, pxe.body.message.task_id]) {
      assert.equal((await post(d.api, `tasks/delete/${id}`, signedBody(d.node_id, d.renter.seed))).body.errcode, 0);
      await waitFor(
        'deleted',
        async () => (await post(d.api, `tasks/${id}`, signedBody(d.node_id, d.renter.seed))).body.message === 'task_id not exist',
        60_000,
      );
    }
  });

  test('port conflicts give the texts real clients match on', async () => {
    const base = { image_name: d.image, cpu_cores: '1', mem_size: '1', disk_size: '1' };
    const vnc = await freeVncPort();
    const sameSsh = await create(d.renter.seed, { ...base, ssh_port: String(sshA), vnc_port: String(vnc) });
    assert.deepEqual(sameSsh.body, { errcode: -3, message: `port conflict, exist ssh_port = ${sshA}` });
    const sameVnc = await create(d.renter.seed, { ...base, ssh_port: String(await freeTcpPort()), vnc_port: String(vncA) });
    assert.deepEqual(sameVnc.body, { errcode: -3, message: `port conflict, exist vnc_port = ${vncA}` });
    // a port some other program on the host listens on
    const squatter = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => squatter.once('listening', r));
    const busy = (squatter.address() as net.AddressInfo).port;
    const occupied = await create(d.renter.seed, { ...base, ssh_port: String(busy), vnc_port: String(vnc) });
    squatter.close();
    assert.deepEqual(occupied.body, { errcode: -3, message: 'ssh_port is occupied' });
  });

  test('bad create parameters get the original texts; nothing is created', async () => {
    const base = {
      image_name: d.image,
      ssh_port: String(await freeTcpPort()),
      vnc_port: String(await freeVncPort()),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: '1',
    };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...base, image_name: '' }, 'image_name is empty'],
      [{ ...base, image_name: 'undefined' }, 'image_name is empty'],
      [{ ...base, image_name: 'nope.img' }, "'image_name' extension name is invalid"],
      [{ ...base, image_name: 'missing.qcow2' }, "'image_name' is not exist (path:/data/missing.qcow2)"],
      [{ ...base, image_name: '../../etc/x.qcow2' }, "'image_name' is not exist (path:/data/../../etc/x.qcow2)"],
      [{ ...base, vnc_port: '5000' }, 'vnc_port is invalid (usage: [5900, 65535])'],
      [{ ...base, vnc_port: '' }, 'vnc_port is empty'],
      [{ ...base, ssh_port: '22a' }, 'ssh_port is not digit'],
      [{ ...base, ssh_port: '70000' }, 'ssh_port is invalid (usage: [1, 65535])'],
      [{ ...base, cpu_cores: '0' }, 'cpu_cores is invalid'],
      [{ ...base, mem_size: 'x' }, 'mem_size is invalid'],
      [{ ...base, disk_size: '-1' }, 'disk_size is invalid (usage: disk_size > 0)'],
      [{ ...base, gpu_count: '-1' }, 'gpu_count is invalid (usage: gpu_count >= 0)'],
      [{ ...base, gpu_count: '1' }, 'gpu_count exceeds number of leases'],
      [{ ...base, custom_port: ['tcp,70000'] }, 'custom_port is invalid: tcp,70000'],
      [{ ...base, custom_port: ['icmp,22'] }, 'custom_port is invalid: icmp,22'],
      [{ ...base, custom_port: ['tcp,1-3:4-9'] }, 'custom_port is invalid: tcp,1-3:4-9'],
      [{ ...base, custom_port: ['tcp,22;rm -rf /'] }, 'custom_port is invalid: tcp,22;rm -rf /'],
      [{ ...base, operation_system: 'plan9' }, "unsupported operation system: plan9 (usage: 'linux' 'windows')"],
      [{ ...base, bios_mode: 'coreboot' }, "unsupported bios mode: coreboot (usage: 'legacy' 'uefi' 'pxe')"],
      [{ ...base, task_id: 'short' }, 'wrong task id length'],
      [{ ...base, task_id: '../../etc/passwd_xxxx' }, 'task id requires a combination of letters or numbers'],
      [{ ...base, task_id: taskA }, 'task id already existed'],
      [{ ...base, network_name: 'nolan1' }, 'can not find network info'],
      [{ ...base, cpu_cores: { n: 1 } }, 'cpu_cores is invalid'],
    ];
    const before = (await post(d.api, 'tasks', signedBody(d.node_id, d.renter.seed))).body.message.length;
    for (const [additional, message] of cases) {
      const r = await create(d.renter.seed, additional);
      assert.deepEqual(r.body, { errcode: -3, message }, JSON.stringify(additional));
    }
    const after = (await post(d.api, 'tasks', signedBody(d.node_id, d.renter.seed))).body.message.length;
    assert.equal(after, before, 'no task left behind by bad input');
  });

  test('logs bounds, path-like task ids, unknown routes and malformed bodies get envelopes', async () => {
    const zero = await post(d.api, `tasks/logs/${taskA}?flag=tail&line_num=0`, signedBody(d.node_id, d.renter.seed));
    assert.deepEqual([zero.status, zero.body], [400, { errcode: -25, message: 'invalid line num' }]);
    const big = await post(d.api, `tasks/logs/${taskA}?flag=tail&line_num=5000`, signedBody(d.node_id, d.renter.seed));
    assert.equal(big.body.errcode, 0, 'line_num above 100 is capped as the original');
    const flag = await post(d.api, `tasks/logs/${taskA}?flag=middle`, signedBody(d.node_id, d.renter.seed));
    assert.deepEqual([flag.status, flag.body], [400, { errcode: -25, message: 'head_or_tail is invalid"' }]);
    for (const id of ['..%2F..%2Fetc', 'a%00b', 'x'.repeat(300)]) {
      const r = await post(d.api, `tasks/${id}`, signedBody(d.node_id, d.renter.seed));
      assert.deepEqual(r.body, { errcode: -3, message: 'task_id not exist' }, id);
    }
    const unknown = await post(d.api, 'nothing/here', {});
    assert.deepEqual([unknown.status, unknown.body], [404, { errcode: -32601, message: 'not support uri:/api/v1/nothing/here' }]);
    const bad = await post(d.api, 'tasks', '{"peer_nodes_list":', true);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.errcode, -25);
    assert.match(bad.body.message, /^json parse error/);
    const noAuth = await post(d.api, 'tasks', { peer_nodes_list: [d.node_id], additional: {} });
    assert.deepEqual([noAuth.status, noAuth.body], [400, { errcode: -25, message: 'wallet_sign and multisig_wallets all invalid' }]);
    const noAuthCreate = await post(d.api, 'tasks/start', { peer_nodes_list: [d.node_id], additional: {} });
    assert.deepEqual([noAuthCreate.status, noAuthCreate.body], [400, { errcode: -25, message: 'session_id and wallet all invalid' }]);
    const wrongNode = await post(d.api, 'tasks', signedBody('ab'.repeat(32), d.renter.seed));
    assert.deepEqual(wrongNode.body, { errcode: -32701, message: 'create node request failed' });
    const huge = await postLarge(d.api, 'tasks', 33 * 1024 * 1024);
    assert.equal(huge.status, 413);
    assert.notEqual(huge.body.errcode, 0);
  });
});
