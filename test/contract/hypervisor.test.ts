// The Hypervisor contract (js-libp2p interface-compliance style): hypervisorSuite() runs the same cases against every
// implementation: the shared FakeHypervisor (a guest that honours ACPI and one that does not) and the real
// QemuHypervisor with TCG and a blank disk (SeaBIOS finds nothing to boot and sits there: a guest that ignores ACPI;
// a VM starts in about 0.3 s). Then the FakeHypervisor's own controls: restarts over a shared world, crash points.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuHypervisor } from '../../src/vm/qemu.js';
import type { Hypervisor, VmExit, VmSpec } from '../../src/vm/types.js';
import { freeTcpPort, sleep, waitFor } from '../helpers/devnet.js';
import { FakeHypervisor, FakeWorld } from '../helpers/fake-hypervisor.js';
import { freeVncPort } from '../helpers/tasks.js';

const MiB = 1024 * 1024;

export interface HypervisorHarness {
  /** the driver under test */
  hv: Hypervisor;
  /** the guest honours ACPI: the power button and PCI eject */
  acpiGuest: boolean;
  /** a fresh valid spec (its own task id, run dir, blank vda, free ports); windows: a q35 machine */
  spec(opts?: { windows?: boolean }): Promise<VmSpec>;
  /** a fresh qcow2 file of `bytes` */
  diskFile(bytes: number): string;
  /** the virtual size QEMU now gives guest disk `name` */
  diskBytes(taskId: string, name: string, path: string): Promise<number>;
  /** pause the VM from the host (QMP stop) */
  pause(taskId: string): Promise<void>;
  /** the process is killed from outside */
  kill(taskId: string, pid: number): void;
  /** a new driver over the same host, as after a daemon restart */
  restarted(): Hypervisor;
  close(): Promise<void>;
}

/** onExit records of one driver, by task */
function exitLog(hv: Hypervisor): (taskId: string) => VmExit[] {
  const all: VmExit[] = [];
  hv.onExit((e) => all.push(e));
  return (taskId) => all.filter((e) => e.taskId === taskId);
}

