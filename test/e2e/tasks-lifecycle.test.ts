// A renter drives a real VM through `dbc up`: create, SSH in, VNC, the whole power cycle, logs, delete.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { GuestAgentClient } from '../../src/vm/qmp.js';
import net from 'node:net';
import { join } from 'node:path';
import { freeTcpPort, post, signedBody, sshExec, startDevnet, vncHandshake, waitFor, type Devnet } from '../helpers/devnet.js';
import { freeVncPort, hostPathOf, taskStatus, waitStatus, waitOperation } from '../helpers/tasks.js';

describe('VM lifecycle through dbc up', { timeout: 600_000 }, () => {
  let net0: Devnet;
  let taskId = '';
  let sshPort = 0;
  let vncPort = 0;
  let customPort = 0;
  let password = '';
  const signed = (additional: Record<string, unknown> = {}) => signedBody(net0.node_id, net0.renter.seed, additional);

  before(async () => {
    net0 = await startDevnet({ shutdownTimeoutS: 30 });
  });
  after(async () => {
    await net0?.destroy();
  });

  test('tasks/start answers at once with status creating, the guest boots and SSH works with the returned login', async () => {
    sshPort = await freeTcpPort();
    customPort = await freeTcpPort();
    vncPort = await freeVncPort();
    const t0 = Date.now();
    const r = await post(
      net0.api,
      'tasks/start',
      signed({
        image_name: net0.image,
        ssh_port: String(sshPort),
        vnc_port: String(vncPort),
        cpu_cores: '1',
        mem_size: '1',
        disk_size: '1',
        custom_port: [`tcp,${customPort}:22`],
        desc: 'e2e vm',
        rdp_port: 'undefined',
        public_ip: '',
        network_name: '',
      }),
    );
    const ackMs = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.equal(r.body.errcode, 0, r.text);
    assert.equal(r.body.message.status, 'creating');
    assert.match(r.body.message.task_id, /^[A-Za-z0-9]{20,22}$/);
    assert.ok(ackMs < 5000, `acknowledged in ${ackMs} ms`);
    taskId = r.body.message.task_id;

    const detail = await waitStatus(net0, taskId, 'running', 120_000);
    assert.equal(detail.ssh_port, String(sshPort));
    assert.equal(detail.vnc_port, String(vncPort));
    assert.equal(detail.user_name, 'dbc');
    assert.equal(detail.cpu_cores, 1);
    assert.equal(detail.gpu_count, 0);
    assert.equal(detail.desc, 'e2e vm');
    assert.match(detail.create_time, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    password = detail.login_password;
    assert.ok(password.length >= 8);

    const out = await waitFor(
      'ssh login',
      () => sshExec(detail.ssh_ip, sshPort, 'dbc', password, 'id -un; echo persisted > ~/mark; sync; ip -4 addr'),
      120_000,
      2000,
    );
    assert.match(out, /^dbc$/m);
    assert.match(out, /10\.0\.2\.\d+/);

    // the custom port forward reaches the guest's SSH server too
    const banner = await new Promise<string>((resolve, reject) => {
      const s = net.createConnection({ host: '127.0.0.1', port: customPort });
      s.once('data', (d) => {
        resolve(d.toString());
        s.destroy();
      });
      s.once('error', reject);
    });
    assert.match(banner, /^SSH-2\.0-/);

    const vnc = await vncHandshake('127.0.0.1', vncPort);
    assert.equal(vnc.version, 'RFB 003.008');
    assert.deepEqual(vnc.securityTypes, [2], 'VNC asks for a password');

    const list = await post(net0.api, 'tasks', signed());
    assert.equal(list.body.errcode, 0);
    assert.ok(list.body.message.some((t: any) => t.task_id === taskId && t.status === 'running'));
  });

  test('logs return serial console lines, head and tail, within 1024 bytes', async () => {
    const head = await post(net0.api, `tasks/logs/${taskId}?flag=head&line_num=100`, signed());
    assert.equal(head.body.errcode, 0, head.text);
    assert.equal(head.body.message.task_id, taskId);
    const lines: string[] = head.body.message.log_content;
    assert.ok(lines.length > 0);
    assert.ok(Buffer.byteLength(lines.join('\n')) <= 1024);
    const tail = await post(net0.api, `tasks/logs/${taskId}?flag=tail&line_num=3`, signed());
    assert.equal(tail.body.errcode, 0);
    assert.ok(tail.body.message.log_content.length <= 3);
    const all = await post(net0.api, `tasks/logs/${taskId}?flag=tail&line_num=100`, signed());
    assert.ok(all.body.message.log_content.join('\n').includes('DBC_GUEST'), 'the guest boot markers are in the console log');
  });

  test('shutdown is a real ACPI shutdown; start boots it again with the data kept', async () => {
    const r = await post(net0.api, `tasks/shutdown/${taskId}`, signed());
    assert.equal(r.body.errcode, 0, r.text);
    assert.equal(r.body.message, 'ok');
    const op = await waitOperation(net0, r.body.operation_id!, 60_000);
    assert.equal(op.status, 'done');
    assert.match(op.stage, /ACPI shutdown/);
    assert.equal(await taskStatus(net0, taskId), 'closed');

    const again = await post(net0.api, `tasks/shutdown/${taskId}`, signed());
    assert.equal(again.body.errcode, -3);
    assert.equal(again.body.message, 'task is shut_off');

    const s = await post(net0.api, `tasks/start/${taskId}`, signed());
    assert.equal(s.body.errcode, 0, s.text);
    await waitStatus(net0, taskId, 'running', 90_000);
    const out = await waitFor('ssh after start', () => sshExec('127.0.0.1', sshPort, 'dbc', password, 'cat ~/mark'), 120_000, 2000);
    assert.match(out, /persisted/);
  });

  test('restart, forced restart and reset bring the VM back', async () => {
    const soft = await post(net0.api, `tasks/restart/${taskId}`, signed());
    assert.equal(soft.body.errcode, 0, soft.text);
    assert.equal((await waitOperation(net0, soft.body.operation_id!, 120_000)).status, 'done');
    assert.equal(await taskStatus(net0, taskId), 'running');

    const hard = await post(net0.api, `tasks/restart/${taskId}?force_reboot=true`, signed());
    assert.equal(hard.body.errcode, 0, hard.text);
    assert.equal((await waitOperation(net0, hard.body.operation_id!, 120_000)).status, 'done');
    assert.equal(await taskStatus(net0, taskId), 'running');

    const reset = await post(net0.api, `tasks/reset/${taskId}`, signed());
    assert.equal(reset.body.errcode, 0, reset.text);
    assert.equal((await waitOperation(net0, reset.body.operation_id!, 60_000)).status, 'done');
    await waitFor('ssh after reset', () => sshExec('127.0.0.1', sshPort, 'dbc', password, 'echo back'), 120_000, 2000);
  });

  test('modify: a new ssh port applies at once, cpu waits for the next boot', async () => {
    const newSsh = await freeTcpPort();
    const r = await post(net0.api, `tasks/modify/${taskId}`, signed({ new_ssh_port: String(newSsh), new_cpu_cores: '2' }));
    assert.deepEqual(r.body, { errcode: 0, message: 'some changes will take effect on the next boot' });
    const detail = await post(net0.api, `tasks/${taskId}`, signed());
    assert.equal(detail.body.message.ssh_port, String(newSsh));
    assert.deepEqual(detail.body.message.pending_changes, { cpu_cores: 2 });
    assert.match(await sshExec('127.0.0.1', newSsh, 'dbc', password, 'echo moved'), /moved/);
    await assert.rejects(sshExec('127.0.0.1', sshPort, 'dbc', password, 'true', 5000), 'the old port no longer forwards');
    sshPort = newSsh;

    const hard = await post(net0.api, `tasks/restart/${taskId}?force_reboot=1`, signed());
    assert.equal((await waitOperation(net0, hard.body.operation_id!, 120_000)).status, 'done');
    const out = await waitFor('ssh after restart', () => sshExec('127.0.0.1', sshPort, 'dbc', password, 'nproc'), 120_000, 2000);
    assert.equal(out.trim(), '2', 'the new cpu count applies after the boot');
    assert.equal((await post(net0.api, `tasks/${taskId}`, signed())).body.message.cpu_cores, 2);
  });

  test('passwd sets a new password in the running guest through the guest agent', async () => {
    const r = await post(net0.api, `tasks/passwd/${taskId}`, signed({ username: 'dbc', password: 'N3w-pass_word' }));
    assert.deepEqual(r.body, { errcode: 0, message: 'ok' });
    assert.match(await sshExec('127.0.0.1', sshPort, 'dbc', 'N3w-pass_word', 'echo newpw'), /newpw/);
    password = 'N3w-pass_word';
    assert.equal((await post(net0.api, `tasks/${taskId}`, signed())).body.message.login_password, password);
    const empty = await post(net0.api, `tasks/passwd/${taskId}`, signed({ username: 'dbc', password: '' }));
    assert.deepEqual(empty.body, { errcode: -3, message: 'password can not be empty' });
  });

  test('poweroff stops at once; delete removes the VM and its files', async () => {
    const off = await post(net0.api, `tasks/poweroff/${taskId}`, signed());
    assert.equal(off.body.errcode, 0, off.text);
    await waitStatus(net0, taskId, 'closed', 30_000);

    const vmDir = join(net0.dataDir, 'vms', taskId);
    assert.ok(existsSync(join(vmDir, 'vda.qcow2')));
    const disks = (await post(net0.api, `tasks/${taskId}`, signed())).body.message.disks as Array<{ source_file: string }>;
    const dataDisk = hostPathOf(net0, disks.find((d) => d.source_file.includes('data_'))!.source_file);
    assert.ok(existsSync(dataDisk));

    const del = await post(net0.api, `tasks/delete/${taskId}`, signed());
    assert.equal(del.body.errcode, 0, del.text);
    await waitFor('task gone', async () => (await post(net0.api, `tasks/${taskId}`, signed())).body.message === 'task_id not exist', 60_000);
    assert.equal(existsSync(vmDir), false, 'VM folder removed');
    assert.equal(existsSync(dataDisk), false, 'data disk removed');
    const list = await post(net0.api, 'tasks', signed());
    assert.ok(!list.body.message.some((t: any) => t.task_id === taskId));
  });
});

describe('UEFI boot through dbc up', { timeout: 600_000 }, () => {
  let d: Devnet;
  before(async () => {
    d = await startDevnet();
  });
  after(async () => {
    await d?.destroy();
  });

  test('bios_mode=uefi boots the image with OVMF and SSH works', async () => {
    const ssh = await freeTcpPort();
    const r = await post(
      d.api,
      'tasks/start',
      signedBody(d.node_id, d.renter.seed, {
        image_name: d.image,
        ssh_port: String(ssh),
        vnc_port: String(await freeVncPort()),
        cpu_cores: '1',
        mem_size: '1',
        disk_size: '1',
        bios_mode: 'uefi',
      }),
    );
    assert.equal(r.body.errcode, 0, r.text);
    const detail = await waitStatus(d, r.body.message.task_id, 'running', 120_000);
    assert.equal(detail.bios_mode, 'uefi');
    const out = await waitFor(
      'ssh into the UEFI guest',
      () => sshExec('127.0.0.1', ssh, 'dbc', detail.login_password, 'ls /sys/firmware/efi >/dev/null && echo efi'),
      240_000,
      3000,
    );
    assert.match(out, /efi/);

    // a guest that powers itself off (here asked through its guest agent: the login user is not root) is seen as closed
    const agent = new GuestAgentClient(join(d.dataDir, 'vms', r.body.message.task_id, 'run', 'qga.sock'), 10_000);
    await agent.execute('guest-shutdown', { mode: 'powerdown' });
    await waitStatus(d, r.body.message.task_id, 'closed', 60_000);
  });
});
