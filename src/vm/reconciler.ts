// Makes the database and the QEMU processes agree: at start (a daemon restart, a host reboot) and on a timer.
//   - a half-created or half-deleted task is continued, under the operation the renter was given;
//   - a VM that runs is `running`; one that ran when the node went down (want_running) is brought back;
//   - a task that says running but has no VM is `closed`; folders and QEMU processes of deleted tasks go;
//   - idle LANs are removed; the network follows the running VMs.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { STORED_TASK_ID_RE } from '../domain/ids.js';
import { isTransient } from '../domain/task.js';
import type { Operations } from '../ops/index.js';
import type { TaskStore } from '../store/tasks.js';
import type { Logger } from '../util/logger.js';
import type { TaskLifecycle } from './lifecycle.js';
import type { NetworkSync } from './network-sync.js';
import type { TaskPaths } from './paths.js';
import type { Hypervisor } from './types.js';

export interface ReconcilerDeps {
  store: TaskStore;
  hv: Hypervisor;
  ops: Operations;
  paths: TaskPaths;
  lifecycle: TaskLifecycle;
  netSync: NetworkSync;
  /** the network's own housekeeping (idle LANs), once per pass */
  housekeeping: () => Promise<void>;
  release: (taskId: string) => Promise<void>;
  log: Logger;
  /** period of the timer (default 15 s) */
  intervalMs?: number;
}

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** create/delete operations a dead daemon left, by task: continued under the same id */
  private readonly resumeIds = new Map<string, string>();

  constructor(private readonly d: ReconcilerDeps) {
    d.ops.resumable(['create', 'delete'], (op) => {
      const task = d.store.get(op.task_id);
      const want = op.kind === 'create' ? 'creating' : 'deleting';
      if (task?.status !== want) return false;
      this.resumeIds.set(task.task_id, op.id);
      return true;
    });
  }

  /** follow VM exits, reconcile once (at start), then on the timer */
  async start(): Promise<void> {
    this.d.hv.onExit((exit) => this.onVmExit(exit.taskId, exit.reason));
    await this.reconcile(true);
    this.timer = setInterval(() => {
      this.reconcile(false).catch((err: unknown) => this.d.log.error({ err }, 'reconcile failed'));
    }, this.d.intervalMs ?? 15_000);
    this.timer.unref();
  }

  stop(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
  }

  private onVmExit(taskId: string, reason: string): void {
    if (this.closed || this.d.ops.isLocked(taskId)) return; // the operation in flight owns the outcome
    if (!this.d.store.get(taskId)) return;
    this.d.log.info({ task_id: taskId, reason }, 'vm exited');
    this.d.store.update(taskId, { status: 'closed', want_running: false });
    void this.d
      .release(taskId)
      .catch((err) => this.d.log.warn({ task_id: taskId, err: (err as Error).message }, 'network release failed'))
      .then(() => this.d.netSync.sync());
  }

  /** make the database and the QEMU processes agree */
  async reconcile(atStart: boolean): Promise<void> {
    const tasks = this.d.store.all();
    const known = new Set(tasks.map((t) => t.task_id));
    for (const task of tasks) {
      const id = task.task_id;
      // an operation in flight owns the task, also while it waits for the guest outside the lock
      if (this.d.ops.isLocked(id) || this.d.lifecycle.isBooting(id)) continue;
      let alive = this.d.hv.running().includes(id);
      if (!alive && atStart) alive = await this.d.hv.adopt(id, this.d.paths.runDir(id)).catch(() => false);
      const resumeId = this.resumeIds.get(id);
      this.resumeIds.delete(id);
      if (task.status === 'creating') {
        this.d.lifecycle.resumeCreate(task, resumeId);
      } else if (task.status === 'deleting') {
        this.d.lifecycle.resumeDelete(task, resumeId);
      } else if (alive) {
        if (task.status !== 'running') this.d.store.update(id, { status: 'running', want_running: true });
      } else if (atStart && task.want_running && (task.status === 'running' || isTransient(task.status))) {
        // it was running when the node went down and died with the host or was killed: bring it back
        this.d.lifecycle.recover(task);
      } else if (task.status === 'running' || isTransient(task.status)) {
        this.d.store.update(id, { status: 'closed', want_running: false });
      }
    }
    if (atStart) await this.removeLeftovers(known);
    if (!this.closed) await this.d.housekeeping();
    await this.d.netSync.sync();
  }

  /** QEMU processes or folders of tasks the database no longer has (killed mid-delete) */
  private async removeLeftovers(known: ReadonlySet<string>): Promise<void> {
    let dirs: string[] = [];
    try {
      dirs = readdirSync(this.d.paths.vmDir);
    } catch {
      dirs = [];
    }
    for (const dir of dirs) {
      if (known.has(dir) || !STORED_TASK_ID_RE.test(dir)) continue;
      if (await this.d.hv.adopt(dir, this.d.paths.runDir(dir)).catch(() => false)) await this.d.hv.destroy(dir);
      rmSync(join(this.d.paths.vmDir, dir), { recursive: true, force: true });
      this.d.log.warn({ task_id: dir }, 'removed leftovers of a deleted task');
    }
  }
}
