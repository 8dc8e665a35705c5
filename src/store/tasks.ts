// Repository for the tasks, disks and operations tables.
import type { Db } from './db.js';

export interface TaskRow {
  task_id: string;
  wallet: string;
  rent_order: string;
  status: string;
  desc: string;
  create_time: string;
  created_at: number;
  image_name: string;
  os: 'linux' | 'windows';
  bios_mode: 'legacy' | 'uefi' | 'pxe';
  nic_model: 'virtio' | 'e1000' | 'rtl8139';
  ssh_port: number;
  rdp_port: number;
  vnc_port: number;
  vnc_password: string;
  login_user: string;
  login_password: string;
  cpu_cores: number;
  mem_size_gb: number;
  gpu_count: number;
  gpus: string; // JSON
  disk_size_gb: number;
  custom_ports: string; // JSON
  multicast: string;
  network_name: string;
  network_filters: string;
  public_ip: string;
  pending: string; // JSON
  want_running: number;
  last_error: string;
  closed_at: number | null;
  updated_at: number;
}

export interface DiskRow {
  task_id: string;
  name: string;
  path: string;
  size_gb: number;
  kind: 'os' | 'data';
  owned: number;
}

export interface OperationRow {
  id: string;
  task_id: string;
  wallet: string;
  kind: string;
  status: 'pending' | 'running' | 'done' | 'failed' | 'stopped';
  progress: number;
  stage: string;
  error: string;
  created_at: number;
  updated_at: number;
}

export interface SnapshotRow {
  task_id: string;
  name: string;
  wallet: string;
  description: string;
  file: string;
  image_name: string;
  base_image: string;
  image_server: string;
  status: 'creating' | 'uploading' | 'none' | 'failed';
  error: string;
  size_bytes: number;
  operation_id: string;
  create_time: string;
  created_at: number;
  updated_at: number;
}

export type TransferStatus = 'running' | 'stopped' | 'interrupted' | 'done' | 'failed';

export interface TransferRow {
  id: string;
  kind: 'download' | 'upload';
  file: string;
  local_path: string;
  server: string;
  wallet: string;
  owner: string;
  operation_id: string;
  status: TransferStatus;
  total_bytes: number;
  done_bytes: number;
  error: string;
  pid: number;
  created_at: number;
  updated_at: number;
}

/** what the image transfer manager persists (TaskStore on a node; an in-memory map on a client) */
export interface TransferRepo {
  insertTransfer(row: TransferRow): void;
  updateTransfer(id: string, changes: Partial<Omit<TransferRow, 'id' | 'created_at' | 'updated_at'>>): void;
  transfer(id: string): TransferRow | undefined;
  /** newest first */
  transfersOf(kind: TransferRow['kind'], file: string): TransferRow[];
  transfersWithStatus(status: TransferStatus): TransferRow[];
  deleteTransfer(id: string): void;
}

export class TaskStore implements TransferRepo {
  private readonly stmts;

  constructor(private readonly db: Db) {
    this.stmts = {
      get: db.prepare('SELECT * FROM tasks WHERE task_id = ?'),
      byWallet: db.prepare('SELECT * FROM tasks WHERE wallet = ? ORDER BY created_at'),
      all: db.prepare('SELECT * FROM tasks ORDER BY created_at'),
      disks: db.prepare('SELECT * FROM disks WHERE task_id = ? ORDER BY name'),
      allDisks: db.prepare('SELECT * FROM disks'),
      op: db.prepare('SELECT * FROM operations WHERE id = ?'),
      opsOfTask: db.prepare('SELECT * FROM operations WHERE task_id = ? ORDER BY created_at DESC LIMIT 50'),
    };
  }

  get(taskId: string): TaskRow | undefined {
    return this.stmts.get.get(taskId) as TaskRow | undefined;
  }

  byWallet(wallet: string): TaskRow[] {
    return this.stmts.byWallet.all(wallet) as TaskRow[];
  }

  all(): TaskRow[] {
    return this.stmts.all.all() as TaskRow[];
  }

