// The storage side of a GPU node (original §8-10): disks, snapshots, the image directory and image transfers, all
// built from one StorageDeps (storage/deps.ts). node/services.ts builds it; handlers reach it through NodeContext.
// Start order: init() (drops cut snapshot converts, registers the resumers of snapshot_create, image_download and
// image_upload, resumes the transfers a previous daemon left), then ops.recover(). Shutdown: close() (rsyncs end,
// their operations stay running for the next start) before ops.idle().
import { NodeImageService } from '../images/node-images.js';
import type { ImageServerSecrets } from '../images/secrets.js';
import { TransferManager } from '../images/transfers.js';
import type { OperationRow } from '../store/tasks.js';
import type { StorageDeps } from './deps.js';
import { DiskService } from './disks.js';
import { DiskQuota } from './quota.js';
import { SnapshotService } from './snapshots.js';

export type { StorageDeps } from './deps.js';

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

  constructor(
    private readonly d: StorageDeps,
    opts: StorageOptions = {},
  ) {
    this.transfers = new TransferManager({ repo: d.store, ops: d.ops, log: d.log, bwlimitKiB: opts.bwlimitKiB, secrets: opts.secrets });
    this.quota = new DiskQuota(d.store, d.imageDir, { overcommit: opts.diskOvercommit });
    this.disks = new DiskService(d, this.quota);
    this.snapshots = new SnapshotService(d, this.transfers);
    this.images = new NodeImageService(d, this.transfers);
    if (opts.allowedDirs) this.allowDirs(opts.allowedDirs);
  }

  /** where mount_dir (disk/add) and local_dir (images/download) may point besides /data (the image directory) */
  allowDirs(dirs: readonly string[]): void {
    this.disks.allowDirs(dirs);
    this.images.allowDirs(dirs);
  }

  /** an account's operations (every kind), newest first; one task's when taskId is given */
  operationsOf(account: string, taskId?: string): OperationRow[] {
    return this.d.store.operationsOfWallet(account, taskId);
  }

  /** before ops.recover() */
  async init(): Promise<void> {
    await this.snapshots.init();
    await this.transfers.init((row) => this.images.finalizerFor(row));
  }

  /** before ops.idle(): a transfer's operation would otherwise run to its end */
  async close(): Promise<void> {
    await this.transfers.close();
  }
}
