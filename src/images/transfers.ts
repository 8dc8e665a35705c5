// Image transfers between this host and image centres, with real progress and resume. Every transfer runs in an
// operation of the ops layer: a node-image download or upload owns its operation (image_download / image_upload,
// locked on `download:<file>` / `upload:<file>`); a snapshot's upload runs inside the snapshot's operation
// (storage/snapshots.ts) and reports its progress there. The rsync strategies are in rsync-jobs.ts.
//
// One transfer per (direction, file) at a time. Records persist (TransferRepo), so progress answers after the
// fact; stop() cancels the transfer's operation (rsync is ended, the partial data is kept for a resume); a node
// shutdown leaves the operation running and the record `interrupted`, and the next start resumes it (an orphaned
// rsync of a killed daemon is killed first).
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { OperationCancelled, type OpHandle, type OpOutcome, type Operation, type Operations } from '../ops/index.js';
import { StorageErrors } from '../errors/index.js';
import type { TransferRepo, TransferRow, TransferStatus } from '../store/tasks.js';
import type { Logger } from '../util/logger.js';
import { isImageFilename } from './names.js';
import { killOrphan } from './orphans.js';
import { RsyncError, type RsyncOptions } from './rsync.js';
import {
  admitDownload,
  admitUpload,
  downloadJob,
  downloadRun,
  pct,
  STAGING_DIR,
  stagingPathOf,
  uploadJob,
  uploadRun,
  type Finalizer,
  type RsyncJobConfig,
  type TransferJob,
  type UploadRun,
} from './rsync-jobs.js';
import type { ImageServerSecrets } from './secrets.js';
import { parseImageServer, type ImageServer } from './servers.js';
import { isResumable, newTransferRow, transferKey as keyOf, TransferRuns, type TransferListener } from './transfer-runs.js';
import type { DownloadRequest, StartedTransfer, TransferSink, UploadRequest } from './transfer-types.js';

export { MemoryTransferRepo } from './memory-repo.js';
export type { DownloadRequest, StartedTransfer, TransferSink, UploadRequest } from './transfer-types.js';
export { pct, REMOTE_PARTIAL_DIR, STAGING_DIR, stagingPathOf, type Finalizer } from './rsync-jobs.js';
export { RsyncError };
export type { TransferListener };

export interface TransferManagerOptions extends RsyncOptions {
  repo: TransferRepo;
  /** the operations layer transfers run in (a node's; the client gateway builds one over MemoryOperationStore) */
  ops: Operations;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  progressIntervalMs?: number;
  /** rsync --bwlimit in KiB/s (0: none); default from DBC_RSYNC_BWLIMIT */
  bwlimitKiB?: number;
  /** upload credentials by centre (else uploads go to the centre's module anonymously) */
  secrets?: ImageServerSecrets;
}

/** how a transfer that owns its operation ended, when not well (the operation's stage and error) */
class TransferEnded extends Error {
  constructor(
    readonly stage: TransferStatus,
    message: string,
  ) {
    super(message);
  }
}

function busyError(kind: TransferRow['kind'], file: string): Error {
  return kind === 'download' ? StorageErrors.inDownloading(file) : StorageErrors.inUploading(file);
}

/** a transfer that owns its operation: the outcome of that operation */
function ownOutcome(final: TransferRow): OpOutcome {
  if (final.status === 'done') return { stage: 'done' };
  if (final.status === 'stopped') throw new OperationCancelled('stopped', 'stopped; start it again to resume');
  if (final.status === 'interrupted' && final.error === 'node shutdown') {
    return { stage: 'interrupted by a node shutdown; resumes at the next start', handedOff: true };
  }
  throw new TransferEnded(final.status, final.error);
}

export class TransferManager {
  private readonly runs: TransferRuns;
  /** keys reserved by a start that is still checking (between its first await and the spawn) */
  private readonly reserved = new Set<string>();
  private finalizeFor?: (row: TransferRow) => Finalizer | undefined;
  private closing = false;
  private readonly cfg: RsyncJobConfig;
  private secrets?: ImageServerSecrets;

  constructor(private readonly o: TransferManagerOptions) {
    const env = Number(process.env.DBC_RSYNC_BWLIMIT ?? 0);
    this.secrets = o.secrets;
    this.runs = new TransferRuns(o);
    this.cfg = {
      bin: o.bin,
      timeoutS: o.timeoutS,
      connectTimeoutS: o.connectTimeoutS,
      bwlimitKiB: o.bwlimitKiB ?? (Number.isFinite(env) && env > 0 ? Math.floor(env) : 0),
      credFor: (server) => this.secrets?.for(server),
    };
  }

