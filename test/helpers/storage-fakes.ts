// Fakes for storage tests: a task, a hypervisor that records its disk seam calls, and StorageDeps over a real
// TaskStore with a real operations layer (a `busy` set marks tasks as locked by some other operation).
import { join } from 'node:path';
import type { Task } from '../../src/domain/task.js';
import { EventBus, MemoryOperationStore, Operations, type OperationStore } from '../../src/ops/index.js';
import type { StorageDeps } from '../../src/storage/deps.js';
import type { TaskStore } from '../../src/store/tasks.js';
import { quietLogger } from '../../src/util/logger.js';
import type { VmDisk, VmRunState } from '../../src/vm/types.js';

export function fakeTask(id: string, over: Partial<Task> = {}): Task {
  return {
    task_id: id,
    wallet: 'w1',
    rent_order: '',
    status: 'closed',
    desc: '',
    create_time: '2026-01-01 00:00:00',
    created_at: Date.now(),
    image_name: 'base.qcow2',
    os: 'linux',
    bios_mode: 'legacy',
    nic_model: 'virtio',
    ssh_port: 0,
    rdp_port: 0,
    vnc_port: 5901,
    vnc_password: 'x',
    login_user: 'dbc',
    login_password: 'x',
    cpu_cores: 1,
    mem_size_gb: 1,
    gpu_count: 0,
    gpus: [],
    disk_size_gb: 1,
    custom_ports: [],
    multicast: [],
    network_name: '',
    network_filters: [],
    public_ip: '',
    pending: {},
    want_running: false,
    guest_ready: false,
    guest_ready_time: '',
    last_error: '',
    closed_at: null,
    updated_at: Date.now(),
    ...over,
  };
}

export type DiskSeamCall =
  { op: 'attachDisk'; taskId: string; name: string; path: string } | { op: 'growDisk'; taskId: string; name: string; path: string; bytes: number };

/** a hypervisor that only knows state and records attachDisk / growDisk; `failOn` makes that call fail */
export class FakeHv {
  state_: VmRunState = 'shutoff';
  readonly calls: DiskSeamCall[] = [];
  failOn: '' | DiskSeamCall['op'] = '';

  asHypervisor(): StorageDeps['hv'] {
    return {
      state: async () => this.state_,
      attachDisk: async (taskId: string, disk: VmDisk) => {
        this.calls.push({ op: 'attachDisk', taskId, name: disk.name, path: disk.path });
        if (this.failOn === 'attachDisk') throw new Error(`device_add failed: Bus 'pci.0' does not support hotplugging`);
      },
      growDisk: async (taskId: string, name: string, path: string, bytes: number) => {
        this.calls.push({ op: 'growDisk', taskId, name, path, bytes });
        if (this.failOn === 'growDisk') throw new Error(`disk ${name} is not attached to the running VM`);
      },
    };
  }
}

/** an operations layer where the tasks in `busy` count as locked by another operation */
class BusyAwareOperations extends Operations {
  constructor(
    store: OperationStore,
    private readonly busy: ReadonlySet<string>,
  ) {
    super(store, new EventBus(quietLogger), quietLogger);
  }

  override isLocked(key: string): boolean {
    return this.busy.has(key) || super.isLocked(key);
  }
}

/** an operations layer over memory (a TransferManager of its own, as the client gateway builds one) */
export function memoryOps(): Operations {
  return new Operations(new MemoryOperationStore(), new EventBus(quietLogger), quietLogger);
}

/** storage deps over a real store: operations persist in the store's operations table */
export function fakeDeps(store: TaskStore, hv: FakeHv, imageDir: string, vmDir: string, busy: ReadonlySet<string> = new Set<string>()): StorageDeps {
  return {
    store,
    ops: new BusyAwareOperations(store, busy),
    hv: hv.asHypervisor(),
    imageDir,
    log: quietLogger,
    taskDir: (id) => join(vmDir, id),
  };
}
