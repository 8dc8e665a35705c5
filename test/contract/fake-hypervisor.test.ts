// The FakeHypervisor's own controls, beyond the Hypervisor contract (hypervisor.test.ts): guest events, a shared
// world across daemon restarts, crash points (failNext, hang), the call log, and the refusals QEMU would give.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeHypervisor, FakeWorld } from '../helpers/fake-hypervisor.js';
import type { VmExit, VmSpec } from '../../src/vm/types.js';

let seq = 0;
function spec(over: Partial<VmSpec> = {}): VmSpec {
  seq++;
  return {
    taskId: `f${seq}`,
    runDir: `/run/dbc/vm/f${seq}`,
    name: `f${seq}`,
    cpuCores: 1,
    memMiB: 128,
    disks: [{ name: 'vda', path: `/var/lib/dbc/f${seq}.qcow2` }],
    biosMode: 'legacy',
    os: 'linux',
    nicModel: 'virtio',
    forwards: [{ proto: 'tcp', hostAddr: '0.0.0.0', hostPort: 20000 + seq, guestPort: 22 }],
    vnc: { listen: '127.0.0.1', port: 6000 + seq, password: 'pw' },
    gpus: [],
    serialLog: `/run/dbc/vm/f${seq}/serial.log`,
    ...over,
  };
}

function withExits(hv: FakeHypervisor): VmExit[] {
  const exits: VmExit[] = [];
  hv.onExit((e) => exits.push(e));
  return exits;
}

