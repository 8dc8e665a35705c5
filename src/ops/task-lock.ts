// The lock every task action takes: one key per task (its id), shared by the lifecycle (vm/lifecycle.ts) and the
// storage services (disks, snapshots), so a power action and a disk or snapshot job exclude each other.
import { isTransient, type Task } from '../domain/task.js';
import { NodeErrors } from '../errors/index.js';
import type { LockSpec, Operations } from './operations.js';

/** the task's lock; `wait` queues behind the holder (a delete behind a create) instead of refusing */
export function taskLock(task: Task, wait = false): LockSpec {
  return { key: task.task_id, wait, busy: () => NodeErrors.taskBusy(task.status) };
}

/** refuse while an operation holds the task or it is in a transitional status (creating, starting, ...) */
export function requireIdle(ops: Operations, task: Task): void {
  if (ops.isLocked(task.task_id) || isTransient(task.status)) throw NodeErrors.taskBusy(task.status);
}
