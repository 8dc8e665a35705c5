// Fakes for storage unit tests: a task row, a hypervisor that records QMP calls, a StorageHost over a real TaskStore.
import { join } from 'node:path';
import type { StorageHost } from '../../src/storage/host.js';
import type { TaskRow, TaskStore } from '../../src/store/tasks.js';
import type { Hypervisor, VmRunState } from '../../src/vm/types.js';

export function fakeTask(id: string, over: Partial<TaskRow> = {}): TaskRow {
  return {
    task_id: id, wallet: 'w1', rent_order: '', status: 'closed', desc: '', create_time: '2026-01-01 00:00:00', created_at: Date.now(),
    image_name: 'base.qcow2', os: 'linux', bios_mode: 'legacy', nic_model: 'virtio', ssh_port: 0, rdp_port: 0, vnc_port: 5901,
    vnc_password: 'x', login_user: 'dbc', login_password: 'x', cpu_cores: 1, mem_size_gb: 1, gpu_count: 0, gpus: '[]',
    disk_size_gb: 1, custom_ports: '[]', multicast: '[]', network_name: '', network_filters: '[]', public_ip: '', pending: '{}',
    want_running: 0, last_error: '', closed_at: null, updated_at: Date.now(), ...over,
  };
}

/** a hypervisor that only knows state and records QMP calls; `failOn` makes one command fail */
export class FakeHv {
  state_: VmRunState = 'shutoff';
  readonly qmpCalls: Array<{ execute: string; args?: Record<string, unknown> }> = [];
  failOn = '';
  queryBlock: unknown[] = [];
  asHypervisor(): Hypervisor {
    return {
      state: async () => this.state_,
      qmp: async (_t: string, execute: string, args?: Record<string, unknown>) => {
        this.qmpCalls.push({ execute, args });
        if (execute === this.failOn) throw new Error(`${execute} failed: Bus 'pci.0' does not support hotplugging`);
        if (execute === 'query-block') return this.queryBlock;
        return {};
      },
    } as unknown as Hypervisor;
  }
}

export function fakeHost(store: TaskStore, hv: FakeHv, imageDir: string, vmDir: string, busy = new Set<string>()): StorageHost {
  const quiet = { info() {}, warn() {}, error() {}, debug() {} };
  return {
    store, hv: hv.asHypervisor(), imageDir, log: quiet,
    taskDir: (id) => join(vmDir, id),
    isBusy: (id) => busy.has(id),
    isTransient: (s) => ['creating', 'starting', 'deleting'].includes(s),
    sideOp: (task, kind, work, lock) => {
      if (lock && busy.has(task.task_id)) throw new Error('busy');
      const op = store.createOperation({ id: `op-${Math.random()}`, task_id: task.task_id, wallet: task.wallet, kind, status: 'running' });
      if (lock) busy.add(task.task_id);
      const done = work(op).then(
        (r) => store.updateOperation(op.id, r.finished === false ? { stage: r.stage } : { status: 'done', progress: 100, stage: r.stage }),
        (err: Error) => {
          store.updateOperation(op.id, { status: 'failed', error: err.message });
          throw err;
        },
      ).finally(() => lock && busy.delete(task.task_id));
      return { id: op.id, done };
    },
  };
}

