// The operations layer's vocabulary: an operation is one long action on the node (a VM power action, a disk or
// snapshot job, an image transfer) with progress, a final outcome, and a persisted record a renter can poll
// (POST /api/v1/operations/<id>). Every change of an operation or of a task's status is an event on the bus.
import type { TaskStatus } from '../domain/task.js';

export type OperationStatus = 'pending' | 'running' | 'done' | 'failed' | 'stopped';

export interface Operation {
  id: string;
  /** '' for operations that belong to no task (image transfers) */
  task_id: string;
  wallet: string;
  kind: string;
  status: OperationStatus;
  /** percent 0..100 */
  progress: number;
  stage: string;
  error: string;
  /** bytes moved so far and in all, where the work moves bytes (transfers, snapshot uploads); else 0 */
  bytes_done: number;
  bytes_total: number;
  created_at: number;
  updated_at: number;
}

/** a progress step: any subset; percent is clamped to 0..99 while running (100 means done) */
export interface Progress {
  percent?: number;
  stage?: string;
  bytesDone?: number;
  bytesTotal?: number;
}

/** what the operations layer persists (store/tasks.ts TaskStore implements it; ops/memory.ts in memory) */
export interface OperationStore {
  createOperation(op: Pick<Operation, 'id' | 'task_id' | 'wallet' | 'kind' | 'status'>): Operation;
  updateOperation(id: string, changes: Partial<Pick<Operation, 'status' | 'progress' | 'stage' | 'error' | 'bytes_done' | 'bytes_total'>>): void;
  operation(id: string): Operation | undefined;
  /** operations left pending/running by a daemon that died */
  unfinishedOperations(): Operation[];
  /** newest first, at most 50 */
  operationsOfTask(taskId: string): Operation[];
  /** an account's operations, newest first; one task's when taskId is given */
  operationsOfWallet(wallet: string, taskId?: string, limit?: number): Operation[];
}

/** every event the node emits; the next issues stream these out (events API, consoles, metrics) */
export type NodeEvent =
  | { type: 'operation.started'; operation: Operation }
  | { type: 'operation.progress'; operation: Operation }
  | { type: 'operation.finished'; operation: Operation }
  | { type: 'task.status'; task_id: string; wallet: string; status: TaskStatus; previous: TaskStatus | null }
  | { type: 'task.deleted'; task_id: string; wallet: string };
