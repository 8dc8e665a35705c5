// The operations layer on its own (src/ops/): locks (refuse, queue, unlock early), progress, the three outcomes,
// hand-off, cancellation, recovery after a restart, the event bus, idle(). MemoryOperationStore keeps the records.
// One file (above ~400 lines) on purpose: the contract of one class, over one set of helpers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, MemoryOperationStore, OperationCancelled, Operations, type NodeEvent, type OpContext, type Operation } from '../../src/ops/index.js';
import { quietLogger, type Logger } from '../../src/util/logger.js';

/** a promise and its resolve, to hold work at a point */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

function setup(log: Logger = quietLogger) {
  const store = new MemoryOperationStore();
  const bus = new EventBus(log);
  const events: NodeEvent[] = [];
  bus.on((e) => events.push(e));
  const ops = new Operations(store, bus, log);
  return { store, bus, events, ops };
}

class BusyError extends Error {}
const lock = (key: string, wait = false) => ({ key, wait, busy: () => new BusyError(`${key} is busy`) });

describe('Operations: locks', () => {
  test('a locked key refuses a second operation with the busy error and records nothing for it', async () => {
    const { ops, store, events } = setup();
    const g = gate();
    const first = ops.start({ kind: 'shutdown', taskId: 't1', wallet: 'w', lock: lock('t1'), work: async () => (await g.promise, { stage: 'ok' }) });
    assert.equal(ops.isLocked('t1'), true);
    assert.deepEqual([...ops.lockedKeys()], ['t1']);
    const before = events.length;
    let onStart = false;
    assert.throws(
      () => ops.start({ kind: 'start', taskId: 't1', wallet: 'w', lock: lock('t1'), onStart: () => (onStart = true), work: async () => ({ stage: 'x' }) }),
      (err: unknown) => err instanceof BusyError && err.message === 't1 is busy',
    );
    assert.equal(onStart, false);
    assert.equal(events.length, before, 'no event for the refused operation');
    assert.deepEqual(
      store.operationsOfTask('t1').map((o) => o.id),
      [first.id],
    );
    // another key is free
    const other = ops.start({ kind: 'start', taskId: 't2', wallet: 'w', lock: lock('t2'), work: async () => ({ stage: 'x' }) });
    await other.done;
    g.open();
    await first.done;
    assert.equal(ops.isLocked('t1'), false);
    // free again once the holder ended
    await ops.start({ kind: 'start', taskId: 't1', wallet: 'w', lock: lock('t1'), work: async () => ({ stage: 'again' }) }).done;
  });

  test('`wait` queues behind the holder: the works run one after the other, in order', async () => {
    const { ops, store } = setup();
    const order: string[] = [];
    const g = gate();
    const work = (name: string, hold?: Promise<void>) => async () => {
      order.push(`${name} begins`);
      if (hold) await hold;
      await tick();
      order.push(`${name} ends`);
      return { stage: name };
    };
    const a = ops.start({ kind: 'create', taskId: 't', wallet: 'w', lock: lock('t'), work: work('a', g.promise) });
    const started: string[] = [];
    const b = ops.start({ kind: 'delete', taskId: 't', wallet: 'w', lock: lock('t', true), onStart: (id) => started.push(id), work: work('b') });
    const c = ops.start({ kind: 'delete', taskId: 't', wallet: 'w', lock: lock('t', true), work: work('c') });
    // the queued records exist at once (onStart ran), their work waits
    assert.deepEqual(started, [b.id]);
    assert.equal(store.operation(c.id)?.status, 'running');
    await tick();
    assert.deepEqual(order, ['a begins']);
    g.open();
    await Promise.all([a.done, b.done, c.done]);
    assert.deepEqual(order, ['a begins', 'a ends', 'b begins', 'b ends', 'c begins', 'c ends']);
    // a queue lets go of its key a few microtasks after its last holder's `done` settled
    await tick();
    assert.equal(ops.isLocked('t'), false);
  });

  test('unlock() lets the next operation (queued or new) start before the first ends', async () => {
    const { ops } = setup();
    const order: string[] = [];
    const unlocked = gate();
    const finishA = gate();
    const a = ops.start({
      kind: 'snapshot_create',
      taskId: 't',
      wallet: 'w',
      lock: lock('t'),
      work: async (ctx) => {
        ctx.unlock();
        unlocked.open();
        await finishA.promise;
        order.push('a ends');
        return { stage: 'uploaded' };
      },
    });
    const queued = ops.start({ kind: 'start', taskId: 't', wallet: 'w', lock: lock('t', true), work: async () => (order.push('queued runs'), { stage: 'q' }) });
    await unlocked.promise;
    await queued.done;
    assert.deepEqual(order, ['queued runs']);
    // the key is free while a still runs: an operation that does not wait is accepted
    await tick();
    assert.equal(ops.isLocked('t'), false);
    await ops.start({ kind: 'shutdown', taskId: 't', wallet: 'w', lock: lock('t'), work: async () => (order.push('new runs'), { stage: 'n' }) }).done;
    finishA.open();
    await a.done;
    assert.deepEqual(order, ['queued runs', 'new runs', 'a ends']);
  });
});

