// Where a task's files live on the node: DIR/vms/<task_id>/{vda.qcow2, seed.iso, serial.log, run/, snapshots/}.
// A task id reaches a path only through here, and only when it looks like a stored task id.
import { join } from 'node:path';
import { STORED_TASK_ID_RE } from '../domain/ids.js';
import { NodeErrors } from '../errors/index.js';
import { shownPath } from '../images/names.js';

export class TaskPaths {
  constructor(
    /** one folder per VM */
    readonly vmDir: string,
    /** base images (the original's /data) */
    readonly imageDir: string,
  ) {}

  taskDir(taskId: string): string {
    if (!STORED_TASK_ID_RE.test(taskId)) throw NodeErrors.taskNotExist();
    return join(this.vmDir, taskId);
  }

  /** QMP socket, serial socket, pid file, OVMF vars */
  runDir(taskId: string): string {
    return join(this.taskDir(taskId), 'run');
  }

  serialLog(taskId: string): string {
    return join(this.taskDir(taskId), 'serial.log');
  }

  seedIso(taskId: string): string {
    return join(this.taskDir(taskId), 'seed.iso');
  }

  /** a task disk's path as a renter sees it (`/data/...`, never the node's data directory) */
  shownDiskPath(taskId: string, path: string): string {
    return shownPath(path, this.imageDir, { taskId, dir: this.taskDir(taskId) });
  }
}
