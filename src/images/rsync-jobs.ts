// The two rsync strategies of image transfers (images/transfers.ts follows them, the ops layer records them).
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
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { StorageErrors } from '../errors/index.js';
import type { TransferRow } from '../store/tasks.js';
import type { Logger } from '../util/logger.js';
import { freeBytes } from './names.js';
import {
  commonArgs,
  publicRsyncReason,
  removeRemotePartial,
  RsyncError,
  rsyncReason,
  runRsync,
  statRemote,
  type RsyncOptions,
  type RsyncRun,
} from './rsync.js';
import type { UploadCredential } from './secrets.js';
import { rsyncUrl, type ImageServer } from './servers.js';

export const STAGING_DIR = '.dbc-transfers';
export const REMOTE_PARTIAL_DIR = '.dbc-partial';
/** headroom kept free when a download is admitted */
const SPACE_MARGIN = 16 * 1024 * 1024;

/** checks (and may fix) a downloaded file before it is renamed into place; throw to fail the download */
export type Finalizer = (stagingPath: string, destDir: string) => Promise<void>;

/** what both strategies need of the transfer manager */
export interface RsyncJobConfig extends RsyncOptions {
  /** rsync --bwlimit in KiB/s (0: none) */
  bwlimitKiB: number;
  /** the upload credential for a centre, when this process holds one */
  credFor(server: ImageServer): UploadCredential | undefined;
}

/** one rsync run of a transfer and what follows its end */
export interface TransferJob {
  run: RsyncRun;
  /** bytes moved so far */
  bytes(): number;
  /** after a clean exit: check the result and put it in place; throws when the transfer must fail */
  complete(): Promise<void>;
  /** after a failure: remove what cannot be resumed */
  cleanup(): Promise<void>;
}

export function stagingPathOf(dest: string, file: string): string {
  return join(dest, '..', STAGING_DIR, file);
}

