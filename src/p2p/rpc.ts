// The request protocol: one libp2p stream per request on /dbc/rpc/1.0.0. The client writes one length-prefixed
// (unsigned varint) JSON frame carrying the NodeRequest (route, path params, query, body) and closes its side; the
// node answers one frame with the NodeReply (or a transport error) and closes. Both sides cap frame sizes: the
// reader refuses a length prefix above its limit before reading the data, and aborts the stream.
import type { Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { ClientErrors } from '../errors/index.js';
import { ROUTES } from '../protocol/routes.js';
import type { NodeReply, NodeRequest } from '../protocol/types.js';
import { isTimeoutError, withDeadline } from '../util/deadline.js';

export const RPC_PROTOCOL = '/dbc/rpc/1.0.0';
export const FRAME_VERSION = 1;
export const DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_REPLY_BYTES = 16 * 1024 * 1024;
/** the client's deadline when none is given (the original's MAX_WAIT_HTTP_RESPONSE_TIME) */
export const DEFAULT_DEADLINE_MS = 30_000;

export interface RpcRequestFrame {
  v: 1;
  /** multiplexed protocol only (/dbc/rpc-mux/1.0.0): the request's number on its stream, echoed in the reply */
  id?: number;
  /** the node the client means: a node answers WRONG_NODE for any other */
  node_id: string;
  req: NodeRequest;
  /** the client gives up after this many ms; the node need not work longer */
  deadline_ms: number;
}

export type RpcErrorCode = 'BAD_FRAME' | 'TOO_LARGE' | 'WRONG_NODE' | 'BUSY' | 'INTERNAL';

export type RpcReplyFrame =
  { v: 1; id?: number; ok: true; reply: NodeReply } | { v: 1; id?: number; ok: false; error: { code: RpcErrorCode; message: string } };

const isId = (v: unknown) => v === undefined || (Number.isSafeInteger(v) && (v as number) >= 0);

export class FrameError extends Error {
  constructor(
    readonly code: RpcErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function encodeFrame(frame: RpcRequestFrame | RpcReplyFrame): Uint8Array {
  return enc.encode(JSON.stringify(frame));
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(dec.decode(bytes));
  } catch (err) {
    throw new FrameError('BAD_FRAME', `frame is not JSON: ${(err as Error).message}`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrRecord = (v: unknown): v is Record<string, string> => isObj(v) && Object.values(v).every((x) => typeof x === 'string');
const isStrArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

const STRING_FIELDS = ['wallet', 'nonce', 'sign', 'session_id', 'session_id_sign', 'rent_order'] as const;

/** the body the client's parseBody produces; anything else from the wire is refused before the node sees it */
function checkBody(b: unknown): string | null {
  if (!isObj(b)) return 'body is not an object';
  if (!isStrArray(b.peer_nodes_list)) return 'peer_nodes_list is not a list of strings';
  if (!isObj(b.additional)) return 'additional is not an object';
  for (const f of STRING_FIELDS) if (b[f] !== undefined && typeof b[f] !== 'string') return `${f} is not a string`;
  const m = b.multisig_accounts;
  if (m !== undefined) {
    if (!isObj(m) || !isStrArray(m.wallets) || typeof m.threshold !== 'string' || !Array.isArray(m.signs)) {
      return 'multisig_accounts is invalid';
    }
    for (const s of m.signs) {
      if (!isObj(s) || typeof s.wallet !== 'string' || typeof s.nonce !== 'string' || typeof s.sign !== 'string') {
        return 'multisig_accounts is invalid';
      }
    }
  }
  return null;
}

/** a request frame from the wire, checked field by field; throws FrameError('BAD_FRAME') */
export function parseRequestFrame(bytes: Uint8Array): RpcRequestFrame {
  const f = parseJson(bytes);
  if (!isObj(f) || f.v !== FRAME_VERSION) throw new FrameError('BAD_FRAME', 'not a dbc rpc v1 frame');
  if (!isId(f.id)) throw new FrameError('BAD_FRAME', 'id invalid');
  if (typeof f.node_id !== 'string') throw new FrameError('BAD_FRAME', 'node_id missing');
  if (!Number.isFinite(f.deadline_ms) || (f.deadline_ms as number) <= 0) throw new FrameError('BAD_FRAME', 'deadline_ms invalid');
  const r = f.req;
  if (!isObj(r)) throw new FrameError('BAD_FRAME', 'req missing');
  if (typeof r.route !== 'string' || !Object.hasOwn(ROUTES, r.route)) throw new FrameError('BAD_FRAME', 'unknown route');
  if (!isStrRecord(r.params) || !isStrRecord(r.query)) throw new FrameError('BAD_FRAME', 'params or query invalid');
  const bad = checkBody(r.body);
  if (bad) throw new FrameError('BAD_FRAME', bad);
  const img = r.image_server;
  if (img !== undefined) {
    const ok =
      isObj(img) &&
      typeof img.id === 'string' &&
      typeof img.host === 'string' &&
      typeof img.module === 'string' &&
      Number.isInteger(img.port) &&
      (img.port as number) > 0 &&
      (img.port as number) < 65536;
    if (!ok) throw new FrameError('BAD_FRAME', 'image_server invalid');
  }
  return f as unknown as RpcRequestFrame;
}

/** a reply frame from the wire; throws FrameError('BAD_FRAME') */
export function parseReplyFrame(bytes: Uint8Array): RpcReplyFrame {
  const f = parseJson(bytes);
  if (!isObj(f) || f.v !== FRAME_VERSION || typeof f.ok !== 'boolean') throw new FrameError('BAD_FRAME', 'not a dbc rpc v1 reply');
  if (!isId(f.id)) throw new FrameError('BAD_FRAME', 'id invalid');
  if (f.ok) {
    if (!isObj(f.reply) || typeof f.reply.errcode !== 'number') throw new FrameError('BAD_FRAME', 'reply has no errcode');
  } else if (!isObj(f.error) || typeof f.error.code !== 'string' || typeof f.error.message !== 'string') {
    throw new FrameError('BAD_FRAME', 'error reply malformed');
  }
  return f as unknown as RpcReplyFrame;
}

/** length-prefixed frames on a stream, at most maxBytes each way that we read */
export function framed(stream: Stream, maxReadBytes: number) {
  return lpStream(stream, { maxDataLength: maxReadBytes, maxBufferSize: maxReadBytes + 16 });
}

/** an Error for whatever a stream operation rejected with (libp2p rejects some writes with the 'close' event) */
export function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  const inner = (err as { error?: unknown } | undefined)?.error;
  if (inner instanceof Error) return inner;
  return new Error(err instanceof Event ? `stream ${err.type}` : String(err));
}

/** what a read failure means: an oversize frame is TOO_LARGE, the rest a closed or broken stream */
export function describeReadError(err: unknown, maxBytes: number): FrameError | Error {
  const e = asError(err) as { name?: string; message?: string };
  if (e?.name === 'InvalidDataLengthError' || e?.name === 'InvalidDataLengthLengthError' || e?.name === 'StreamBufferError') {
    return new FrameError('TOO_LARGE', `frame larger than ${maxBytes} bytes`);
  }
  if (e?.name === 'UnexpectedEOFError') return new Error('stream closed before a whole frame arrived');
  return asError(err);
}

export interface CallOptions {
  maxReplyBytes?: number;
  maxRequestBytes?: number;
  signal?: AbortSignal;
}

/**
 * Client side of one exchange on an open stream: write the request, close our side, read one reply.
 * Rejects with a FrameError (TOO_LARGE, BAD_FRAME), the signal's reason, or the stream's error; always leaves the
 * stream closed or aborted.
 */
export async function callOnStream(stream: Stream, frame: RpcRequestFrame, o: CallOptions = {}): Promise<RpcReplyFrame> {
  const maxReply = o.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES;
  const maxRequest = o.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const lp = framed(stream, maxReply);
  try {
    const bytes = encodeFrame(frame);
    if (bytes.byteLength > maxRequest) throw new FrameError('TOO_LARGE', `request larger than ${maxRequest} bytes`);
    await lp.write(bytes, { signal: o.signal });
    await stream.close({ signal: o.signal });
    let data;
    try {
      data = await lp.read({ signal: o.signal });
    } catch (err) {
      if (o.signal?.aborted) throw err;
      throw describeReadError(err, maxReply);
    }
    return parseReplyFrame(data.subarray());
  } catch (err) {
    const e = asError(err);
    stream.abort(e);
    throw e;
  }
}

export interface ServeStreamOptions {
  /** the node's own node_id: requests for another are answered WRONG_NODE */
  nodeId: string;
  handle(req: NodeRequest, deadlineMs: number): Promise<NodeReply>;
  maxRequestBytes?: number;
  maxReplyBytes?: number;
  /** how long a peer may take to send its request frame */
  readTimeoutMs?: number;
  /** refuse at once (BUSY) instead of handling */
  busy?: () => boolean;
  /** a request was answered `<op> timeout` at its deadline */
  onDeadline?: (req: NodeRequest) => void;
}

/** the reply frame for a parsed request: WRONG_NODE, BUSY, the node's reply, or INTERNAL; never throws */
export async function replyTo(frame: RpcRequestFrame, o: ServeStreamOptions): Promise<RpcReplyFrame> {
  const id = frame.id === undefined ? {} : { id: frame.id };
  if (frame.node_id.toLowerCase() !== o.nodeId.toLowerCase()) {
    return { v: 1, ...id, ok: false, error: { code: 'WRONG_NODE', message: `this peer serves node ${o.nodeId}` } };
  }
  if (o.busy?.()) return { v: 1, ...id, ok: false, error: { code: 'BUSY', message: 'node busy, too many requests in flight' } };
  try {
    // the request's deadline holds on the node too: at it the node answers `<op> timeout` and frees the stream or mux
    // slot; work that already began (a create) goes on and shows in tasks/<id>
    const reply = await withDeadline(o.handle(frame.req, frame.deadline_ms), frame.deadline_ms, `deadline of ${frame.deadline_ms} ms passed on the node`);
    return { v: 1, ...id, ok: true, reply };
  } catch (err) {
    if (isTimeoutError(err)) {
      o.onDeadline?.(frame.req);
      return { v: 1, ...id, ok: true, reply: ClientErrors.timeout(ROUTES[frame.req.route]?.op ?? 'request').toEnvelope() };
    }
    return { v: 1, ...id, ok: false, error: { code: 'INTERNAL', message: asError(err).message } };
  }
}

/** a reply frame's bytes, or a TOO_LARGE error frame in its place when it exceeds maxBytes */
export function encodeReply(frame: RpcReplyFrame, maxBytes: number): Uint8Array {
  const bytes = encodeFrame(frame);
  if (bytes.byteLength <= maxBytes) return bytes;
  return encodeFrame({
    v: 1,
    ...(frame.id === undefined ? {} : { id: frame.id }),
    ok: false,
    error: { code: 'TOO_LARGE', message: `reply larger than ${maxBytes} bytes` },
  });
}

/** Node side of one exchange: read one request frame, answer one reply frame, close. Never throws. */
export async function serveStream(stream: Stream, o: ServeStreamOptions): Promise<void> {
  const maxRequest = o.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const maxReply = o.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES;
  const lp = framed(stream, maxRequest);
  const answer = async (frame: RpcReplyFrame): Promise<void> => {
    const bytes = encodeReply(frame, maxReply);
    await lp.write(bytes, { signal: AbortSignal.timeout(o.readTimeoutMs ?? 10_000) });
    await stream.close({ signal: AbortSignal.timeout(o.readTimeoutMs ?? 10_000) });
  };
  try {
    let frame: RpcRequestFrame;
    try {
      const data = await lp.read({ signal: AbortSignal.timeout(o.readTimeoutMs ?? 10_000) });
      frame = parseRequestFrame(data.subarray());
    } catch (err) {
      const e = describeReadError(err, maxRequest);
      if (e instanceof FrameError) {
        // tell the peer why, when the stream still lets us; an oversize frame's bytes are not read
        await answer({ v: 1, ok: false, error: { code: e.code, message: e.message } }).catch(() => undefined);
        stream.abort(e);
      } else {
        stream.abort(e);
      }
      return;
    }
    await answer(await replyTo(frame, o));
  } catch (err) {
    stream.abort(asError(err));
  }
}
