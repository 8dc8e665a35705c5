// One runner for every long action of a node: VM lifecycle, disks, snapshots, image transfers.
//
// - a lock per key (a task id, or a transfer's file): a locked operation is refused with the caller's `busy` error
//   while another holds the key, or queued behind it (`wait`), e.g. a delete behind a create;
// - progress (percent, stage, bytes) persisted through an OperationStore and emitted on the event bus;
// - a final outcome: done, failed (with the public text of the error, never a host path or raw stderr) or stopped
//   (cancelled); an operation may also be handed off (it stays running and its owner finishes it later, e.g. a
//   snapshot whose upload a transfer carries on);
// - cancellation through an AbortSignal the work watches;
// - at start, recover(): every operation a dead daemon left unfinished is resumed by the service registered for its
//   kind, or fails definitely with `interrupted by a node restart`.
// Modelled on Incus's operations and operation locks.
import { randomUUID } from 'node:crypto';
import { publicErrorText } from '../errors/index.js';
import type { Logger } from '../util/logger.js';
import type { EventBus } from './events.js';
import type { Operation, OperationStore, Progress } from './types.js';

export interface OpContext {
  readonly id: string;
  /** aborted by cancel(id) or by close(); the work stops and rejects (the operation then ends `stopped`) */
  readonly signal: AbortSignal;
  progress(p: Progress): void;
  /** let go of the lock before the work ends (e.g. a snapshot: the task is locked only while vda is read) */
  unlock(): void;
}

export interface OpOutcome {
  /** the last stage shown, e.g. `closed by ACPI shutdown` */
  stage: string;
  /** the operation stays running: its owner ends it later with finish(), fail() or stop() */
  handedOff?: boolean;
}

export interface LockSpec {
  key: string;
  /** queue behind the holder instead of refusing */
  wait?: boolean;
  /** the error thrown (synchronously, before anything is recorded) while the key is held */
  busy: () => Error;
}

export interface RunOptions {
  kind: string;
  /** '' when the operation belongs to no task */
  taskId: string;
  wallet: string;
  lock?: LockSpec;
  /** continue this persisted operation (resumed after a node restart) instead of creating a new one */
  resumeId?: string;
  /** runs synchronously once the lock is taken and the record exists, before start() returns */
  onStart?: (id: string) => void;
  work: (ctx: OpContext) => Promise<OpOutcome>;
  /** runs when work throws, before the operation is marked failed or stopped (e.g. set the task's error status) */
  onError?: (err: unknown, ctx: OpContext) => Promise<void> | void;
}

export interface OpHandle {
  id: string;
  /** settles when the work does: the final record, or the work's error (the operation is failed or stopped by then) */
  done: Promise<Operation>;
}

/** resumes an operation a dead daemon left running; true when it took it over */
export type Resumer = (op: Operation) => boolean | Promise<boolean>;

export class OperationCancelled extends Error {
  /** `error`: how to go on, kept in the record (e.g. `stopped; start it again to resume`) */
  constructor(
    readonly reason: string,
    readonly error = '',
  ) {
    super(reason);
    this.name = 'OperationCancelled';
  }
}

export class Operations {
  /** key -> how many operations hold or wait for it, and what settles when the last of them lets go */
  private readonly locks = new Map<string, { holders: number; tail: Promise<void> }>();
  private readonly live = new Map<string, AbortController>();
  private readonly running = new Set<Promise<unknown>>();
  private readonly resumers = new Map<string, Resumer>();

  constructor(
    private readonly store: OperationStore,
    readonly events: EventBus,
    private readonly log: Logger,
  ) {}

  /** an operation holds key now (or is queued on it) */
  isLocked(key: string): boolean {
    return this.locks.has(key);
  }

  /** keys held now */
  lockedKeys(): Set<string> {
    return new Set(this.locks.keys());
  }

  get(id: string): Operation | undefined {
    return this.store.operation(id);
  }

