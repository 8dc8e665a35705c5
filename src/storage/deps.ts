// What the storage services (disks, snapshots, node images, transfers) are built from: the store, the operations
// layer, the hypervisor's disk seam and where files live. node/services.ts builds one; tests build their own.
import type { Operations } from '../ops/index.js';
import type { TaskStore } from '../store/tasks.js';
import type { Logger } from '../util/logger.js';
import type { Hypervisor } from '../vm/types.js';

export interface StorageDeps {
  store: TaskStore;
  ops: Operations;
  hv: Pick<Hypervisor, 'state' | 'attachDisk' | 'growDisk'>;
  /** the node image directory (the original's /data) */
  imageDir: string;
  /** DIR/vms/<task_id> */
  taskDir(taskId: string): string;
  log: Logger;
}
