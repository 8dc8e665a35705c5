// The VM state machine (src/vm/lifecycle.ts) over the shared FakeHypervisor, no QEMU: every transition, every
// refusal with its exact text, failures of the hypervisor, and crash points, where a second daemon (a second
// FakeHypervisor over the same FakeWorld and the same SQLite file) takes over what the first one left.
// One file (above ~400 lines) on purpose: the whole state machine in one place, over one set of helpers.
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Task } from '../../src/domain/task.js';
import type { Operation } from '../../src/ops/index.js';
import { FakeWorld } from '../helpers/fake-hypervisor.js';
import {
  createParams,
  freePort,
  makeNodeDir,
  makeServices,
  OTHER,
  OWNER,
  until,
  type NodeDir,
  type TestNode,
  type TestNodeOptions,
} from '../helpers/task-services.js';

const nodes: TestNode[] = [];
const dirs: NodeDir[] = [];

afterEach(async () => {
  for (const n of nodes.splice(0).reverse()) await n.close();
  for (const d of dirs.splice(0)) d.remove();
});

async function node(opts: TestNodeOptions = {}): Promise<TestNode> {
  const n = await makeServices(opts);
  nodes.push(n);
  return n;
}

/** a data dir two daemons share (removed after the test) */
function sharedDir(): NodeDir {
  const d = makeNodeDir();
  dirs.push(d);
  return d;
}

/** the operation once it ended */
function settled(n: TestNode, id: string, timeoutMs = 10_000): Promise<Operation> {
  return until(
    `operation ${id} to end`,
    () => {
      const op = n.services.ops.get(id);
      return op && op.status !== 'running' && op.status !== 'pending' ? op : undefined;
    },
    timeoutMs,
  );
}

function task(n: TestNode, id: string): Task {
  const t = n.store.get(id);
  assert.ok(t, `task ${id} exists`);
  return t;
}

/** a task created and running; its create operation done */
async function running(n: TestNode): Promise<Task> {
  const { task: t, operationId } = await n.services.tasks.create(OWNER, await createParams());
  const op = await settled(n, operationId);
  assert.equal(op.status, 'done', op.error);
  assert.equal(task(n, t.task_id).status, 'running');
  return task(n, t.task_id);
}

/** run a power action: the status it shows at once, then the operation's end and the task's final status */
async function act(n: TestNode, taskId: string, action: (t: Task) => string): Promise<{ shown: string; op: Operation; after: Task }> {
  const { shown, op } = await actOn(n, taskId, action);
  return { shown, op, after: task(n, taskId) };
}

/** act() for an action after which the task may be gone (delete) */
async function actOn(n: TestNode, taskId: string, action: (t: Task) => string): Promise<{ shown: string; op: Operation }> {
  const id = action(task(n, taskId));
  const shown = task(n, taskId).status;
  return { shown, op: await settled(n, id) };
}

function methodsCalled(n: TestNode, taskId: string): string[] {
  return n.hv.calls.filter((c) => c.taskId === taskId).map((c) => c.method);
}

const busyText = (status: string) => `task is ${status}, please try again later`;

