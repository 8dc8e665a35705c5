// The multiplexed variant of the request protocol, /dbc/rpc-mux/1.0.0 (the client's default; --rpc-mode stream, or a
// node that does not speak it, falls back to one stream per request).
// Same frames as /dbc/rpc/1.0.0 plus an `id`; a client keeps a few long-lived streams per node and sends many
// requests on each, the node answers each frame as soon as it is handled (out of order, matched by id).
//
// Why it exists: in js-libp2p every new stream costs a yamux SYN/ACK, a multistream-select exchange, window updates,
// a FIN each way and a peer-store write on both sides, each frame a separate Noise message and socket write. On the
// 2-core reference machine that caps one-stream-per-request at ~450 req/s between two processes (no HTTP in front),
// against ~7,000 req/s for the same frames on long-lived streams (docs/p2p.md, bench/p2p-relay.ts). Frames written
// in the same event-loop turn also leave as one batch (one yamux frame, one Noise message, one socket write). What it gives up: a reply
// shares its stream with others (a very large reply delays the ones behind it on that stream), and a request is
// abandoned by the client at its deadline rather than cancelled by a stream reset.
import type { Stream } from '@libp2p/interface';
import {
  asError,
  describeReadError,
  encodeFrame,
  encodeReply,
  FrameError,
  framed,
  parseReplyFrame,
  parseRequestFrame,
  replyTo,
  DEFAULT_MAX_REPLY_BYTES,
  DEFAULT_MAX_REQUEST_BYTES,
  type RpcReplyFrame,
  type RpcRequestFrame,
  type ServeStreamOptions,
} from './rpc.js';

export const RPC_MUX_PROTOCOL = '/dbc/rpc-mux/1.0.0';
/** requests one mux stream may have in flight at the node; more are answered BUSY */
export const DEFAULT_MAX_INFLIGHT_PER_MUX_STREAM = 512;

/**
 * Frames written in one turn of the event loop leave together: one length-prefixed batch is one yamux frame, one
 * Noise message and one socket write, instead of one of each per frame.
 */
class FrameBatcher {
  private queue: Uint8Array[] = [];
  private scheduled = false;
  private last: Promise<void> = Promise.resolve();

  constructor(
    private readonly lp: ReturnType<typeof framed>,
    private readonly onError: (err: Error) => void,
  ) {}

