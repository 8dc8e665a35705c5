// The VM state machine of a GPU node. Every action runs as an operation of the ops layer under the task's lock:
// the task shows the action's transitional status at once (`starting`, `being shutdown`, ...), then the final one
// (`running`, `closed`) or the action's error status (`start error`, ...) with the error's public text.
//
//   creating -> running | create error          (create.ts; resumed after a node restart)
//   closed/…error -> starting -> running         running -> being shutdown (ACPI) | being poweroff -> closed
//   any settled -> restarting -> running         running -> resetting -> running
//   any -> deleting -> (gone) | delete error     (queued behind a create in flight)
//
// It knows nothing of HTTP or wallets beyond the owner's account string.
import { rmSync } from 'node:fs';
import type { CreateParams, ModifyParams, TaskOwner } from '../domain/commands.js';
import { STORED_TASK_ID_RE } from '../domain/ids.js';
import type { Disk, ErrorStatus, Task, TaskStatus, TransientStatus } from '../domain/task.js';
import type { NetworkDriver } from '../net/driver.js';
import { requireIdle, taskLock, type OpContext, type Operations } from '../ops/index.js';
import { NodeErrors, publicErrorText } from '../errors/index.js';
import type { StorageService } from '../storage/service.js';
import type { TaskStore } from '../store/tasks.js';
import type { Logger } from '../util/logger.js';
import type { VmBooter } from './boot.js';
import { consoleLines, consoleText } from './console-log.js';
import { createTask, createWork } from './create.js';
import { modifyTask } from './modify.js';
import type { NetworkSync } from './network-sync.js';
import type { TaskPaths } from './paths.js';
import type { Placement } from './placement.js';
import type { Hypervisor } from './types.js';

export interface LifecycleConfig {
  /** ACPI shutdown wait before the hard stop */
  shutdownTimeoutMs: number;
  /** logical cores of the host, the per-VM cpu limit */
  hostCores: number;
  /** memory a new VM may take, in GiB (per VM) */
  hostMemGiB: () => number;
}

export interface LifecycleDeps {
  store: TaskStore;
  hv: Hypervisor;
  net: NetworkDriver;
  ops: Operations;
  paths: TaskPaths;
  placement: Placement;
  booter: VmBooter;
  netSync: NetworkSync;
  storage: StorageService;
  config: LifecycleConfig;
  log: Logger;
}

type OpKind = 'create' | 'start' | 'shutdown' | 'poweroff' | 'restart' | 'reset' | 'delete' | 'recover';

/** one lifecycle action: the statuses it shows and its work */
export interface OpPlan {
  kind: OpKind;
  transient: TransientStatus;
  errorStatus: ErrorStatus;
  wantRunning: boolean;
  /** the task's final status (or 'deleted'), or the status and a note for the operation (how a shutdown ended) */
  work: (ctx: OpContext) => Promise<TaskStatus | 'deleted' | { status: TaskStatus; stage: string }>;
}

/** each action's transitional status, error status and what the renter asked for: the state machine as a table */
const ACTIONS: Record<OpKind, Pick<OpPlan, 'transient' | 'errorStatus' | 'wantRunning'>> = {
  create: { transient: 'creating', errorStatus: 'create error', wantRunning: true },
  start: { transient: 'starting', errorStatus: 'start error', wantRunning: true },
  recover: { transient: 'starting', errorStatus: 'start error', wantRunning: true },
  shutdown: { transient: 'being shutdown', errorStatus: 'shutdown error', wantRunning: false },
  poweroff: { transient: 'being poweroff', errorStatus: 'poweroff error', wantRunning: false },
  restart: { transient: 'restarting', errorStatus: 'restart error', wantRunning: true },
  reset: { transient: 'resetting', errorStatus: 'reset error', wantRunning: true },
  delete: { transient: 'deleting', errorStatus: 'delete error', wantRunning: false },
};

function plan(kind: OpKind, work: OpPlan['work']): OpPlan {
  return { kind, ...ACTIONS[kind], work };
}

export class TaskLifecycle {
  constructor(private readonly d: LifecycleDeps) {}

  // --- queries -------------------------------------------------------------------------------------------

  /** the caller's task or `task_id not exist` (also for someone else's task: no probing) */
  owned(taskId: string, account: string): Task {
    if (!STORED_TASK_ID_RE.test(taskId)) throw NodeErrors.taskNotExist();
    const task = this.d.store.get(taskId);
    if (!task || task.wallet !== account) throw NodeErrors.taskNotExist();
    return task;
  }

  list(account: string): Task[] {
    return this.d.store.byWallet(account);
  }