export function hypervisorSuite(name: string, factory: () => Promise<HypervisorHarness>): void {
  describe(`Hypervisor contract: ${name}`, { timeout: 120_000 }, () => {
    let h: HypervisorHarness;
    let exits: (taskId: string) => VmExit[];
    const ready = (async () => {
      h = await factory();
      exits = exitLog(h.hv);
    })();
    after(async () => {
      await ready;
      await h.close();
    });

    test('start: the VM runs and is listed; a second start is refused and changes nothing', async () => {
      await ready;
      const s = await h.spec();
      assert.equal(await h.hv.state(s.taskId), 'shutoff');
      const { pid } = await h.hv.start(s);
      assert.ok(Number.isInteger(pid) && pid > 1);
      assert.equal(await h.hv.state(s.taskId), 'running');
      assert.ok(h.hv.running().includes(s.taskId));
      await assert.rejects(h.hv.start(s), new RegExp(`VM ${s.taskId} is already running \\(pid ${pid}\\)`));
      assert.equal(await h.hv.state(s.taskId), 'running');
      await h.hv.destroy(s.taskId);
    });

    test("shutdown: 'acpi' when the guest honours the power button, else 'forced'; shut off, its exit reported once", async () => {
      await ready;
      const s = await h.spec();
      await h.hv.start(s);
      assert.equal(await h.hv.shutdown(s.taskId, 500), h.acpiGuest ? 'acpi' : 'forced');
      assert.equal(await h.hv.state(s.taskId), 'shutoff');
      assert.ok(!h.hv.running().includes(s.taskId));
      await sleep(100);
      assert.deepEqual(exits(s.taskId), [{ taskId: s.taskId, reason: h.acpiGuest ? 'guest-shutdown' : 'host-qmp-quit' }]);
      assert.equal(await h.hv.shutdown(s.taskId, 500), 'acpi', 'nothing to shut down');
      assert.equal(exits(s.taskId).length, 1);
    });

    test('destroy stops a running VM at once; again it is a no-op; one exit', async () => {
      await ready;
      const s = await h.spec();
      await h.hv.start(s);
      await h.hv.destroy(s.taskId);
      assert.equal(await h.hv.state(s.taskId), 'shutoff');
      await h.hv.destroy(s.taskId);
      await sleep(100);
      assert.deepEqual(exits(s.taskId), [{ taskId: s.taskId, reason: 'host-qmp-quit' }]);
    });

    test('reset keeps the VM running; a paused VM wakes up; VNC password and forwards change live', async () => {
      await ready;
      const s = await h.spec();
      await h.hv.start(s);
      await h.hv.reset(s.taskId);
      assert.equal(await h.hv.state(s.taskId), 'running');
      await h.pause(s.taskId);
      assert.equal(await h.hv.state(s.taskId), 'paused');
      await h.hv.wakeup(s.taskId);
      assert.equal(await h.hv.state(s.taskId), 'running');
      await h.hv.wakeup(s.taskId); // running: nothing to do
      await h.hv.setVncPassword(s.taskId, 'another1');
      const fwd = { proto: 'tcp' as const, hostAddr: '127.0.0.1', hostPort: await freeTcpPort(), guestPort: 80 };
      await h.hv.addForward(s.taskId, fwd);
      await assert.rejects(h.hv.addForward(s.taskId, fwd), /Could not set up host forwarding rule/);
      await h.hv.removeForward(s.taskId, fwd);
      await assert.rejects(h.hv.removeForward(s.taskId, fwd), /not found/);
      assert.equal(exits(s.taskId).length, 0);
      await h.hv.destroy(s.taskId);
    });

    test('a guest agent call to a guest without an agent fails after its timeout; the VM runs on', async () => {
      await ready;
      const s = await h.spec();
      await h.hv.start(s);
      await assert.rejects(h.hv.agent(s.taskId, 'guest-ping', undefined, 300), /guest agent guest-ping: no answer within 300 ms/);
      assert.equal(await h.hv.state(s.taskId), 'running');
      await h.hv.destroy(s.taskId);
    });

    test('disks on a running VM: attach, grow (never shrink), detach', async () => {
      await ready;
      const s = await h.spec();
      await h.hv.start(s);
      const file = h.diskFile(64 * MiB);
      await h.hv.attachDisk(s.taskId, { name: 'vdb', path: file });
      await assert.rejects(h.hv.attachDisk(s.taskId, { name: 'vdb', path: h.diskFile(64 * MiB) }), /Duplicate nodes with node-name='drive-vdb'/);
      await assert.rejects(h.hv.attachDisk(s.taskId, { name: 'vdc', path: join(s.runDir, 'missing.qcow2') }), /Could not open/);
      await assert.rejects(h.hv.attachDisk(s.taskId, { name: 'vd,x', path: file }), /invalid disk name/);
      await h.hv.growDisk(s.taskId, 'vdb', file, 128 * MiB);
      assert.equal(await h.diskBytes(s.taskId, 'vdb', file), 128 * MiB);
      await assert.rejects(h.hv.growDisk(s.taskId, 'vdb', file, 64 * MiB), /cannot shrink/);
      await h.hv.growDisk(s.taskId, 'vda', s.disks[0]!.path, 96 * MiB); // a boot-time disk grows too
      assert.equal(await h.diskBytes(s.taskId, 'vda', s.disks[0]!.path), 96 * MiB);
      await assert.rejects(h.hv.growDisk(s.taskId, 'vdq', join(s.runDir, 'nope.qcow2'), 128 * MiB), /disk vdq is not attached to the running VM/);
      if (h.acpiGuest) {
        await h.hv.detachDisk(s.taskId, 'vdb', 2000);
        await assert.rejects(h.hv.growDisk(s.taskId, 'vdb', join(s.runDir, 'other'), 256 * MiB), /not attached/);
        await h.hv.attachDisk(s.taskId, { name: 'vdb', path: h.diskFile(64 * MiB) }); // the name is free again
      } else {
        await assert.rejects(h.hv.detachDisk(s.taskId, 'vdb', 300), new RegExp(`VM ${s.taskId}: the guest did not release disk vdb within 300 ms`));
        await h.hv.growDisk(s.taskId, 'vdb', file, 192 * MiB); // still attached
      }
      await h.hv.detachDisk(s.taskId, 'vdz', 300); // never attached: nothing to do
      assert.equal(await h.hv.state(s.taskId), 'running');
      await h.hv.destroy(s.taskId);
    });

    test('a q35 (windows) VM cannot hot-plug and keeps nothing half-attached', async () => {
      await ready;
      const s = await h.spec({ windows: true });
      await h.hv.start(s);
      const file = h.diskFile(64 * MiB);
      await assert.rejects(h.hv.attachDisk(s.taskId, { name: 'vdb', path: file }), /does not support hotplugging/);
      await assert.rejects(h.hv.growDisk(s.taskId, 'vdb', file, 128 * MiB), /not attached/);
      await h.hv.destroy(s.taskId);
    });

    test('a VM that is not running refuses what needs one', async () => {
      await ready;
      const s = await h.spec();
      const file = h.diskFile(64 * MiB);
      const fwd = { proto: 'tcp' as const, hostAddr: '127.0.0.1', hostPort: 1, guestPort: 80 };
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['reset', () => h.hv.reset(s.taskId)],
        ['wakeup', () => h.hv.wakeup(s.taskId)],
        ['setVncPassword', () => h.hv.setVncPassword(s.taskId, 'x')],
        ['addForward', () => h.hv.addForward(s.taskId, fwd)],
        ['removeForward', () => h.hv.removeForward(s.taskId, fwd)],
        ['agent', () => h.hv.agent(s.taskId, 'guest-ping')],
        ['attachDisk', () => h.hv.attachDisk(s.taskId, { name: 'vdb', path: file })],
        ['detachDisk', () => h.hv.detachDisk(s.taskId, 'vdb')],
        ['growDisk', () => h.hv.growDisk(s.taskId, 'vdb', file, 128 * MiB)],
      ];
      for (const [what, call] of calls) await assert.rejects(call(), new RegExp(`VM ${s.taskId} is not running`), what);
      assert.equal(exits(s.taskId).length, 0);
    });

    test('a VM killed from outside is reported gone once', async () => {
      await ready;
      const s = await h.spec();
      const { pid } = await h.hv.start(s);
      h.kill(s.taskId, pid);
      await waitFor('the exit', () => exits(s.taskId).length > 0, 10_000, 20);
      await sleep(200);
      assert.equal(exits(s.taskId).length, 1);
      assert.equal(await h.hv.state(s.taskId), 'shutoff');
      assert.ok(!h.hv.running().includes(s.taskId));
    });

    test('adopt: an unknown VM is false; after a restart the new driver adopts, controls and hears the VM', async () => {
      await ready;
      const s = await h.spec();
      assert.equal(await h.hv.adopt(s.taskId, s.runDir), false);
      await h.hv.start(s);
      const hv2 = h.restarted();
      const exits2 = exitLog(hv2);
      try {
        assert.equal(await hv2.adopt(s.taskId, join(s.runDir, 'elsewhere')), false);
        assert.equal(await hv2.adopt(s.taskId, s.runDir), true);
        assert.deepEqual(hv2.running(), [s.taskId]);
        assert.equal(await hv2.state(s.taskId), 'running');
        await hv2.reset(s.taskId);
        await hv2.destroy(s.taskId);
        await sleep(100);
        assert.deepEqual(exits2(s.taskId), [{ taskId: s.taskId, reason: 'host-qmp-quit' }]);
        assert.equal(exits(s.taskId).length, 0, 'the first driver let go of it');
        assert.equal(await hv2.adopt(s.taskId, s.runDir), false, 'nothing left to adopt');
      } finally {
        await hv2.detachAll();
      }
    });
  });
}