  push(bytes: Uint8Array): void {
    this.queue.push(bytes);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  /** write what is queued now; resolves once every batch so far has been handed to the stream */
  flush(): Promise<void> {
    this.scheduled = false;
    if (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      this.last = this.lp.writeV(batch).catch((err: unknown) => this.onError(asError(err)));
    }
    return this.last;
  }
}

export interface ServeMuxOptions extends ServeStreamOptions {
  maxInflightPerStream?: number;
}

/**
 * Node side of one mux stream: read request frames until the peer closes, answer each by id. A frame that cannot
 * be parsed at all closes the stream (its id is unknown); one that parses but is invalid gets BAD_FRAME by id.
 * Never throws.
 */
export async function serveMuxStream(stream: Stream, o: ServeMuxOptions): Promise<void> {
  const maxRequest = o.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const maxReply = o.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES;
  const maxInflight = o.maxInflightPerStream ?? DEFAULT_MAX_INFLIGHT_PER_MUX_STREAM;
  const lp = framed(stream, maxRequest);
  let inflight = 0;
  let idle: (() => void) | undefined;
  const out = new FrameBatcher(lp, (err) => stream.abort(err));
  const send = (frame: RpcReplyFrame): void => out.push(encodeReply(frame, maxReply));
  try {
    while (true) {
      let bytes: Uint8Array;
      try {
        bytes = (await lp.read()).subarray();
      } catch (err) {
        const e = describeReadError(err, maxRequest);
        // the peer closed its side: finish the replies in flight, then close ours
        if (stream.remoteWriteStatus !== 'writable' && !(e instanceof FrameError)) break;
        if (e instanceof FrameError) {
          send({ v: 1, ok: false, error: { code: e.code, message: e.message } });
          await out.flush();
        }
        stream.abort(e);
        return;
      }
      let frame: RpcRequestFrame;
      try {
        frame = parseRequestFrame(bytes);
      } catch (err) {
        const id = idOf(bytes);
        const e = err as FrameError;
        send({ v: 1, ...(id === undefined ? {} : { id }), ok: false, error: { code: 'BAD_FRAME', message: e.message } });
        if (id === undefined) {
          // nothing to match the error to: the peer does not speak this protocol
          await out.flush();
          await stream.close({ signal: AbortSignal.timeout(o.readTimeoutMs ?? 10_000) }).catch(() => stream.abort(e));
          return;
        }
        continue;
      }
      if (frame.id === undefined) {
        send({ v: 1, ok: false, error: { code: 'BAD_FRAME', message: 'id missing' } });
        continue;
      }
      if (inflight >= maxInflight) {
        send({ v: 1, id: frame.id, ok: false, error: { code: 'BUSY', message: 'too many requests in flight on this stream' } });
        continue;
      }
      inflight++;
      void replyTo(frame, o)
        .then(send)
        .finally(() => {
          if (--inflight === 0) idle?.();
        });
    }
    // the peer closed its side: send the replies still being handled (unless the stream dies first), then close
    if (stream.status !== 'open' || stream.writeStatus !== 'writable') return;
    if (inflight > 0) {
      await new Promise<void>((resolve) => {
        idle = resolve;
        stream.addEventListener('close', () => resolve(), { once: true });
      });
    }
    await out.flush();
    if (stream.status === 'open') await stream.close({ signal: AbortSignal.timeout(o.readTimeoutMs ?? 10_000) });
  } catch (err) {
    stream.abort(asError(err));
  }
}

function idOf(bytes: Uint8Array): number | undefined {
  try {
    const id = (JSON.parse(new TextDecoder().decode(bytes)) as { id?: unknown }).id;
    return Number.isSafeInteger(id) && (id as number) >= 0 ? (id as number) : undefined;
  } catch {
    return undefined;
  }
}

interface Pending {
  resolve(frame: RpcReplyFrame): void;
  reject(err: Error): void;
}

/** Client side of one mux stream: many requests in flight, replies matched by id. */
export class MuxChannel {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly lp: ReturnType<typeof framed>;
  private readonly out: FrameBatcher;
  private broken?: Error;

  constructor(
    readonly stream: Stream,
    private readonly o: { maxReplyBytes?: number; maxRequestBytes?: number } = {},
  ) {
    this.lp = framed(stream, o.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES);
    this.out = new FrameBatcher(this.lp, (err) => this.fail(err));
    void this.readLoop();
  }

  get inflight(): number {
    return this.pending.size;
  }

  get open(): boolean {
    return this.broken === undefined && this.stream.status === 'open' && this.stream.writeStatus === 'writable';
  }

  private async readLoop(): Promise<void> {
    const max = this.o.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES;
    try {
      while (true) {
        const bytes = (await this.lp.read()).subarray();
        const frame = parseReplyFrame(bytes);
        if (frame.id === undefined) throw new FrameError('BAD_FRAME', `node refused the stream: ${frame.ok ? 'reply without id' : frame.error.message}`);
        const p = this.pending.get(frame.id);
        this.pending.delete(frame.id);
        p?.resolve(frame);
      }
    } catch (err) {
      this.fail(describeReadError(err, max));
    }
  }

  /** every request in flight fails with err; the channel is not used again */
  fail(err: Error): void {
    this.broken ??= err;
    for (const p of this.pending.values()) p.reject(this.broken);
    this.pending.clear();
    this.stream.abort(this.broken);
  }

  /** send one request; rejects on the signal (the late reply is dropped), a broken stream or an oversize frame */
  call(frame: Omit<RpcRequestFrame, 'id'>, signal: AbortSignal): Promise<RpcReplyFrame> {
    if (this.broken) return Promise.reject(this.broken);
    const maxRequest = this.o.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    const id = this.nextId++;
    const bytes = encodeFrame({ ...frame, id });
    if (bytes.byteLength > maxRequest) return Promise.reject(new FrameError('TOO_LARGE', `request larger than ${maxRequest} bytes`));
    return new Promise<RpcReplyFrame>((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id);
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: (f) => {
          signal.removeEventListener('abort', onAbort);
          resolve(f);
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      this.out.push(bytes);
    });
  }

  close(): void {
    this.fail(new Error('channel closed'));
  }
}