  all(): Task[] {
    return this.d.store.all();
  }

  disks(taskId: string): Disk[] {
    return this.d.store.disks(taskId);
  }

  /** an operation runs on the task */
  isBusy(taskId: string): boolean {
    return this.d.ops.isLocked(taskId);
  }

  gpusInUse(): number {
    return this.d.placement.gpusInUse();
  }

  /** wait for every operation in flight (tests) */
  idle(): Promise<void> {
    return this.d.ops.idle();
  }

  /** a task disk's path as a renter sees it */
  shownDiskPath(taskId: string, path: string): string {
    return this.d.paths.shownDiskPath(taskId, path);
  }

  // --- create, modify --------------------------------------------------------------------------------------

  /** tasks/start: checks, the record, then the create operation (overlay, data disk, seed, boot) */
  create(owner: TaskOwner, p: CreateParams): Promise<{ task: Task; operationId: string }> {
    return createTask(this.d, this, owner, p);
  }

  /** tasks/modify: ports at once (the mode's forwarder), cpu/mem/gpu/vnc at the next boot */
  modify(task: Task, m: ModifyParams): Promise<string> {
    return modifyTask(this.d, task, m);
  }

  // --- power actions ---------------------------------------------------------------------------------------

  start(task: Task): string {
    if (task.status === 'running') {
      return this.run(
        task,
        plan('start', async () => {
          const state = await this.d.hv.state(task.task_id);
          if (state === 'running') throw NodeErrors.taskState('running');
          await this.d.hv.wakeup(task.task_id);
          return 'running';
        }),
      );
    }
    this.requireSettled(task);
    return this.run(
      task,
      plan('start', async () => {
        const state = await this.d.hv.state(task.task_id);
        if (state === 'suspended' || state === 'paused') await this.d.hv.wakeup(task.task_id);
        else if (state === 'shutoff') await this.d.booter.boot(this.d.booter.applyPending(task.task_id));
        return 'running';
      }),
    );
  }

  shutdown(task: Task): string {
    this.requireRunning(task);
    return this.run(
      task,
      plan('shutdown', async () => {
        const how = await this.d.hv.shutdown(task.task_id, this.d.config.shutdownTimeoutMs);
        await this.d.net.release(task.task_id);
        this.d.log.info({ task_id: task.task_id, how }, 'vm shut down');
        return { status: 'closed', stage: how === 'acpi' ? 'closed by ACPI shutdown' : 'closed by hard stop after the ACPI timeout' };
      }),
    );
  }

  poweroff(task: Task): string {
    this.requireRunning(task);
    return this.run(task, this.poweroffPlan(task.task_id));
  }

  restart(task: Task, force: boolean): string {
    this.requireSettled(task);
    return this.run(
      task,
      plan('restart', async () => {
        const state = await this.d.hv.state(task.task_id);
        if (state !== 'shutoff') {
          if (force) await this.d.hv.destroy(task.task_id);
          else await this.d.hv.shutdown(task.task_id, this.d.config.shutdownTimeoutMs);
        }
        await this.d.booter.boot(this.d.booter.applyPending(task.task_id));
        return 'running';
      }),
    );
  }

  reset(task: Task): string {
    this.requireRunning(task);
    return this.run(
      task,
      plan('reset', async () => {
        await this.d.hv.reset(task.task_id);
        return 'running';
      }),
    );
  }

  /** tasks/delete: refused while another action runs, except a create (the delete waits for it) */
  remove(task: Task): string {
    if (this.isBusy(task.task_id) && task.status !== 'creating') throw NodeErrors.taskBusy(task.status);
    return this.run(task, this.deletePlan(task.task_id), { queue: true });
  }

  async passwd(task: Task, username: string, password: string): Promise<void> {
    if (task.status !== 'running' || !this.d.hv.running().includes(task.task_id)) throw NodeErrors.passwdNotRunning();
    await this.d.hv.agent(
      task.task_id,
      'guest-set-user-password',
      {
        username,
        password: Buffer.from(password, 'utf8').toString('base64'),
        crypted: false,
      },
      10_000,
    );
    this.d.store.update(task.task_id, { login_user: username, login_password: password });
  }

  /** tasks/logs: serial console lines */
  logs(task: Task, flag: 'head' | 'tail', lines: number, maxBytes = 1024): string[] {
    return consoleLines(this.d.paths.serialLog(task.task_id), flag, lines, maxBytes);
  }

  /** the whole serial log (tests, diagnostics) */
  serialText(taskId: string): string {
    return consoleText(this.d.paths.serialLog(taskId));
  }

  // --- rental expiry (rental/sweep.ts) -----------------------------------------------------------------