export function sizeOf(path: string): number {
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

function bwArgs(cfg: RsyncJobConfig): string[] {
  return cfg.bwlimitKiB > 0 ? [`--bwlimit=${cfg.bwlimitKiB}`] : [];
}

// --- download ---------------------------------------------------------------------------------------------

export function downloadRun(cfg: RsyncJobConfig, server: ImageServer, file: string, staging: string): RsyncRun {
  return runRsync(['--append-verify', '--no-motd', ...commonArgs(cfg), ...bwArgs(cfg), rsyncUrl(server, file), staging], cfg);
}

/**
 * The checks of a download, with rsync already running: the centre is asked for the file's size in parallel (each
 * rsync connection costs ~0.1 s of handshake), so a missing file, a full disk or an unreachable centre still gets
 * its error, and the speculative rsync is stopped and its bytes removed. `partial`: the bytes a stopped download
 * left (the run appends to them).
 */
export async function admitDownload(
  cfg: RsyncJobConfig,
  server: ImageServer,
  file: string,
  destDir: string,
): Promise<{ run: RsyncRun; total: number; partial: number }> {
  const staging = stagingPathOf(join(destDir, file), file);
  mkdirSync(join(destDir, STAGING_DIR), { recursive: true });
  let partial = sizeOf(staging);
  const free = freeBytes(destDir);
  let run = downloadRun(cfg, server, file, staging);
  const abort = async (removePartial: boolean) => {
    run.child.kill('SIGTERM');
    await run.done;
    if (removePartial) rmSync(staging, { force: true });
  };
  let remote;
  try {
    remote = await statRemote(server, file, cfg);
  } catch (err) {
    await abort(partial === 0);
    throw StorageErrors.listFailed(err instanceof RsyncError ? publicRsyncReason(err.stderr, err.exitCode) : 'the image server is unreachable');
  }
  if (!remote) {
    await abort(true);
    throw StorageErrors.remoteNotExist(file);
  }
  if (partial > remote.size) {
    // a partial file of another version of the image: start over
    await abort(true);
    partial = 0;
    run = downloadRun(cfg, server, file, staging);
  }
  const need = remote.size - partial;
  if (free < need + SPACE_MARGIN) {
    await abort(partial === 0);
    throw StorageErrors.noSpace(destDir, need, free);
  }
  return { run, total: remote.size, partial };
}

/** a download into row.local_path through its staging file */
export function downloadJob(row: TransferRow, run: RsyncRun, finalize?: Finalizer): TransferJob {
  const staging = stagingPathOf(row.local_path, row.file);
  return {
    run,
    bytes: () => sizeOf(staging),
    async complete() {
      const size = sizeOf(staging);
      if (size !== row.total_bytes || !existsSync(staging)) {
        throw new Error(`the image changed on the image server during the download (got ${size} of ${row.total_bytes} bytes)`);
      }
      if (finalize) await finalize(staging, join(row.local_path, '..'));
      if (existsSync(row.local_path)) throw new Error(`image file:${row.file} appeared during the download`);
      renameSync(staging, row.local_path);
    },
    async cleanup() {
      rmSync(staging, { force: true });
    },
  };
}

// --- upload -----------------------------------------------------------------------------------------------

export type UploadStart = { kind: 'transferring' } | { kind: 'skipped' } | { kind: 'failed'; reason: string; public: string };

export interface UploadRun {
  run: RsyncRun;
  bytes: () => number;
  /** settles at the first itemized line (the file is being sent) or at the exit */
  started: Promise<UploadStart>;
}

/**
 * No separate question to the centre: rsync runs with --ignore-existing --itemize-changes, and its first itemized
 * line (`<f...`) says the file is being sent; an exit without one means the centre already had it.
 */
export function uploadRun(cfg: RsyncJobConfig, server: ImageServer, localPath: string, file: string): UploadRun {
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
      if (m?.[1]) bytes = Number(m[1].replace(/[,.]/g, ''));
    }
  };
  // an authenticated upload module when this process holds credentials for the centre: the password comes from
  // a file (--password-file), never from the command line
  const cred = cfg.credFor(server);
  const args = [
    '--partial',
    `--partial-dir=${REMOTE_PARTIAL_DIR}`,
    '--ignore-existing',
    '--itemize-changes',
    '--chmod=F644',
    '--info=progress2',
    '--no-motd',
    ...commonArgs(cfg),
    ...bwArgs(cfg),
    ...(cred ? [`--password-file=${cred.passwordFile}`] : []),
    localPath,
    rsyncUrl(server, file, cred ? { user: cred.user, module: cred.uploadModule } : undefined),
  ];
  const run = runRsync(args, { ...cfg, onStdout });
  void run.done.then((r) =>
    settle(r.code === 0 ? { kind: 'skipped' } : { kind: 'failed', reason: rsyncReason(r.stderr, r.code), public: publicRsyncReason(r.stderr, r.code) }),
  );
  return { run, bytes: () => bytes, started };
}

/**
 * The checks of an upload: rsync's first itemized line says the file is being sent (the run goes on); an exit
 * before it is a refusal, or the centre already has the file (`refuseExisting`, default true: refused too).
 */
export async function admitUpload(
  cfg: RsyncJobConfig,
  log: Pick<Logger, 'warn'>,
  req: { server: ImageServer; localPath: string; file: string; refuseExisting?: boolean },
): Promise<UploadRun> {
  const up = uploadRun(cfg, req.server, req.localPath, req.file);
  const first = await up.started;
  if (first.kind === 'failed') {
    log.warn({ file: req.file, server: req.server.id, reason: first.reason }, 'image upload refused');
    throw StorageErrors.uploadFailed(first.public);
  }
  if (first.kind === 'skipped' && req.refuseExisting !== false) throw StorageErrors.fileExistsOnServer(req.file, req.server.id);
  return up;
}

/** an upload of row.local_path; a failed one leaves no partial on the centre (it cannot be resumed) */
export function uploadJob(cfg: RsyncJobConfig, row: TransferRow, server: ImageServer, up: UploadRun): TransferJob {
  return {
    run: up.run,
    bytes: up.bytes,
    async complete() {
      // the centre has the file
    },
    async cleanup() {
      const empty = mkdtempSync(join(os.tmpdir(), 'dbc-empty-'));
      try {
        await removeRemotePartial(server, REMOTE_PARTIAL_DIR, row.file, empty, cfg, cfg.credFor(server));
      } finally {
        rmSync(empty, { recursive: true, force: true });
      }
    },
  };
}
