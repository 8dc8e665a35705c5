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
import { serialSize, waitGuestReady } from './readiness.js';
import { localTimestamp } from '../util/format.js';
import { modifyTask } from './modify.js';
import type { NetworkSync } from './network-sync.js';
import type { TaskPaths } from './paths.js';
import { runFile } from './qemu-args.js';
import type { Placement } from './placement.js';
import type { Hypervisor } from './types.js';

export interface LifecycleConfig {
  /** ACPI shutdown wait before the hard stop */
  shutdownTimeoutMs: number;
  /** logical cores of the host, the per-VM cpu limit */
  hostCores: number;
  /** memory a new VM may take, in GiB (per VM) */
  hostMemGiB: () => number;
  /** how long a booted VM may take to answer (vm/readiness.ts) before it is `running` with guest_ready false */
  guestReadyTimeoutMs?: number;
  /** how often the readiness probes run */
  readyProbeIntervalMs?: number;
  /** once the guest agent answers, how long SSH/RDP or a console marker is still waited for (vm/readiness.ts) */
  agentGraceMs?: number;
  /** tasks/passwd during boot waits this long for the guest agent */
  passwdAgentWaitMs?: number;
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

/** the work's outcome when it wrote the task's status itself (the readiness wait) or another action took over */
type Kept = { status: 'kept'; stage: string };

/** one lifecycle action: the statuses it shows and its work */
export interface OpPlan {
  kind: OpKind;
  transient: TransientStatus;
  errorStatus: ErrorStatus;
  wantRunning: boolean;
  /** the task's final status (or 'deleted'), or the status and a note for the operation (how a shutdown ended) */
  work: (ctx: OpContext) => Promise<TaskStatus | 'deleted' | { status: TaskStatus; stage: string } | Kept>;
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
  /**
   * tasks whose boot operation waits for the guest (lock released): power actions take the fast path. A count per
   * task: a restart's wait can begin before the wait it replaced has ended.
   */
  private readonly waiting = new Map<string, number>();

  constructor(private readonly d: LifecycleDeps) {}

