// The rsync runs of image transfers that are live in this process, and their records: each run followed to its end
// (progress in the record at an interval, then the outcome: done, stopped, interrupted, failed), killable by a stop
// or a shutdown. images/transfers.ts decides what runs and in which operation; this module only follows.
import { randomUUID } from 'node:crypto';
import type { TransferRepo, TransferRow, TransferStatus } from '../store/tasks.js';
import type { Logger } from '../util/logger.js';
import { publicRsyncReason, RESUMABLE_EXIT, rsyncReason, type RsyncRun } from './rsync.js';
import type { TransferJob } from './rsync-jobs.js';
import { formatImageServer, type ImageServer } from './servers.js';

export type TransferListener = (row: TransferRow) => void;

export interface LiveRun {
  /** the transfer id */
  id: string;
  /** `<kind>:<file>` */
  key: string;
  operationId: string;
  run: RsyncRun;
  /** why it is being ended: a stop (record `stopped`) or a node shutdown (record `interrupted`, resumed later) */
  stop?: 'user' | 'close';
}

export function transferKey(kind: TransferRow['kind'], file: string): string {
  return `${kind}:${file}`;
}

/** a new record (status running, no operation yet) */
export function newTransferRow(p: {
  kind: TransferRow['kind'];
  file: string;
  local_path: string;
  server: ImageServer;
  wallet: string;
  owner: string;
  total: number;
  done: number;
}): TransferRow {
  const now = Date.now();
  return {
    id: randomUUID(),
    kind: p.kind,
    file: p.file,
    local_path: p.local_path,
    server: formatImageServer(p.server),
    wallet: p.wallet,
    owner: p.owner,
    operation_id: '',
    status: 'running',
    total_bytes: p.total,
    done_bytes: p.done,
    error: '',
    pid: 0,
    created_at: now,
    updated_at: now,
  };
}

/** a record a dead daemon left running, or interrupted by its shutdown (a killed rsync resumes on request only) */
export function isResumable(row: TransferRow): boolean {
  return row.status === 'running' || (row.status === 'interrupted' && row.error === 'node shutdown');
}

export class TransferRuns {
  private readonly live = new Map<string, LiveRun>();
  /** transfer id -> settles when the record (and the operation that waits on it) is final */
  private readonly endings = new Map<string, Promise<void>>();
  private readonly finishListeners: TransferListener[] = [];
  private readonly progressListeners: TransferListener[] = [];

  constructor(private readonly o: { repo: TransferRepo; log: Pick<Logger, 'info' | 'warn' | 'error'>; progressIntervalMs?: number }) {}

  onFinish(listener: TransferListener): void {
    this.finishListeners.push(listener);
  }

  onProgress(listener: TransferListener): void {
    this.progressListeners.push(listener);
  }

  get(id: string): LiveRun | undefined {
    return this.live.get(id);
  }

  all(): LiveRun[] {
    return [...this.live.values()];
  }

  find(pred: (l: LiveRun) => boolean): LiveRun | undefined {
    return this.all().find(pred);
  }

  /** end the run (SIGTERM); the first reason given is the one recorded */
  kill(live: LiveRun | undefined, why: 'user' | 'close'): void {
    if (!live) return;
    live.stop ??= why;
    live.run.child.kill('SIGTERM');
  }

  /** what settled(id) waits for: the transfer and whatever completes after it (its operation) */
  awaitOnSettle(id: string, p: Promise<unknown>): void {
    const e = p.then(
      () => undefined,
      () => undefined,
    );
    this.endings.set(id, e);
    void e.then(() => {
      if (this.endings.get(id) === e) this.endings.delete(id);
    });
  }

  ended(id: string): Promise<void> | undefined {
    return this.endings.get(id);
  }

  /**
   * Follow one rsync run: progress every interval (to `report` and the progress listeners), then the outcome in the
   * record. A clean exit runs the job's completion (which may still fail the transfer); a failure its cleanup.
   * The run is live (get/find) from the call on.
   */
  follow(row: TransferRow, job: TransferJob, report: TransferListener): Promise<TransferRow> {
    const id = row.id;
    this.o.repo.updateTransfer(id, { status: 'running', pid: job.run.pid, error: '' });
    const live: LiveRun = { id, key: transferKey(row.kind, row.file), operationId: row.operation_id, run: job.run };
    this.live.set(id, live);
    const tick = () => {
      const done = Math.min(job.bytes(), row.total_bytes);
      if (done <= 0) return;
      this.o.repo.updateTransfer(id, { done_bytes: done });
      const cur = this.o.repo.transfer(id);
      if (!cur) return;
      report(cur);
      for (const l of this.progressListeners) l(cur);
    };
    const timer = setInterval(tick, this.o.progressIntervalMs ?? 500);
    return (async () => {
      const r = await job.run.done;
      clearInterval(timer);
      let status: TransferStatus;
      let error = '';
      let keepBytes = Math.min(job.bytes(), row.total_bytes);
      try {
        if (live.stop === 'user') {
          status = 'stopped';
          error = 'stopped';
        } else if (live.stop === 'close') {
          status = 'interrupted';
          error = 'node shutdown';
        } else if (r.code === 0) {
          await job.complete();
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
        await job.cleanup().catch((err) => this.o.log.warn({ err: String(err), transfer: id }, 'cleanup after a failed transfer failed'));
      }
      this.o.repo.updateTransfer(id, { status, error: error.slice(0, 2000), pid: 0, done_bytes: keepBytes });
      this.o.log.info({ transfer: id, kind: row.kind, file: row.file, status, error }, 'image transfer ended');
      this.live.delete(id);
      const final = this.o.repo.transfer(id) ?? { ...row, status, error, pid: 0, done_bytes: keepBytes };
      for (const l of this.finishListeners) {
        try {
          l(final);
        } catch (err) {
          this.o.log.warn({ err: String(err), transfer: id }, 'transfer listener failed');
        }
      }
      return final;
    })();
  }
}