describe('lifecycle: create', () => {
  test('create shows `creating` at once with its operation, then `running` with the VM the task describes', async () => {
    const n = await node();
    const p = await createParams({ customPorts: [`udp,${await freePort()}:53`] });
    const { task: created, operationId } = await n.services.tasks.create(OWNER, p);
    const id = created.task_id;
    assert.equal(created.status, 'creating');
    assert.equal(task(n, id).status, 'creating');
    const first = n.services.ops.get(operationId);
    assert.equal(first?.kind, 'create');
    assert.equal(first?.status, 'running');
    assert.equal(first?.task_id, id);
    assert.equal(first?.wallet, OWNER.account);

    const op = await settled(n, operationId);
    assert.equal(op.status, 'done', op.error);
    assert.equal(op.progress, 100);
    assert.equal(op.stage, 'running');
    const t = task(n, id);
    assert.equal(t.status, 'running');
    assert.equal(t.want_running, true);
    assert.equal(t.last_error, '');

    const spec = n.hv.vms.get(id);
    assert.ok(spec, 'the fake holds the VM');
    const taskDir = join(n.dir.vmDir, id);
    assert.equal(spec.runDir, join(taskDir, 'run'));
    assert.equal(spec.disks.length, 2);
    assert.deepEqual(spec.disks[0], { name: 'vda', path: join(taskDir, 'vda.qcow2') });
    assert.equal(spec.disks[1]?.name, 'vdb');
    assert.match(spec.disks[1]?.path ?? '', new RegExp(`^${n.dir.imageDir}/data_[1-9A-HJ-NP-Za-km-z]{6}_${id}\\.qcow2$`));
    for (const d of spec.disks) assert.ok(existsSync(d.path), `${d.name} exists`);
    assert.deepEqual(
      n.store.disks(id).map((d) => [d.name, d.path, d.owned]),
      spec.disks.map((d) => [d.name, d.path, true]),
    );
    assert.equal(spec.seedIso, join(taskDir, 'seed.iso'));
    assert.ok(existsSync(join(taskDir, 'seed.iso')));
    assert.deepEqual(spec.forwards, [
      { proto: 'tcp', hostAddr: '127.0.0.1', hostPort: p.sshPort, guestPort: 22 },
      { proto: 'udp', hostAddr: '127.0.0.1', hostPort: Number(/,(\d+):/.exec(p.customPorts[0]!)![1]), guestPort: 53 },
    ]);
    assert.deepEqual(spec.vnc, { listen: '127.0.0.1', port: p.vncPort, password: t.vnc_password });
    assert.equal(spec.cpuCores, 1);
    assert.equal(spec.memMiB, 1024);
    assert.equal(spec.tap, undefined, 'user mode');
    assert.deepEqual(
      methodsCalled(n, id).filter((m) => m === 'start'),
      ['start'],
    );
    assert.equal(n.hv.running().length, 1);
  });

  test('the task.status events of a create and a shutdown, in order', async () => {
    const n = await node();
    const t = await running(n);
    const { op } = await act(n, t.task_id, (x) => n.services.tasks.shutdown(x));
    assert.equal(op.status, 'done');
    const seen = n.events.flatMap((e) => (e.type === 'task.status' && e.task_id === t.task_id ? [[e.previous, e.status, e.wallet]] : []));
    assert.deepEqual(seen, [
      [null, 'creating', OWNER.account],
      ['creating', 'running', OWNER.account],
      ['running', 'being shutdown', OWNER.account],
      ['being shutdown', 'closed', OWNER.account],
    ]);
  });
});