  /** the VM was started and its guest is not up yet (the reconciler leaves such a task to its operation) */
  isBooting(taskId: string): boolean {
    return (this.waiting.get(taskId) ?? 0) > 0;
  }

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
      plan('start', async (ctx) => {
        const state = await this.d.hv.state(task.task_id);
        if (state === 'suspended' || state === 'paused') {
          await this.d.hv.wakeup(task.task_id);
          return 'running';
        }
        if (state !== 'shutoff') return 'running';
        const from = this.beforeBoot(task.task_id);
        await this.d.booter.boot(this.d.booter.applyPending(task.task_id));
        return this.guestUp(ctx, task.task_id, 'starting', from);
      }),
    );
  }

  shutdown(task: Task): string {
    // a guest that is not up yet cannot handle the ACPI button and has nothing to lose: off at once
    if (this.isBooting(task.task_id)) return this.run(task, this.poweroffPlan(task.task_id, 'shutdown'));
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
    if (this.isBooting(task.task_id)) return this.run(task, this.poweroffPlan(task.task_id));
    this.requireRunning(task);
    return this.run(task, this.poweroffPlan(task.task_id));
  }

  restart(task: Task, force: boolean): string {
    // while the guest boots there is nothing to shut down cleanly: the restart is a hard one
    const hard = force || this.isBooting(task.task_id);
    if (!this.isBooting(task.task_id)) this.requireSettled(task);
    return this.run(
      task,
      plan('restart', async (ctx) => {
        const state = await this.d.hv.state(task.task_id);
        if (state !== 'shutoff') {
          if (hard) await this.d.hv.destroy(task.task_id);
          else await this.d.hv.shutdown(task.task_id, this.d.config.shutdownTimeoutMs);
        }
        const from = this.beforeBoot(task.task_id);
        await this.d.booter.boot(this.d.booter.applyPending(task.task_id));
        return this.guestUp(ctx, task.task_id, 'restarting', from);
      }),
    );
  }

  reset(task: Task): string {
    if (!this.isBooting(task.task_id)) this.requireRunning(task);
    return this.run(
      task,
      plan('reset', async (ctx) => {
        const from = this.beforeBoot(task.task_id);
        await this.d.hv.reset(task.task_id);
        return this.guestUp(ctx, task.task_id, 'resetting', from);
      }),
    );
  }

  /** tasks/delete: refused while another action runs, except a create (the delete waits for it) */
  remove(task: Task): string {
    if (this.isBusy(task.task_id) && task.status !== 'creating') throw NodeErrors.taskBusy(task.status);
    return this.run(task, this.deletePlan(task.task_id), { queue: true });
  }

  async passwd(task: Task, username: string, password: string): Promise<void> {
    if (this.isBooting(task.task_id)) await this.agentUp(task.task_id);
    else if (task.status !== 'running' || !this.d.hv.running().includes(task.task_id)) throw NodeErrors.passwdNotRunning();
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

  /** a running VM's serial console: QEMU's chardev socket and the log (vm/console-hub.ts); undefined when not running */
  consoleOf(taskId: string): { socket: string; log: string } | undefined {
    if (!this.d.hv.running().includes(taskId)) return undefined;
    return { socket: runFile(this.d.paths.runDir(taskId), 'serial'), log: this.d.paths.serialLog(taskId) };
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
      plan('recover', async (ctx) => {
        const from = this.beforeBoot(task.task_id);
        await this.d.booter.boot(this.d.booter.applyPending(task.task_id));
        return this.guestUp(ctx, task.task_id, 'starting', from);
      }),
    );
  }

  // --- internals ---------------------------------------------------------------------------------------------

  createPlan(taskId: string): OpPlan {
    return plan('create', async (ctx) => {
      const from = this.beforeBoot(taskId);
      await createWork(this.d, taskId, ctx);
      return this.guestUp(ctx, taskId, 'creating', from);
    });
  }

  /** a boot starts: the guest is not up (yet); where its serial log is now (only what follows counts) */
  private beforeBoot(taskId: string): number {
    this.d.store.update(taskId, { guest_ready: false, guest_ready_time: '' });
    return serialSize(this.d.paths.serialLog(taskId));
  }

  /**
   * After the VM started: let go of the task's lock (power actions may come now, and take the fast path), wait
   * for the guest (vm/readiness.ts), then `running`, unless another action took the task over meanwhile. Past the
   * cap the task is `running` with guest_ready false and a warning. PXE guests have nothing to wait for.
   */
  private async guestUp(ctx: OpContext, taskId: string, transient: TaskStatus, serialFrom: number): Promise<TaskStatus | Kept> {
    const task = this.d.booter.mustGet(taskId);
    if (task.bios_mode === 'pxe') return 'running';
    ctx.progress({ percent: 90, stage: 'waiting for the guest' });
    const forward = this.d.net.forwarder.probeTarget?.(task);
    this.waiting.set(taskId, (this.waiting.get(taskId) ?? 0) + 1);
    ctx.unlock();
    let result: Awaited<ReturnType<typeof waitGuestReady>>;
    const stillOurs = () => this.d.store.get(taskId)?.status === transient && this.d.hv.running().includes(taskId);
    try {
      result = await waitGuestReady(
        { hv: this.d.hv, taskId, serialLog: this.d.paths.serialLog(taskId), serialFrom, port: forward },
        {
          capMs: this.d.config.guestReadyTimeoutMs ?? 300_000,
          intervalMs: this.d.config.readyProbeIntervalMs,
          agentGraceMs: this.d.config.agentGraceMs,
          stop: () => !stillOurs(),
          signal: ctx.signal,
        },
      );
    } catch {
      result = 'timeout';
    } finally {
      const left = (this.waiting.get(taskId) ?? 1) - 1;
      if (left > 0) this.waiting.set(taskId, left);
      else this.waiting.delete(taskId);
    }
    // read and write in one turn of the event loop: nothing can take the task over in between
    if (result === 'stopped' || !stillOurs()) return { status: 'kept', stage: 'another action took the task over while the guest booted' };
    if (result === 'timeout') {
      this.d.store.update(taskId, { status: 'running', last_error: '' });
      this.d.log.warn({ task_id: taskId, cap_ms: this.d.config.guestReadyTimeoutMs ?? 300_000 }, 'guest did not answer in time: running without guest_ready');
      return { status: 'kept', stage: 'running; the guest has not answered (no agent, SSH banner or console marker)' };
    }
    this.d.store.update(taskId, { status: 'running', last_error: '', guest_ready: true, guest_ready_time: localTimestamp(Date.now()) });
    this.d.log.info({ task_id: taskId, signal: result }, 'guest up');
    return { status: 'kept', stage: 'running' };
  }

  /**
   * tasks/passwd during boot: wait (bounded) until the guest is up (a stock image's agent answers before cloud-init
   * has made the user), then until the agent answers
   */
  private async agentUp(taskId: string): Promise<void> {
    const end = Date.now() + (this.d.config.passwdAgentWaitMs ?? 120_000);
    while (this.isBooting(taskId) && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
    for (;;) {
      try {
        await this.d.hv.agent(taskId, 'guest-ping', {}, 1000);
        return;
      } catch (err) {
        if (Date.now() >= end || !this.d.hv.running().includes(taskId)) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private poweroffPlan(taskId: string, kind: 'poweroff' | 'shutdown' = 'poweroff'): OpPlan {
    return plan(kind, async () => {
      await this.d.hv.destroy(taskId);
      await this.d.net.release(taskId);
      return kind === 'shutdown' ? { status: 'closed', stage: 'closed at once: the guest was not up yet' } : 'closed';
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
        if (final !== 'deleted' && final !== 'kept') this.d.store.update(id, { status: final, last_error: '' });
        return { stage: typeof result === 'string' ? final : result.stage };
      },
      onError: async (err) => {
        await this.d.netSync.sync();
        if (this.d.store.get(id)) this.d.store.update(id, { status: plan.errorStatus, last_error: publicErrorText(err) });
      },
    }).id;
  }
}