  insert(row: TaskRow, disks: DiskRow[]): void {
    const cols = Object.keys(row);
    const insertTask = this.db.prepare(
      `INSERT INTO tasks (${cols.join(', ')}) VALUES (${cols.map((c) => '@' + c).join(', ')})`,
    );
    const insertDisk = this.db.prepare(
      'INSERT INTO disks (task_id, name, path, size_gb, kind, owned) VALUES (@task_id, @name, @path, @size_gb, @kind, @owned)',
    );
    this.db.transaction(() => {
      insertTask.run(row);
      for (const d of disks) insertDisk.run(d);
    })();
  }

  update(taskId: string, changes: Partial<Omit<TaskRow, 'task_id'>>): void {
    const cols = Object.keys(changes);
    if (cols.length === 0) return;
    const sql = `UPDATE tasks SET ${cols.map((c) => `${c} = @${c}`).join(', ')}, updated_at = @__now WHERE task_id = @__id`;
    this.db.prepare(sql).run({ ...changes, __now: Date.now(), __id: taskId });
  }

  remove(taskId: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM snapshots WHERE task_id = ?').run(taskId);
      this.db.prepare('DELETE FROM disks WHERE task_id = ?').run(taskId);
      this.db.prepare('DELETE FROM tasks WHERE task_id = ?').run(taskId);
    })();
  }

  disks(taskId: string): DiskRow[] {
    return this.stmts.disks.all(taskId) as DiskRow[];
  }

  allDisks(): DiskRow[] {
    return this.stmts.allDisks.all() as DiskRow[];
  }

  // --- operations --------------------------------------------------------------------------------------
  createOperation(op: Omit<OperationRow, 'created_at' | 'updated_at' | 'progress' | 'stage' | 'error'>): OperationRow {
    const now = Date.now();
    const row: OperationRow = { ...op, progress: 0, stage: '', error: '', created_at: now, updated_at: now };
    this.db
      .prepare(
        `INSERT INTO operations (id, task_id, wallet, kind, status, progress, stage, error, created_at, updated_at)
         VALUES (@id, @task_id, @wallet, @kind, @status, @progress, @stage, @error, @created_at, @updated_at)`,
      )
      .run(row);
    return row;
  }

  updateOperation(id: string, changes: Partial<Pick<OperationRow, 'status' | 'progress' | 'stage' | 'error'>>): void {
    const cols = Object.keys(changes);
    if (cols.length === 0) return;
    this.db
      .prepare(`UPDATE operations SET ${cols.map((c) => `${c} = @${c}`).join(', ')}, updated_at = @__now WHERE id = @__id`)
      .run({ ...changes, __now: Date.now(), __id: id });
  }

  operation(id: string): OperationRow | undefined {
    return this.stmts.op.get(id) as OperationRow | undefined;
  }

  operationsOfTask(taskId: string): OperationRow[] {
    return this.stmts.opsOfTask.all(taskId) as OperationRow[];
  }

  /** newest first; one task's when taskId is given */
  operationsOfWallet(wallet: string, taskId?: string, limit = 50): OperationRow[] {
    if (taskId !== undefined) {
      return this.db
        .prepare('SELECT * FROM operations WHERE wallet = ? AND task_id = ? ORDER BY created_at DESC LIMIT ?')
        .all(wallet, taskId, limit) as OperationRow[];
    }
    return this.db.prepare('SELECT * FROM operations WHERE wallet = ? ORDER BY created_at DESC LIMIT ?').all(wallet, limit) as OperationRow[];
  }

  // --- disks (disk/add, disk/resize, disk/delete) -------------------------------------------------------
  addDisk(d: DiskRow): void {
    this.db
      .prepare('INSERT INTO disks (task_id, name, path, size_gb, kind, owned) VALUES (@task_id, @name, @path, @size_gb, @kind, @owned)')
      .run(d);
  }

  updateDisk(taskId: string, name: string, changes: Partial<Pick<DiskRow, 'size_gb' | 'path'>>): void {
    const cols = Object.keys(changes);
    if (cols.length === 0) return;
    this.db
      .prepare(`UPDATE disks SET ${cols.map((c) => `${c} = @${c}`).join(', ')} WHERE task_id = @__id AND name = @__name`)
      .run({ ...changes, __id: taskId, __name: name });
  }

  removeDisk(taskId: string, name: string): void {
    this.db.prepare('DELETE FROM disks WHERE task_id = ? AND name = ?').run(taskId, name);
  }

  // --- snapshots ---------------------------------------------------------------------------------------------
  snapshots(taskId: string): SnapshotRow[] {
    return this.db.prepare('SELECT * FROM snapshots WHERE task_id = ? ORDER BY created_at').all(taskId) as SnapshotRow[];
  }

  allSnapshots(): SnapshotRow[] {
    return this.db.prepare('SELECT * FROM snapshots ORDER BY created_at').all() as SnapshotRow[];
  }

  snapshot(taskId: string, name: string): SnapshotRow | undefined {
    return this.db.prepare('SELECT * FROM snapshots WHERE task_id = ? AND name = ?').get(taskId, name) as SnapshotRow | undefined;
  }

  insertSnapshot(row: SnapshotRow): void {
    const cols = Object.keys(row);
    this.db.prepare(`INSERT INTO snapshots (${cols.join(', ')}) VALUES (${cols.map((c) => '@' + c).join(', ')})`).run(row);
  }

  updateSnapshot(taskId: string, name: string, changes: Partial<Omit<SnapshotRow, 'task_id' | 'name' | 'created_at' | 'updated_at'>>): void {
    const cols = Object.keys(changes);
    if (cols.length === 0) return;
    this.db
      .prepare(`UPDATE snapshots SET ${cols.map((c) => `${c} = @${c}`).join(', ')}, updated_at = @__now WHERE task_id = @__id AND name = @__name`)
      .run({ ...changes, __now: Date.now(), __id: taskId, __name: name });
  }

  removeSnapshot(taskId: string, name: string): void {
    this.db.prepare('DELETE FROM snapshots WHERE task_id = ? AND name = ?').run(taskId, name);
  }

  // --- image transfers ---------------------------------------------------------------------------------------
  insertTransfer(row: TransferRow): void {
    const cols = Object.keys(row);
    this.db.prepare(`INSERT INTO transfers (${cols.join(', ')}) VALUES (${cols.map((c) => '@' + c).join(', ')})`).run(row);
  }

  updateTransfer(id: string, changes: Partial<Omit<TransferRow, 'id' | 'created_at' | 'updated_at'>>): void {
    const cols = Object.keys(changes);
    if (cols.length === 0) return;
    this.db
      .prepare(`UPDATE transfers SET ${cols.map((c) => `${c} = @${c}`).join(', ')}, updated_at = @__now WHERE id = @__id`)
      .run({ ...changes, __now: Date.now(), __id: id });
  }

  transfer(id: string): TransferRow | undefined {
    return this.db.prepare('SELECT * FROM transfers WHERE id = ?').get(id) as TransferRow | undefined;
  }

  transfersOf(kind: TransferRow['kind'], file: string): TransferRow[] {
    return this.db
      .prepare('SELECT * FROM transfers WHERE kind = ? AND file = ? ORDER BY created_at DESC, rowid DESC')
      .all(kind, file) as TransferRow[];
  }

  transfersWithStatus(status: TransferStatus): TransferRow[] {
    return this.db.prepare('SELECT * FROM transfers WHERE status = ? ORDER BY created_at').all(status) as TransferRow[];
  }

  deleteTransfer(id: string): void {
    this.db.prepare('DELETE FROM transfers WHERE id = ?').run(id);
  }

  /** operations left pending/running by a daemon that died */
  unfinishedOperations(): OperationRow[] {
    return this.db.prepare("SELECT * FROM operations WHERE status IN ('pending', 'running')").all() as OperationRow[];
  }
}
