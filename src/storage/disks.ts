// disk/list, disk/add, disk/resize, disk/delete (original §8). The disks table is the truth: what it lists is what
// the next boot attaches (vm/qemu-args.ts: `-drive if=none,id=drive-<name>` + `virtio-blk-pci,id=<name>`).
// With the VM shut off the work is qemu-img on the files; with the VM running, disk/add hot-plugs over QMP
// (blockdev-add + device_add) and disk/resize grows online (block_resize), so the guest sees it at once.
// disk/delete needs the VM shut off, as the original.
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NodeErrors, StorageErrors } from '../protocol/errors.js';
import type { DiskRow, TaskRow } from '../store/tasks.js';
import { freeBytes, isDiskName, resolveRequestedDir, shownPath } from '../images/names.js';
import { formatBytes, randomBase58 } from '../util/format.js';
import * as qemuImg from './qemu-img.js';
import { growBy, imageFacts } from './qemu-extra.js';
import type { StorageHost } from './host.js';
import type { DiskQuota } from './quota.js';
import { grantToVm } from '../vm/run-as.js';

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

/** `size` as the original (a JSON integer) or as websites send it (a digit string); undefined when invalid */
export function parseSizeGb(v: unknown): number | undefined {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^\s*-?\d{1,9}\s*$/.test(v)) n = Number(v.trim());
  else return undefined;
  return Number.isInteger(n) ? n : undefined;
}

/** the next name after the highest one in use: vdb, vdc, ... vdz; undefined when none is left */
export function nextDiskName(names: readonly string[]): string | undefined {
  let max = 'a'.charCodeAt(0);
  for (const n of names) if (/^vd[a-z]$/.test(n)) max = Math.max(max, n.charCodeAt(2));
  if (max >= 'z'.charCodeAt(0)) return undefined;
  return `vd${String.fromCharCode(max + 1)}`;
}

/** QMP arguments to hot-plug a qcow2 disk file as guest disk `name` */
export function hotplugCommands(name: string, file: string): Array<{ execute: string; arguments: Record<string, unknown> }> {
  return [
    {
      execute: 'blockdev-add',
      arguments: { driver: 'qcow2', 'node-name': `drive-${name}`, file: { driver: 'file', filename: file } },
    },
    {
      execute: 'device_add',
      arguments: { driver: 'virtio-blk-pci', drive: `drive-${name}`, id: name, serial: name },
    },
  ];
}

interface QueryBlockEntry {
  device?: string;
  qdev?: string;
  inserted?: { 'node-name'?: string; file?: string };
}

/** the block node of guest disk `name` in a query-block answer (boot-time -drive or hot-plugged blockdev) */
export function blockNodeOf(entries: QueryBlockEntry[], name: string, file: string): string | undefined {
  const hit =
    entries.find((e) => e.device === `drive-${name}`) ??
    entries.find((e) => e.qdev === name || (e.qdev ?? '').startsWith(`/machine/peripheral/${name}/`)) ??
    entries.find((e) => e.inserted?.file === file);
  return hit?.inserted?.['node-name'];
}

export class DiskService {
  private allowed: string[] = [];

  constructor(
    private readonly host: StorageHost,
    private readonly quota?: DiskQuota,
  ) {}

  /** directories (besides the image dir, requested as /data) where disk files may be placed */
  allowDirs(dirs: readonly string[]): void {
    this.allowed = [...dirs];
  }

  allowedDirs(): string[] {
    return [...this.allowed];
  }

