// `running` means reachable, with the real test guest through `dbc up`: the task stays `creating` until the guest
// answers, and then SSH works at the first try; power actions while the guest boots finish within 5 s; the
// guest's disk names are the API's (serial=<name>, the seed on a CD, a hot-added disk keeps its name).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freeTcpPort, post, signedBody, sshExec, startDevnet, waitFor, type Devnet } from '../helpers/devnet.js';
import { freeVncPort, taskDetail, waitOperation, waitStatus } from '../helpers/tasks.js';

describe('guest readiness through dbc up', { timeout: 600_000 }, () => {
  let d: Devnet;
  const signed = (additional: Record<string, unknown> = {}) => signedBody(d.node_id, d.renter.seed, additional);

  async function create(): Promise<{ taskId: string; ssh: number; operationId: string }> {
    const ssh = await freeTcpPort();
    const r = await post(
      d.api,
      'tasks/start',
      signed({ image_name: d.image, ssh_port: String(ssh), vnc_port: String(await freeVncPort()), cpu_cores: '1', mem_size: '1', disk_size: '1' }),
    );
    assert.equal(r.body.errcode, 0, r.text);
    return { taskId: r.body.message.task_id as string, ssh, operationId: r.body.operation_id as string };
  }

  /** until the create operation has started the VM and waits for the guest */
  async function untilBooting(operationId: string): Promise<void> {
    await waitFor(
      'the create waits for the guest',
      async () => {
        const r = await post(d.api, `operations/${operationId}`, signed());
        return r.body.message?.stage === 'waiting for the guest';
      },
      60_000,
      100,
    );
  }

  before(async () => {
    d = await startDevnet({ shutdownTimeoutS: 60 });
  });
  after(async () => {
    await d?.destroy();
  });

  test('creating until the guest answers; at the first `running` SSH works at once; guest_ready and its time', async () => {
    const vm = await create();
    const seen = new Set<string>();
    const detail = await waitFor(
      'running',
      async () => {
        const t = await taskDetail(d, vm.taskId);
        seen.add(t.status);
        return t.status === 'running' ? t : undefined;
      },
      180_000,
      200,
    );
    // no retries: the status promised a reachable guest
    const out = await sshExec(
      '127.0.0.1',
      vm.ssh,
      'dbc',
      detail.login_password,
      'cat /sys/block/vda/serial; echo; cat /sys/block/vdb/serial; echo; ls /sys/block',
      20_000,
    );
    assert.ok(seen.has('creating'));
    assert.equal(detail.guest_ready, true);
    assert.match(detail.guest_ready_time, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    const lines = out.trim().split(/\s+/);
    assert.deepEqual(lines.slice(0, 2), ['vda', 'vdb'], out);
    // the seed is a CD (sr0), not a third virtio disk
    assert.ok(lines.includes('sr0') && !lines.includes('vdc'), out);

    // a hot-added disk keeps the API's name in the guest
    const add = await post(d.api, `disk/add/${vm.taskId}`, signed({ size: 1 }));
    assert.equal(add.body.errcode, 0, add.text);
    assert.equal((await waitOperation(d, add.body.operation_id as string, 120_000)).status, 'done');
    const serial = await waitFor(
      'vdc in the guest',
      async () => {
        const o = await sshExec('127.0.0.1', vm.ssh, 'dbc', detail.login_password, 'cat /sys/block/vdc/serial 2>/dev/null; true');
        return o.trim() === 'vdc' ? o : undefined;
      },
      60_000,
      1000,
    );
    assert.equal(serial.trim(), 'vdc');
    await post(d.api, `tasks/delete/${vm.taskId}`, signed());
  });

  test('a VM shut down while its guest boots is closed within 5 s', async () => {
    const vm = await create();
    await untilBooting(vm.operationId);
    const t0 = Date.now();
    const r = await post(d.api, `tasks/shutdown/${vm.taskId}`, signed());
    assert.equal(r.body.errcode, 0, r.text);
    const op = await waitOperation(d, r.body.operation_id as string, 30_000);
    const ms = Date.now() - t0;
    assert.equal(op.status, 'done');
    assert.match(op.stage, /not up yet/);
    assert.ok(ms < 5000, `closed in ${ms} ms`);
    assert.equal((await taskDetail(d, vm.taskId)).status, 'closed');
    // the create operation ends without overwriting the status
    assert.equal((await waitOperation(d, vm.operationId, 30_000)).status, 'done');
    assert.equal((await taskDetail(d, vm.taskId)).status, 'closed');
    await post(d.api, `tasks/delete/${vm.taskId}`, signed());
  });

  test('a VM restarted while its guest boots is rebooted at once and then reachable', async () => {
    const vm = await create();
    await untilBooting(vm.operationId);
    const t0 = Date.now();
    const r = await post(d.api, `tasks/restart/${vm.taskId}`, signed());
    assert.equal(r.body.errcode, 0, r.text);
    await waitFor(
      'the restart waits for the rebooted guest',
      async () => (await post(d.api, `operations/${r.body.operation_id as string}`, signed())).body.message?.stage === 'waiting for the guest',
      30_000,
      100,
    );
    const ms = Date.now() - t0;
    assert.ok(ms < 5000, `rebooted in ${ms} ms`);
    const detail = await waitStatus(d, vm.taskId, 'running', 180_000);
    assert.equal(detail.guest_ready, true);
    assert.equal((await sshExec('127.0.0.1', vm.ssh, 'dbc', detail.login_password, 'echo up', 20_000)).trim(), 'up');
    await post(d.api, `tasks/delete/${vm.taskId}`, signed());
  });
});
