// A byte channel: the two ends of a long-lived stream between the client gateway and a GPU node (events, a serial
// console, a VNC display). In-process (`dbc up`) the ends are joined in memory; over libp2p each end wraps a stream
// (p2p/channel.ts). Data sent before the other end listens is kept (bounded) and delivered when it does.

export interface ByteChannel {
  /** queue bytes for the other end; false once the channel is closed (the bytes are dropped) */
  send(data: Uint8Array): boolean;
  /** close both directions; the other end's onClose runs with the reason */
  close(reason?: string): void;
  onData(cb: (data: Uint8Array) => void): void;
  onClose(cb: (reason?: string) => void): void;
  readonly closed: boolean;
}

/** bytes held for an end that does not listen yet; beyond it the channel closes ('buffer overflow') */
export const CHANNEL_BUFFER_BYTES = 4 * 1024 * 1024;

/** one end's inbox and its close callbacks: the part every ByteChannel implementation shares */
export class ChannelEnd implements ByteChannel {
  private dataCb?: (data: Uint8Array) => void;
  private readonly closeCbs: Array<(reason?: string) => void> = [];
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private isClosed = false;
  private closeReason?: string;

  /** sink: where send() puts bytes (the other end's deliver, or a stream); onClosing: tell the other side */
  constructor(
    private readonly sink: (data: Uint8Array) => void,
    private readonly onClosing: (reason?: string) => void,
  ) {}

  get closed(): boolean {
    return this.isClosed;
  }

  send(data: Uint8Array): boolean {
    if (this.isClosed) return false;
    this.sink(data);
    return true;
  }

  /** bytes from the other side */
  deliver(data: Uint8Array): void {
    if (this.isClosed) return;
    if (this.dataCb) {
      this.dataCb(data);
      return;
    }
    this.pending.push(data);
    this.pendingBytes += data.byteLength;
    if (this.pendingBytes > CHANNEL_BUFFER_BYTES) this.close('buffer overflow');
  }

  onData(cb: (data: Uint8Array) => void): void {
    this.dataCb = cb;
    const held = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const d of held) cb(d);
  }

  onClose(cb: (reason?: string) => void): void {
    if (this.isClosed) queueMicrotask(() => cb(this.closeReason));
    else this.closeCbs.push(cb);
  }

  close(reason?: string): void {
    if (this.isClosed) return;
    this.closedBy(reason);
    this.onClosing(reason);
  }

  /** the other side closed (or this one did): run the callbacks once */
  closedBy(reason?: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = reason;
    this.pending = [];
    for (const cb of this.closeCbs.splice(0)) {
      try {
        cb(reason);
      } catch {
        // a callback that throws does not stop the others
      }
    }
  }
}

/** two ends joined in memory: what one sends the other receives, on a later microtask (as a network would) */
export function channelPair(): [ChannelEnd, ChannelEnd] {
  // eslint-disable-next-line prefer-const
  let b: ChannelEnd;
  const a: ChannelEnd = new ChannelEnd(
    (d) => queueMicrotask(() => b.deliver(d)),
    (r) => queueMicrotask(() => b.closedBy(r)),
  );
  b = new ChannelEnd(
    (d) => queueMicrotask(() => a.deliver(d)),
    (r) => queueMicrotask(() => a.closedBy(r)),
  );
  return [a, b];
}