describe('Operations: progress and outcomes', () => {
  test('progress clamps the percent to 0..99 and persists stage and bytes; done means progress 100', async () => {
    const { ops, store } = setup();
    const step = gate();
    const seen: Array<Pick<Operation, 'progress' | 'stage' | 'bytes_done' | 'bytes_total'>> = [];
    let ctxOf!: OpContext;
    const g = gate();
    const h = ops.start({
      kind: 'image_download',
      taskId: '',
      wallet: 'w',
      work: async (ctx) => {
        ctxOf = ctx;
        step.open();
        await g.promise;
        return { stage: 'downloaded' };
      },
    });
    await step.promise;
    const snap = () => {
      const o = store.operation(h.id)!;
      seen.push({ progress: o.progress, stage: o.stage, bytes_done: o.bytes_done, bytes_total: o.bytes_total });
    };
    ctxOf.progress({ percent: 150 });
    snap();
    ctxOf.progress({ percent: -5 });
    snap();
    ctxOf.progress({ percent: 42.7, stage: 'copying', bytesDone: 300, bytesTotal: 1000 });
    snap();
    // a subset leaves the rest as it was
    ctxOf.progress({ bytesDone: 600 });
    snap();
    assert.deepEqual(seen, [
      { progress: 99, stage: '', bytes_done: 0, bytes_total: 0 },
      { progress: 0, stage: '', bytes_done: 0, bytes_total: 0 },
      { progress: 42, stage: 'copying', bytes_done: 300, bytes_total: 1000 },
      { progress: 42, stage: 'copying', bytes_done: 600, bytes_total: 1000 },
    ]);
    assert.equal(store.operation(h.id)?.status, 'running');
    g.open();
    const final = await h.done;
    assert.equal(final.status, 'done');
    assert.equal(final.progress, 100);
    assert.equal(final.stage, 'downloaded');
    assert.equal(final.error, '');
    assert.equal(final.bytes_done, 1000, 'done: every byte moved');
    assert.deepEqual(store.operation(h.id), final);
  });

  test('a thrown error fails the operation with its public text (a host path shows only its last component)', async () => {
    const { ops, store } = setup();
    const err = new Error('cannot open /var/lib/dbc/images/secret-base.qcow2: Permission denied\nstderr: more detail');
    const hooked: unknown[] = [];
    const statusInHook: Array<string | undefined> = [];
    const h = ops.start({
      kind: 'create',
      taskId: 't',
      wallet: 'w',
      lock: lock('t'),
      work: async () => {
        throw err;
      },
      onError: (e) => {
        hooked.push(e);
        statusInHook.push(store.operation(h.id)?.status);
      },
    });
    await assert.rejects(h.done, (e) => e === err);
    assert.deepEqual(hooked, [err]);
    assert.deepEqual(statusInHook, ['running'], 'the hook runs before the record is final');
    const op = store.operation(h.id)!;
    assert.equal(op.status, 'failed');
    assert.equal(op.error, 'cannot open secret-base.qcow2: Permission denied');
    assert.equal(ops.isLocked('t'), false);
  });

  test('an onError hook that throws does not change the outcome', async () => {
    const { ops, store } = setup();
    const h = ops.start({
      kind: 'start',
      taskId: 't',
      wallet: 'w',
      work: async () => {
        throw new Error('boom');
      },
      onError: () => {
        throw new Error('hook broke');
      },
    });
    await assert.rejects(h.done, /boom/);
    assert.equal(store.operation(h.id)?.status, 'failed');
    assert.equal(store.operation(h.id)?.error, 'boom');
  });

  test('cancel(): the work sees its signal aborted and the operation ends stopped', async () => {
    const { ops, store } = setup();
    const running = gate();
    let aborted = false;
    const h = ops.start({
      kind: 'image_upload',
      taskId: '',
      wallet: 'w',
      lock: lock('file'),
      work: (ctx) => {
        running.open();
        return new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => {
            aborted = ctx.signal.aborted;
            reject(ctx.signal.reason as Error);
          });
        });
      },
    });
    await running.promise;
    assert.equal(ops.cancel(h.id, 'stopped by the renter'), true);
    await assert.rejects(h.done, (e) => e instanceof OperationCancelled);
    assert.equal(aborted, true);
    const op = store.operation(h.id)!;
    assert.equal(op.status, 'stopped');
    assert.equal(op.stage, 'stopped by the renter');
    assert.equal(ops.isLocked('file'), false);
    // not running here (any more): nothing to cancel
    assert.equal(ops.cancel(h.id), false);
    assert.equal(ops.cancel('no-such-operation'), false);
  });

  test('work that throws OperationCancelled ends stopped with its reason and how to go on', async () => {
    const { ops, store } = setup();
    const h = ops.start({
      kind: 'image_download',
      taskId: '',
      wallet: 'w',
      work: async () => {
        throw new OperationCancelled('stopped', 'stopped; start it again to resume');
      },
    });
    await assert.rejects(h.done, OperationCancelled);
    const op = store.operation(h.id)!;
    assert.equal(op.status, 'stopped');
    assert.equal(op.stage, 'stopped');
    assert.equal(op.error, 'stopped; start it again to resume');
  });

  test('handedOff leaves the operation running (lock released); its owner ends it with finish()', async () => {
    const { ops, store, events } = setup();
    const h = ops.start({ kind: 'snapshot_create', taskId: 't', wallet: 'w', lock: lock('t'), work: async () => ({ stage: 'uploading', handedOff: true }) });
    const after = await h.done;
    assert.equal(after.status, 'running');
    assert.equal(after.stage, 'uploading');
    assert.equal(ops.isLocked('t'), false);
    assert.equal(events.filter((e) => e.type === 'operation.finished').length, 0);
    ops.progress(h.id, { percent: 70, bytesDone: 7, bytesTotal: 10 });
    assert.equal(store.operation(h.id)?.progress, 70);
    ops.finish(h.id, 'uploaded');
    const op = store.operation(h.id)!;
    assert.equal(op.status, 'done');
    assert.equal(op.progress, 100);
    assert.equal(op.stage, 'uploaded');
    assert.equal(op.bytes_done, 10);
    assert.equal(events.at(-1)?.type, 'operation.finished');
  });

  test('fail(), stop() and reopen() of a handed-off operation', async () => {
    const { ops, store } = setup();
    const a = await ops.start({ kind: 'image_upload', taskId: '', wallet: 'w', work: async () => ({ stage: 'uploading', handedOff: true }) }).done;
    ops.fail(a.id, new Error('rsync: connection refused to /srv/images/x.qcow2'), 'upload failed');
    assert.deepEqual((({ status, error, stage }) => ({ status, error, stage }))(store.operation(a.id)!), {
      status: 'failed',
      error: 'rsync: connection refused to x.qcow2',
      stage: 'upload failed',
    });
    ops.reopen(a.id, 'resuming');
    assert.deepEqual((({ status, error, stage }) => ({ status, error, stage }))(store.operation(a.id)!), { status: 'running', error: '', stage: 'resuming' });
    ops.stop(a.id, 'stopped', 'stopped; start it again to resume');
    assert.deepEqual((({ status, error, stage }) => ({ status, error, stage }))(store.operation(a.id)!), {
      status: 'stopped',
      error: 'stopped; start it again to resume',
      stage: 'stopped',
    });
  });
});

