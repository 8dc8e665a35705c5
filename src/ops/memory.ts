// An OperationStore in memory: for processes without a node database (the client gateway's own transfers) and tests.
import type { Operation, OperationStore } from './types.js';

export class MemoryOperationStore implements OperationStore {
  private readonly rows = new Map<string, Operation>();

  createOperation(op: Pick<Operation, 'id' | 'task_id' | 'wallet' | 'kind' | 'status'>): Operation {
    const now = Date.now();
    const row: Operation = { ...op, progress: 0, stage: '', error: '', bytes_done: 0, bytes_total: 0, created_at: now, updated_at: now };
    this.rows.set(row.id, row);
    return { ...row };
  }

  updateOperation(id: string, changes: Partial<Pick<Operation, 'status' | 'progress' | 'stage' | 'error' | 'bytes_done' | 'bytes_total'>>): void {
    const r = this.rows.get(id);
    if (r) Object.assign(r, changes, { updated_at: Date.now() });
  }

  operation(id: string): Operation | undefined {
    const r = this.rows.get(id);
    return r ? { ...r } : undefined;
  }

  operationsOfTask(taskId: string): Operation[] {
    return this.newest((r) => r.task_id === taskId, 50);
  }

  operationsOfWallet(wallet: string, taskId?: string, limit = 50): Operation[] {
    return this.newest((r) => r.wallet === wallet && (taskId === undefined || r.task_id === taskId), limit);
  }

  private newest(keep: (r: Operation) => boolean, limit: number): Operation[] {
    return [...this.rows.values()]
      .filter(keep)
      .reverse()
      .slice(0, limit)
      .map((r) => ({ ...r }));
  }

  unfinishedOperations(): Operation[] {
    return [...this.rows.values()].filter((r) => r.status === 'pending' || r.status === 'running').map((r) => ({ ...r }));
  }
}
