// images/* on a GPU node (original §10): the node's image directory (the original's /data), downloads from and
// uploads to image centres, deletion guarded against images in use. Arguments arrive as strings (node/commands/
// storage.ts checks `additional`); a file name may still be given as `/data/<name>`.
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { StorageErrors } from '../errors/index.js';
import type { TransferRow } from '../store/tasks.js';
import type { StorageDeps } from '../storage/deps.js';
import { imageFacts, rebaseUnsafe } from '../storage/qemu-extra.js';
import { formatBytes } from '../util/format.js';
import { listLocalImages } from './local.js';
import { imageFilenameOf, isImageFilename, resolveRequestedDir } from './names.js';
import type { ImageServer } from './servers.js';
import { pct, stagingPathOf, STAGING_DIR, type Finalizer, type TransferManager } from './transfers.js';

export interface ProgressReply {
  status: string;
  progress: string;
  /** ours */
  bytes: number;
  total_bytes: number;
  operation_id?: string;
  error?: string;
}

export function progressOf(row: TransferRow | undefined, fileExists: boolean, kind: 'download' | 'upload'): ProgressReply | undefined {
  if (!row) return fileExists ? { status: 'done', progress: '100%', bytes: 0, total_bytes: 0 } : undefined;
  const running = kind === 'download' ? 'downloading' : 'uploading';
  const status = row.status === 'running' ? running : row.status;
  const bytes = row.status === 'done' ? row.total_bytes : row.done_bytes;
  const reply: ProgressReply = { status, progress: `${pct(bytes, row.total_bytes)}%`, bytes, total_bytes: row.total_bytes };
  if (row.operation_id) reply.operation_id = row.operation_id;
  if (row.error && row.status !== 'done') reply.error = row.error;
  return reply;
}

export class NodeImageService {
  private allowed: string[] = [];

  constructor(
    private readonly host: Pick<StorageDeps, 'store' | 'imageDir'>,
    readonly transfers: TransferManager,
  ) {}

  allowDirs(dirs: readonly string[]): void {
    this.allowed = [...dirs];
  }

