// Tickets (node/tickets.ts), the renter event log (ops/event-log.ts) and in-memory channels (util/channel.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TicketStore, MAX_TICKETS_PER_ACCOUNT } from '../../src/node/tickets.js';
import { EventLog } from '../../src/ops/event-log.js';
import { EventBus } from '../../src/ops/events.js';
import type { Operation } from '../../src/ops/types.js';
import { channelPair } from '../../src/util/channel.js';

test('a ticket opens its kind once, for the account it was issued to; forged, reused, expired or other-kind ones are refused', () => {
  let now = 1_000_000;
  const t = new TicketStore(() => now, 60_000);
  const a = t.issue({ kind: 'console', account: 'A', taskId: 'task1' });
  assert.match(a.ticket, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(a.expires_in, 60);
  assert.throws(() => t.consume(a.ticket, 'vnc'), /ticket is invalid or expired/); // another kind: and now it is spent
  assert.throws(() => t.consume(a.ticket, 'console'), /ticket is invalid or expired/);
  const b = t.issue({ kind: 'console', account: 'A', taskId: 'task1' });
  assert.deepEqual(t.consume(b.ticket, 'console'), { kind: 'console', account: 'A', taskId: 'task1' });
  assert.throws(() => t.consume(b.ticket, 'console'), /ticket is invalid or expired/); // single use
  const c = t.issue({ kind: 'events', account: 'A' });
  now += 60_001;
  assert.throws(() => t.consume(c.ticket, 'events'), /ticket is invalid or expired/); // expired
  assert.throws(() => t.consume('A'.repeat(43), 'events'), /ticket is invalid or expired/); // forged
  assert.throws(() => t.consume('../../etc/passwd', 'events'), /ticket is invalid or expired/);
});

test('one account cannot hold more than the cap of unused tickets; expired ones do not count', () => {
  let now = 0;
  const t = new TicketStore(() => now, 60_000);
  for (let i = 0; i < MAX_TICKETS_PER_ACCOUNT; i++) t.issue({ kind: 'events', account: 'A' });
  assert.throws(() => t.issue({ kind: 'events', account: 'A' }), /too many open tickets/);
  t.issue({ kind: 'events', account: 'B' }); // another account is not affected
  now += 61_000;
  t.issue({ kind: 'events', account: 'A' });
  assert.equal(t.size, 1);
});

const op = (id: string, wallet: string, over: Partial<Operation> = {}): Operation => ({
  id,
  task_id: 't1',
  wallet,
  kind: 'create',
  status: 'running',
  progress: 10,
  stage: 'booting',
  error: '',
  bytes_done: 0,
  bytes_total: 0,
  created_at: 0,
  updated_at: 0,
  ...over,
});

test('the event log keeps ids in order, filters by account, task and type, and resumes after an id of this boot', () => {
  const bus = new EventBus();
  const log = new EventLog(bus, 3);
  const seen: string[] = [];
  const off = log.subscribe((acc, e) => seen.push(`${acc}:${e.type}`));
  bus.emit({ type: 'task.status', task_id: 't1', wallet: 'A', status: 'creating', previous: null });
  bus.emit({ type: 'operation.progress', operation: op('o1', 'A') });
  bus.emit({ type: 'task.status', task_id: 't2', wallet: 'B', status: 'running', previous: 'creating' });
  bus.emit({ type: 'operation.finished', operation: op('o1', 'A', { status: 'done', progress: 100, stage: 'running' }) });
  off();
  assert.deepEqual(seen, ['A:task.status', 'A:operation.progress', 'B:task.status', 'A:operation.finished']);
  // the ring holds the last 3
  const all = log.since({ account: 'A' });
  assert.deepEqual(
    all.map((e) => e.type),
    ['operation.progress', 'operation.finished'],
  );
  const [first, second] = all;
  assert.match(first!.id, new RegExp(`^${log.boot}\\.2$`));
  assert.equal(second!.operation_id, 'o1');
  assert.equal(second!.status, 'done');
  assert.equal(second!.progress, 100);
  assert.ok(!('wallet' in second!) && !('account' in second!), 'the account is never sent');
  assert.deepEqual(
    log.since({ account: 'A' }, first!.id).map((e) => e.id),
    [second!.id],
  );
  assert.deepEqual(log.since({ account: 'A', type: 'task' }), []);
  assert.deepEqual(
    log.since({ account: 'B', type: 'task' }).map((e) => e.task_id),
    ['t2'],
  );
  assert.deepEqual(log.since({ account: 'B', task_id: 't1' }), []);
  // an id of another boot: everything held
  assert.equal(log.since({ account: 'A' }, 'deadbeef.1').length, 2);
  log.close();
});

test('a channel pair delivers in order, keeps bytes until the reader listens, and closes both ends once', async () => {
  const [a, b] = channelPair();
  a.send(new Uint8Array([1]));
  a.send(new Uint8Array([2, 3]));
  await new Promise((r) => setImmediate(r));
  const got: number[] = [];
  b.onData((d) => got.push(...d));
  assert.deepEqual(got, [1, 2, 3]);
  const reasons: Array<string | undefined> = [];
  b.onClose((r) => reasons.push(r));
  a.onClose((r) => reasons.push(`a:${r}`));
  a.send(new Uint8Array([4]));
  a.close('bye');
  a.close('again');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got, [1, 2, 3, 4]);
  assert.deepEqual(reasons, ['a:bye', 'bye']);
  assert.equal(a.send(new Uint8Array([5])), false);
  assert.equal(b.closed, true);
});