// --- implementations ---

const root = mkdtempSync(join(tmpdir(), 'dbc-hv-contract-'));
after(() => rmSync(root, { recursive: true, force: true }));
let seq = 0;

async function blankSpec(prefix: string, opts: { windows?: boolean } = {}): Promise<VmSpec> {
  seq++;
  const runDir = join(root, `${prefix}${seq}`);
  mkdirSync(runDir);
  const vda = join(runDir, 'vda.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', vda, '64M']);
  return {
    taskId: `${prefix}${seq}`,
    runDir,
    name: `${prefix}${seq}`,
    cpuCores: 1,
    memMiB: 128,
    disks: [{ name: 'vda', path: vda }],
    biosMode: 'legacy',
    os: opts.windows ? 'windows' : 'linux',
    nicModel: 'virtio',
    forwards: [],
    vnc: { listen: '127.0.0.1', port: await freeVncPort(), password: 'vncpass1' },
    gpus: [],
    serialLog: join(runDir, 'serial.log'),
  };
}

function qcow2(bytes: number): string {
  const path = join(root, `disk${++seq}.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, String(bytes)]);
  return path;
}

function fakeHarness(acpiGuest: boolean): () => Promise<HypervisorHarness> {
  return async () => {
    const world = new FakeWorld();
    const hv = new FakeHypervisor({ world, guest: { acpi: acpiGuest } });
    const sizes = new Map<string, number>();
    return {
      hv,
      acpiGuest,
      spec: (opts) => blankSpec(acpiGuest ? 'fa' : 'fn', opts),
      diskFile: (bytes) => {
        // an empty file stands for the image: the fake only checks that it exists
        const path = join(root, `fake${++seq}.qcow2`);
        writeFileSync(path, '');
        sizes.set(path, bytes);
        return path;
      },
      diskBytes: async (taskId, name, path) => hv.vm(taskId)?.disks.get(name)?.bytes ?? sizes.get(path) ?? 0,
      pause: async (taskId) => hv.pause(taskId),
      kill: (taskId) => hv.crash(taskId, 'killed'),
      restarted: () => {
        // the old daemon dies without detaching: the new one takes its VMs over
        return new FakeHypervisor({ world, guest: { acpi: acpiGuest } });
      },
      close: async () => {
        await hv.detachAll();
      },
    };
  };
}

hypervisorSuite('FakeHypervisor, a guest that honours ACPI', fakeHarness(true));
hypervisorSuite('FakeHypervisor, a guest that ignores ACPI', fakeHarness(false));

function qemuPidsUnderRoot(): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmd.startsWith('qemu-system') && cmd.includes(root)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

function haveQemu(): boolean {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (haveQemu()) {
  hypervisorSuite('QemuHypervisor (TCG, blank disk: the guest ignores ACPI)', async () => {
    const hv = new QemuHypervisor({ accel: 'tcg' });
    const drivers: QemuHypervisor[] = [hv];
    return {
      hv,
      acpiGuest: false,
      spec: (opts) => blankSpec('q', opts),
      diskFile: qcow2,
      diskBytes: async (taskId, name, path) => {
        const entries = (await hv.qmp(taskId, 'query-block')) as Array<{
          device?: string;
          qdev?: string;
          inserted?: { file?: string; image?: { 'virtual-size'?: number } };
        }>;
        const hit = entries.find((e) => e.device === `drive-${name}` || (e.qdev ?? '').startsWith(`/machine/peripheral/${name}/`) || e.inserted?.file === path);
        return hit?.inserted?.image?.['virtual-size'] ?? 0;
      },
      pause: async (taskId) => {
        await hv.qmp(taskId, 'stop');
      },
      kill: (_taskId, pid) => process.kill(pid, 'SIGKILL'),
      restarted: () => {
        const next = new QemuHypervisor({ accel: 'tcg' });
        drivers.push(next);
        // the first driver lets go (a daemon shutting down); adopt needs the QMP socket free
        void hv.detachAll();
        return next;
      },
      close: async () => {
        for (const d of drivers) await d.detachAll();
        for (const pid of qemuPidsUnderRoot()) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      },
    };
  });
} else {
  test('Hypervisor contract: QemuHypervisor', { skip: 'qemu-system-x86_64 or qemu-img is not installed' }, () => {});
}
