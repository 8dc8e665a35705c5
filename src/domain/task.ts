// The GPU node's domain model of a task (a renter's VM). The store converts a table row into a Task once
// (store/tasks.ts); everything above the store works with these parsed, typed values. Field names follow the
// DBC wire names and the table columns one to one, so a reader maps them without a dictionary.
import type { BiosMode, GuestOs, NicModel } from './vm-kinds.js';

export type { BiosMode, GuestOs, NicModel } from './vm-kinds.js';

/** statuses a task passes through while an operation runs on it */
export const TRANSIENT_STATUSES = ['creating', 'starting', 'being shutdown', 'being poweroff', 'restarting', 'resetting', 'deleting'] as const;
export type TransientStatus = (typeof TRANSIENT_STATUSES)[number];

/** where an operation that failed leaves the task */
export const ERROR_STATUSES = ['create error', 'start error', 'shutdown error', 'poweroff error', 'restart error', 'reset error', 'delete error'] as const;
export type ErrorStatus = (typeof ERROR_STATUSES)[number];

/** every status string a task shows (the original's strings; `closed` = shut off) */
export type TaskStatus = 'running' | 'closed' | TransientStatus | ErrorStatus;

export function isTransient(status: TaskStatus): status is TransientStatus {
  return (TRANSIENT_STATUSES as readonly string[]).includes(status);
}

export function isTaskStatus(s: string): s is TaskStatus {
  return s === 'running' || s === 'closed' || (TRANSIENT_STATUSES as readonly string[]).includes(s) || (ERROR_STATUSES as readonly string[]).includes(s);
}

/** tasks/modify changes that wait for the next boot */
export interface PendingChanges {
  vnc_port?: number;
  gpu_count?: number;
  cpu_cores?: number;
  mem_size_gb?: number;
}

export interface Task {
  task_id: string;
  /** the renter account that owns the VM */
  wallet: string;
  rent_order: string;
  status: TaskStatus;
  desc: string;
  /** 'YYYY-mm-dd HH:MM:SS' local time, as the original */
  create_time: string;
  created_at: number;
  image_name: string;
  os: GuestOs;
  bios_mode: BiosMode;
  nic_model: NicModel;
  ssh_port: number;
  rdp_port: number;
  vnc_port: number;
  vnc_password: string;
  login_user: string;
  login_password: string;
  cpu_cores: number;
  mem_size_gb: number;
  gpu_count: number;
  /** host PCI addresses of the GPUs passed through */
  gpus: string[];
  disk_size_gb: number;
  /** custom_port entries in the original's syntax (net/ports.ts parses them) */
  custom_ports: string[];
  /** multicast groups ip:port */
  multicast: string[];
  network_name: string;
  network_filters: string[];
  public_ip: string;
  pending: PendingChanges;
  /** what the renter asked for last; the reconciler follows it */
  want_running: boolean;
  /** the guest answered since its last boot (agent, SSH/RDP banner or serial marker: vm/readiness.ts) */
  guest_ready: boolean;
  /** 'YYYY-mm-dd HH:MM:SS' when it did; '' while it has not */
  guest_ready_time: string;
  last_error: string;
  /** unix ms when stopped because its rental ended */
  closed_at: number | null;
  updated_at: number;
}

export type DiskKind = 'os' | 'data';

export interface Disk {
  task_id: string;
  /** vda, vdb, ... */
  name: string;
  path: string;
  size_gb: number;
  kind: DiskKind;
  /** false when reused via data_file_name (kept when the task is deleted) */
  owned: boolean;
}
