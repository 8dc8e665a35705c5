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
  status: 'pending' | 'running' | 'done' | 'failed';
  progress: number;
  stage: string;
  error: string;
  created_at: number;
  updated_at: number;
}

export class TaskStore {
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

  /** operations left pending/running by a daemon that died */
  unfinishedOperations(): OperationRow[] {
    return this.db.prepare("SELECT * FROM operations WHERE status IN ('pending', 'running')").all() as OperationRow[];
  }
}
