// Image transfers between this host and image centres, with real progress and resume.
//
// Download: rsync --append-verify into DIR/.dbc-transfers/<file> (same filesystem as DIR), progress = the size of
// that file; on success the file is checked (finalize) and renamed into DIR, so a partial image never carries the
// final name. A stopped or killed download keeps its partial file and the next download of the same file appends
// to it (rsync verifies the whole file afterwards). A download that fails for another reason (the file vanished,
// the disk filled up, a broken image) removes its partial file.
//
// Upload: rsync --partial --partial-dir=.dbc-partial to rsync://host:port/module/<file>: while running and after
// an interruption the data lives in the centre's hidden .dbc-partial/, never under the final name; the next upload
// of the same file resumes from it (rsync delta). Progress comes from --info=progress2.
//
// One transfer per (direction, file) at a time. Records persist (TransferRepo), so progress answers after the
// fact, and a node restart resumes what was running (an orphaned rsync of a killed daemon is killed first).
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { StorageErrors } from '../protocol/errors.js';
import type { TransferRepo, TransferRow, TransferStatus } from '../store/tasks.js';
import { freeBytes, isImageFilename } from './names.js';
import {
  commonArgs, publicRsyncReason, removeRemotePartial, RESUMABLE_EXIT, RsyncError, rsyncReason, runRsync, statRemote, type RsyncOptions, type RsyncRun,
} from './rsync.js';
import type { ImageServerSecrets, UploadCredential } from './secrets.js';
import { formatImageServer, parseImageServer, rsyncUrl, type ImageServer } from './servers.js';

export const STAGING_DIR = '.dbc-transfers';
export const REMOTE_PARTIAL_DIR = '.dbc-partial';
/** headroom kept free when a download is admitted */
const SPACE_MARGIN = 16 * 1024 * 1024;

export interface TransferLogger {
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}

/** the operations table (GPU node); absent on a client */
export interface OperationSink {
  create(kind: string, wallet: string, taskId: string): string;
  update(id: string, changes: { status?: 'running' | 'done' | 'failed' | 'stopped'; progress?: number; stage?: string; error?: string }): void;
}

export interface TransferManagerOptions extends RsyncOptions {
  repo: TransferRepo;
  ops?: OperationSink;
  log: TransferLogger;
  progressIntervalMs?: number;
  /** rsync --bwlimit in KiB/s (0: none); default from DBC_RSYNC_BWLIMIT */
  bwlimitKiB?: number;
  /** upload credentials by centre (else uploads go to the centre's module anonymously) */
  secrets?: ImageServerSecrets;
}

export type FinishListener = (row: TransferRow) => void;

type UploadStart = { kind: 'transferring' } | { kind: 'skipped' } | { kind: 'failed'; reason: string; public: string };

interface UploadRun {
  run: RsyncRun;
  bytes: () => number;
  /** settles at the first itemized line (the file is being sent) or at the exit */
  started: Promise<UploadStart>;
}

interface Live {
  id: string;
  key: string;
  run?: RsyncRun;
  stop?: 'user' | 'close';
  timer?: NodeJS.Timeout;
  finished: Promise<void>;
}

export interface DownloadRequest {
  server: ImageServer;
  file: string;
  /** final directory (the image dir, or an allowed local_dir) */
  destDir: string;
  wallet: string;
  owner?: string;
  /** checks (and may fix) the downloaded file before it is renamed into place; throw to fail the download */
  finalize?: (stagingPath: string, destDir: string) => Promise<void>;
}

export interface UploadRequest {
  server: ImageServer;
  /** local file to send */
  localPath: string;
  /** name on the image centre */
  file: string;
  wallet: string;
  owner?: string;
  /** an operation someone else owns (snapshot create): not created or completed here */
  operationId?: string;
  /** refuse when the centre already has this file (default true) */
  refuseExisting?: boolean;
}

export class TransferManager {
  private readonly live = new Map<string, Live>();
  /** keys reserved by a start that is still checking (between its first await and the spawn) */
  private readonly reserved = new Set<string>();
  private readonly listeners: FinishListener[] = [];
  private readonly finalizers = new Map<string, DownloadRequest['finalize']>();
  private closing = false;
  private readonly bwlimit: number;
  private secrets?: ImageServerSecrets;

  constructor(private readonly o: TransferManagerOptions) {
    const env = Number(process.env.DBC_RSYNC_BWLIMIT ?? 0);
    this.bwlimit = o.bwlimitKiB ?? (Number.isFinite(env) && env > 0 ? Math.floor(env) : 0);
    this.secrets = o.secrets;
  }

