// disk/list, disk/add, disk/resize, disk/delete (original §8). The disks table is the truth: what it lists is what
// the next boot attaches. With the VM shut off the work is qemu-img on the files; with the VM running, disk/add
// hot-plugs through the hypervisor (attachDisk) and disk/resize grows online (growDisk), so the guest sees it at
// once. disk/delete needs the VM shut off, as the original. Each change is an operation under the task's lock.
// Inputs arrive typed (node/commands/storage.ts parses `additional`).
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Disk, Task } from '../domain/task.js';
import { StorageErrors } from '../errors/index.js';
import { freeBytes, isDiskName, resolveRequestedDir, shownPath } from '../images/names.js';
import { formatBytes, randomBase58 } from '../util/format.js';
import { requireIdle, taskLock } from '../ops/index.js';
import type { StorageDeps } from './deps.js';
import * as qemuImg from './qemu-img.js';
import { growBy, imageFacts } from './qemu-extra.js';
import type { DiskQuota } from './quota.js';

const GiB = 1024 ** 3;
/** the largest disk or increment accepted, GB */
export const MAX_DISK_GB = 64 * 1024;

export interface DiskEntry {
  name: string;
  file: string;
  size: string;
  /** ours */
  bytes: number;
  kind: 'os' | 'data';
}

/** the next name after the highest one in use: vdb, vdc, ... vdz; undefined when none is left */
export function nextDiskName(names: readonly string[]): string | undefined {
  let max = 'a'.charCodeAt(0);
  for (const n of names) if (/^vd[a-z]$/.test(n)) max = Math.max(max, n.charCodeAt(2));
  if (max >= 'z'.charCodeAt(0)) return undefined;
  return `vd${String.fromCharCode(max + 1)}`;
}

export class DiskService {
  private allowed: string[] = [];

  constructor(
    private readonly d: StorageDeps,
    private readonly quota?: DiskQuota,
  ) {}

  /** directories (besides the image dir, requested as /data) where disk files may be placed */
  allowDirs(dirs: readonly string[]): void {
    this.allowed = [...dirs];
  }

  allowedDirs(): string[] {
    return [...this.allowed];
  }

