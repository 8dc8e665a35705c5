// What callers hand the transfer manager (images/transfers.ts): download and upload requests, and the sink of a
// transfer that runs inside another operation (a snapshot's upload).
import type { TransferRow } from '../store/tasks.js';
import type { Finalizer } from './rsync-jobs.js';
import type { ImageServer } from './servers.js';

export interface DownloadRequest {
  server: ImageServer;
  file: string;
  /** final directory (the image dir, or an allowed local_dir) */
  destDir: string;
  wallet: string;
  owner?: string;
  /** checks (and may fix) the downloaded file before it is renamed into place; throw to fail the download */
  finalize?: Finalizer;
}

export interface UploadRequest {
  server: ImageServer;
  /** local file to send */
  localPath: string;
  /** name on the image centre */
  file: string;
  wallet: string;
  /** who the transfer belongs to when not to itself, e.g. `snapshot:<task>/<name>` */
  owner?: string;
  /** refuse when the centre already has this file (default true) */
  refuseExisting?: boolean;
}

/** a transfer that runs inside another operation's work (a snapshot's upload) */
export interface TransferSink {
  operationId: string;
  /** the operation's cancellation: rsync is ended and the record says `stopped` */
  signal: AbortSignal;
  /** each progress step of the record */
  progress(row: TransferRow): void;
}

export interface StartedTransfer {
  row: TransferRow;
  /** the final record */
  done: Promise<TransferRow>;
}