  /** the latest operations of a task, newest first */
  /**
   * the operation once it is no longer pending or running, or as it is when timeoutMs passes first (operations/<id>/wait);
   * undefined when it does not exist
   */
  async waitEnded(id: string, timeoutMs: number): Promise<Operation | undefined> {
    const ended = (op: Operation | undefined) => !op || (op.status !== 'pending' && op.status !== 'running');
    const now = this.get(id);
    if (ended(now) || timeoutMs <= 0) return now;
    return new Promise((resolve) => {
      const off = this.events.on((e) => {
        if (e.type === 'operation.finished' && e.operation.id === id) finish();
      });
      const timer = setTimeout(() => finish(), timeoutMs);
      function finish(): void {
        off();
        clearTimeout(timer);
        resolve(undefined);
      }
    }).then(() => this.get(id));
  }

  ofTask(taskId: string): Operation[] {
    return this.store.operationsOfTask(taskId);
  }

  /** an account's operations (every kind), newest first; one task's when taskId is given */
  ofWallet(wallet: string, taskId?: string): Operation[] {
    return this.store.operationsOfWallet(wallet, taskId);
  }

  /**
   * Start an operation. Throws lock.busy() synchronously when the key is held (and not `wait`); otherwise the
   * record exists and onStart has run when this returns.
   */
  start(o: RunOptions): OpHandle {
    if (o.lock && !o.lock.wait && this.locks.has(o.lock.key)) throw o.lock.busy();
    const op = o.resumeId ? this.resume(o.resumeId) : this.create(o.kind, o.taskId, o.wallet);
    const id = op.id;
    const abort = new AbortController();
    this.live.set(id, abort);
    let previous: Promise<void> | undefined;
    let release: () => void = () => undefined;
    if (o.lock) {
      const key = o.lock.key;
      const entry = this.locks.get(key) ?? { holders: 0, tail: Promise.resolve() };
      previous = entry.holders > 0 ? entry.tail : undefined;
      let resolve: () => void = () => undefined;
      const released = new Promise<void>((r) => (resolve = r));
      // a queued holder lets go only after the one before it did
      entry.tail = previous ? Promise.all([previous, released]).then(() => undefined) : released;
      entry.holders++;
      this.locks.set(key, entry);
      let letGo = false;
      release = () => {
        if (letGo) return;
        letGo = true;
        resolve();
        // the key is free the moment its last holder lets go (no microtask lag for isLocked)
        if (--entry.holders === 0 && this.locks.get(key) === entry) this.locks.delete(key);
      };
    }
    const ctx: OpContext = { id, signal: abort.signal, progress: (p) => this.progress(id, p), unlock: () => release() };
    o.onStart?.(id);
    const done = (async (): Promise<Operation> => {
      if (previous) await previous.catch(() => undefined);
      try {
        const outcome = await o.work(ctx);
        if (!outcome.handedOff) this.finish(id, outcome.stage);
        else this.update(id, { stage: outcome.stage }, 'operation.progress');
        this.log.info({ operation_id: id, task_id: o.taskId || undefined, op: o.kind, stage: outcome.stage }, 'operation done');
      } catch (err) {
        const cancelled = abort.signal.aborted || err instanceof OperationCancelled;
        this.log.warn(
          { operation_id: id, task_id: o.taskId || undefined, op: o.kind, err: err instanceof Error ? err.message : String(err) },
          cancelled ? 'operation stopped' : 'operation failed',
        );
        try {
          await o.onError?.(err, ctx);
        } catch (hookErr) {
          this.log.warn({ operation_id: id, err: String(hookErr) }, 'operation error hook failed');
        }
        if (cancelled) this.stop(id, err instanceof OperationCancelled ? err.reason : 'stopped', err instanceof OperationCancelled ? err.error : '');
        else this.fail(id, err);
        throw err;
      } finally {
        this.live.delete(id);
        release();
      }
      return this.store.operation(id) ?? op;
    })();
    // nobody has to await done: a failure is in the record and the log
    done.catch(() => undefined);
    const tracked = done.catch(() => undefined);
    this.running.add(tracked);
    void tracked.finally(() => this.running.delete(tracked));
    return { id, done };
  }