  /** stop every VM of account because its rental ended; remembers when, for the grace period */
  closeForExpiry(account: string, nowMs: number): void {
    for (const task of this.d.store.byWallet(account)) {
      if (task.closed_at === null) this.d.store.update(task.task_id, { closed_at: nowMs });
      if (this.isBusy(task.task_id)) continue;
      if (task.status !== 'closed' || this.d.hv.running().includes(task.task_id)) {
        this.run(task, this.poweroffPlan(task.task_id));
      }
    }
  }

  /** delete the VMs of account that were closed for expiry more than graceMs ago */
  deleteExpired(account: string, nowMs: number, graceMs: number): void {
    for (const task of this.d.store.byWallet(account)) {
      if (task.closed_at !== null && nowMs - task.closed_at >= graceMs && !this.isBusy(task.task_id)) {
        this.run(task, this.deletePlan(task.task_id), { queue: true });
      }
    }
  }

  /** the rental came back (relet): forget the expiry mark */
  clearExpiry(account: string): void {
    for (const task of this.d.store.byWallet(account)) {
      if (task.closed_at !== null) this.d.store.update(task.task_id, { closed_at: null });
    }
  }

  // --- for the reconciler --------------------------------------------------------------------------------------

  /** a create or delete a dead daemon left half done: continue it (under its operation when known) */
  resumeCreate(task: Task, operationId?: string): void {
    this.run(task, this.createPlan(task.task_id), { creating: true, resumeId: operationId });
  }

  resumeDelete(task: Task, operationId?: string): void {
    this.run(task, this.deletePlan(task.task_id), { queue: true, resumeId: operationId });
  }

  /** the VM ran when the node went down and died with it: bring it back */
  recover(task: Task): void {
    this.run(
      task,
      plan('recover', async () => {
        await this.d.booter.boot(this.d.booter.applyPending(task.task_id));
        return 'running';
      }),
    );
  }

  // --- internals ---------------------------------------------------------------------------------------------

  createPlan(taskId: string): OpPlan {
    return plan('create', (ctx) => createWork(this.d, taskId, ctx));
  }

  private poweroffPlan(taskId: string): OpPlan {
    return plan('poweroff', async () => {
      await this.d.hv.destroy(taskId);
      await this.d.net.release(taskId);
      return 'closed';
    });
  }

  private deletePlan(taskId: string): OpPlan {
    return plan('delete', async () => {
      await this.d.hv.destroy(taskId);
      await this.d.net.release(taskId);
      const task = this.d.store.get(taskId);
      if (task) await this.d.net.forget(task);
      for (const disk of this.d.store.disks(taskId)) {
        if (disk.owned) {
          rmSync(disk.path, { force: true });
          rmSync(`${disk.path}.part`, { force: true });
        }
      }
      rmSync(this.d.paths.taskDir(taskId), { recursive: true, force: true });
      this.d.store.remove(taskId);
      if (task) this.d.ops.events.emit({ type: 'task.deleted', task_id: taskId, wallet: task.wallet });
      return 'deleted';
    });
  }

  private requireRunning(task: Task): void {
    this.requireSettled(task);
    if (task.status !== 'running') throw NodeErrors.taskState(task.status === 'closed' ? 'shut_off' : task.status);
  }

  private requireSettled(task: Task): void {
    requireIdle(this.d.ops, task);
  }

  /**
   * Runs plan as an operation under the task's lock: the task shows plan.transient at once (a create already
   * says `creating`), then the final status or plan.errorStatus. `queue`: wait behind the holder (delete).
   */
  run(task: Task, plan: OpPlan, opts: { creating?: boolean; queue?: boolean; resumeId?: string } = {}): string {
    const id = task.task_id;
    return this.d.ops.start({
      kind: plan.kind,
      taskId: id,
      wallet: task.wallet,
      resumeId: opts.resumeId,
      lock: taskLock(task, opts.queue),
      onStart: () => {
        if (!opts.creating) this.d.store.update(id, { status: plan.transient, want_running: plan.wantRunning });
      },
      work: async (ctx) => {
        const result = await plan.work(ctx);
        // rules and taps follow the VMs that run now, before the task says so
        await this.d.netSync.sync();
        const final = typeof result === 'string' ? result : result.status;
        if (final !== 'deleted') this.d.store.update(id, { status: final, last_error: '' });
        return { stage: typeof result === 'string' ? final : result.stage };
      },
      onError: async (err) => {
        await this.d.netSync.sync();
        if (this.d.store.get(id)) this.d.store.update(id, { status: plan.errorStatus, last_error: publicErrorText(err) });
      },
    }).id;
  }
}
