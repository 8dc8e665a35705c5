// snapshot/create, snapshot/list, snapshot/delete (original §9).
//
// create: the VM must be shut off. `qemu-img convert -f qcow2 -O qcow2 -B <base> -F qcow2 vda snap` writes only
// what differs from the base image (an incremental qcow2); its backing file is then rewritten to the base image's
// bare name (`rebase -u`), so on any node that has the base in its image directory the snapshot resolves after a
// download. Then the file is uploaded to the image centre (resumable rsync). Status: creating -> uploading -> none
// (the original's "none" = done), or failed with the reason. One operation covers both phases (progress 0-50 %
// convert, 50-100 % upload); the task is locked only while convert reads vda.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { NodeErrors, StorageErrors, publicErrorText } from '../protocol/errors.js';
import type { SnapshotRow, TaskRow, TransferRow } from '../store/tasks.js';
import { freeBytes, isSnapshotName, shownPath } from '../images/names.js';
import { formatImageServer, parseImageServer, type ImageServer } from '../images/servers.js';
import { statRemote } from '../images/rsync.js';
import { processesMentioning } from '../util/proc.js';
import { pct, type TransferManager } from '../images/transfers.js';
import { formatBytes, localTimestamp, randomBase58 } from '../util/format.js';
import { convertIncremental, imageFacts, rebaseUnsafe } from './qemu-extra.js';
import type { StorageHost } from './host.js';

const OWNER_PREFIX = 'snapshot:';
const SPACE_MARGIN = 64 * 1024 * 1024;

export function snapshotOwner(taskId: string, name: string): string {
  return `${OWNER_PREFIX}${taskId}/${name}`;
}

function parseOwner(owner: string): { taskId: string; name: string } | undefined {
  if (!owner.startsWith(OWNER_PREFIX)) return undefined;
  const [taskId, name] = owner.slice(OWNER_PREFIX.length).split('/');
  return taskId && name ? { taskId, name } : undefined;
}

/** the file name on the image centre: recognisable, and unique so that two renters never overwrite each other */
export function snapshotImageName(name: string): string {
  return `snap_${name}_${randomBase58(8, randomBytes).toLowerCase()}.qcow2`;
}

export class SnapshotService {
  constructor(
    private readonly host: StorageHost,
    private readonly transfers: TransferManager,
  ) {
    transfers.onProgress((row) => this.onUploadProgress(row));
    transfers.onFinish((row) => this.onUploadFinished(row));
  }

  private dir(taskId: string): string {
    return join(this.host.taskDir(taskId), 'snapshots');
  }

  /**
   * After a node restart: a convert that was cut is dropped; an upload the transfers resumed goes on. An upload
   * with no live transfer (the daemon died before its record was written, or after rsync ended) is settled against
   * the centre: a file there of the snapshot's size means it completed (done); else the upload starts again from
   * the local file; when neither works it fails definitely, with the reason.
   */
  async recover(): Promise<void> {
    for (const s of this.host.store.allSnapshots()) {
      if (s.status === 'creating') {
        rmSync(`${s.file}.part`, { force: true });
        rmSync(s.file, { force: true });
        this.host.store.removeSnapshot(s.task_id, s.name);
        this.host.log.warn({ task_id: s.task_id, snapshot: s.name }, 'snapshot create interrupted by a node restart; removed');
      } else if (s.status === 'uploading' && !this.transfers.isLive('upload', s.image_name)) {
        await this.settleUpload(s);
      } else if (s.status === 'uploading' && s.operation_id) {
        this.host.store.updateOperation(s.operation_id, { status: 'running', error: '', stage: 'uploading (resumed after a node restart)' });
      }
    }
  }