  /** a progress step of a running operation (its work, or its owner after a hand-off) */
  progress(id: string, p: Progress): void {
    const changes: Parameters<OperationStore['updateOperation']>[1] = {};
    if (p.percent !== undefined) changes.progress = Math.max(0, Math.min(99, Math.floor(p.percent)));
    if (p.stage !== undefined) changes.stage = p.stage;
    if (p.bytesDone !== undefined) changes.bytes_done = p.bytesDone;
    if (p.bytesTotal !== undefined) changes.bytes_total = p.bytesTotal;
    this.update(id, changes, 'operation.progress');
  }

  /** the operation ended well */
  finish(id: string, stage: string): void {
    const cur = this.store.operation(id);
    const bytes = cur && cur.bytes_total > 0 ? { bytes_done: cur.bytes_total } : {};
    this.update(id, { status: 'done', progress: 100, stage, error: '', ...bytes }, 'operation.finished');
  }

  /** the operation failed; the text kept is the error's public text */
  fail(id: string, err: unknown, stage?: string): void {
    this.update(id, { status: 'failed', error: publicErrorText(err), ...(stage !== undefined ? { stage } : {}) }, 'operation.finished');
  }

  /** the operation was stopped on request; `error` says how to go on (e.g. start it again to resume) */
  stop(id: string, stage: string, error = ''): void {
    this.update(id, { status: 'stopped', stage, ...(error ? { error } : {}) }, 'operation.finished');
  }

  /** a handed-off or resumed operation runs again (e.g. an upload resumed after a node restart) */
  reopen(id: string, stage: string): void {
    this.update(id, { status: 'running', error: '', stage }, 'operation.progress');
  }

  /** ask a live operation to stop; false when it is not running here */
  cancel(id: string, reason = 'stopped'): boolean {
    const a = this.live.get(id);
    if (!a) return false;
    a.abort(new OperationCancelled(reason));
    return true;
  }

  /** operations of `kinds` left unfinished by a dead daemon go to `resume` (at most one resumer per kind) */
  resumable(kinds: readonly string[], resume: Resumer): void {
    for (const k of kinds) this.resumers.set(k, resume);
  }

  /**
   * At start, after every service registered its resumers: each unfinished operation is resumed by its kind's
   * resumer, or fails definitely.
   */
  async recover(): Promise<void> {
    for (const op of this.store.unfinishedOperations()) {
      if (this.live.has(op.id)) continue;
      const resumer = this.resumers.get(op.kind);
      let taken = false;
      try {
        taken = resumer ? await resumer(op) : false;
      } catch (err) {
        this.log.warn({ operation_id: op.id, op: op.kind, err: String(err) }, 'resuming an operation failed');
      }
      if (!taken && this.store.operation(op.id)?.status === op.status) {
        this.update(op.id, { status: 'failed', error: 'interrupted by a node restart' }, 'operation.finished');
      }
    }
  }

  /** wait until no operation runs (tests, shutdown) */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  private create(kind: string, taskId: string, wallet: string): Operation {
    const op = this.store.createOperation({ id: randomUUID(), task_id: taskId, wallet, kind, status: 'running' });
    this.events.emit({ type: 'operation.started', operation: op });
    return op;
  }

  private resume(id: string): Operation {
    const op = this.store.operation(id);
    if (!op) throw new Error(`operation ${id} not found`);
    this.update(id, { status: 'running', error: '' }, 'operation.progress');
    return { ...op, status: 'running', error: '' };
  }

  private update(id: string, changes: Parameters<OperationStore['updateOperation']>[1], type: 'operation.progress' | 'operation.finished'): void {
    this.store.updateOperation(id, changes);
    const op = this.store.operation(id);
    if (op) this.events.emit({ type, operation: op });
  }
}
