// What the storage services (disks, snapshots, node images, transfers) are built from: the store, the operations
// layer, the hypervisor's disk seam and where files live. node/services.ts builds one; tests build their own.
import { isTransient, type Task } from '../domain/task.js';
import type { LockSpec, Operations } from '../ops/index.js';
import { NodeErrors } from '../errors/index.js';
import type { TaskStore } from '../store/tasks.js';
import type { Logger } from '../util/logger.js';
import type { Hypervisor } from '../vm/types.js';

export interface StorageDeps {
  store: TaskStore;
  ops: Operations;
  hv: Pick<Hypervisor, 'state' | 'attachDisk' | 'growDisk'>;
  /** the node image directory (the original's /data) */
  imageDir: string;
  /** DIR/vms/<task_id> */
  taskDir(taskId: string): string;
  log: Logger;
}

/**
 * The task's lock: the same key as the lifecycle's (vm/lifecycle.ts), so locked storage work and power actions
 * exclude each other.
 */
export function taskLock(task: Task): LockSpec {
  return { key: task.task_id, busy: () => NodeErrors.taskBusy(task.status) };
}

/** refuse while an operation holds the task or it is in a transitional status (creating, starting, ...) */
export function requireIdle(ops: Operations, task: Task): void {
  if (ops.isLocked(task.task_id) || isTransient(task.status)) throw NodeErrors.taskBusy(task.status);
}