  /** the node's images; with a caller, also that renter's snapshots (images they can ask the centre for) */
  list(account?: string): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = listLocalImages(this.host.imageDir).map((i) => ({
      image_name: i.image_name,
      // sic: the original node's key (NRS:2798); both spellings, so clients of either read it
      'image_name:': i.image_name,
      image_size: i.image_size,
    }));
    if (account !== undefined) {
      for (const s of this.host.store.allSnapshots()) {
        if (s.wallet !== account || s.status !== 'none') continue;
        out.push({
          image_name: s.image_name,
          'image_name:': s.image_name,
          image_size: formatBytes(s.size_bytes),
          snapshot_name: s.name,
          task_id: s.task_id,
          image_server: s.image_server.split(',')[0] ?? '',
        });
      }
    }
    return out;
  }

  private fileArg(raw: string): string {
    if (raw === '' || raw === 'undefined') throw StorageErrors.imageFilenameEmpty();
    const name = imageFilenameOf(raw);
    if (!name) throw StorageErrors.imageFilenameInvalid();
    return name;
  }

  /** a renter's disk of this node by that file name (the client gateway of `dbc up` refuses to upload it) */
  isTaskDisk(file: string): boolean {
    return this.host.store.allDisks().some((d) => basename(d.path) === file);
  }

  /** the host paths of every task disk (never shared, never served) */
  private diskPaths(): Set<string> {
    return new Set(this.host.store.allDisks().map((d) => d.path));
  }

  async download(wallet: string, server: ImageServer | undefined, rawFile: string, rawDir: string): Promise<TransferRow> {
    if (!server) throw StorageErrors.noImageServer();
    const file = this.fileArg(rawFile);
    if (rawDir === '' || rawDir === 'undefined') throw StorageErrors.localDirEmpty();
    const dir = resolveRequestedDir(rawDir, this.host.imageDir, this.allowed);
    if (!dir.ok) {
      if (dir.reason === 'invalid') throw StorageErrors.localDirInvalid(rawDir);
      if (dir.reason === 'not_allowed') throw StorageErrors.localDirNotAllowed(rawDir);
      throw StorageErrors.localDirNotExist(rawDir);
    }
    if (this.transfers.isLive('upload', file)) throw StorageErrors.inUploading(file);
    return this.transfers.startDownload({
      server,
      file,
      destDir: dir.dir,
      wallet,
      finalize: (staging, destDir) => this.checkDownloaded(file, staging, destDir),
    });
  }

  /** the finalizer for downloads resumed after a restart */
  finalizerFor(row: TransferRow): Finalizer | undefined {
    return row.kind === 'download' && !row.owner ? (staging, destDir) => this.checkDownloaded(row.file, staging, destDir) : undefined;
  }

  /**
   * A downloaded image must be a plain qcow2 whose backing file (a snapshot's base) is an image of the same
   * directory, named without a path: never a task's disk, never a file elsewhere on the host, no external data
   * file. An absolute backing path from another node is rewritten to the bare name when that image is here.
   */
  private async checkDownloaded(file: string, staging: string, destDir: string): Promise<void> {
    let facts;
    try {
      facts = await imageFacts(staging);
    } catch (err) {
      throw new Error(`image:${file} is not a valid image: ${(err as Error).message.split('\n')[0]}`);
    }
    if (facts.format !== 'qcow2') throw new Error(`image:${file} is not a qcow2 image (format ${facts.format})`);
    if (facts.dataFile) throw new Error(`image:${file} uses an external data file, which is not allowed`);
    if (facts.backingFile === undefined) return;
    const base = basename(facts.backingFile);
    const basePath = join(destDir, base);
    if (!isImageFilename(base) || base === file) throw new Error(`image:${file} has an invalid backing file: ${facts.backingFile}`);
    if (!existsSync(basePath) || !statSync(basePath).isFile()) {
      throw new Error(`the base image ${base} of ${file} is not on this node: download it first`);
    }
    if (this.diskPaths().has(basePath)) throw new Error(`image:${file} has an invalid backing file: ${facts.backingFile}`);
    if (facts.backingFile !== base || (facts.backingFormat && facts.backingFormat !== 'qcow2')) await rebaseUnsafe(staging, base);
  }

  // progress and stop see only the caller's own transfers: another wallet's are answered as if there were none
  // (issue 10, finding 5); snapshot uploads belong to the snapshot's wallet
  downloadProgress(wallet: string, rawFile: string): ProgressReply {
    const file = this.fileArg(rawFile);
    const row = this.transfers.latest('download', file, wallet);
    const reply = progressOf(row, existsSync(join(this.host.imageDir, file)), 'download');
    if (!reply) throw StorageErrors.notInDownloading(file);
    return reply;
  }

  async downloadStop(wallet: string, rawFile: string): Promise<ProgressReply> {
    const file = this.fileArg(rawFile);
    const row = await this.transfers.stop('download', file, wallet);
    return progressOf(row, false, 'download')!;
  }

  async upload(wallet: string, server: ImageServer | undefined, rawFile: string): Promise<TransferRow> {
    if (!server) throw StorageErrors.noImageServer();
    const file = this.fileArg(rawFile);
    const path = join(this.host.imageDir, file);
    if (!existsSync(path) || !statSync(path).isFile()) throw StorageErrors.fileNotExist(file);
    // the image dir also holds the renters' data disks: those never leave the node this way
    // ... and the reply is that of a missing file, so a guessed name confirms nothing
    if (this.diskPaths().has(path)) throw StorageErrors.fileNotExist(file);
    if (this.transfers.isLive('download', file)) throw StorageErrors.inDownloading(file);
    return this.transfers.startUpload({ server, localPath: path, file, wallet });
  }

  uploadProgress(wallet: string, rawFile: string): ProgressReply {
    const file = this.fileArg(rawFile);
    const reply = progressOf(this.transfers.latest('upload', file, wallet), false, 'upload');
    if (!reply) throw StorageErrors.notInUploading(file);
    return reply;
  }

  async uploadStop(wallet: string, rawFile: string): Promise<ProgressReply> {
    const file = this.fileArg(rawFile);
    const row = await this.transfers.stop('upload', file, wallet);
    return progressOf(row, false, 'upload')!;
  }

  /** who uses image file `file` (a VM's base, a disk, another image's backing file); undefined when nobody */
  async usedBy(file: string): Promise<string | undefined> {
    const path = join(this.host.imageDir, file);
    const task = this.host.store.all().find((t) => t.image_name === file);
    if (task) return `task ${task.task_id}`;
    const disk = this.host.store.allDisks().find((d) => d.path === path);
    if (disk) return `task ${disk.task_id} (disk ${disk.name})`;
    const snap = this.host.store.allSnapshots().find((s) => s.base_image === file && s.status === 'creating');
    if (snap) return `snapshot ${snap.name} of task ${snap.task_id}`;
    let names: string[] = [];
    try {
      names = readdirSync(this.host.imageDir);
    } catch {
      names = [];
    }
    for (const other of names) {
      if (other === file || !isImageFilename(other)) continue;
      try {
        const f = await imageFacts(join(this.host.imageDir, other));
        if (f.backingFile !== undefined && basename(f.backingFile) === file) return `image ${other} (its base image)`;
      } catch {
        // unreadable: not a chain we know of
      }
    }
    return undefined;
  }

  /**
   * Delete an image of the node directory. Only an image this renter downloaded (the operator's images are not
   * theirs to delete), never one in use or in transfer. A stopped download's partial file can be deleted too.
   */
  async remove(wallet: string, rawFile: string): Promise<void> {
    const file = this.fileArg(rawFile);
    const path = join(this.host.imageDir, file);
    const staging = stagingPathOf(path, file);
    if (this.transfers.isLive('download', file) || this.transfers.isLive('upload', file)) throw StorageErrors.inTransfer();
    const download = this.transfers.latest('download', file);
    if (!existsSync(path)) {
      if (existsSync(staging) && download && download.wallet === wallet) {
        rmSync(staging, { force: true });
        return;
      }
      throw StorageErrors.fileNotExist(file);
    }
    if (!download || download.status !== 'done' || download.wallet !== wallet) throw StorageErrors.notYours(file);
    const by = await this.usedBy(file);
    if (by) throw StorageErrors.inUse(file, by);
    if (this.transfers.isLive('download', file) || this.transfers.isLive('upload', file)) throw StorageErrors.inTransfer();
    rmSync(path, { force: true });
  }

  /** the staging directory name, for listings that must skip it */
  static readonly stagingDir = STAGING_DIR;
}