describe('FakeHypervisor', () => {
  test('guest events: power off and crash report one exit each; suspend, then wakeup', async () => {
    const hv = new FakeHypervisor();
    const exits = withExits(hv);
    hv.onExit(() => {
      throw new Error('a broken listener does not stop the others');
    });
    const a = spec();
    const b = spec();
    await hv.start(a);
    await hv.start(b);
    hv.guestSuspend(a.taskId);
    assert.equal(await hv.state(a.taskId), 'suspended');
    await hv.wakeup(a.taskId);
    assert.equal(await hv.state(a.taskId), 'running');
    hv.guestPowerOff(a.taskId);
    hv.crash(b.taskId);
    assert.deepEqual(exits, [
      { taskId: a.taskId, reason: 'guest-shutdown' },
      { taskId: b.taskId, reason: 'crashed' },
    ]);
    assert.deepEqual(hv.running(), []);
    assert.throws(() => hv.crash(b.taskId), /no VM/);
  });

  test('a paused guest cannot act on the power button: shutdown is forced', async () => {
    const hv = new FakeHypervisor();
    const s = spec();
    await hv.start(s);
    hv.pause(s.taskId);
    assert.equal(await hv.shutdown(s.taskId, 1000), 'forced');
  });

  test('agent: the programmed answer; none when the guest has no agent or is paused', async () => {
    const hv = new FakeHypervisor();
    const s = spec();
    await hv.start(s);
    await assert.rejects(hv.agent(s.taskId, 'guest-ping', undefined, 100), /no answer within 100 ms/);
    hv.guest(s.taskId, { agent: (cmd, args) => ({ cmd, args }) });
    assert.deepEqual(await hv.agent(s.taskId, 'guest-set-user-password', { username: 'dbc' }), { cmd: 'guest-set-user-password', args: { username: 'dbc' } });
    hv.pause(s.taskId);
    await assert.rejects(hv.agent(s.taskId, 'guest-ping'), /agent not responding/);
  });

  test('what QEMU refuses: a bad spec, a host port or VNC port in use, a hostfwd on a tap', async () => {
    const hv = new FakeHypervisor();
    await assert.rejects(hv.start(spec({ taskId: 'bad id' })), /invalid task id/);
    await assert.rejects(hv.start(spec({ disks: [{ name: 'vda', path: '/a,b' }] })), /must not contain ','/);
    const a = spec();
    await hv.start(a);
    const b = spec({ forwards: [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: a.forwards[0]!.hostPort, guestPort: 22 }] });
    await assert.rejects(hv.start(b), /Could not set up host forwarding rule 'tcp:127\.0\.0\.1:\d+-:22'/);
    await assert.rejects(hv.start(spec({ vnc: a.vnc })), /Failed to find an available port/);
    const t = spec({ tap: 'tap0', forwards: [] });
    await hv.start(t);
    await assert.rejects(hv.addForward(t.taskId, a.forwards[0]!), /not a user-mode network/);
    assert.deepEqual(hv.vm(a.taskId)?.forwards, a.forwards);
    assert.deepEqual([...hv.vms.keys()], [a.taskId, t.taskId]);
  });

  test('restart over a shared world: the VM outlives the daemon, start refuses the orphan, adopt takes it', async () => {
    const world = new FakeWorld();
    const old = new FakeHypervisor({ world });
    const oldExits = withExits(old);
    const s = spec();
    const { pid } = await old.start(s);
    await old.setVncPassword(s.taskId, 'changed1');
    // the daemon is SIGKILLed: no detachAll
    const hv = new FakeHypervisor({ world });
    const exits = withExits(hv);
    assert.equal(await hv.state(s.taskId), 'shutoff', 'not adopted yet');
    await assert.rejects(hv.start(s), new RegExp(`a QEMU for VM ${s.taskId} is already running \\(pid ${pid}\\); adopt it instead`));
    assert.equal(await hv.adopt(s.taskId, s.runDir), true);
    assert.equal(hv.vm(s.taskId)?.vncPassword, 'changed1');
    assert.deepEqual(old.running(), []);
    hv.crash(s.taskId);
    assert.deepEqual(exits, [{ taskId: s.taskId, reason: 'crashed' }]);
    assert.deepEqual(oldExits, []);
    // a host reboot while no daemon runs: nothing survives, nobody hears
    const t = spec();
    await hv.start(t);
    await hv.detachAll();
    world.reboot();
    assert.equal(await new FakeHypervisor({ world }).adopt(t.taskId, t.runDir), false);
    assert.equal(exits.length, 1);
  });

  test('failNext: before the effect nothing happened; after it, the work is done but the caller got an error', async () => {
    const hv = new FakeHypervisor();
    const a = spec();
    hv.failNext('start', new Error('qemu would not start'));
    await assert.rejects(hv.start(a), /qemu would not start/);
    assert.equal(await hv.state(a.taskId), 'shutoff');
    hv.failNext('start', new Error('daemon lost the answer'), { after: true });
    await assert.rejects(hv.start(a), /daemon lost the answer/);
    assert.equal(await hv.state(a.taskId), 'running');
    const b = spec();
    await hv.start(b);
    hv.failNext('reset', undefined, { taskId: b.taskId });
    await hv.reset(a.taskId); // not the targeted task
    await assert.rejects(hv.reset(b.taskId), /injected failure of reset/);
    assert.equal(hv.vm(a.taskId)?.resets, 1);
    assert.equal(hv.vm(b.taskId)?.resets, 0);
  });

  test('hang: a call waits at a crash point until released; a new daemon finds what the effect left', async () => {
    const world = new FakeWorld();
    const hv = new FakeHypervisor({ world });
    const s = spec();
    const held = hv.hang('start', { after: true });
    let settled = false;
    const starting = hv.start(s).finally(() => (settled = true));
    await held.reached;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(settled, false, 'the caller still waits');
    // the daemon dies here; QEMU is already up
    const next = new FakeHypervisor({ world });
    assert.equal(await next.adopt(s.taskId, s.runDir), true);
    held.release();
    assert.ok((await starting).pid > 0);

    const d = spec();
    await next.start(d);
    const attach = next.hang('attachDisk');
    const p = next.attachDisk(d.taskId, { name: 'vdb', path: '/' });
    await attach.reached;
    assert.equal(next.vm(d.taskId)?.disks.has('vdb'), false, 'nothing happened yet');
    attach.fail(new Error('blockdev-add timed out'));
    await assert.rejects(p, /blockdev-add timed out/);
    assert.equal(next.vm(d.taskId)?.disks.has('vdb'), false);
  });

  test('the call log records every driver call in order', async () => {
    const hv = new FakeHypervisor();
    const s = spec();
    await hv.start(s);
    await hv.growDisk(s.taskId, 'vda', s.disks[0]!.path, 2 ** 30);
    await hv.destroy(s.taskId);
    assert.deepEqual(
      hv.calls.map((c) => [c.method, c.taskId]),
      [
        ['start', s.taskId],
        ['growDisk', s.taskId],
        ['destroy', s.taskId],
      ],
    );
    assert.deepEqual(hv.calls[1]!.args, ['vda', s.disks[0]!.path, 2 ** 30]);
  });
});

test('boot(): a running VM for service tests, no spec needed; its disks can be grown and it can be destroyed', async () => {
  const hv = new FakeHypervisor();
  hv.boot('T1', { disks: [{ name: 'vdb', path: '/d/b.qcow2' }] });
  assert.equal(await hv.state('T1'), 'running');
  await hv.growDisk('T1', 'vdb', '/d/b.qcow2', 4 * 2 ** 30);
  assert.deepEqual(hv.calls.at(-1), { method: 'growDisk', taskId: 'T1', args: ['vdb', '/d/b.qcow2', 4 * 2 ** 30] });
  assert.throws(() => hv.boot('T1'), /already running/);
  await hv.destroy('T1');
  assert.equal(await hv.state('T1'), 'shutoff');
});