describe('lifecycle: transitions', () => {
  test('running -> shutdown -> closed: a guest that honours ACPI is closed by ACPI', async () => {
    const n = await node();
    const t = await running(n);
    const r = await act(n, t.task_id, (x) => n.services.tasks.shutdown(x));
    assert.equal(r.shown, 'being shutdown');
    assert.equal(r.op.kind, 'shutdown');
    assert.equal(r.op.status, 'done');
    assert.equal(r.op.stage, 'closed by ACPI shutdown');
    assert.equal(r.after.status, 'closed');
    assert.equal(r.after.want_running, false);
    assert.deepEqual(n.hv.running(), []);
  });

  test('running -> shutdown -> closed: a guest that ignores ACPI is stopped hard after the timeout', async () => {
    const n = await node();
    const t = await running(n);
    n.hv.guest(t.task_id, { acpi: false });
    const r = await act(n, t.task_id, (x) => n.services.tasks.shutdown(x));
    assert.equal(r.op.status, 'done');
    assert.equal(r.op.stage, 'closed by hard stop after the ACPI timeout');
    assert.equal(r.after.status, 'closed');
    assert.deepEqual(n.hv.running(), []);
  });

  test('closed -> start -> running, with a new QEMU process', async () => {
    const n = await node();
    const t = await running(n);
    const pid = n.hv.vm(t.task_id)?.pid;
    await act(n, t.task_id, (x) => n.services.tasks.shutdown(x));
    const r = await act(n, t.task_id, (x) => n.services.tasks.start(x));
    assert.equal(r.shown, 'starting');
    assert.equal(r.op.kind, 'start');
    assert.equal(r.op.status, 'done');
    assert.equal(r.after.status, 'running');
    assert.equal(r.after.want_running, true);
    assert.deepEqual(n.hv.running(), [t.task_id]);
    assert.notEqual(n.hv.vm(t.task_id)?.pid, pid);
  });

  test('running -> poweroff -> closed (destroy, no ACPI)', async () => {
    const n = await node();
    const t = await running(n);
    const r = await act(n, t.task_id, (x) => n.services.tasks.poweroff(x));
    assert.equal(r.shown, 'being poweroff');
    assert.equal(r.op.kind, 'poweroff');
    assert.equal(r.op.status, 'done');
    assert.equal(r.after.status, 'closed');
    assert.equal(r.after.want_running, false);
    assert.deepEqual(n.hv.running(), []);
    assert.ok(methodsCalled(n, t.task_id).includes('destroy'));
    assert.ok(!methodsCalled(n, t.task_id).includes('shutdown'));
  });

  test('restart: soft (ACPI shutdown, then boot) and force (destroy, then boot) -> running', async () => {
    const n = await node();
    const t = await running(n);
    let pid = n.hv.vm(t.task_id)?.pid;
    for (const force of [false, true]) {
      const mark = n.hv.calls.length;
      const r = await act(n, t.task_id, (x) => n.services.tasks.restart(x, force));
      assert.equal(r.shown, 'restarting');
      assert.equal(r.op.kind, 'restart');
      assert.equal(r.op.status, 'done', r.op.error);
      assert.equal(r.after.status, 'running');
      const calls = n.hv.calls
        .slice(mark)
        .map((c) => c.method)
        .filter((m) => m !== 'state');
      // then the readiness probe asks the guest agent until it answers
      assert.deepEqual(calls, force ? ['destroy', 'start', 'agent'] : ['shutdown', 'start', 'agent']);
      assert.notEqual(n.hv.vm(t.task_id)?.pid, pid);
      pid = n.hv.vm(t.task_id)?.pid;
    }
  });

  test('restart of a closed task boots it', async () => {
    const n = await node();
    const t = await running(n);
    await act(n, t.task_id, (x) => n.services.tasks.poweroff(x));
    const r = await act(n, t.task_id, (x) => n.services.tasks.restart(x, false));
    assert.equal(r.op.status, 'done');
    assert.equal(r.after.status, 'running');
    assert.deepEqual(n.hv.running(), [t.task_id]);
  });

  test('running -> reset -> running (same process, one reset)', async () => {
    const n = await node();
    const t = await running(n);
    const pid = n.hv.vm(t.task_id)?.pid;
    const r = await act(n, t.task_id, (x) => n.services.tasks.reset(x));
    assert.equal(r.shown, 'resetting');
    assert.equal(r.op.kind, 'reset');
    assert.equal(r.op.status, 'done');
    assert.equal(r.after.status, 'running');
    assert.equal(n.hv.vm(t.task_id)?.resets, 1);
    assert.equal(n.hv.vm(t.task_id)?.pid, pid);
  });

  test('start of a suspended (or paused) guest wakes it', async () => {
    const n = await node();
    const t = await running(n);
    for (const stop of [() => n.hv.guestSuspend(t.task_id), () => n.hv.pause(t.task_id)]) {
      stop();
      const r = await act(n, t.task_id, (x) => n.services.tasks.start(x));
      assert.equal(r.shown, 'starting');
      assert.equal(r.op.status, 'done', r.op.error);
      assert.equal(r.after.status, 'running');
      assert.equal(n.hv.vm(t.task_id)?.state, 'running');
    }
    assert.deepEqual(
      methodsCalled(n, t.task_id).filter((m) => m === 'wakeup' || m === 'start'),
      ['start', 'wakeup', 'wakeup'],
    );
  });

  test('delete: VM, files and record gone, a task.deleted event', async () => {
    const n = await node();
    const t = await running(n);
    const disks = n.store.disks(t.task_id);
    const r = await actOn(n, t.task_id, (x) => n.services.tasks.remove(x));
    assert.equal(r.shown, 'deleting');
    assert.equal(r.op.kind, 'delete');
    assert.equal(r.op.status, 'done');
    assert.equal(n.store.get(t.task_id), undefined);
    assert.deepEqual(n.store.disks(t.task_id), []);
    for (const d of disks) assert.equal(existsSync(d.path), false, `${d.name} removed`);
    assert.equal(existsSync(join(n.dir.vmDir, t.task_id)), false);
    assert.ok(existsSync(join(n.dir.imageDir, 'base.qcow2')), 'the base image stays');
    assert.deepEqual(n.hv.running(), []);
    assert.deepEqual(
      n.events.filter((e) => e.type === 'task.deleted'),
      [{ type: 'task.deleted', task_id: t.task_id, wallet: OWNER.account }],
    );
    assert.throws(() => n.services.tasks.owned(t.task_id, OWNER.account), { message: 'task_id not exist' });
  });

  test('a delete during a create waits for it, then deletes', async () => {
    const n = await node();
    const hang = n.hv.hang('start');
    const { task: t, operationId } = await n.services.tasks.create(OWNER, await createParams());
    await hang.reached;
    assert.equal(task(n, t.task_id).status, 'creating');
    // other actions are refused while the create runs
    assert.throws(() => n.services.tasks.shutdown(task(n, t.task_id)), { message: busyText('creating') });
    const deleteId = n.services.tasks.remove(task(n, t.task_id));
    assert.equal(n.services.ops.get(deleteId)?.status, 'running');
    assert.equal(n.services.ops.get(operationId)?.status, 'running');
    hang.release();
    const create = await settled(n, operationId);
    const del = await settled(n, deleteId);
    assert.equal(create.status, 'done', create.error);
    assert.equal(del.status, 'done', del.error);
    assert.ok(del.updated_at >= create.updated_at);
    assert.equal(n.store.get(t.task_id), undefined);
    assert.equal(existsSync(join(n.dir.vmDir, t.task_id)), false);
    assert.equal(n.world.vms.size, 0);
    assert.deepEqual(
      methodsCalled(n, t.task_id).filter((m) => m === 'start' || m === 'destroy'),
      ['start', 'destroy'],
    );
  });

  test('the guest powers itself off: the reconciler marks the task closed', async () => {
    const n = await node();
    const t = await running(n);
    n.hv.guestPowerOff(t.task_id);
    const after = await until('closed', () => (task(n, t.task_id).status === 'closed' ? task(n, t.task_id) : undefined));
    assert.equal(after.want_running, false);
    assert.deepEqual(n.hv.running(), []);
    // and a QEMU crash likewise
    await act(n, t.task_id, (x) => n.services.tasks.start(x));
    n.hv.crash(t.task_id);
    await until('closed after a crash', () => task(n, t.task_id).status === 'closed');
  });
});

