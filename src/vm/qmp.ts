// QMP (QEMU Machine Protocol) and QEMU guest agent clients over unix sockets. JSON objects, one per line.
import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  version?: { qemu?: { major: number; minor: number; micro: number }; package?: string };
  capabilities?: unknown[];
}

/** an error answer from QEMU ({"error": {"class", "desc"}}) */
export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    desc: string,
  ) {
    super(`QMP ${command}: ${desc}`);
    this.name = 'QmpError';
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const MAX_LINE = 16 * 1024 * 1024;

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function errorText(err: unknown): { cls: string; desc: string } {
  const e = (err ?? {}) as { class?: unknown; desc?: unknown };
  return { cls: typeof e.class === 'string' ? e.class : 'GenericError', desc: typeof e.desc === 'string' ? e.desc : JSON.stringify(err) };
}

/**
 * One QMP connection. Emits 'event' (QmpEvent) for asynchronous events and 'close' once when the socket goes away.
 * Commands carry an id, so many may be in flight.
 */
export class QmpClient extends EventEmitter {
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closedFlag = false;
  greeting: QmpGreeting = {};

  private constructor(private readonly socket: Socket) {
    super();
  }

  /** connect, read the greeting and negotiate capabilities (command mode) */
  static connect(path: string, timeoutMs = 5000): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      const client = new QmpClient(socket);
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        client.close();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error(`QMP ${path}: no greeting within ${timeoutMs} ms`)), timeoutMs);
      socket.setEncoding('utf8');
      socket.on('error', (err) => fail(new Error(`QMP ${path}: ${err.message}`)));
      socket.on('close', () => {
        fail(new Error(`QMP ${path}: connection closed during handshake`));
        client.handleClose();
      });
      client.once('greeting', (g: QmpGreeting) => {
        client.greeting = g;
        client.execute('qmp_capabilities', undefined, Math.max(1, timeoutMs)).then(
          () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve(client);
          },
          (err: Error) => fail(err),
        );
      });
      socket.on('data', (chunk: string) => client.onData(chunk));
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  execute(command: string, args?: Record<string, unknown>, timeoutMs = 10000): Promise<unknown> {
    if (this.closedFlag) return Promise.reject(new Error(`QMP ${command}: connection closed`));
    const id = `c${this.nextId++}`;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) msg.arguments = args;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve, reject, timer });
      this.socket.write(JSON.stringify(msg) + '\n');
    });
  }

  close(): void {
    if (!this.closedFlag) this.socket.destroy();
    this.handleClose();
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onLine(line);
    }
    // a peer that never sends a newline must not grow memory without bound
    if (this.buf.length > MAX_LINE) this.buf = '';
  }

  private onLine(line: string): void {
    const msg = parseObject(line);
    if (!msg) return; // garbage: not ours to interpret
    if ('QMP' in msg) {
      this.emit('greeting', msg.QMP);
      return;
    }
    if (typeof msg.event === 'string') {
      this.emit('event', msg);
      return;
    }
    if (!('return' in msg) && !('error' in msg)) return;
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    // QEMU answers a request it could not parse without an id; nothing to correlate it with
    const p = id !== undefined ? this.pending.get(id) : undefined;
    if (!p) return;
    this.pending.delete(id!);
    clearTimeout(p.timer);
    if ('error' in msg) {
      const { cls, desc } = errorText(msg.error);
      p.reject(new QmpError(p.command, cls, desc));
    } else {
      p.resolve(msg.return);
    }
  }

  private handleClose(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new Error(`QMP ${p.command}: connection closed`));
    }
    this.emit('close');
  }
}

// the agent's reply to commands that power the guest off or suspend it never comes
const NO_REPLY_COMMANDS = new Set(['guest-shutdown', 'guest-suspend-disk', 'guest-suspend-ram', 'guest-suspend-hybrid']);

/**
 * The QEMU guest agent over the VM's virtio-serial chardev socket. The agent keeps no session: the stream may hold
 * stale answers from an earlier client, so every command is preceded by guest-sync-delimited and everything up to
 * the matching answer is skipped. One command at a time; callers are queued.
 */
export class GuestAgentClient {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly defaultTimeoutMs = 5000,
  ) {}

  execute(command: string, args?: Record<string, unknown>, timeoutMs = this.defaultTimeoutMs): Promise<unknown> {
    const run = this.queue.then(
      () => this.once(command, args, timeoutMs),
      () => this.once(command, args, timeoutMs),
    );
    this.queue = run.catch(() => undefined);
    return run;
  }

  private once(command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(this.path);
      const syncId = Math.floor(Math.random() * 0x7fffffff) + 1;
      let phase: 'sync' | 'command' = 'sync';
      let buf: Buffer = Buffer.alloc(0);
      let done = false;
      const finish = (err: Error | null, value?: unknown): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve(value);
      };
      const timer = setTimeout(
        () => finish(new Error(`guest agent ${command}: no answer within ${timeoutMs} ms${phase === 'sync' ? ' (agent not responding)' : ''}`)),
        timeoutMs,
      );
      const sendCommand = (): void => {
        phase = 'command';
        const msg: Record<string, unknown> = { execute: command };
        if (args !== undefined) msg.arguments = args;
        socket.write(JSON.stringify(msg) + '\n', () => {
          if (NO_REPLY_COMMANDS.has(command)) finish(null, null);
        });
      };
      const onMessage = (msg: Record<string, unknown>): void => {
        if (phase === 'sync') {
          if ('return' in msg && msg.return === syncId) sendCommand();
          return; // stale answers and errors from before the sync
        }
        if ('error' in msg) {
          const { cls, desc } = errorText(msg.error);
          finish(new QmpError(`guest agent ${command}`, cls, desc));
        } else if ('return' in msg) {
          finish(null, msg.return);
        }
      };
      // A message ends at a newline; 0xFF (the sync sentinel) discards whatever came before it.
      const drain = (): void => {
        for (;;) {
          const ff = buf.indexOf(0xff);
          const nl = buf.indexOf(0x0a);
          if (ff >= 0 && (nl < 0 || ff < nl)) {
            buf = buf.subarray(ff + 1);
            continue;
          }
          if (nl < 0) break;
          const line = buf.subarray(0, nl).toString('utf8').trim();
          buf = buf.subarray(nl + 1);
          const msg = line ? parseObject(line) : null;
          if (msg) onMessage(msg);
          if (done) return;
        }
        // some agents do not end their answer with a newline: accept a complete object at the tail
        if (buf.length > 0) {
          const tail = parseObject(buf.toString('utf8').trim());
          if (tail && ('return' in tail || 'error' in tail)) {
            buf = Buffer.alloc(0);
            onMessage(tail);
          } else if (buf.length > MAX_LINE) {
            buf = Buffer.alloc(0);
          }
        }
      };
      socket.on('connect', () => {
        socket.write(JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id: syncId } }) + '\n');
      });
      socket.on('data', (chunk: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        drain();
      });
      socket.on('error', (err) => finish(new Error(`guest agent ${command}: ${err.message}`)));
      socket.on('close', () => finish(new Error(`guest agent ${command}: connection closed before an answer`)));
    });
  }
}
