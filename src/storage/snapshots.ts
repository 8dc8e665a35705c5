// snapshot/create, snapshot/list, snapshot/delete (original §9).
//
// create: the VM must be shut off. `qemu-img convert -f qcow2 -O qcow2 -B <base> -F qcow2 vda snap` writes only
// what differs from the base image (an incremental qcow2); its backing file is then rewritten to the base image's
// bare name (`rebase -u`), so on any node that has the base in its image directory the snapshot resolves after a
// download. Then the file is uploaded to the image centre (resumable rsync). Status: creating -> uploading -> none
// (the original's "none" = done), or failed with the reason. ONE operation (snapshot_create) covers both phases:
// progress 0-50 % convert with the task locked (convert reads vda), then the lock is let go and the upload runs
// inside the same operation (50-100 %, bytes). After a node restart its resumer settles it (snapshot-recovery.ts).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Task } from '../domain/task.js';
import { freeBytes, isSnapshotName, shownPath } from '../images/names.js';
import { formatImageServer, type ImageServer } from '../images/servers.js';
import { pct, type StartedTransfer, type TransferManager, type TransferSink } from '../images/transfers.js';
import { OperationCancelled, type OpContext, type OpHandle, type OpOutcome } from '../ops/index.js';
import { StorageErrors, publicErrorText } from '../errors/index.js';
import type { SnapshotRow, TransferRow } from '../store/tasks.js';
import { formatBytes, localTimestamp, randomBase58 } from '../util/format.js';
import { requireIdle, taskLock } from '../ops/index.js';
import type { StorageDeps } from './deps.js';
import { convertIncremental, imageFacts, rebaseUnsafe } from './qemu-extra.js';
import { snapshotOwner, SnapshotRecovery, uploadRequestOf, type UploadStarter } from './snapshot-recovery.js';

const SPACE_MARGIN = 64 * 1024 * 1024;

export { snapshotOwner };

/** the file name on the image centre: recognisable, and unique so that two renters never overwrite each other */
export function snapshotImageName(name: string): string {
  return `snap_${name}_${randomBase58(8, randomBytes).toLowerCase()}.qcow2`;
}

export class SnapshotService {
  /** snapshot operations running in this process: id -> settles when the work is done */
  private readonly running = new Map<string, Promise<unknown>>();
  private readonly recovery: SnapshotRecovery;

  constructor(
    private readonly d: StorageDeps,
    private readonly transfers: TransferManager,
  ) {
    this.recovery = new SnapshotRecovery(d, transfers, (s, opId, stage, start, restarted) => this.continueUpload(s, opId, stage, start, restarted));
  }

  private dir(taskId: string): string {
    return join(this.d.taskDir(taskId), 'snapshots');
  }

  /**
   * At start, before ops.recover(): a convert a dead daemon left is dropped; snapshot_create operations left
   * unfinished are settled by a resumer (snapshot-recovery.ts): the upload resumed, verified done on the centre,
   * started again, or failed definitely with the reason.
   */
  async init(): Promise<void> {
    await this.recovery.init();
  }

  list(task: Task): SnapshotRow[] {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoSnapshot();
    return this.d.store.snapshots(task.task_id);
  }