describe('lifecycle: refusals', () => {
  test('every action while another runs: `task is <status>, please try again later`, nothing recorded', async () => {
    const n = await node();
    const t = await running(n);
    const hang = n.hv.hang('shutdown');
    const opId = n.services.tasks.shutdown(task(n, t.task_id));
    await hang.reached;
    const busy = task(n, t.task_id);
    assert.equal(busy.status, 'being shutdown');
    assert.equal(n.services.tasks.isBusy(t.task_id), true);
    const before = n.services.ops.ofTask(t.task_id).length;
    const actions: Array<[string, () => unknown]> = [
      ['start', () => n.services.tasks.start(busy)],
      ['shutdown', () => n.services.tasks.shutdown(busy)],
      ['poweroff', () => n.services.tasks.poweroff(busy)],
      ['restart', () => n.services.tasks.restart(busy, false)],
      ['restart force', () => n.services.tasks.restart(busy, true)],
      ['reset', () => n.services.tasks.reset(busy)],
      ['delete', () => n.services.tasks.remove(busy)],
    ];
    for (const [name, run] of actions) assert.throws(run, { message: busyText('being shutdown') }, name);
    await assert.rejects(n.services.tasks.modify(busy, { sshPort: t.ssh_port }), { message: busyText('being shutdown') });
    assert.equal(n.services.ops.ofTask(t.task_id).length, before, 'no operation recorded for a refusal');
    hang.release();
    const op = await settled(n, opId);
    assert.equal(op.status, 'done');
    // a transient status refuses without a lock too (what a dead daemon left before the reconciler settled it)
    n.store.update(t.task_id, { status: 'restarting' });
    assert.equal(n.services.tasks.isBusy(t.task_id), false);
    assert.throws(() => n.services.tasks.shutdown(task(n, t.task_id)), { message: busyText('restarting') });
    assert.throws(() => n.services.tasks.start(task(n, t.task_id)), { message: busyText('restarting') });
  });

  test('shutdown, poweroff and reset of a closed task: `task is shut_off`', async () => {
    const n = await node();
    const t = await running(n);
    await act(n, t.task_id, (x) => n.services.tasks.poweroff(x));
    const closed = task(n, t.task_id);
    const before = n.services.ops.ofTask(t.task_id).length;
    assert.throws(() => n.services.tasks.shutdown(closed), { message: 'task is shut_off' });
    assert.throws(() => n.services.tasks.poweroff(closed), { message: 'task is shut_off' });
    assert.throws(() => n.services.tasks.reset(closed), { message: 'task is shut_off' });
    assert.equal(n.services.ops.ofTask(t.task_id).length, before);
    // an error status is named as it is
    n.store.update(t.task_id, { status: 'start error' });
    assert.throws(() => n.services.tasks.shutdown(task(n, t.task_id)), { message: 'task is start error' });
  });

  test('start of a task whose VM really runs: the operation fails with `task is running` (task: start error)', async () => {
    const n = await node();
    const t = await running(n);
    const pid = n.hv.vm(t.task_id)?.pid;
    const r = await act(n, t.task_id, (x) => n.services.tasks.start(x));
    assert.equal(r.shown, 'starting');
    assert.equal(r.op.status, 'failed');
    assert.equal(r.op.error, 'task is running');
    assert.equal(r.after.status, 'start error');
    assert.equal(r.after.last_error, 'task is running');
    assert.equal(n.hv.vm(t.task_id)?.pid, pid, 'the VM is left alone');
    assert.ok(!methodsCalled(n, t.task_id).includes('wakeup'));
  });

  test('passwd: only a running task; on a running one the guest agent sets it and the store keeps it', async () => {
    const n = await node();
    const t = await running(n);
    const asked: unknown[] = [];
    n.hv.guest(t.task_id, { agent: (execute, args) => (asked.push([execute, args]), {}) });
    await n.services.tasks.passwd(task(n, t.task_id), 'dbc', 'n3w-Passw0rd');
    assert.deepEqual(asked, [['guest-set-user-password', { username: 'dbc', password: Buffer.from('n3w-Passw0rd').toString('base64'), crypted: false }]]);
    assert.equal(task(n, t.task_id).login_password, 'n3w-Passw0rd');
    await act(n, t.task_id, (x) => n.services.tasks.shutdown(x));
    await assert.rejects(n.services.tasks.passwd(task(n, t.task_id), 'dbc', 'x'), { message: 'Only the running task can change the password' });
    // a record that says running without a VM is refused as well
    n.store.update(t.task_id, { status: 'running' });
    await assert.rejects(n.services.tasks.passwd(task(n, t.task_id), 'dbc', 'x'), { message: 'Only the running task can change the password' });
  });

  test("owned(): another account's task, an unknown id and a malformed id all read `task_id not exist`", async () => {
    const n = await node();
    const t = await running(n);
    assert.equal(n.services.tasks.owned(t.task_id, OWNER.account).task_id, t.task_id);
    assert.throws(() => n.services.tasks.owned(t.task_id, OTHER.account), { message: 'task_id not exist' });
    assert.throws(() => n.services.tasks.owned('UnknownTask12345678901', OWNER.account), { message: 'task_id not exist' });
    assert.throws(() => n.services.tasks.owned('../etc/passwd', OWNER.account), { message: 'task_id not exist' });
    assert.deepEqual(n.services.tasks.list(OTHER.account), []);
    assert.deepEqual(
      n.services.tasks.list(OWNER.account).map((x) => x.task_id),
      [t.task_id],
    );
  });
});