describe('Operations: recovery after a restart', () => {
  test('recover(): a resumer that takes the operation keeps it running; a kind without one fails it definitely', async () => {
    const { ops, store } = setup();
    // what a dead daemon left
    const resumable = store.createOperation({ id: 'op-create', task_id: 't1', wallet: 'w', kind: 'create', status: 'running' });
    const orphan = store.createOperation({ id: 'op-shutdown', task_id: 't2', wallet: 'w', kind: 'shutdown', status: 'running' });
    const pending = store.createOperation({ id: 'op-reset', task_id: 't3', wallet: 'w', kind: 'reset', status: 'pending' });
    const declined = store.createOperation({ id: 'op-delete', task_id: 't4', wallet: 'w', kind: 'delete', status: 'running' });
    const broken = store.createOperation({ id: 'op-upload', task_id: '', wallet: 'w', kind: 'image_upload', status: 'running' });
    const selfFinished = store.createOperation({ id: 'op-download', task_id: '', wallet: 'w', kind: 'image_download', status: 'running' });
    store.createOperation({ id: 'op-old', task_id: 't5', wallet: 'w', kind: 'start', status: 'done' });
    const offered: string[] = [];
    ops.resumable(['create', 'delete'], (op) => {
      offered.push(op.id);
      return op.kind === 'create';
    });
    ops.resumable(['image_upload'], () => {
      throw new Error('cannot resume');
    });
    ops.resumable(['image_download'], (op) => {
      // the resumer ended it itself (e.g. the file was complete): its outcome stays
      ops.finish(op.id, 'already complete');
      return false;
    });
    await ops.recover();
    assert.deepEqual(offered.sort(), ['op-create', 'op-delete']);
    assert.equal(store.operation(resumable.id)?.status, 'running');
    for (const o of [orphan, pending, declined, broken]) {
      assert.equal(store.operation(o.id)?.status, 'failed', o.kind);
      assert.equal(store.operation(o.id)?.error, 'interrupted by a node restart', o.kind);
    }
    assert.equal(store.operation(selfFinished.id)?.status, 'done');
    assert.equal(store.operation('op-old')?.status, 'done');
  });

  test('a resumed operation continues under its id (resumeId) and ends done', async () => {
    const { ops, store, events } = setup();
    const left = store.createOperation({ id: 'op-left', task_id: 't', wallet: 'w', kind: 'create', status: 'running' });
    store.updateOperation(left.id, { progress: 80, stage: 'boot' });
    ops.resumable(['create'], () => true);
    await ops.recover();
    const h = ops.start({ kind: 'create', taskId: 't', wallet: 'w', lock: lock('t'), resumeId: left.id, work: async () => ({ stage: 'running' }) });
    assert.equal(h.id, left.id);
    const final = await h.done;
    assert.equal(final.status, 'done');
    assert.equal(final.progress, 100);
    assert.equal(store.operationsOfTask('t').length, 1);
    assert.equal(events.filter((e) => e.type === 'operation.started').length, 0, 'no new operation');
  });
});

