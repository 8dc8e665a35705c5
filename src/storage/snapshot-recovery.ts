// A snapshot after a node restart (storage/snapshots.ts runs the uploads). A convert that was cut is dropped. A
// snapshot_create operation left unfinished is taken over by this resumer (ops.recover()): its upload record left
// running goes on; with none (the daemon died before it was written, or after rsync ended) the upload is settled
// against the centre: a file there of the snapshot's size means it completed (done); else the upload starts again
// from the local file; when neither works it fails definitely, with the reason. Never stuck `uploading`.
import { existsSync, rmSync, statSync } from 'node:fs';
import { statRemote } from '../images/rsync.js';
import { terminateRsyncsOf } from '../images/orphans.js';
import { parseImageServer, type ImageServer } from '../images/servers.js';
import type { StartedTransfer, TransferManager, TransferSink, UploadRequest } from '../images/transfers.js';
import type { Operation } from '../ops/index.js';
import type { SnapshotRow } from '../store/tasks.js';
import type { StorageDeps } from './deps.js';

const OWNER_PREFIX = 'snapshot:';

/** the owner of a snapshot's upload record */
export function snapshotOwner(taskId: string, name: string): string {
  return `${OWNER_PREFIX}${taskId}/${name}`;
}

/** what an upload of the snapshot sends, and where */
export function uploadRequestOf(s: SnapshotRow, server: ImageServer, refuseExisting: boolean): UploadRequest {
  return { server, localPath: s.file, file: s.image_name, wallet: s.wallet, owner: snapshotOwner(s.task_id, s.name), refuseExisting };
}

/** starts the upload of a snapshot inside its operation (a first upload, a restart, or a resumed record) */
export type UploadStarter = (sink: TransferSink) => Promise<StartedTransfer | undefined>;

/** runs the upload phase in the snapshot's operation (opId: that persisted operation; else a new one) */
export type ContinueUpload = (s: SnapshotRow, opId: string | undefined, stage: string, start: UploadStarter, restarted: boolean) => void;

export class SnapshotRecovery {
  constructor(
    private readonly d: StorageDeps,
    private readonly transfers: TransferManager,
    private readonly continueUpload: ContinueUpload,
  ) {}

  /** at start, before ops.recover() */
  async init(): Promise<void> {
    for (const s of this.d.store.allSnapshots()) if (s.status === 'creating') this.dropCut(s);
    this.d.ops.resumable(['snapshot_create'], (op) => this.resume(op));
    // an upload whose operation no resumer will see (an older record, or a lost operation) is settled here
    for (const s of this.d.store.allSnapshots()) {
      if (s.status !== 'uploading') continue;
      const op = s.operation_id ? this.d.ops.get(s.operation_id) : undefined;
      if (op && (op.status === 'running' || op.status === 'pending')) continue;
      await this.recoverUpload(s, op?.id);
    }
  }

  private dropCut(s: SnapshotRow): void {
    rmSync(`${s.file}.part`, { force: true });
    rmSync(s.file, { force: true });
    this.d.store.removeSnapshot(s.task_id, s.name);
    this.d.log.warn({ task_id: s.task_id, snapshot: s.name }, 'snapshot create interrupted by a node restart; removed');
  }

  /** the resumer of snapshot_create operations */
  private async resume(op: Operation): Promise<boolean> {
    const s = this.d.store.allSnapshots().find((x) => x.operation_id === op.id);
    if (!s) return false;
    switch (s.status) {
      case 'creating':
        this.dropCut(s);
        return false;
      case 'none':
        this.d.ops.finish(op.id, `uploaded as ${s.image_name}`);
        return true;
      case 'failed':
        this.d.ops.fail(op.id, s.error);
        return true;
      case 'uploading':
        return this.recoverUpload(s, op.id);
    }
  }

  private async recoverUpload(s: SnapshotRow, opId: string | undefined): Promise<boolean> {
    const left = this.transfers.leftUpload(s.image_name, snapshotOwner(s.task_id, s.name));
    if (left) {
      this.continueUpload(s, opId, 'uploading (resumed after a node restart)', (sink) => this.transfers.resumeUploadWithin(left, sink), true);
      return true;
    }
    await this.settleUpload(s, opId);
    return true;
  }

  private async settleUpload(s: SnapshotRow, opId: string | undefined): Promise<void> {
    const fail = (error: string): void => {
      this.d.store.updateSnapshot(s.task_id, s.name, { status: 'failed', error });
      if (opId) this.d.ops.fail(opId, error);
      this.d.log.warn({ task_id: s.task_id, snapshot: s.name, error }, 'snapshot upload not resumed');
    };
    let server: ImageServer;
    try {
      server = parseImageServer(s.image_server);
    } catch {
      fail('upload interrupted by a node restart: invalid image server record');
      return;
    }
    // an rsync the killed daemon left behind may still be writing: it is ours to end before the centre is asked
    terminateRsyncsOf(s.file);
    const size = existsSync(s.file) ? statSync(s.file).size : -1;
    let remote;
    try {
      remote = await statRemote(server, s.image_name, { connectTimeoutS: 5, timeoutS: 15 });
    } catch {
      fail('upload interrupted by a node restart; the image centre did not answer');
      return;
    }
    if (remote && (remote.size === size || (size < 0 && remote.size === s.size_bytes))) {
      this.d.store.updateSnapshot(s.task_id, s.name, { status: 'none', error: '' });
      if (opId) this.d.ops.finish(opId, `uploaded as ${s.image_name} (verified on the centre after a node restart)`);
      this.d.log.info({ task_id: s.task_id, snapshot: s.name }, 'snapshot upload had completed before the restart');
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
    this.continueUpload(
      s,
      opId,
      'uploading (restarted after a node restart)',
      (sink) => this.transfers.uploadWithin(uploadRequestOf(s, server, false), sink),
      true,
    );
  }
}
