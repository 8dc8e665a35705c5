// Repository for the tasks, disks, operations, snapshots and transfers tables. A task row becomes a domain Task
// (src/domain/task.ts) here and only here: JSON columns are parsed, flags become booleans, the status is checked.
import type { Disk, PendingChanges, Task, TaskStatus } from '../domain/task.js';
import { isTaskStatus } from '../domain/task.js';
import type { Operation, OperationStore } from '../ops/types.js';
import type { Db } from './db.js';

export type { Disk, Task, TaskStatus } from '../domain/task.js';

/** a tasks table row as SQLite holds it (store-internal; everything else uses Task) */
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
  guest_ready: number;
  guest_ready_time: string;
  last_error: string;
  closed_at: number | null;
  updated_at: number;
}

interface DiskRow {
  task_id: string;
  name: string;
  path: string;
  size_gb: number;
  kind: 'os' | 'data';
  owned: number;
}

/** an operations table row is the ops layer's Operation */
export type OperationRow = Operation;

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

function jsonList(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

function jsonObject(text: string): PendingChanges {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

/** a row as the domain sees it; an unknown status string (a newer daemon's) reads as `closed` */
export function taskFromRow(r: TaskRow): Task {
  return {
    ...r,
    status: isTaskStatus(r.status) ? r.status : 'closed',
    gpus: jsonList(r.gpus),
    custom_ports: jsonList(r.custom_ports),
    multicast: jsonList(r.multicast),
    network_filters: jsonList(r.network_filters),
    pending: jsonObject(r.pending),
    want_running: r.want_running === 1,
    guest_ready: r.guest_ready === 1,
  };
}

type TaskChanges = Partial<Omit<Task, 'task_id'>>;

function rowChanges(changes: TaskChanges): Partial<TaskRow> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) continue;
    if (k === 'want_running' || k === 'guest_ready') out[k] = v ? 1 : 0;
    else if (Array.isArray(v) || (v !== null && typeof v === 'object')) out[k] = JSON.stringify(v);
    else out[k] = v;
  }
  return out;
}

function taskToRow(t: Task): TaskRow {
  return { ...t, ...rowChanges(t) } as TaskRow;
}

function diskFromRow(d: DiskRow): Disk {
  return { ...d, owned: d.owned === 1 };
}

function diskToRow(d: Disk): DiskRow {
  return { ...d, owned: d.owned ? 1 : 0 };
}

export type StatusListener = (task: Task, previous: TaskStatus | null) => void;

export class TaskStore implements TransferRepo, OperationStore {
  private readonly stmts;
  private readonly statusListeners: StatusListener[] = [];

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

  /** called after every change of a task's status (insert included; previous is null then) */
  onStatus(listener: StatusListener): void {
    this.statusListeners.push(listener);
  }

  private statusChanged(task: Task | undefined, previous: TaskStatus | null): void {
    if (!task || task.status === previous) return;
    for (const l of this.statusListeners) l(task, previous);
  }

  get(taskId: string): Task | undefined {
    const r = this.stmts.get.get(taskId) as TaskRow | undefined;
    return r ? taskFromRow(r) : undefined;
  }

  byWallet(wallet: string): Task[] {
    return (this.stmts.byWallet.all(wallet) as TaskRow[]).map(taskFromRow);
  }

  all(): Task[] {
    return (this.stmts.all.all() as TaskRow[]).map(taskFromRow);
  }

  insert(task: Task, disks: Disk[]): void {
    const row = taskToRow(task);
    const cols = Object.keys(row);
    const insertTask = this.db.prepare(`INSERT INTO tasks (${cols.join(', ')}) VALUES (${cols.map((c) => '@' + c).join(', ')})`);
    const insertDisk = this.db.prepare(
      'INSERT INTO disks (task_id, name, path, size_gb, kind, owned) VALUES (@task_id, @name, @path, @size_gb, @kind, @owned)',
    );
    this.db.transaction(() => {
      insertTask.run(row);
      for (const d of disks) insertDisk.run(diskToRow(d));
    })();
    this.statusChanged(task, null);
  }

  update(taskId: string, changes: TaskChanges): void {
    const row = rowChanges(changes);
    const cols = Object.keys(row);
    if (cols.length === 0) return;
    const previous = changes.status !== undefined ? (this.get(taskId)?.status ?? null) : null;
    const sql = `UPDATE tasks SET ${cols.map((c) => `${c} = @${c}`).join(', ')}, updated_at = @__now WHERE task_id = @__id`;
    this.db.prepare(sql).run({ ...row, __now: Date.now(), __id: taskId });
    if (changes.status !== undefined) this.statusChanged(this.get(taskId), previous);
  }

  remove(taskId: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM snapshots WHERE task_id = ?').run(taskId);
      this.db.prepare('DELETE FROM disks WHERE task_id = ?').run(taskId);
      this.db.prepare('DELETE FROM tasks WHERE task_id = ?').run(taskId);
    })();
  }

  disks(taskId: string): Disk[] {
    return (this.stmts.disks.all(taskId) as DiskRow[]).map(diskFromRow);
  }

  allDisks(): Disk[] {
    return (this.stmts.allDisks.all() as DiskRow[]).map(diskFromRow);
  }

  // --- operations --------------------------------------------------------------------------------------
  createOperation(op: Pick<OperationRow, 'id' | 'task_id' | 'wallet' | 'kind' | 'status'>): OperationRow {
    const now = Date.now();
    const row: OperationRow = { ...op, progress: 0, stage: '', error: '', bytes_done: 0, bytes_total: 0, created_at: now, updated_at: now };
    this.db
      .prepare(
        `INSERT INTO operations (id, task_id, wallet, kind, status, progress, stage, error, bytes_done, bytes_total, created_at, updated_at)
         VALUES (@id, @task_id, @wallet, @kind, @status, @progress, @stage, @error, @bytes_done, @bytes_total, @created_at, @updated_at)`,
      )
      .run(row);
    return row;
  }

  updateOperation(id: string, changes: Partial<Pick<OperationRow, 'status' | 'progress' | 'stage' | 'error' | 'bytes_done' | 'bytes_total'>>): void {
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
  addDisk(d: Disk): void {
    this.db.prepare('INSERT INTO disks (task_id, name, path, size_gb, kind, owned) VALUES (@task_id, @name, @path, @size_gb, @kind, @owned)').run(diskToRow(d));
  }

  updateDisk(taskId: string, name: string, changes: Partial<Pick<Disk, 'size_gb' | 'path'>>): void {
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
    return this.db.prepare('SELECT * FROM transfers WHERE kind = ? AND file = ? ORDER BY created_at DESC, rowid DESC').all(kind, file) as TransferRow[];
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