  /** the upload credentials this process holds (set once the centres are known) */
  useSecrets(secrets: ImageServerSecrets): void {
    this.secrets = secrets;
  }

  private credFor(server: ImageServer): UploadCredential | undefined {
    return this.secrets?.for(server);
  }

  onFinish(listener: FinishListener): void {
    this.listeners.push(listener);
  }

  /** resume what a previous daemon left running or interrupted by its shutdown */
  async init(finalizeFor?: (row: TransferRow) => DownloadRequest['finalize']): Promise<void> {
    for (const row of [...this.o.repo.transfersWithStatus('running'), ...this.o.repo.transfersWithStatus('interrupted')]) {
      if (row.status === 'interrupted' && row.error !== 'node shutdown') continue; // killed rsync: resumed on request
      if (row.pid > 0) await killOrphan(row.pid, row.kind === 'download' ? stagingPathOf(row.local_path, row.file) : row.local_path);
      let server: ImageServer;
      try {
        server = parseImageServer(row.server);
      } catch {
        this.o.repo.updateTransfer(row.id, { status: 'failed', error: 'invalid image server record', pid: 0 });
        continue;
      }
      this.o.log.info({ transfer: row.id, kind: row.kind, file: row.file }, 'resuming image transfer');
      if (row.operation_id && !row.owner) this.o.ops?.update(row.operation_id, { status: 'running', error: '', stage: 'resumed after a node restart' });
      if (row.kind === 'download') {
        const fin = finalizeFor?.(row);
        if (fin) this.finalizers.set(row.id, fin);
        this.spawnDownload(row, server);
      } else {
        this.spawnUpload(row, server);
      }
    }
  }

  /** stop every rsync; their records say `interrupted` and resume at the next init */
  async close(): Promise<void> {
    this.closing = true;
    const all = [...this.live.values()];
    for (const l of all) {
      l.stop = 'close';
      l.run?.child.kill('SIGTERM');
    }
    await Promise.allSettled(all.map((l) => l.finished));
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
    return [...this.live.values()].some((l) => l.key === keyOf(kind, file)) || this.reserved.has(keyOf(kind, file));
  }

  /** wait for a live transfer to end (tests) */
  async settled(id: string): Promise<TransferRow | undefined> {
    await this.live.get(id)?.finished;
    return this.o.repo.transfer(id);
  }

  // --- download -------------------------------------------------------------------------------------------

  /**
   * rsync starts at once, while the centre is asked for the file's size in parallel (each rsync connection costs
   * ~0.1 s of handshake): a missing file, a full disk or an unreachable centre still gets its error in the reply,
   * and the speculative rsync is stopped and its bytes removed.
   */
  async startDownload(req: DownloadRequest): Promise<TransferRow> {
    if (!isImageFilename(req.file)) throw StorageErrors.imageFilenameInvalid();
    const key = keyOf('download', req.file);
    if (this.isLive('download', req.file)) throw StorageErrors.inDownloading(req.file);
    const dest = join(req.destDir, req.file);
    if (existsSync(dest)) throw StorageErrors.fileExists(req.file);
    this.reserved.add(key);
    try {
      const staging = stagingPathOf(dest, req.file);
      mkdirSync(join(req.destDir, STAGING_DIR), { recursive: true });
      let partial = sizeOf(staging);
      const free = freeBytes(req.destDir);
      let run = this.downloadRun(req.server, req.file, staging);
      const abort = async (removePartial: boolean) => {
        run.child.kill('SIGTERM');
        await run.done;
        if (removePartial) rmSync(staging, { force: true });
      };
      let remote;
      try {
        remote = await statRemote(req.server, req.file, this.o);
      } catch (err) {
        await abort(partial === 0);
        throw StorageErrors.listFailed(err instanceof RsyncError ? publicRsyncReason(err.stderr, err.exitCode) : 'the image server is unreachable');
      }
      if (!remote) {
        await abort(true);
        throw StorageErrors.remoteNotExist(req.file);
      }
      if (partial > remote.size) {
        // a partial file of another version of the image: start over
        await abort(true);
        partial = 0;
        run = this.downloadRun(req.server, req.file, staging);
      }
      const need = remote.size - partial;
      if (free < need + SPACE_MARGIN) {
        await abort(partial === 0);
        throw StorageErrors.noSpace(req.destDir, need, free);
      }
      const row = this.newRow({
        kind: 'download', file: req.file, local_path: dest, server: req.server, wallet: req.wallet, owner: req.owner ?? '',
        total: remote.size, done: partial,
      });
      if (req.finalize) this.finalizers.set(row.id, req.finalize);
      this.trackDownload(row, run);
      return row;
    } finally {
      this.reserved.delete(key);
    }
  }

