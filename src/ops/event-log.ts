// What renters see of the node's event bus: task status changes and operation progress, each with an id, kept in a
// bounded ring so a client that reconnects with `Last-Event-ID` gets what it missed while the node still holds it
// (docs/events.md). The account (wallet or multisig account) an event belongs to is kept for filtering and never
// sent.
import { randomBytes } from 'node:crypto';
import type { EventBus } from './events.js';
import type { NodeEvent } from './types.js';

/** the JSON of one event as a renter receives it (SSE `data:`, a websocket text message) */
export interface RenterEvent {
  /** `<boot>.<seq>`: boot changes when the node restarts, seq counts up */
  id: string;
  type: 'task.status' | 'task.deleted' | 'operation.started' | 'operation.progress' | 'operation.finished';
  /** ISO 8601 */
  time: string;
  task_id: string;
  status?: string;
  previous?: string | null;
  operation_id?: string;
  kind?: string;
  progress?: number;
  stage?: string;
  error?: string;
  bytes_done?: number;
  bytes_total?: number;
}

export interface EventFilter {
  account: string;
  task_id?: string;
  /** a type or a prefix of one: `task`, `operation`, `operation.progress` */
  type?: string;
}

interface Held {
  seq: number;
  account: string;
  event: RenterEvent;
}

export const EVENT_RING_SIZE = 4096;

export function matches(f: EventFilter, account: string, e: RenterEvent): boolean {
  if (account !== f.account) return false;
  if (f.task_id && e.task_id !== f.task_id) return false;
  if (f.type && e.type !== f.type && !e.type.startsWith(`${f.type}.`)) return false;
  return true;
}

export class EventLog {
  readonly boot = randomBytes(4).toString('hex');
  private seq = 0;
  private readonly ring: Held[] = [];
  private readonly subscribers = new Set<(account: string, e: RenterEvent) => void>();
  private readonly off: () => void;

  constructor(
    bus: EventBus,
    private readonly size = EVENT_RING_SIZE,
    private readonly now: () => number = Date.now,
  ) {
    this.off = bus.on((e) => this.record(e));
  }

  close(): void {
    this.off();
    this.subscribers.clear();
  }

  /** held events after `lastId` that pass the filter (all held ones when lastId is from another boot or unknown) */
  since(f: EventFilter, lastId?: string): RenterEvent[] {
    let after = 0;
    if (lastId) {
      const [boot, seq] = lastId.split('.');
      if (boot === this.boot && /^\d+$/.test(seq ?? '')) after = Number(seq);
    }
    return this.ring.filter((h) => h.seq > after && matches(f, h.account, h.event)).map((h) => h.event);
  }

  /** every new event with its account; returns the function that stops it */
  subscribe(cb: (account: string, e: RenterEvent) => void): () => void {
    this.subscribers.add(cb);
    return () => this.subscribers.delete(cb);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  private record(ne: NodeEvent): void {
    const seq = ++this.seq;
    const base = { id: `${this.boot}.${seq}`, time: new Date(this.now()).toISOString() };
    let account: string;
    let event: RenterEvent;
    switch (ne.type) {
      case 'task.status':
        account = ne.wallet;
        event = { ...base, type: ne.type, task_id: ne.task_id, status: ne.status, previous: ne.previous };
        break;
      case 'task.deleted':
        account = ne.wallet;
        event = { ...base, type: ne.type, task_id: ne.task_id };
        break;
      default: {
        const op = ne.operation;
        account = op.wallet;
        event = {
          ...base,
          type: ne.type,
          task_id: op.task_id,
          operation_id: op.id,
          kind: op.kind,
          status: op.status,
          progress: op.progress,
          stage: op.stage,
          ...(op.error ? { error: op.error } : {}),
          ...(op.bytes_total > 0 ? { bytes_done: op.bytes_done, bytes_total: op.bytes_total } : {}),
        };
      }
    }
    this.ring.push({ seq, account, event });
    if (this.ring.length > this.size) this.ring.splice(0, this.ring.length - this.size);
    for (const s of [...this.subscribers]) {
      try {
        s(account, event);
      } catch {
        // one subscriber's failure is its own
      }
    }
  }
}