  /** the upload credentials this process holds (set once the centres are known) */
  useSecrets(secrets: ImageServerSecrets): void {
    this.secrets = secrets;
  }

  onFinish(listener: TransferListener): void {
    this.runs.onFinish(listener);
  }

  onProgress(listener: TransferListener): void {
    this.runs.onProgress(listener);
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /**
   * At start: resume what a previous daemon left running or interrupted by its shutdown (a transfer that belongs
   * to another operation, e.g. a snapshot's upload, is its owner's to resume), and take over the image_download /
   * image_upload operations ops.recover() finds unfinished.
   */
  async init(finalizeFor?: (row: TransferRow) => Finalizer | undefined): Promise<void> {
    this.finalizeFor = finalizeFor;
    this.o.ops.resumable(['image_download', 'image_upload'], (op) => this.resumeOperation(op));
    for (const row of this.leftRunning()) if (!row.owner) await this.resume(row);
  }

  /** stop every rsync; their records say `interrupted` and resume at the next init */
  async close(): Promise<void> {
    this.closing = true;
    const all = this.runs.all();
    for (const l of all) this.runs.kill(l, 'close');
    await Promise.allSettled(all.map((l) => this.runs.ended(l.id) ?? Promise.resolve()));
  }

  /**
   * The newest record of a file (live or not); with `wallet`, the newest one that wallet started: another wallet's
   * transfers do not exist for it (issue 10, finding 5).
   */
  latest(kind: TransferRow['kind'], file: string, wallet?: string): TransferRow | undefined {
    const rows = this.o.repo.transfersOf(kind, file);
    return wallet === undefined ? rows[0] : rows.find((r) => r.wallet === wallet);
  }

  get(id: string): TransferRow | undefined {
    return this.o.repo.transfer(id);
  }

  isLive(kind: TransferRow['kind'], file: string): boolean {
    const key = keyOf(kind, file);
    return this.runs.find((l) => l.key === key) !== undefined || this.reserved.has(key);
  }

  /** wait for a live transfer to end (tests) */
  async settled(id: string): Promise<TransferRow | undefined> {
    await this.runs.ended(id);
    return this.o.repo.transfer(id);
  }

  /** a record a dead daemon left running (or interrupted by its shutdown) for this upload, to resume */
  leftUpload(file: string, owner: string): TransferRow | undefined {
    const row = this.latest('upload', file);
    return row && row.owner === owner && isResumable(row) && !this.runs.get(row.id) ? row : undefined;
  }

  // --- download -------------------------------------------------------------------------------------------

  /** a download that owns its operation (images/download); nothing is recorded until the checks passed */
  async startDownload(req: DownloadRequest): Promise<TransferRow> {
    if (!isImageFilename(req.file)) throw StorageErrors.imageFilenameInvalid();
    const key = keyOf('download', req.file);
    if (this.isLive('download', req.file)) throw StorageErrors.inDownloading(req.file);
    const dest = join(req.destDir, req.file);
    if (existsSync(dest)) throw StorageErrors.fileExists(req.file);
    this.reserved.add(key);
    try {
      const { run, total, partial } = await admitDownload(this.cfg, req.server, req.file, req.destDir);
      const row = newTransferRow({
        kind: 'download',
        file: req.file,
        local_path: dest,
        server: req.server,
        wallet: req.wallet,
        owner: req.owner ?? '',
        total,
        done: partial,
      });
      this.runOwned(row, downloadJob(row, run, req.finalize), false);
      return row;
    } finally {
      this.reserved.delete(key);
    }
  }

  // --- upload ---------------------------------------------------------------------------------------------

  /** an upload that owns its operation (images/upload) */
  async startUpload(req: UploadRequest): Promise<TransferRow> {
    return (await this.admitUploadOf(req, (row, up) => this.runOwned(row, uploadJob(this.cfg, row, req.server, up), false))).row;
  }

  /**
   * An upload inside another operation (a snapshot's): resolves once rsync sends the file (or with the refusal);
   * `done` settles with the final record. Progress goes to sink.progress; sink.signal ends it (`stopped`).
   */
  async uploadWithin(req: UploadRequest, sink: TransferSink): Promise<StartedTransfer> {
    let done!: Promise<TransferRow>;
    const { row } = await this.admitUploadOf(req, (row, up) => {
      row.operation_id = sink.operationId;
      this.o.repo.insertTransfer(row);
      done = this.followWithin(row, uploadJob(this.cfg, row, req.server, up), sink);
    });
    return { row, done };
  }

  /** continue, inside another operation, an upload a dead daemon left (leftUpload); undefined when it cannot be */
  async resumeUploadWithin(left: TransferRow, sink: TransferSink): Promise<StartedTransfer | undefined> {
    if (left.pid > 0) await killOrphan(left.pid, left.local_path);
    const server = this.serverOf(left);
    if (!server) return undefined;
    const row: TransferRow = { ...left, operation_id: sink.operationId };
    this.o.repo.updateTransfer(row.id, { operation_id: sink.operationId });
    this.o.log.info({ transfer: row.id, kind: row.kind, file: row.file }, 'resuming image transfer');
    return { row, done: this.followWithin(row, uploadJob(this.cfg, row, server, uploadRun(this.cfg, server, row.local_path, row.file)), sink) };
  }

  /**
   * The checks of an upload, then `begin` with its record (not yet stored) and the rsync run. No separate question
   * to the centre: the run's first itemized line says the file is being sent (rsync-jobs.ts uploadRun).
   */
  private async admitUploadOf(req: UploadRequest, begin: (row: TransferRow, up: UploadRun) => void): Promise<{ row: TransferRow; up: UploadRun }> {
    if (!isImageFilename(req.file)) throw StorageErrors.imageFilenameInvalid();
    const key = keyOf('upload', req.file);
    if (this.isLive('upload', req.file)) throw StorageErrors.inUploading(req.file);
    let st;
    try {
      st = statSync(req.localPath);
    } catch {
      throw StorageErrors.fileNotExist(req.file);
    }
    if (!st.isFile()) throw StorageErrors.fileNotExist(req.file);
    this.reserved.add(key);
    try {
      const up = await admitUpload(this.cfg, this.o.log, req);
      const row = newTransferRow({
        kind: 'upload',
        file: req.file,
        local_path: req.localPath,
        server: req.server,
        wallet: req.wallet,
        owner: req.owner ?? '',
        total: st.size,
        done: 0,
      });
      try {
        begin(row, up);
      } catch (err) {
        up.run.child.kill('SIGTERM');
        throw err;
      }
      return { row, up };
    } finally {
      this.reserved.delete(key);
    }
  }

  // --- stop -----------------------------------------------------------------------------------------------

  /**
   * stop the live transfer of file (its operation is cancelled); its partial data is kept for a resume. With
   * `wallet`, only a transfer that wallet started: another wallet's is answered as if there were none.
   */
  async stop(kind: TransferRow['kind'], file: string, wallet?: string): Promise<TransferRow> {
    const live = this.runs.find((l) => l.key === keyOf(kind, file) && (wallet === undefined || this.o.repo.transfer(l.id)?.wallet === wallet));
    if (!live) throw kind === 'download' ? StorageErrors.notInDownloading(file) : StorageErrors.notInUploading(file);
    // the work ends rsync on the operation's signal
    if (!live.operationId || !this.o.ops.cancel(live.operationId)) this.runs.kill(live, 'user');
    await this.runs.ended(live.id);
    const row = this.o.repo.transfer(live.id);
    if (!row) throw kind === 'download' ? StorageErrors.notInDownloading(file) : StorageErrors.notInUploading(file);
    return row;
  }

  /** stop (if live) and forget a download, removing its partial file */
  async discardDownload(file: string, destDir: string): Promise<void> {
    if (this.isLive('download', file)) await this.stop('download', file).catch(() => undefined);
    rmSync(stagingPathOf(join(destDir, file), file), { force: true });
  }

  // --- internals ------------------------------------------------------------------------------------------

  /** records a dead daemon left running or interrupted by its shutdown (a killed rsync resumes on request) */
  private leftRunning(): TransferRow[] {
    return [...this.o.repo.transfersWithStatus('running'), ...this.o.repo.transfersWithStatus('interrupted')].filter(isResumable);
  }

  private serverOf(row: TransferRow): ImageServer | undefined {
    try {
      return parseImageServer(row.server);
    } catch {
      this.o.repo.updateTransfer(row.id, { status: 'failed', error: 'invalid image server record', pid: 0 });
      return undefined;
    }
  }

  /** the resumer of image_download / image_upload operations: true when its transfer runs again */
  private async resumeOperation(op: Operation): Promise<boolean> {
    if (this.runs.find((l) => l.operationId === op.id)) return true;
    const row = this.leftRunning().find((r) => r.operation_id === op.id && !r.owner);
    return row ? this.resume(row) : false;
  }

  private async resume(row: TransferRow): Promise<boolean> {
    if (this.runs.get(row.id)) return true;
    if (row.pid > 0) await killOrphan(row.pid, row.kind === 'download' ? stagingPathOf(row.local_path, row.file) : row.local_path);
    const server = this.serverOf(row);
    if (!server) return false;
    this.o.log.info({ transfer: row.id, kind: row.kind, file: row.file }, 'resuming image transfer');
    let job: TransferJob;
    if (row.kind === 'download') {
      const staging = stagingPathOf(row.local_path, row.file);
      mkdirSync(join(row.local_path, '..', STAGING_DIR), { recursive: true });
      job = downloadJob(row, downloadRun(this.cfg, server, row.file, staging), this.finalizeFor?.(row));
    } else {
      job = uploadJob(this.cfg, row, server, uploadRun(this.cfg, server, row.local_path, row.file));
    }
    try {
      this.runOwned(row, job, true);
    } catch (err) {
      this.o.log.warn({ transfer: row.id, err: err instanceof Error ? err.message : String(err) }, 'resuming an image transfer failed');
      this.o.repo.updateTransfer(row.id, { status: 'interrupted', error: `interrupted: ${err instanceof Error ? err.message : String(err)}`, pid: 0 });
      return false;
    }
    return true;
  }

  /**
   * A transfer that owns its operation: the operation holds the file's lock, its progress is the transfer's and
   * its outcome follows the record's (done, stopped, failed; left running by a node shutdown). Throws the busy
   * error (the run is ended) when the file's lock is held.
   */
  private runOwned(row: TransferRow, job: TransferJob, resumed: boolean): void {
    const resumeId = resumed && row.operation_id !== '' && this.o.ops.get(row.operation_id) ? row.operation_id : undefined;
    const stage = row.kind === 'download' ? 'downloading' : 'uploading';
    let ended!: Promise<TransferRow>;
    let handle: OpHandle;
    try {
      handle = this.o.ops.start({
        kind: row.kind === 'download' ? 'image_download' : 'image_upload',
        taskId: '',
        wallet: row.wallet,
        lock: { key: keyOf(row.kind, row.file), busy: () => busyError(row.kind, row.file) },
        resumeId,
        onStart: (id) => {
          row.operation_id = id;
          if (resumed) this.o.repo.updateTransfer(row.id, { operation_id: id });
          else this.o.repo.insertTransfer(row);
          if (resumed) this.o.ops.progress(id, { stage: 'resumed after a node restart' });
          ended = this.runs.follow(row, job, (cur) =>
            this.o.ops.progress(id, { percent: pct(cur.done_bytes, cur.total_bytes), stage, bytesDone: cur.done_bytes, bytesTotal: cur.total_bytes }),
          );
          if (this.closing) this.runs.kill(this.runs.get(row.id), 'close');
        },
        work: async (ctx) => {
          const onAbort = () => this.runs.kill(this.runs.get(row.id), 'user');
          ctx.signal.addEventListener('abort', onAbort, { once: true });
          if (ctx.signal.aborted) onAbort();
          try {
            return ownOutcome(await ended);
          } finally {
            ctx.signal.removeEventListener('abort', onAbort);
          }
        },
        onError: (err, ctx) => {
          if (err instanceof TransferEnded) ctx.progress({ stage: err.stage });
        },
      });
    } catch (err) {
      job.run.child.kill('SIGTERM');
      throw err;
    }
    this.runs.awaitOnSettle(row.id, handle.done);
  }

  /** a transfer inside another operation: that operation's signal stops it */
  private followWithin(row: TransferRow, job: TransferJob, sink: TransferSink): Promise<TransferRow> {
    const done = this.runs.follow(row, job, (cur) => sink.progress(cur));
    // admitted while the node shuts down: interrupted at once, resumed at the next start
    if (this.closing) this.runs.kill(this.runs.get(row.id), 'close');
    const onAbort = () => this.runs.kill(this.runs.get(row.id), 'user');
    sink.signal.addEventListener('abort', onAbort, { once: true });
    if (sink.signal.aborted) onAbort();
    const settled = done.finally(() => sink.signal.removeEventListener('abort', onAbort));
    this.runs.awaitOnSettle(row.id, settled);
    return settled;
  }
}
