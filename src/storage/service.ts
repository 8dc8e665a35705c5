// The storage side of a GPU node (original §8-10): disks, snapshots, the image directory and image transfers.
// Built by the task engine (engine.storage); handlers reach it as ctx.engine.storage.
import { randomUUID } from 'node:crypto';
import { NodeImageService } from '../images/node-images.js';
import { TransferManager, type OperationSink } from '../images/transfers.js';
import { DiskService } from './disks.js';
import { DiskQuota } from './quota.js';
import type { ImageServerSecrets } from '../images/secrets.js';
import type { OperationRow } from '../store/tasks.js';
import type { StorageHost } from './host.js';
import { SnapshotService } from './snapshots.js';

export interface StorageOptions {
  /** directories besides the image directory where mount_dir / local_dir may point */
  allowedDirs?: string[];
  /** rsync --bwlimit KiB/s (default: DBC_RSYNC_BWLIMIT or none) */
  bwlimitKiB?: number;
  /** provisioned disk bytes may reach the file system's capacity times this (default 1.0; storage/quota.ts) */
  diskOvercommit?: number;
  /** upload credentials of image centres, present before interrupted uploads resume at start */
  secrets?: ImageServerSecrets;
}

export class StorageService {
  readonly transfers: TransferManager;
  readonly disks: DiskService;
  readonly snapshots: SnapshotService;
  readonly images: NodeImageService;
  readonly quota: DiskQuota;

  constructor(private readonly host: StorageHost, opts: StorageOptions = {}) {
    const ops: OperationSink = {
      create: (kind, wallet, taskId) => host.store.createOperation({ id: randomUUID(), task_id: taskId, wallet, kind, status: 'running' }).id,
      update: (id, changes) => host.store.updateOperation(id, changes),
    };
    this.transfers = new TransferManager({ repo: host.store, ops, log: host.log, bwlimitKiB: opts.bwlimitKiB, secrets: opts.secrets });
    this.quota = new DiskQuota(host.store, host.imageDir, { overcommit: opts.diskOvercommit });
    this.disks = new DiskService(host, this.quota);
    this.snapshots = new SnapshotService(host, this.transfers);
    this.images = new NodeImageService(host, this.transfers);
    if (opts.allowedDirs) this.allowDirs(opts.allowedDirs);
  }

  /** where mount_dir (disk/add) and local_dir (images/download) may point besides /data (the image directory) */
  allowDirs(dirs: readonly string[]): void {
    this.disks.allowDirs(dirs);
    this.images.allowDirs(dirs);
  }

  /** an account's operations (every kind), newest first; one task's when taskId is given */
  operationsOf(account: string, taskId?: string): OperationRow[] {
    return this.host.store.operationsOfWallet(account, taskId);
  }

  async init(): Promise<void> {
    await this.transfers.init((row) => this.images.finalizerFor(row));
    await this.snapshots.recover();
  }

  async close(): Promise<void> {
    await this.transfers.close();
  }
}