  private downloadRun(server: ImageServer, file: string, staging: string): RsyncRun {
    return runRsync(['--append-verify', '--no-motd', ...commonArgs(this.o), ...this.bwArgs(), rsyncUrl(server, file), staging], this.o);
  }

  private spawnDownload(row: TransferRow, server: ImageServer): void {
    const staging = stagingPathOf(row.local_path, row.file);
    mkdirSync(join(row.local_path, '..', STAGING_DIR), { recursive: true });
    this.trackDownload(row, this.downloadRun(server, row.file, staging));
  }

  private trackDownload(row: TransferRow, run: RsyncRun): void {
    const staging = stagingPathOf(row.local_path, row.file);
    this.track(row, run, () => sizeOf(staging), async (result) => {
      if (result === 'ok') {
        const size = sizeOf(staging);
        if (size !== row.total_bytes || !existsSync(staging)) {
          throw new Error(`the image changed on the image server during the download (got ${size} of ${row.total_bytes} bytes)`);
        }
        const fin = this.finalizers.get(row.id);
        if (fin) await fin(staging, join(row.local_path, '..'));
        if (existsSync(row.local_path)) throw new Error(`image file:${row.file} appeared during the download`);
        renameSync(staging, row.local_path);
      } else {
        rmSync(staging, { force: true });
      }
    });
  }

  // --- upload ---------------------------------------------------------------------------------------------

