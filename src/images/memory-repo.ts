// A TransferRepo in memory: the client gateway's own uploads (it has no node database) and tests.
import type { TransferRepo, TransferRow, TransferStatus } from '../store/tasks.js';

export class MemoryTransferRepo implements TransferRepo {
  private readonly rows = new Map<string, TransferRow>();
  private seq = 0;
  private readonly order = new Map<string, number>();

  insertTransfer(row: TransferRow): void {
    this.rows.set(row.id, { ...row });
    this.order.set(row.id, this.seq++);
  }

  updateTransfer(id: string, changes: Partial<Omit<TransferRow, 'id' | 'created_at' | 'updated_at'>>): void {
    const r = this.rows.get(id);
    if (r) Object.assign(r, changes, { updated_at: Date.now() });
  }

  transfer(id: string): TransferRow | undefined {
    const r = this.rows.get(id);
    return r ? { ...r } : undefined;
  }

  transfersOf(kind: TransferRow['kind'], file: string): TransferRow[] {
    return [...this.rows.values()]
      .filter((r) => r.kind === kind && r.file === file)
      .sort((a, b) => (this.order.get(b.id) ?? 0) - (this.order.get(a.id) ?? 0))
      .map((r) => ({ ...r }));
  }

  transfersWithStatus(status: TransferStatus): TransferRow[] {
    return [...this.rows.values()].filter((r) => r.status === status).map((r) => ({ ...r }));
  }

  deleteTransfer(id: string): void {
    this.rows.delete(id);
    this.order.delete(id);
  }
}