describe('lifecycle: hypervisor failures', () => {
  test('start fails during create: `create error` with the public text, the operation failed', async () => {
    const n = await node();
    n.hv.failNext('start', new Error('qemu-system-x86_64: could not open /var/lib/dbc/secret/vda.qcow2: Permission denied'));
    const { task: t, operationId } = await n.services.tasks.create(OWNER, await createParams());
    const op = await settled(n, operationId);
    const text = 'qemu-system-x86_64: could not open vda.qcow2: Permission denied';
    assert.equal(op.status, 'failed');
    assert.equal(op.error, text);
    const after = task(n, t.task_id);
    assert.equal(after.status, 'create error');
    assert.equal(after.last_error, text);
    assert.deepEqual(n.hv.running(), []);
    // the task can be started again from its error status
    const r = await act(n, t.task_id, (x) => n.services.tasks.start(x));
    assert.equal(r.op.status, 'done', r.op.error);
    assert.equal(r.after.status, 'running');
    assert.equal(r.after.last_error, '');
  });

  test('shutdown fails: `shutdown error`, the VM still runs', async () => {
    const n = await node();
    const t = await running(n);
    n.hv.failNext('shutdown');
    const r = await act(n, t.task_id, (x) => n.services.tasks.shutdown(x));
    assert.equal(r.op.status, 'failed');
    assert.equal(r.op.error, 'injected failure of shutdown');
    assert.equal(r.after.status, 'shutdown error');
    assert.equal(r.after.last_error, 'injected failure of shutdown');
    assert.deepEqual(n.hv.running(), [t.task_id]);
    // an error status is settled but not `running`: poweroff is refused, start finds the VM running and says so
    assert.throws(() => n.services.tasks.poweroff(r.after), { message: 'task is shutdown error' });
    const again = await act(n, t.task_id, (x) => n.services.tasks.start(x));
    assert.equal(again.op.status, 'done', again.op.error);
    assert.equal(again.after.status, 'running');
    assert.equal(again.after.last_error, '');
    assert.ok(!methodsCalled(n, t.task_id).includes('wakeup'));
    assert.equal(methodsCalled(n, t.task_id).filter((m) => m === 'start').length, 1);
  });
});

