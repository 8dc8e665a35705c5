// Disk quota of a node: qcow2 files are thin, so the node promises more than it writes. What it promises (every
// task's data disks at their provisioned size, plus each system overlay at its base image's virtual size) may not
// exceed the capacity of the file system that holds them times an overcommit factor (default 1.0). disk/add,
// disk/resize and tasks/start ask before they promise more.
import { statSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Disk } from '../domain/task.js';
import type { TaskStore } from '../store/tasks.js';
import { imageFacts } from './qemu-extra.js';

const GiB = 1024 ** 3;

export interface QuotaOptions {
  /** promised bytes may reach capacity × overcommit (default 1.0) */
  overcommit?: number;
}

function deviceOf(path: string): number | undefined {
  for (let p = path; ; p = dirname(p)) {
    try {
      return statSync(p).dev;
    } catch {
      if (dirname(p) === p) return undefined;
    }
  }
}

export class DiskQuota {
  readonly overcommit: number;
  /** base image virtual sizes by path (base images do not change while VMs use them) */
  private readonly baseSizes = new Map<string, number>();

  constructor(
    private readonly store: TaskStore,
    private readonly imageDir: string,
    o: QuotaOptions = {},
  ) {
    const f = o.overcommit ?? 1;
    this.overcommit = Number.isFinite(f) && f > 0 ? f : 1;
  }

  private async baseSize(imageName: string): Promise<number> {
    const path = `${this.imageDir}/${imageName}`;
    const known = this.baseSizes.get(path);
    if (known !== undefined) return known;
    let size = 0;
    try {
      size = (await imageFacts(path)).virtualSize;
    } catch {
      size = 0; // gone: its VMs' overlays are counted as empty
    }
    this.baseSizes.set(path, size);
    return size;
  }

  private async promised(disk: Disk, imageName: string | undefined): Promise<number> {
    if (disk.kind === 'os') return imageName ? this.baseSize(imageName) : 0;
    return disk.size_gb * GiB;
  }

  /** bytes promised on the file system of dir */
  async promisedOn(dir: string): Promise<number> {
    const dev = deviceOf(dir);
    let sum = 0;
    const images = new Map(this.store.all().map((t) => [t.task_id, t.image_name] as const));
    for (const d of this.store.allDisks()) {
      if (deviceOf(d.path) !== dev) continue;
      sum += await this.promised(d, images.get(d.task_id));
    }
    return sum;
  }

  capacityOf(dir: string): number {
    const s = statfsSync(dir);
    return Number(s.blocks) * Number(s.bsize) * this.overcommit;
  }

  /** true when `extraBytes` more may be promised on the file system of dir */
  async allows(dir: string, extraBytes: number): Promise<boolean> {
    return (await this.promisedOn(dir)) + extraBytes <= this.capacityOf(dir);
  }
}
