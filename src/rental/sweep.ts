// The rental expiry sweep: every sweepIntervalMs it asks the RentalSource who rents the machine and acts on the VMs
// of renters whose rental ended (stop them, end their sessions, delete them after the grace), and deletes committee
// check VMs (`vm_check_*`) once the machine is no longer being verified. It reaches the VMs only through
// ExpiryTarget (the task side implements it) and the sessions through SessionEnder, so rental/ needs neither vm/
// nor node/. GpuNode starts and stops it; its authorisation path uses dropCheckVms as the original's did.
import { accountKeyHex } from '../auth/verify.js';
import type { Logger } from '../util/logger.js';
import { RentalUnavailableError, type Rental, type RentalSource } from './types.js';

/** committee verifiers' VMs: `vm_check_<unix seconds>` (original §6.1) */
export const CHECK_VM_PREFIX = 'vm_check_';
export const isCheckVm = (t: { task_id: string }): boolean => t.task_id.startsWith(CHECK_VM_PREFIX);

export interface ExpiryPolicy {
  /** how often rentals are checked for their end */
  sweepIntervalMs: number;
  /** VMs of an ended rental are deleted this long after they were stopped (the original: 3 days) */
  deleteGraceMs: number;
}

export const DEFAULT_EXPIRY: ExpiryPolicy = { sweepIntervalMs: 60_000, deleteGraceMs: 3 * 24 * 3600_000 };

/** what the sweep reads of a VM */
export interface SweptTask {
  task_id: string;
  /** the renter account that owns the VM */
  wallet: string;
  status: string;
}

/** what the sweep needs from the task side (the VM lifecycle implements it) */
export interface ExpiryTarget<T extends SweptTask = SweptTask> {
  /** every VM of this node */
  all(): T[];
  /** an operation runs on the VM now */
  isBusy(taskId: string): boolean;
  /** delete a VM (a committee check VM); starts the deletion and returns */
  remove(task: T): unknown;
  /** stop every VM of account because its rental ended; remembers when, for the grace period */
  closeForExpiry(account: string, nowMs: number): void;
  /** delete the VMs of account that were closed for expiry more than graceMs ago */
  deleteExpired(account: string, nowMs: number, graceMs: number): void;
  /** the rental came back (relet): forget the expiry mark */
  clearExpiry(account: string): void;
}

/** the renter sessions of an account end with its rental (auth/sessions.ts) */
export interface SessionEnder {
  end(account: string): unknown;
}

export interface RentalSweepDeps<T extends SweptTask> {
  source: RentalSource;
  target: ExpiryTarget<T>;
  sessions: SessionEnder;
  log: Logger;
  now: () => number;
  policy?: ExpiryPolicy;
}

export class RentalSweep<T extends SweptTask = SweptTask> {
  readonly policy: ExpiryPolicy;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly d: RentalSweepDeps<T>) {
    this.policy = d.policy ?? DEFAULT_EXPIRY;
  }

  /** sweeps every sweepIntervalMs from now on (the timer does not keep the process alive) */
  start(): void {
    this.stop();
    this.timer = setInterval(() => {
      this.sweep().catch((err: unknown) => this.d.log.error({ err }, 'rental sweep failed'));
    }, this.policy.sweepIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * rentals that ended: stop their VMs, end their sessions, delete the VMs after the grace period. As the original's
   * prune: Verify → renter VMs stop; Online/Rented → committee VMs are deleted; unknown status, or a source that
   * cannot answer from fresh data (chain outage) → nothing is touched. The local registry always answers 'rented'.
   */
  async sweep(): Promise<void> {
    const now = this.d.now();
    const source = this.d.source;
    let rentals: Rental[];
    let verifying: boolean;
    try {
      const status = await source.freshMachineStatus(now);
      if (status === 'unknown') {
        this.d.log.warn({}, 'rental sweep skipped: machine status unknown');
        return;
      }
      verifying = status === 'verify';
      rentals = verifying ? [] : await source.known(now);
    } catch (err) {
      if (err instanceof RentalUnavailableError) {
        this.d.log.warn({ reason: err.message }, 'rental sweep skipped: rental source unavailable');
        return;
      }
      throw err;
    }
    if (!verifying) this.dropCheckVms();
    // the chain names renters in its own SS58 spelling: compare public keys there; the local registry by text
    const key = source.kind === 'chain' ? (a: string) => accountKeyHex(a) ?? a : (a: string) => a;
    const activeAccounts = new Set<string>();
    for (const r of rentals) if (r.untilMs > now) activeAccounts.add(key(r.account));
    const target = this.d.target;
    const owners = new Set(
      target
        .all()
        .filter((t) => !isCheckVm(t))
        .map((t) => t.wallet),
    );
    for (const account of owners) {
      if (activeAccounts.has(key(account))) {
        target.clearExpiry(account);
        continue;
      }
      target.closeForExpiry(account, now);
      this.d.sessions.end(account);
      target.deleteExpired(account, now, this.policy.deleteGraceMs);
    }
  }

  /** delete committee VMs (`vm_check_*`), except those of `keep` (the verifier now at work), as the original did */
  dropCheckVms(keep?: string): void {
    const keepKey = keep === undefined ? undefined : (accountKeyHex(keep) ?? keep);
    const target = this.d.target;
    for (const t of target.all()) {
      if (!isCheckVm(t) || t.status === 'deleting' || target.isBusy(t.task_id)) continue;
      if (keepKey !== undefined && (accountKeyHex(t.wallet) ?? t.wallet) === keepKey) continue;
      try {
        target.remove(t);
        this.d.log.info({ task_id: t.task_id, wallet: t.wallet }, 'committee check VM deleted');
      } catch (err) {
        this.d.log.warn({ err, task_id: t.task_id }, 'could not delete a committee check VM');
      }
    }
  }
}