  /**
   * No separate question to the centre: rsync runs with --ignore-existing --itemize-changes, and its first
   * itemized line (`<f...`) says the file is being sent; an exit without one means the centre already had it.
   */
  async startUpload(req: UploadRequest): Promise<TransferRow> {
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
      const up = this.uploadRun(req.server, req.localPath, req.file);
      const first = await up.started;
      if (first.kind === 'failed') {
        this.o.log.warn({ file: req.file, server: req.server.id, reason: first.reason }, 'image upload refused');
        throw StorageErrors.uploadFailed(first.public);
      }
      if (first.kind === 'skipped' && req.refuseExisting !== false) throw StorageErrors.fileExists(`${req.file} on image_server ${req.server.id}`);
      const row = this.newRow({
        kind: 'upload', file: req.file, local_path: req.localPath, server: req.server, wallet: req.wallet, owner: req.owner ?? '',
        total: st.size, done: 0, operationId: req.operationId,
      });
      this.trackUpload(row, req.server, up);
      return row;
    } finally {
      this.reserved.delete(key);
    }
  }

  private uploadRun(server: ImageServer, localPath: string, file: string): UploadRun {
    let bytes = 0;
    let pending = '';
    let settle: (v: UploadStart) => void = () => undefined;
    const started = new Promise<UploadStart>((resolve) => (settle = resolve));
    const onStdout = (chunk: string) => {
      pending += chunk;
      const parts = pending.split(/[\r\n]/);
      pending = parts.pop() ?? '';
      for (const p of parts) {
        if (p.startsWith('<f')) settle({ kind: 'transferring' });
        const m = /^\s*([\d,.]+)\s+\d+%/.exec(p);
        if (m) bytes = Number(m[1]!.replace(/[,.]/g, ''));
      }
    };
    // an authenticated upload module when this process holds credentials for the centre: the password comes from
    // a file (--password-file), never from the command line
    const cred = this.credFor(server);
    const args = [
      '--partial', `--partial-dir=${REMOTE_PARTIAL_DIR}`, '--ignore-existing', '--itemize-changes', '--chmod=F644', '--info=progress2',
      '--no-motd', ...commonArgs(this.o), ...this.bwArgs(), ...(cred ? [`--password-file=${cred.passwordFile}`] : []),
      localPath, rsyncUrl(server, file, cred ? { user: cred.user, module: cred.uploadModule } : undefined),
    ];
    const run = runRsync(args, { ...this.o, onStdout });
    void run.done.then((r) =>
      settle(r.code === 0 ? { kind: 'skipped' } : { kind: 'failed', reason: rsyncReason(r.stderr, r.code), public: publicRsyncReason(r.stderr, r.code) }),
    );
    return { run, bytes: () => bytes, started };
  }

  private spawnUpload(row: TransferRow, server: ImageServer): void {
    this.trackUpload(row, server, this.uploadRun(server, row.local_path, row.file));
  }

  private trackUpload(row: TransferRow, server: ImageServer, up: UploadRun): void {
    this.track(row, up.run, up.bytes, async (result) => {
      if (result === 'failed') {
        // keep no partial on the centre for a transfer that cannot be resumed
        const empty = mkdtempSync(join(os.tmpdir(), 'dbc-empty-'));
        try {
          await removeRemotePartial(server, REMOTE_PARTIAL_DIR, row.file, empty, this.o, this.credFor(server));
        } finally {
          rmSync(empty, { recursive: true, force: true });
        }
      }
    });
  }

  // --- stop -----------------------------------------------------------------------------------------------

  /**
   * stop the live transfer of file; its partial data is kept for a resume. With `wallet`, only a transfer that
   * wallet started: another wallet's is answered as if there were none.
   */
  async stop(kind: TransferRow['kind'], file: string, wallet?: string): Promise<TransferRow> {
    const live = [...this.live.values()].find(
      (l) => l.key === keyOf(kind, file) && (wallet === undefined || this.o.repo.transfer(l.id)?.wallet === wallet),
    );
    if (!live) throw kind === 'download' ? StorageErrors.notInDownloading(file) : StorageErrors.notInUploading(file);
    live.stop = 'user';
    live.run?.child.kill('SIGTERM');
    await live.finished;
    return this.o.repo.transfer(live.id)!;
  }

  /** stop (if live) and forget a download, removing its partial file */
  async discardDownload(file: string, destDir: string): Promise<void> {
    if (this.isLive('download', file)) await this.stop('download', file).catch(() => undefined);
    rmSync(stagingPathOf(join(destDir, file), file), { force: true });
  }

  // --- internals ------------------------------------------------------------------------------------------

  private bwArgs(): string[] {
    return this.bwlimit > 0 ? [`--bwlimit=${this.bwlimit}`] : [];
  }

  private newRow(p: {
    kind: TransferRow['kind']; file: string; local_path: string; server: ImageServer; wallet: string; owner: string;
    total: number; done: number; operationId?: string;
  }): TransferRow {
    const now = Date.now();
    const opId = p.operationId ?? this.o.ops?.create(p.kind === 'download' ? 'image_download' : 'image_upload', p.wallet, '') ?? '';
    const row: TransferRow = {
      id: randomUUID(),
      kind: p.kind,
      file: p.file,
      local_path: p.local_path,
      server: formatImageServer(p.server),
      wallet: p.wallet,
      owner: p.owner,
      operation_id: opId,
      status: 'running',
      total_bytes: p.total,
      done_bytes: p.done,
      error: '',
      pid: 0,
      created_at: now,
      updated_at: now,
    };
    this.o.repo.insertTransfer(row);
    return row;
  }

  private ownsOp(row: TransferRow): boolean {
    return row.operation_id !== '' && row.owner === '';
  }

  /**
   * Follow one rsync run: progress every interval, then the outcome. `after` runs with the outcome before the
   * record is final ('ok' may throw: the transfer then fails).
   */
  private track(row: TransferRow, run: RsyncRun, bytesNow: () => number, after: (result: 'ok' | 'failed') => Promise<void>): void {
    const id = row.id;
    this.o.repo.updateTransfer(id, { status: 'running', pid: run.pid, error: '' });
    const live: Live = { id, key: keyOf(row.kind, row.file), run, finished: Promise.resolve() };
    const tick = () => {
      const done = Math.min(bytesNow(), row.total_bytes);
      if (done <= 0) return;
      this.o.repo.updateTransfer(id, { done_bytes: done });
      if (this.ownsOp(row)) this.o.ops?.update(row.operation_id, { progress: Math.min(99, pct(done, row.total_bytes)), stage: row.kind === 'download' ? 'downloading' : 'uploading' });
      const cur = this.o.repo.transfer(id);
      if (cur) this.emitProgress(cur);
    };
    live.timer = setInterval(tick, this.o.progressIntervalMs ?? 500);
    live.finished = (async () => {
      const r = await run.done;
      clearInterval(live.timer);
      let status: TransferStatus;
      let error = '';
      let keepBytes = Math.min(bytesNow(), row.total_bytes);
      try {
        if (live.stop === 'user') {
          status = 'stopped';
          error = 'stopped';
        } else if (live.stop === 'close') {
          status = 'interrupted';
          error = 'node shutdown';
        } else if (r.code === 0) {
          await after('ok');
          status = 'done';
          keepBytes = row.total_bytes;
        } else if (r.signal !== null || (r.code !== null && RESUMABLE_EXIT.has(r.code))) {
          status = 'interrupted';
          error = `interrupted (${r.signal ?? `rsync exit ${r.code}`}): ${publicRsyncReason(r.stderr, r.code)}; ${row.kind} again to resume`;
        } else {
          status = 'failed';
          error = publicRsyncReason(r.stderr, r.code);
        }
        if (r.code !== 0 && !live.stop) this.o.log.warn({ transfer: id, rsync: rsyncReason(r.stderr, r.code) }, 'rsync failed');
      } catch (err) {
        status = 'failed';
        error = err instanceof Error ? err.message : String(err);
      }
      if (status === 'failed') {
        keepBytes = 0;
        await after('failed').catch((err) => this.o.log.warn({ err: String(err), transfer: id }, 'cleanup after a failed transfer failed'));
      }
      this.o.repo.updateTransfer(id, { status, error: error.slice(0, 2000), pid: 0, done_bytes: keepBytes });
      if (this.ownsOp(row)) {
        if (status === 'done') this.o.ops?.update(row.operation_id, { status: 'done', progress: 100, stage: 'done' });
        else if (status === 'stopped') this.o.ops?.update(row.operation_id, { status: 'stopped', stage: 'stopped', error: 'stopped; start it again to resume' });
        else if (status === 'interrupted' && error === 'node shutdown') this.o.ops?.update(row.operation_id, { stage: 'interrupted by a node shutdown; resumes at the next start' });
        else this.o.ops?.update(row.operation_id, { status: 'failed', stage: status, error: error.slice(0, 2000) });
      }
      this.o.log.info({ transfer: id, kind: row.kind, file: row.file, status, error }, 'image transfer ended');
      this.finalizers.delete(id);
      this.live.delete(id);
      const final = this.o.repo.transfer(id);
      if (final) for (const l of this.listeners) l(final);
    })().catch((err) => this.o.log.error({ err: String(err), transfer: id }, 'transfer tracking failed'));
    this.live.set(id, live);
  }

  private readonly progressListeners: FinishListener[] = [];
  onProgress(listener: FinishListener): void {
    this.progressListeners.push(listener);
  }
  private emitProgress(row: TransferRow): void {
    for (const l of this.progressListeners) l(row);
  }

  get isClosing(): boolean {
    return this.closing;
  }
}