describe('lifecycle: crash points (a daemon dies, the next one takes over)', () => {
  test('killed while create waits for the hypervisor: the next daemon resumes it to running under the same operation', async () => {
    const dir = sharedDir();
    const world = new FakeWorld();
    const d1 = await node({ dir, world });
    const hang = d1.hv.hang('start');
    const { task: t, operationId } = await d1.services.tasks.create(OWNER, await createParams());
    await hang.reached;
    d1.kill();

    const d2 = await node({ dir, world });
    const op = await settled(d2, operationId);
    assert.equal(op.status, 'done', op.error);
    assert.equal(op.progress, 100);
    const after = task(d2, t.task_id);
    assert.equal(after.status, 'running');
    assert.deepEqual(
      d2.services.ops.ofTask(t.task_id).map((o) => o.id),
      [operationId],
      'no second operation',
    );
    assert.equal(world.vms.size, 1, 'exactly one VM');
    assert.equal(world.vms.get(t.task_id)?.owner, d2.hv);
    assert.equal(d2.hv.calls.filter((c) => c.method === 'start').length, 1);
  });

  test('a running VM survives its daemon: the next one adopts it, no second start', async () => {
    const dir = sharedDir();
    const world = new FakeWorld();
    const d1 = await node({ dir, world });
    const t = await running(d1);
    const pid = world.vms.get(t.task_id)?.pid;
    d1.kill();

    const d2 = await node({ dir, world });
    assert.equal(task(d2, t.task_id).status, 'running');
    assert.deepEqual(d2.hv.running(), [t.task_id]);
    assert.equal(world.vms.get(t.task_id)?.pid, pid);
    assert.equal(world.vms.size, 1);
    assert.ok(d2.hv.calls.some((c) => c.method === 'adopt' && c.taskId === t.task_id));
    assert.ok(!d2.hv.calls.some((c) => c.method === 'start'));
    assert.equal(d2.services.ops.ofTask(t.task_id).length, 1, 'only the create');
    // the adopted VM obeys the new daemon
    const r = await act(d2, t.task_id, (x) => d2.services.tasks.shutdown(x));
    assert.equal(r.op.status, 'done');
    assert.equal(r.after.status, 'closed');
    assert.equal(world.vms.size, 0);
  });

  test('the VM died with the host while it should run: the next daemon recovers it to running', async () => {
    const dir = sharedDir();
    const world = new FakeWorld();
    const d1 = await node({ dir, world });
    const t = await running(d1);
    d1.kill();
    world.reboot();

    const d2 = await node({ dir, world });
    const recover = await until('a recover operation', () => d2.services.ops.ofTask(t.task_id).find((o) => o.kind === 'recover'));
    const op = await settled(d2, recover.id);
    assert.equal(op.status, 'done', op.error);
    assert.equal(task(d2, t.task_id).status, 'running');
    assert.equal(world.vms.get(t.task_id)?.owner, d2.hv);
    assert.equal(world.vms.size, 1);
  });

  test('a task marked running with no VM and want_running false is closed', async () => {
    const dir = sharedDir();
    const world = new FakeWorld();
    const d1 = await node({ dir, world });
    const t = await running(d1);
    d1.store.update(t.task_id, { want_running: false });
    d1.kill();
    world.reboot();

    const d2 = await node({ dir, world });
    assert.equal(task(d2, t.task_id).status, 'closed');
    assert.ok(!d2.hv.calls.some((c) => c.method === 'start'));
    assert.deepEqual(
      d2.services.ops.ofTask(t.task_id).map((o) => o.kind),
      ['create'],
    );
  });

  test('an operation of a kind that is not resumed fails `interrupted by a node restart`', async () => {
    const dir = sharedDir();
    const world = new FakeWorld();
    const d1 = await node({ dir, world });
    const t = await running(d1);
    const hang = d1.hv.hang('shutdown');
    const opId = d1.services.tasks.shutdown(task(d1, t.task_id));
    await hang.reached;
    assert.equal(task(d1, t.task_id).status, 'being shutdown');
    d1.kill();

    const d2 = await node({ dir, world });
    const op = d2.services.ops.get(opId);
    assert.equal(op?.status, 'failed');
    assert.equal(op?.error, 'interrupted by a node restart');
    // the shutdown never reached QEMU: the VM runs, and the task says so
    assert.equal(task(d2, t.task_id).status, 'running');
    assert.equal(world.vms.get(t.task_id)?.owner, d2.hv);
  });

  test('killed after the VM went down but before the task said so: the operation fails, the task is closed', async () => {
    const dir = sharedDir();
    const world = new FakeWorld();
    const d1 = await node({ dir, world });
    const t = await running(d1);
    const hang = d1.hv.hang('shutdown', { after: true });
    const opId = d1.services.tasks.shutdown(task(d1, t.task_id));
    await hang.reached;
    assert.equal(world.vms.size, 0);
    d1.kill();

    const d2 = await node({ dir, world });
    assert.equal(d2.services.ops.get(opId)?.error, 'interrupted by a node restart');
    const after = task(d2, t.task_id);
    assert.equal(after.status, 'closed');
    assert.equal(after.want_running, false);
    assert.ok(!d2.hv.calls.some((c) => c.method === 'start'));
  });
});