  async list(task: TaskRow): Promise<DiskEntry[]> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoDisk();
    const out: DiskEntry[] = [];
    for (const d of this.host.store.disks(task.task_id)) {
      let bytes = d.size_gb * GiB;
      try {
        bytes = (await imageFacts(d.path)).virtualSize;
      } catch {
        // not created yet (task creating) or gone: the recorded size
      }
      out.push({ name: d.name, file: shownPath(d.path, this.host.imageDir, { taskId: task.task_id, dir: this.host.taskDir(task.task_id) }), size: formatBytes(bytes), bytes, kind: d.kind });
    }
    return out;
  }

  private online(task: TaskRow): Promise<boolean> {
    return this.host.hv.state(task.task_id).then((s) => s !== 'shutoff');
  }

  private requireIdle(task: TaskRow): void {
    if (this.host.isBusy(task.task_id) || this.host.isTransient(task.status)) throw NodeErrors.taskBusy(task.status);
  }

  async add(task: TaskRow, sizeRaw: unknown, mountDirRaw: unknown): Promise<{ operationId: string; disk: DiskRow }> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoDisk();
    const sizeGb = parseSizeGb(sizeRaw);
    if (sizeGb === undefined || sizeGb <= 0 || sizeGb > MAX_DISK_GB) throw StorageErrors.sizeInvalid();
    const requested = mountDirRaw === undefined || mountDirRaw === '' || mountDirRaw === 'undefined' ? '/data' : mountDirRaw;
    if (typeof requested !== 'string') throw StorageErrors.mountDirInvalid(String(requested));
    const dir = resolveRequestedDir(requested, this.host.imageDir, this.allowed);
    if (!dir.ok) {
      if (dir.reason === 'invalid') throw StorageErrors.mountDirInvalid(requested);
      if (dir.reason === 'not_allowed') throw StorageErrors.mountDirNotAllowed(requested);
      throw StorageErrors.mountDirNotExist(requested);
    }
    if (!existsSync(dir.dir)) throw StorageErrors.mountDirNotExist(requested);
    // qcow2 is thin, but a renter must be able to fill what was granted: the space must be there now
    if (freeBytes(dir.dir) < sizeGb * GiB) throw StorageErrors.mountDirNoSpace(requested);
    if (this.quota && !(await this.quota.allows(dir.dir, sizeGb * GiB))) throw StorageErrors.mountDirNoSpace(requested);
    this.requireIdle(task);
    const online = await this.online(task);
    if (online && task.os === 'windows') {
      // q35 has no hot-pluggable slot on its root bus
      throw StorageErrors.closeFirst();
    }
    const name = nextDiskName(this.host.store.disks(task.task_id).map((d) => d.name));
    if (!name) throw StorageErrors.noDiskName();
    const file = join(dir.dir, `data_${randomBase58(6, randomBytes)}_${task.task_id}_${name}.qcow2`);
    const disk: DiskRow = { task_id: task.task_id, name, path: file, size_gb: sizeGb, kind: 'data', owned: 1 };
    const op = this.host.sideOp(task, 'disk_add', async () => {
      const tmp = `${file}.part`;
      rmSync(tmp, { force: true });
      try {
        await qemuImg.createDisk(tmp, sizeGb);
        renameSync(tmp, file);
        if (online) await this.hotplug(task.task_id, name, file);
        this.host.store.addDisk(disk);
      } catch (err) {
        rmSync(tmp, { force: true });
        rmSync(file, { force: true });
        throw err;
      }
      return { stage: online ? `${name} hot-added (${sizeGb}G)` : `${name} added (${sizeGb}G), attached at the next boot` };
    }, true);
    await op.done;
    return { operationId: op.id, disk };
  }

  private async hotplug(taskId: string, name: string, file: string): Promise<void> {
    const [add, dev] = hotplugCommands(name, file);
    // guest guard: QEMU runs as an unprivileged uid by now and opens the new file itself
    grantToVm(file, this.host.hv.runAs);
    await this.host.hv.qmp(taskId, add!.execute, add!.arguments);
    try {
      await this.host.hv.qmp(taskId, dev!.execute, dev!.arguments);
    } catch (err) {
      await this.host.hv.qmp(taskId, 'blockdev-del', { 'node-name': `drive-${name}` }).catch(() => undefined);
      throw err;
    }
  }

  async resize(task: TaskRow, diskRaw: unknown, sizeRaw: unknown): Promise<{ operationId: string; bytes: number }> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoDisk();
    if (diskRaw === undefined || diskRaw === '' || diskRaw === 'undefined') throw StorageErrors.diskEmpty();
    if (!isDiskName(diskRaw)) throw StorageErrors.diskInvalid();
    const inc = parseSizeGb(sizeRaw);
    if (inc === undefined) throw StorageErrors.sizeInvalid();
    if (inc <= 0) throw StorageErrors.noShrink();
    if (inc > MAX_DISK_GB) throw StorageErrors.sizeInvalid();
    const disk = this.host.store.disks(task.task_id).find((d) => d.name === diskRaw);
    if (!disk) throw StorageErrors.diskNotExist(diskRaw);
    this.requireIdle(task);
    // thin or not, a grown disk is a promise the node's file system must be able to keep
    if (this.quota && !(await this.quota.allows(dirname(disk.path), inc * GiB))) {
      throw StorageErrors.mountDirNoSpace(shownPath(dirname(disk.path), this.host.imageDir, { taskId: task.task_id, dir: this.host.taskDir(task.task_id) }));
    }
    const online = await this.online(task);
    let bytes = 0;
    const op = this.host.sideOp(task, 'disk_resize', async () => {
      const before = (await imageFacts(disk.path)).virtualSize;
      bytes = before + inc * GiB;
      if (online) {
        const entries = (await this.host.hv.qmp(task.task_id, 'query-block')) as QueryBlockEntry[];
        const node = blockNodeOf(entries, disk.name, disk.path);
        if (!node) throw new Error(`disk ${disk.name} is not attached to the running VM`);
        await this.host.hv.qmp(task.task_id, 'block_resize', { 'node-name': node, size: bytes });
      } else {
        await growBy(disk.path, inc);
      }
      this.host.store.updateDisk(task.task_id, disk.name, { size_gb: Math.ceil(bytes / GiB) });
      return { stage: `${disk.name} grown to ${formatBytes(bytes)}${online ? ' online' : ''}` };
    }, true);
    await op.done;
    return { operationId: op.id, bytes };
  }

  async remove(task: TaskRow, diskRaw: unknown): Promise<{ operationId: string }> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoDisk();
    if (diskRaw === undefined || diskRaw === '' || diskRaw === 'undefined') throw StorageErrors.diskEmpty();
    if (diskRaw === 'vda') throw StorageErrors.deleteVda();
    if (!isDiskName(diskRaw)) throw StorageErrors.diskInvalid();
    const disk = this.host.store.disks(task.task_id).find((d) => d.name === diskRaw);
    if (!disk) throw StorageErrors.diskNotExist(diskRaw);
    this.requireIdle(task);
    if (await this.online(task)) throw StorageErrors.closeFirst();
    const op = this.host.sideOp(task, 'disk_delete', async () => {
      this.host.store.removeDisk(task.task_id, disk.name);
      if (disk.owned) {
        rmSync(disk.path, { force: true });
        rmSync(`${disk.path}.part`, { force: true });
      }
      return { stage: `${disk.name} deleted${disk.owned ? '' : ' (the reused data file is kept)'}` };
    }, true);
    await op.done;
    return { operationId: op.id };
  }
}
