// Bringing a task's VM up: pending changes applied, the NoCloud seed written, GPUs re-checked, the network prepared,
// and the hypervisor given a VmSpec built from the task. Used by the lifecycle (create, start, restart) and the
// reconciler (recover after a host restart).
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import type { Task } from '../domain/task.js';
import type { NetworkDriver, VmNetwork } from '../net/driver.js';
import { NodeErrors } from '../errors/index.js';
import { writeNoCloudSeed } from '../storage/seed.js';
import type { TaskStore } from '../store/tasks.js';
import type { TaskPaths } from './paths.js';
import type { Placement } from './placement.js';
import type { Hypervisor, VmSpec } from './types.js';

export interface BootDeps {
  store: TaskStore;
  hv: Hypervisor;
  net: NetworkDriver;
  paths: TaskPaths;
  placement: Placement;
  /** address VNC listens on */
  vncListen: string;
}

export class VmBooter {
  constructor(private readonly d: BootDeps) {}

  /** the task now, or `task_id not exist` */
  mustGet(taskId: string): Task {
    const t = this.d.store.get(taskId);
    if (!t) throw NodeErrors.taskNotExist();
    return t;
  }

  /** tasks/modify changes that waited for this boot become the task's values */
  applyPending(taskId: string): Task {
    const task = this.mustGet(taskId);
    if (Object.keys(task.pending).length > 0) this.d.store.update(taskId, { ...task.pending, pending: {} });
    return this.mustGet(taskId);
  }

  /** the NoCloud seed (cloud-init: hostname, login user and password); none for pxe */
  async writeSeed(task: Task): Promise<void> {
    if (task.bios_mode === 'pxe') return;
    const iso = this.d.paths.seedIso(task.task_id);
    const tmp = `${iso}.part`;
    rmSync(tmp, { force: true });
    await writeNoCloudSeed(tmp, {
      instanceId: task.task_id,
      hostname: `dbc-${task.task_id.slice(0, 12).replace(/[^A-Za-z0-9-]/g, '-')}`,
      user: task.login_user === 'Administrator' ? 'administrator' : task.login_user,
      password: task.login_password,
      // the disk tasks/start made (disk/add disks are the renter's to format)
      dataDisk: this.d.store.disks(task.task_id).find((d) => d.kind === 'data')?.name,
    });
    renameSync(tmp, iso);
  }

  /** start the VM when it is shut off (a running or paused one is left as it is) */
  async boot(task: Task): Promise<void> {
    mkdirSync(this.d.paths.runDir(task.task_id), { recursive: true });
    if ((await this.d.hv.state(task.task_id)) !== 'shutoff') return;
    if (task.gpu_count > 0) {
      // GPUs may have been taken by another VM or vanished since the task was created
      const available = await this.d.placement.passthroughGpus();
      if (task.gpus.length < task.gpu_count || task.gpus.some((g) => !available.includes(g))) {
        const gpus = await this.d.placement.allocateGpus(task.gpu_count, task.task_id);
        this.d.store.update(task.task_id, { gpus });
        task = this.mustGet(task.task_id);
      }
    }
    const vmNet = await this.d.net.prepare(task);
    try {
      await this.d.hv.start(this.specOf(task, vmNet));
    } catch (err) {
      await this.d.net.release(task.task_id).catch(() => undefined);
      throw err;
    }
  }

  private specOf(task: Task, vmNet: VmNetwork): VmSpec {
    const seed = this.d.paths.seedIso(task.task_id);
    return {
      taskId: task.task_id,
      runDir: this.d.paths.runDir(task.task_id),
      name: task.task_id,
      cpuCores: task.cpu_cores,
      memMiB: task.mem_size_gb * 1024,
      disks: this.d.store.disks(task.task_id).map((d) => ({ name: d.name, path: d.path })),
      seedIso: existsSync(seed) ? seed : undefined,
      biosMode: task.bios_mode,
      os: task.os,
      nicModel: task.nic_model,
      forwards: this.d.net.forwarder.bootForwards(task),
      tap: vmNet.tap,
      extraNics: vmNet.extraNics,
      vnc: { listen: this.d.vncListen, port: task.vnc_port, password: task.vnc_password },
      gpus: task.gpus,
      serialLog: this.d.paths.serialLog(task.task_id),
    };
  }
}