  async list(task: Task): Promise<DiskEntry[]> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoDisk();
    const out: DiskEntry[] = [];
    for (const disk of this.d.store.disks(task.task_id)) {
      let bytes = disk.size_gb * GiB;
      try {
        bytes = (await imageFacts(disk.path)).virtualSize;
      } catch {
        // not created yet (task creating) or gone: the recorded size
      }
      out.push({ name: disk.name, file: this.shown(task, disk.path), size: formatBytes(bytes), bytes, kind: disk.kind });
    }
    return out;
  }

  private shown(task: Task, path: string): string {
    return shownPath(path, this.d.imageDir, { taskId: task.task_id, dir: this.d.taskDir(task.task_id) });
  }

  private online(task: Task): Promise<boolean> {
    return this.d.hv.state(task.task_id).then((s) => s !== 'shutoff');
  }

  /** a locked operation of the task; settles (or rejects with the work's error) when the work is done */
  private async run(task: Task, kind: string, work: () => Promise<string>): Promise<string> {
    const op = this.d.ops.start({ kind, taskId: task.task_id, wallet: task.wallet, lock: taskLock(task), work: async () => ({ stage: await work() }) });
    await op.done;
    return op.id;
  }

  /** a new data disk of sizeGb in mountDir (`/data` = the image directory, else an allowed directory) */
  async add(task: Task, sizeGb: number, mountDir: string): Promise<{ operationId: string; disk: Disk }> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoDisk();
    if (!Number.isInteger(sizeGb) || sizeGb <= 0 || sizeGb > MAX_DISK_GB) throw StorageErrors.sizeInvalid();
    const dir = resolveRequestedDir(mountDir, this.d.imageDir, this.allowed);
    if (!dir.ok) {
      if (dir.reason === 'invalid') throw StorageErrors.mountDirInvalid(mountDir);
      if (dir.reason === 'not_allowed') throw StorageErrors.mountDirNotAllowed(mountDir);
      throw StorageErrors.mountDirNotExist(mountDir);
    }
    if (!existsSync(dir.dir)) throw StorageErrors.mountDirNotExist(mountDir);
    // qcow2 is thin, but a renter must be able to fill what was granted: the space must be there now
    if (freeBytes(dir.dir) < sizeGb * GiB) throw StorageErrors.mountDirNoSpace(mountDir);
    if (this.quota && !(await this.quota.allows(dir.dir, sizeGb * GiB))) throw StorageErrors.mountDirNoSpace(mountDir);
    requireIdle(this.d.ops, task);
    const online = await this.online(task);
    if (online && task.os === 'windows') {
      // q35 has no hot-pluggable slot on its root bus
      throw StorageErrors.closeFirst();
    }
    const name = nextDiskName(this.d.store.disks(task.task_id).map((x) => x.name));
    if (!name) throw StorageErrors.noDiskName();
    const file = join(dir.dir, `data_${randomBase58(6, randomBytes)}_${task.task_id}_${name}.qcow2`);
    const disk: Disk = { task_id: task.task_id, name, path: file, size_gb: sizeGb, kind: 'data', owned: true };
    const operationId = await this.run(task, 'disk_add', async () => {
      const tmp = `${file}.part`;
      rmSync(tmp, { force: true });
      try {
        await qemuImg.createDisk(tmp, sizeGb);
        renameSync(tmp, file);
        // the hypervisor lets QEMU (an unprivileged uid by now) open the file, and leaves nothing attached on failure
        if (online) await this.d.hv.attachDisk(task.task_id, { name, path: file });
        this.d.store.addDisk(disk);
      } catch (err) {
        rmSync(tmp, { force: true });
        rmSync(file, { force: true });
        throw err;
      }
      return online ? `${name} hot-added (${sizeGb}G)` : `${name} added (${sizeGb}G), attached at the next boot`;
    });
    return { operationId, disk };
  }

  /** grow disk by incGb (disks only grow), online when the VM runs */
  async resize(task: Task, diskName: string, incGb: number): Promise<{ operationId: string; bytes: number }> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoDisk();
    if (!isDiskName(diskName)) throw StorageErrors.diskInvalid();
    if (!Number.isInteger(incGb)) throw StorageErrors.sizeInvalid();
    if (incGb <= 0) throw StorageErrors.noShrink();
    if (incGb > MAX_DISK_GB) throw StorageErrors.sizeInvalid();
    const disk = this.d.store.disks(task.task_id).find((x) => x.name === diskName);
    if (!disk) throw StorageErrors.diskNotExist(diskName);
    requireIdle(this.d.ops, task);
    // thin or not, a grown disk is a promise the node's file system must be able to keep
    if (this.quota && !(await this.quota.allows(dirname(disk.path), incGb * GiB))) {
      throw StorageErrors.mountDirNoSpace(this.shown(task, dirname(disk.path)));
    }
    const online = await this.online(task);
    let bytes = 0;
    const operationId = await this.run(task, 'disk_resize', async () => {
      const before = (await imageFacts(disk.path)).virtualSize;
      bytes = before + incGb * GiB;
      if (online) await this.d.hv.growDisk(task.task_id, disk.name, disk.path, bytes);
      else await growBy(disk.path, incGb);
      this.d.store.updateDisk(task.task_id, disk.name, { size_gb: Math.ceil(bytes / GiB) });
      return `${disk.name} grown to ${formatBytes(bytes)}${online ? ' online' : ''}`;
    });
    return { operationId, bytes };
  }

  /** delete a data disk with the VM shut off; a reused data file (data_file_name) is kept */
  async remove(task: Task, diskName: string): Promise<{ operationId: string }> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoDisk();
    if (diskName === 'vda') throw StorageErrors.deleteVda();
    if (!isDiskName(diskName)) throw StorageErrors.diskInvalid();
    const disk = this.d.store.disks(task.task_id).find((x) => x.name === diskName);
    if (!disk) throw StorageErrors.diskNotExist(diskName);
    requireIdle(this.d.ops, task);
    if (await this.online(task)) throw StorageErrors.closeFirst();
    const operationId = await this.run(task, 'disk_delete', async () => {
      this.d.store.removeDisk(task.task_id, disk.name);
      if (disk.owned) {
        rmSync(disk.path, { force: true });
        rmSync(`${disk.path}.part`, { force: true });
      }
      return `${disk.name} deleted${disk.owned ? '' : ' (the reused data file is kept)'}`;
    });
    return { operationId };
  }
}
