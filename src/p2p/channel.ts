// Long-lived channels between the client gateway and a GPU node (docs/events.md, docs/console.md) on
// /dbc/channel/1.0.0: the client writes one length-prefixed JSON frame {v, node_id, kind, ticket, params}; the node
// answers one frame {v, ok: true} or {v, ok: false, error: <the DBC envelope>}; after an ok both sides send raw
// bytes (JSON lines for events, console or VNC bytes) until either closes. The node, not the gateway, checks the
// ticket, so a gateway cannot open another renter's console.
import type { Stream } from '@libp2p/interface';
import { ChannelEnd, CHANNEL_BUFFER_BYTES, type ByteChannel } from '../util/channel.js';
import type { ChannelKind, ChannelOpen } from '../protocol/types.js';
import { asError, framed } from './rpc.js';

export const CHANNEL_PROTOCOL = '/dbc/channel/1.0.0';
const MAX_HEADER_BYTES = 16 * 1024;
const KINDS: readonly ChannelKind[] = ['events', 'console', 'vnc'];

export interface ChannelHeader extends ChannelOpen {
  v: 1;
  node_id: string;
}

/** the node refused the channel: its DBC envelope ({errcode, message}) */
export class ChannelRefused extends Error {
  constructor(readonly envelope: { errcode: number; message: string }) {
    super(envelope.message);
    this.name = 'ChannelRefused';
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** a ByteChannel over an open stream whose header exchange is done */
export function streamChannel(stream: Stream): ByteChannel {
  const end: ChannelEnd = new ChannelEnd(
    (d) => {
      try {
        // a reader that does not keep up: beyond the buffer the stream is reset rather than the node's memory grown
        if (stream.writeBufferLength > CHANNEL_BUFFER_BYTES) {
          stream.abort(new Error('channel reader too slow'));
          return;
        }
        stream.send(d);
      } catch (err) {
        end.closedBy(asError(err).message);
      }
    },
    () => {
      stream.close().catch(() => stream.abort(new Error('channel closed')));
    },
  );
  stream.addEventListener('message', (evt) => end.deliver(evt.data.subarray()));
  stream.addEventListener('close', (evt) => end.closedBy(evt.error?.message));
  stream.addEventListener('remoteCloseWrite', () => end.close('the other side closed'));
  return end;
}

/** client side: send the header, read the answer; a refusal rejects with ChannelRefused */
export async function openOnStream(stream: Stream, header: ChannelHeader, signal?: AbortSignal): Promise<ByteChannel> {
  const lp = framed(stream, MAX_HEADER_BYTES);
  try {
    await lp.write(enc.encode(JSON.stringify(header)), { signal });
    const data = await lp.read({ signal });
    const answer = JSON.parse(dec.decode(data.subarray())) as { ok?: boolean; error?: { errcode?: number; message?: string } };
    if (answer.ok !== true) {
      throw new ChannelRefused({ errcode: Number(answer.error?.errcode ?? -1), message: String(answer.error?.message ?? 'channel refused') });
    }
  } catch (err) {
    stream.abort(asError(err));
    throw err;
  }
  return streamChannel(lp.unwrap());
}

/** node side: read the header, let `open` decide, answer, then join the node's channel to the stream */
export async function serveChannelStream(
  stream: Stream,
  o: { nodeId: string; open: (open: ChannelOpen) => Promise<ByteChannel>; toEnvelope: (err: unknown) => { errcode: number; message: string } },
): Promise<void> {
  const lp = framed(stream, MAX_HEADER_BYTES);
  let header: ChannelHeader;
  try {
    const data = await lp.read({ signal: AbortSignal.timeout(10_000) });
    header = JSON.parse(dec.decode(data.subarray())) as ChannelHeader;
    if (header?.v !== 1 || !KINDS.includes(header.kind) || typeof header.ticket !== 'string') throw new Error('bad channel header');
  } catch (err) {
    stream.abort(asError(err));
    return;
  }
  const refuse = async (envelope: { errcode: number; message: string }) => {
    await lp.write(enc.encode(JSON.stringify({ v: 1, ok: false, error: envelope })), { signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
    await stream.close().catch(() => stream.abort(new Error('refused')));
  };
  if (String(header.node_id).toLowerCase() !== o.nodeId.toLowerCase()) {
    await refuse({ errcode: -1, message: `this peer serves node ${o.nodeId}` });
    return;
  }
  let nodeEnd: ByteChannel;
  try {
    const params: Record<string, string> = {};
    for (const [k, v] of Object.entries(header.params ?? {})) if (typeof v === 'string') params[k] = v;
    nodeEnd = await o.open({ kind: header.kind, ticket: header.ticket, params });
  } catch (err) {
    await refuse(o.toEnvelope(err));
    return;
  }
  try {
    await lp.write(enc.encode(JSON.stringify({ v: 1, ok: true })), { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    nodeEnd.close('the client went away');
    stream.abort(asError(err));
    return;
  }
  const wire = streamChannel(lp.unwrap());
  nodeEnd.onData((d) => wire.send(d));
  wire.onData((d) => nodeEnd.send(d));
  nodeEnd.onClose((r) => wire.close(r));
  wire.onClose((r) => nodeEnd.close(r));
}