function keyOf(kind: TransferRow['kind'], file: string): string {
  return `${kind}:${file}`;
}

export function stagingPathOf(dest: string, file: string): string {
  return join(dest, '..', STAGING_DIR, file);
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

export function pct(done: number, total: number): number {
  if (total <= 0) return 100;
  return Math.floor((done * 100) / total);
}

/** an rsync left running by a daemon that was killed: stop it before a new one writes the same file */
async function killOrphan(pid: number, mustMention: string): Promise<void> {
  let cmd: string;
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmd.startsWith('rsync') || !cmd.includes(mustMention)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 50; i++) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/\) Z /.test(stat)) return;
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** TransferRepo in memory (the client gateway's own uploads) */
export class MemoryTransferRepo implements TransferRepo {
  private readonly rows = new Map<string, TransferRow>();
  private seq = 0;
  private readonly order = new Map<string, number>();

  insertTransfer(row: TransferRow): void {
    this.rows.set(row.id, { ...row });
    this.order.set(row.id, this.seq++);
  }
  updateTransfer(id: string, changes: Partial<Omit<TransferRow, 'id' | 'created_at' | 'updated_at'>>): void {
    const r = this.rows.get(id);
    if (r) Object.assign(r, changes, { updated_at: Date.now() });
  }
  transfer(id: string): TransferRow | undefined {
    const r = this.rows.get(id);
    return r ? { ...r } : undefined;
  }
  transfersOf(kind: TransferRow['kind'], file: string): TransferRow[] {
    return [...this.rows.values()]
      .filter((r) => r.kind === kind && r.file === file)
      .sort((a, b) => this.order.get(b.id)! - this.order.get(a.id)!)
      .map((r) => ({ ...r }));
  }
  transfersWithStatus(status: TransferStatus): TransferRow[] {
    return [...this.rows.values()].filter((r) => r.status === status).map((r) => ({ ...r }));
  }
  deleteTransfer(id: string): void {
    this.rows.delete(id);
    this.order.delete(id);
  }
}

export { RsyncError };