  private async settleUpload(s: SnapshotRow): Promise<void> {
    const fail = (error: string) => {
      this.host.store.updateSnapshot(s.task_id, s.name, { status: 'failed', error });
      if (s.operation_id) this.host.store.updateOperation(s.operation_id, { status: 'failed', error });
      this.host.log.warn({ task_id: s.task_id, snapshot: s.name, error }, 'snapshot upload not resumed');
    };
    let server: ImageServer;
    try {
      server = parseImageServer(s.image_server);
    } catch {
      fail('upload interrupted by a node restart: invalid image server record');
      return;
    }
    // an rsync the killed daemon left behind may still be writing: it is ours to end before the centre is asked
    for (const pid of processesMentioning('rsync', s.file)) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
    }
    const size = existsSync(s.file) ? statSync(s.file).size : -1;
    let remote;
    try {
      remote = await statRemote(server, s.image_name, { connectTimeoutS: 5, timeoutS: 15 });
    } catch {
      fail('upload interrupted by a node restart; the image centre did not answer');
      return;
    }
    if (remote && (remote.size === size || (size < 0 && remote.size === s.size_bytes))) {
      this.host.store.updateSnapshot(s.task_id, s.name, { status: 'none', error: '' });
      if (s.operation_id) {
        this.host.store.updateOperation(s.operation_id, { status: 'done', progress: 100, stage: `uploaded as ${s.image_name} (verified on the centre after a node restart)` });
      }
      this.host.log.info({ task_id: s.task_id, snapshot: s.name }, 'snapshot upload had completed before the restart');
      return;
    }
    if (remote) {
      fail('upload interrupted by a node restart; the centre holds a different file of that name');
      return;
    }
    if (size < 0) {
      fail('upload interrupted by a node restart; the snapshot file is gone');
      return;
    }
    try {
      await this.transfers.startUpload({
        server, localPath: s.file, file: s.image_name, wallet: s.wallet, owner: snapshotOwner(s.task_id, s.name),
        operationId: s.operation_id || undefined, refuseExisting: false,
      });
      if (s.operation_id) this.host.store.updateOperation(s.operation_id, { status: 'running', error: '', stage: 'uploading (restarted after a node restart)' });
    } catch (err) {
      fail(`upload interrupted by a node restart; restarting it failed: ${publicErrorText(err)}`);
    }
  }

  list(task: TaskRow): SnapshotRow[] {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoSnapshot();
    return this.host.store.snapshots(task.task_id);
  }

  get(task: TaskRow, name: string): SnapshotRow {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoSnapshot();
    const s = isSnapshotName(name) ? this.host.store.snapshot(task.task_id, name) : undefined;
    if (!s) throw StorageErrors.snapshotNotExist();
    return s;
  }

  /** the reply entry: the original's keys first, then ours */
  entry(s: SnapshotRow): Record<string, unknown> {
    const t = s.status === 'uploading' ? this.transfers.latest('upload', s.image_name) : undefined;
    const progress = s.status === 'none' ? 100 : t ? pct(t.done_bytes, t.total_bytes) : 0;
    const e: Record<string, unknown> = {
      snapshot_name: s.name,
      description: s.description,
      snapshot_file: shownPath(s.file, this.host.imageDir, { taskId: s.task_id, dir: this.host.taskDir(s.task_id) }),
      create_time: s.create_time,
      status: s.status,
      image_name: s.image_name,
      image_server: s.image_server.split(',')[0] ?? '',
      base_image: s.base_image,
      size: formatBytes(s.size_bytes),
      progress: `${progress}%`,
      operation_id: s.operation_id,
    };
    if (s.error) e.error = s.error;
    return e;
  }

  async create(task: TaskRow, rawName: unknown, rawDesc: unknown, server: ImageServer | undefined): Promise<{ operationId: string; row: SnapshotRow }> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoSnapshot();
    if (rawName === undefined || rawName === '' || rawName === 'undefined') throw StorageErrors.snapshotNameEmpty();
    if (!isSnapshotName(rawName)) throw StorageErrors.snapshotNameInvalid();
    const name = rawName;
    const desc = typeof rawDesc === 'string' ? rawDesc.slice(0, 1024) : '';
    if (!server) throw StorageErrors.noImageServer();
    if (this.host.store.snapshot(task.task_id, name)) throw StorageErrors.snapshotExists(name);
    if (this.host.isBusy(task.task_id) || this.host.isTransient(task.status)) throw NodeErrors.taskBusy(task.status);
    if ((await this.host.hv.state(task.task_id)) !== 'shutoff') throw StorageErrors.closeFirst();
    const vda = this.host.store.disks(task.task_id).find((d) => d.name === 'vda');
    if (!vda || !existsSync(vda.path)) throw StorageErrors.noBaseImage();
    const facts = await imageFacts(vda.path);
    if (!facts.backingFile) throw StorageErrors.noBaseImage();
    const base = facts.backingFile.startsWith('/') ? facts.backingFile : join(dirname(vda.path), facts.backingFile);
    if (dirname(base) !== this.host.imageDir || !existsSync(base)) throw StorageErrors.noBaseImage();
    const dir = this.dir(task.task_id);
    mkdirSync(dir, { recursive: true });
    const free = freeBytes(dir);
    if (free < facts.actualSize + SPACE_MARGIN) throw StorageErrors.noSpace('/data', facts.actualSize + SPACE_MARGIN, free);

    const imageName = snapshotImageName(name);
    const file = join(dir, imageName);
    const now = Date.now();
    const row: SnapshotRow = {
      task_id: task.task_id,
      name,
      wallet: task.wallet,
      description: desc,
      file,
      image_name: imageName,
      base_image: basename(base),
      image_server: formatImageServer(server),
      status: 'creating',
      error: '',
      size_bytes: 0,
      operation_id: '',
      create_time: localTimestamp(now),
      created_at: now,
      updated_at: now,
    };
    this.host.store.insertSnapshot(row);
    let op: { id: string; done: Promise<void> };
    try {
      op = this.host.sideOp(task, 'snapshot_create', async (o) => {
        const tmp = `${file}.part`;
        try {
          rmSync(tmp, { force: true });
          let last = -1;
          await convertIncremental(vda.path, tmp, base, (p) => {
            const v = Math.floor(p / 2);
            if (v !== last) {
              last = v;
              this.host.store.updateOperation(o.id, { progress: v, stage: 'creating' });
            }
          });
          await rebaseUnsafe(tmp, basename(base));
          renameSync(tmp, file);
        } catch (err) {
          rmSync(tmp, { force: true });
          rmSync(file, { force: true });
          this.host.store.removeSnapshot(task.task_id, name);
          throw err;
        }
        const size = statSync(file).size;
        this.host.store.updateSnapshot(task.task_id, name, { status: 'uploading', size_bytes: size });
        this.host.store.updateOperation(o.id, { progress: 50, stage: 'uploading' });
        try {
          await this.transfers.startUpload({
            server, localPath: file, file: imageName, wallet: task.wallet, owner: snapshotOwner(task.task_id, name), operationId: o.id,
          });
        } catch (err) {
          this.host.store.updateSnapshot(task.task_id, name, { status: 'failed', error: publicErrorText(err) });
          throw err;
        }
        return { stage: 'uploading', finished: false };
      }, true);
    } catch (err) {
      this.host.store.removeSnapshot(task.task_id, name);
      throw err;
    }
    this.host.store.updateSnapshot(task.task_id, name, { operation_id: op.id });
    op.done.catch(() => undefined); // failures are in the operation and the record
    return { operationId: op.id, row: { ...row, operation_id: op.id } };
  }

  async remove(task: TaskRow, name: string): Promise<void> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoSnapshot();
    const s = isSnapshotName(name) ? this.host.store.snapshot(task.task_id, name) : undefined;
    if (!s) throw StorageErrors.snapshotNotExistNamed(name);
    if (s.status === 'creating') throw NodeErrors.generic(`snapshot:${name} is creating, please try again later`);
    if (s.status === 'uploading' && this.transfers.isLive('upload', s.image_name)) {
      await this.transfers.stop('upload', s.image_name).catch(() => undefined);
    }
    rmSync(s.file, { force: true });
    rmSync(`${s.file}.part`, { force: true });
    this.host.store.removeSnapshot(task.task_id, name);
    if (s.operation_id) {
      const op = this.host.store.operation(s.operation_id);
      if (op && op.status === 'running') this.host.store.updateOperation(s.operation_id, { status: 'stopped', stage: 'snapshot deleted' });
    }
  }

  private onUploadProgress(row: TransferRow): void {
    const who = parseOwner(row.owner);
    if (!who || !row.operation_id) return;
    this.host.store.updateOperation(row.operation_id, { progress: 50 + Math.floor(pct(row.done_bytes, row.total_bytes) / 2), stage: 'uploading' });
  }

  private onUploadFinished(row: TransferRow): void {
    const who = parseOwner(row.owner);
    if (!who) return;
    const s = this.host.store.snapshot(who.taskId, who.name);
    const opId = row.operation_id;
    if (!s || s.image_name !== row.file) {
      // the snapshot (or its VM) was deleted meanwhile: close its operation all the same
      const op = opId ? this.host.store.operation(opId) : undefined;
      if (op && op.status === 'running') {
        this.host.store.updateOperation(opId, row.status === 'done'
          ? { status: 'done', progress: 100, stage: `uploaded as ${row.file}; the snapshot record was deleted meanwhile` }
          : { status: 'stopped', stage: 'snapshot deleted' });
      }
      return;
    }
    if (row.status === 'done') {
      this.host.store.updateSnapshot(who.taskId, who.name, { status: 'none', error: '' });
      if (opId) this.host.store.updateOperation(opId, { status: 'done', progress: 100, stage: `uploaded as ${row.file}` });
    } else if (row.status === 'interrupted' && row.error === 'node shutdown') {
      // stays uploading: resumed at the next start
    } else if (row.status !== 'stopped') {
      this.host.store.updateSnapshot(who.taskId, who.name, { status: 'failed', error: publicErrorText(`upload ${row.status}: ${row.error}`) });
      if (opId) this.host.store.updateOperation(opId, { status: 'failed', stage: 'upload failed', error: publicErrorText(row.error) });
    }
  }
}
