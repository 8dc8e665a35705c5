// What the storage services (disks, snapshots, node images) need from the task engine. The engine implements it
// (vm/engine.ts `storageHost()`); tests can fake it.
import type { OperationRow, TaskRow, TaskStore } from '../store/tasks.js';
import type { Hypervisor } from '../vm/types.js';

export type { Logger as StorageLogger } from '../util/logger.js';
import type { Logger as StorageLogger } from '../util/logger.js';

/** the outcome of a side operation's work: `finished: false` leaves the operation running (someone completes it) */
export interface SideOpResult {
  stage: string;
  finished?: boolean;
}

export interface StorageHost {
  store: TaskStore;
  hv: Hypervisor;
  /** the node image directory (the original's /data) */
  imageDir: string;
  log: StorageLogger;
  /** DIR/vms/<task_id> */
  taskDir(taskId: string): string;
  /** a lifecycle operation (or a locked storage operation) runs on the task */
  isBusy(taskId: string): boolean;
  /** the task's status is a transitional one (creating, starting, ...) */
  isTransient(status: string): boolean;
  /**
   * An operation of a task that does not change its status. `lock`: the task takes no other operation (power,
   * delete, storage) while work runs. `done` settles when work does (rejects with its error).
   */
  sideOp(task: TaskRow, kind: string, work: (op: OperationRow) => Promise<SideOpResult>, lock: boolean): { id: string; done: Promise<void> };
}
