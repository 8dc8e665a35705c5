// kill -9 the daemon while a VM runs and while another is being created: after a restart nothing is lost or doubled.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { freeTcpPort, post, qemuPidsUnder, signedBody, sshExec, startDevnet, waitFor, type Devnet } from '../helpers/devnet.js';
import { freeVncPort, taskDetail, waitStatus } from '../helpers/tasks.js';

describe('daemon crash and restart', { timeout: 600_000 }, () => {
  let d: Devnet;
  before(async () => {
    d = await startDevnet();
  });
  after(async () => {
    await d?.destroy();
  });

  test('a running VM survives kill -9 of the daemon; a VM being created resumes to running under its operation; nonces stay used', async () => {
    const sshPort = await freeTcpPort();
    const r1 = await post(
      d.api,
      'tasks/start',
      signedBody(d.node_id, d.renter.seed, {
        image_name: d.image,
        ssh_port: String(sshPort),
        vnc_port: String(await freeVncPort()),
        cpu_cores: '1',
        mem_size: '1',
        disk_size: '1',
      }),
    );
    assert.equal(r1.body.errcode, 0, r1.text);
    const running = r1.body.message.task_id as string;
    const detail = await waitStatus(d, running, 'running', 120_000);
    const pidsBefore = qemuPidsUnder(join(d.dataDir, 'vms', running));
    assert.equal(pidsBefore.length, 1, 'one QEMU for the VM');

    const usedBody = signedBody(d.node_id, d.renter.seed);
    assert.equal((await post(d.api, 'tasks', usedBody)).body.errcode, 0);

    const r2 = await post(
      d.api,
      'tasks/start',
      signedBody(d.node_id, d.renter.seed, {
        image_name: d.image,
        ssh_port: String(await freeTcpPort()),
        vnc_port: String(await freeVncPort()),
        cpu_cores: '1',
        mem_size: '1',
        disk_size: '1',
      }),
    );
    assert.equal(r2.body.errcode, 0, r2.text);
    const creating = r2.body.message.task_id as string;
    const createOp = r2.body.message.operation_id as string;
    await d.kill9(); // while the second VM is being created

    assert.deepEqual(qemuPidsUnder(join(d.dataDir, 'vms', running)), pidsBefore, 'the VM kept running without the daemon');
    await d.restart();

    const after1 = await taskDetail(d, running);
    assert.equal(after1.status, 'running');
    assert.deepEqual(qemuPidsUnder(join(d.dataDir, 'vms', running)), pidsBefore, 'adopted, not restarted');
    await waitFor('ssh after daemon restart', () => sshExec('127.0.0.1', sshPort, 'dbc', detail.login_password, 'echo alive'), 60_000, 2000);

    const end = await waitFor(
      'half-created VM settles',
      async () => {
        const t = await taskDetail(d, creating);
        return t.status === 'running' || t.status === 'create error' ? t : undefined;
      },
      180_000,
      1000,
    );
    assert.equal(end.status, 'running', `the half-created VM resumes to running (last_error: ${end.last_error ?? ''})`);
    assert.equal(qemuPidsUnder(join(d.dataDir, 'vms', creating)).length, 1, 'exactly one QEMU');
    // the operation the renter was given finishes: the create was continued, not replaced
    const op = await post(d.api, `operations/${createOp}`, signedBody(d.node_id, d.renter.seed));
    assert.equal(op.body.errcode, 0, op.text);
    assert.equal(op.body.message.status, 'done', JSON.stringify(op.body.message));

    const list = await post(d.api, 'tasks', signedBody(d.node_id, d.renter.seed));
    const ids = list.body.message.map((t: any) => t.task_id).sort();
    assert.deepEqual(ids, [running, creating].sort(), 'both listed once');

    const replay = await post(d.api, 'tasks', usedBody);
    assert.deepEqual(replay.body, { errcode: -3, message: 'check authority failed: nonce check failed' }, 'a nonce used before the restart stays used');
  });
});