describe('Operations: events and idle()', () => {
  test('one operation emits started, progress, finished in order, each with the record at that moment', async () => {
    const { ops, events } = setup();
    const h = ops.start({
      kind: 'reset',
      taskId: 't',
      wallet: 'w',
      work: async (ctx) => {
        ctx.progress({ percent: 50, stage: 'half' });
        return { stage: 'reset' };
      },
    });
    await h.done;
    assert.deepEqual(
      events.map((e) => ('operation' in e ? [e.type, e.operation.id, e.operation.status, e.operation.progress, e.operation.stage] : [e.type])),
      [
        ['operation.started', h.id, 'running', 0, ''],
        ['operation.progress', h.id, 'running', 50, 'half'],
        ['operation.finished', h.id, 'done', 100, 'reset'],
      ],
    );
  });

  test('a listener that throws breaks neither the operation nor the other listeners', async () => {
    const warned: unknown[] = [];
    const log: Logger = { ...quietLogger, warn: (obj) => warned.push(obj) };
    const store = new MemoryOperationStore();
    const bus = new EventBus(log);
    bus.on(() => {
      throw new Error('listener broke');
    });
    const seen: string[] = [];
    const off = bus.on((e) => seen.push(e.type));
    const ops = new Operations(store, bus, quietLogger);
    const final = await ops.start({ kind: 'start', taskId: 't', wallet: 'w', work: async () => ({ stage: 'running' }) }).done;
    assert.equal(final.status, 'done');
    assert.deepEqual(seen, ['operation.started', 'operation.finished']);
    assert.ok(warned.length >= 2, 'each failure is logged');
    off();
    bus.emit({ type: 'task.deleted', task_id: 't', wallet: 'w' });
    assert.deepEqual(seen, ['operation.started', 'operation.finished'], 'off() stops listening');
  });

  test('idle() waits for every operation in flight, also queued ones and failures', async () => {
    const { ops, store } = setup();
    const ids: string[] = [];
    const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
    ids.push(ops.start({ kind: 'a', taskId: 't', wallet: 'w', lock: lock('t'), work: async () => (await delay(30), { stage: 'a' }) }).id);
    ids.push(ops.start({ kind: 'b', taskId: 't', wallet: 'w', lock: lock('t', true), work: async () => (await delay(10), { stage: 'b' }) }).id);
    ids.push(
      ops.start({
        kind: 'c',
        taskId: 'u',
        wallet: 'w',
        work: async () => {
          await delay(5);
          throw new Error('c failed');
        },
      }).id,
    );
    await ops.idle();
    assert.deepEqual(
      ids.map((id) => store.operation(id)?.status),
      ['done', 'done', 'failed'],
    );
    await ops.idle(); // nothing runs: returns at once
  });

  test("the store lists an account's and a task's operations newest first", async () => {
    const { ops } = setup();
    const a = await ops.start({ kind: 'a', taskId: 't', wallet: 'w1', work: async () => ({ stage: '' }) }).done;
    const b = await ops.start({ kind: 'b', taskId: 't', wallet: 'w1', work: async () => ({ stage: '' }) }).done;
    const c = await ops.start({ kind: 'c', taskId: 'u', wallet: 'w1', work: async () => ({ stage: '' }) }).done;
    await ops.start({ kind: 'd', taskId: 'v', wallet: 'w2', work: async () => ({ stage: '' }) }).done;
    assert.deepEqual(
      ops.ofTask('t').map((o) => o.id),
      [b.id, a.id],
    );
    assert.deepEqual(
      ops.ofWallet('w1').map((o) => o.id),
      [c.id, b.id, a.id],
    );
    assert.deepEqual(
      ops.ofWallet('w1', 't').map((o) => o.id),
      [b.id, a.id],
    );
    assert.equal(ops.get(a.id)?.kind, 'a');
    assert.equal(ops.get('nope'), undefined);
  });
});