  get(task: Task, name: string): SnapshotRow {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoSnapshot();
    const s = isSnapshotName(name) ? this.d.store.snapshot(task.task_id, name) : undefined;
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
      snapshot_file: shownPath(s.file, this.d.imageDir, { taskId: s.task_id, dir: this.d.taskDir(s.task_id) }),
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

  async create(task: Task, name: string, desc: string, server: ImageServer): Promise<{ operationId: string; row: SnapshotRow }> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoSnapshot();
    if (!isSnapshotName(name)) throw StorageErrors.snapshotNameInvalid();
    if (this.d.store.snapshot(task.task_id, name)) throw StorageErrors.snapshotExists(name);
    requireIdle(this.d.ops, task);
    if ((await this.d.hv.state(task.task_id)) !== 'shutoff') throw StorageErrors.closeFirst();
    const vda = this.d.store.disks(task.task_id).find((x) => x.name === 'vda');
    if (!vda || !existsSync(vda.path)) throw StorageErrors.noBaseImage();
    const facts = await imageFacts(vda.path);
    if (!facts.backingFile) throw StorageErrors.noBaseImage();
    const base = facts.backingFile.startsWith('/') ? facts.backingFile : join(dirname(vda.path), facts.backingFile);
    if (dirname(base) !== this.d.imageDir || !existsSync(base)) throw StorageErrors.noBaseImage();
    const dir = this.dir(task.task_id);
    mkdirSync(dir, { recursive: true });
    const free = freeBytes(dir);
    if (free < facts.actualSize + SPACE_MARGIN) throw StorageErrors.noSpace('/data', facts.actualSize + SPACE_MARGIN, free);

    const imageName = snapshotImageName(name);
    const now = Date.now();
    const row: SnapshotRow = {
      task_id: task.task_id,
      name,
      wallet: task.wallet,
      description: desc.slice(0, 1024),
      file: join(dir, imageName),
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
    this.d.store.insertSnapshot(row);
    let op: OpHandle;
    try {
      op = this.d.ops.start({
        kind: 'snapshot_create',
        taskId: task.task_id,
        wallet: task.wallet,
        lock: taskLock(task),
        onStart: (id) => this.d.store.updateSnapshot(task.task_id, name, { operation_id: id }),
        work: (ctx) => this.createWork(ctx, { ...row, operation_id: ctx.id }, vda.path, base, server),
      });
    } catch (err) {
      this.d.store.removeSnapshot(task.task_id, name);
      throw err;
    }
    this.keep(op);
    return { operationId: op.id, row: { ...row, operation_id: op.id } };
  }

  /** convert (task locked), then upload (lock let go) */
  private async createWork(ctx: OpContext, s: SnapshotRow, vdaPath: string, base: string, server: ImageServer): Promise<OpOutcome> {
    const tmp = `${s.file}.part`;
    try {
      rmSync(tmp, { force: true });
      let last = -1;
      await convertIncremental(
        vdaPath,
        tmp,
        base,
        (p) => {
          const v = Math.floor(p / 2);
          if (v !== last) {
            last = v;
            ctx.progress({ percent: v, stage: 'creating' });
          }
        },
        ctx.signal,
      );
      await rebaseUnsafe(tmp, basename(base));
      renameSync(tmp, s.file);
    } catch (err) {
      rmSync(tmp, { force: true });
      rmSync(s.file, { force: true });
      this.d.store.removeSnapshot(s.task_id, s.name);
      throw err;
    }
    ctx.unlock();
    const size = statSync(s.file).size;
    this.d.store.updateSnapshot(s.task_id, s.name, { status: 'uploading', size_bytes: size });
    ctx.progress({ percent: 50, stage: 'uploading' });
    const uploading: SnapshotRow = { ...s, status: 'uploading', size_bytes: size };
    return this.uploadPhase(ctx, uploading, (sink) => this.transfers.uploadWithin(uploadRequestOf(uploading, server, true), sink), false);
  }

  /**
   * The upload phase inside the snapshot's operation (opId: continue that persisted operation; else a new one):
   * after a node restart, an upload resumed or started again.
   */
  private continueUpload(s: SnapshotRow, opId: string | undefined, stage: string, start: UploadStarter, restarted: boolean): void {
    const op = this.d.ops.start({
      kind: 'snapshot_create',
      taskId: s.task_id,
      wallet: s.wallet,
      resumeId: opId,
      onStart: (id) => {
        if (id !== s.operation_id) this.d.store.updateSnapshot(s.task_id, s.name, { operation_id: id });
        this.d.ops.reopen(id, stage);
      },
      work: (ctx) => this.uploadPhase(ctx, { ...s, operation_id: ctx.id }, start, restarted),
    });
    this.keep(op);
  }

  private keep(op: OpHandle): void {
    const settled = op.done.catch(() => undefined); // failures are in the operation and the record
    this.running.set(op.id, settled);
    void settled.then(() => this.running.delete(op.id));
  }

  /** start the upload (progress 50-100 %), then settle the snapshot by the upload's final record */
  private async uploadPhase(ctx: OpContext, s: SnapshotRow, start: UploadStarter, restarted: boolean): Promise<OpOutcome> {
    // a node shutdown came first: the upload starts again at the next start (the record stays `uploading`)
    if (this.transfers.isClosing) return { stage: 'uploading', handedOff: true };
    const sink: TransferSink = {
      operationId: ctx.id,
      signal: ctx.signal,
      progress: (row) =>
        ctx.progress({
          percent: 50 + Math.floor(pct(row.done_bytes, row.total_bytes) / 2),
          stage: 'uploading',
          bytesDone: row.done_bytes,
          bytesTotal: row.total_bytes,
        }),
    };
    let started: StartedTransfer | undefined;
    try {
      started = await start(sink);
      if (!started) throw new Error('invalid image server record');
    } catch (err) {
      const error = restarted ? `upload interrupted by a node restart; restarting it failed: ${publicErrorText(err)}` : publicErrorText(err);
      this.d.store.updateSnapshot(s.task_id, s.name, { status: 'failed', error });
      throw restarted ? new Error(error) : err;
    }
    return this.uploadEnded(ctx, s, await started.done);
  }

  private uploadEnded(ctx: OpContext, s: SnapshotRow, row: TransferRow): OpOutcome {
    const cur = this.d.store.snapshot(s.task_id, s.name);
    const ours = cur !== undefined && cur.image_name === row.file;
    if (row.status === 'done') {
      // the snapshot (or its VM) may have been deleted meanwhile: its operation ends all the same
      if (!ours) return { stage: `uploaded as ${row.file}; the snapshot record was deleted meanwhile` };
      this.d.store.updateSnapshot(s.task_id, s.name, { status: 'none', error: '' });
      return { stage: `uploaded as ${row.file}` };
    }
    // stays uploading: resumed at the next start
    if (row.status === 'interrupted' && row.error === 'node shutdown') return { stage: 'uploading', handedOff: true };
    const reason: unknown = ctx.signal.reason;
    const deleted = reason instanceof OperationCancelled && reason.reason === 'snapshot deleted';
    // a stop (images/upload_stop) or a failure: the snapshot says why; a deleted one has nothing left to say
    if (ours && !deleted) this.d.store.updateSnapshot(s.task_id, s.name, { status: 'failed', error: publicErrorText(`upload ${row.status}: ${row.error}`) });
    if (row.status === 'stopped') throw reason instanceof OperationCancelled ? reason : new OperationCancelled('stopped');
    if (!ours) throw new OperationCancelled('snapshot deleted');
    ctx.progress({ stage: 'upload failed' });
    throw new Error(row.error);
  }

  async remove(task: Task, name: string): Promise<void> {
    if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoSnapshot();
    const s = isSnapshotName(name) ? this.d.store.snapshot(task.task_id, name) : undefined;
    if (!s) throw StorageErrors.snapshotNotExistNamed(name);
    if (s.status === 'creating') throw StorageErrors.snapshotCreating(name);
    // an upload in flight: its operation is cancelled (rsync ends) before the file goes
    if (s.operation_id && this.d.ops.cancel(s.operation_id, 'snapshot deleted')) await this.running.get(s.operation_id);
    rmSync(s.file, { force: true });
    rmSync(`${s.file}.part`, { force: true });
    this.d.store.removeSnapshot(task.task_id, name);
    if (s.operation_id && this.d.ops.get(s.operation_id)?.status === 'running') this.d.ops.stop(s.operation_id, 'snapshot deleted');
  }
}
