// Serial consoles shared by several viewers. QEMU's chardev socket (run/serial.sock) serves one client at a time,
// so the node holds one connection per VM while anyone watches and fans its output out; what any viewer types goes
// to the guest. A viewer that attaches first gets the last screenful from the serial log (QEMU writes everything
// there, watched or not). Knows nothing of HTTP or tickets (node/channels.ts does).
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import net from 'node:net';

export interface ConsoleViewer {
  /** bytes from the guest */
  write(data: Uint8Array): void;
  /** the console went away (VM stopped, node closing) */
  end(reason: string): void;
}

export interface ConsoleAttachment {
  /** keys from this viewer to the guest */
  input(data: Uint8Array): void;
  detach(): void;
}

/** bytes replayed on attach: about one 80x50 screen with its escape sequences */
export const REPLAY_BYTES = 8192;
export const MAX_VIEWERS = 200;

/** the last `max` bytes of a file, cut at a line start when one is near */
export function tailOf(file: string, max = REPLAY_BYTES): Buffer {
  if (!existsSync(file)) return Buffer.alloc(0);
  const size = statSync(file).size;
  const start = Math.max(0, size - max);
  const buf = Buffer.alloc(size - start);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, buf.length, start);
  } finally {
    closeSync(fd);
  }
  if (start === 0) return buf;
  const nl = buf.indexOf(0x0a);
  return nl >= 0 && nl < 1024 ? buf.subarray(nl + 1) : buf;
}

class Console {
  readonly viewers = new Set<ConsoleViewer>();
  private sock?: net.Socket;
  private connecting?: Promise<void>;

  constructor(
    private readonly socketPath: string,
    private readonly onEmpty: () => void,
  ) {}

  async ensure(): Promise<void> {
    if (this.sock && !this.sock.destroyed) return;
    this.connecting ??= new Promise<void>((resolve, reject) => {
      const s = net.connect(this.socketPath);
      s.once('connect', () => {
        this.sock = s;
        this.connecting = undefined;
        resolve();
      });
      s.once('error', (err) => {
        this.connecting = undefined;
        if (this.sock !== s) reject(err);
      });
      s.on('data', (d: Buffer) => {
        for (const v of [...this.viewers]) v.write(d);
      });
      s.on('close', () => {
        if (this.sock !== s) return;
        this.sock = undefined;
        for (const v of [...this.viewers]) v.end('the console closed (the VM stopped)');
        this.viewers.clear();
        this.onEmpty();
      });
    });
    return this.connecting;
  }

  input(data: Uint8Array): void {
    if (this.sock && !this.sock.destroyed) this.sock.write(data);
  }

  remove(v: ConsoleViewer): void {
    this.viewers.delete(v);
    if (this.viewers.size === 0) {
      this.sock?.destroy();
      this.sock = undefined;
      this.onEmpty();
    }
  }
}

export class ConsoleHub {
  private readonly consoles = new Map<string, Console>();

  /** socketPath / logPath: the VM's serial chardev socket and its log file */
  async attach(taskId: string, socketPath: string, logPath: string, viewer: ConsoleViewer): Promise<ConsoleAttachment> {
    let c = this.consoles.get(taskId);
    if (!c) {
      const created = new Console(socketPath, () => {
        if (this.consoles.get(taskId) === created && created.viewers.size === 0) this.consoles.delete(taskId);
      });
      c = created;
      this.consoles.set(taskId, c);
    }
    if (c.viewers.size >= MAX_VIEWERS) throw new Error('too many viewers');
    const con = c;
    // the replay and joining the fan-out in one turn of the event loop: no socket data can fall between them
    const replay = tailOf(logPath);
    if (replay.length > 0) viewer.write(replay);
    con.viewers.add(viewer);
    try {
      await con.ensure();
    } catch (err) {
      con.remove(viewer);
      throw err;
    }
    return {
      input: (data) => con.input(data),
      detach: () => con.remove(viewer),
    };
  }

  viewers(taskId: string): number {
    return this.consoles.get(taskId)?.viewers.size ?? 0;
  }

  close(): void {
    for (const c of this.consoles.values()) for (const v of [...c.viewers]) c.remove(v);
    this.consoles.clear();
  }
}
