// Where binding records travel besides the DHT: a GPU node pushes its signed record to every peer that takes it
// (seeds and clients, /dbc/binding/push/1.0.0); seeds and clients keep the verified records and hand the whole
// list to whoever asks (/dbc/binding/list/1.0.0). That list is how a client learns every GPU node (mining_nodes
// with an empty peer list), the way the original's service gossip table did. Every receiver verifies every record:
// a seed cannot forge a binding, it can only withhold one.
import type { PeerId, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { BindingCache, type OfferResult, type SignedBinding } from './binding.js';
import type { Host } from './host.js';
import type { Logger } from '../util/logger.js';
import { asError, describeReadError, framed } from './rpc.js';

export const BINDING_PUSH_PROTOCOL = '/dbc/binding/push/1.0.0';
export const BINDING_LIST_PROTOCOL = '/dbc/binding/list/1.0.0';
const MAX_PUSH_BYTES = 16 * 1024;
const MAX_LIST_BYTES = 8 * 1024 * 1024;
const MAX_LIST_RECORDS = 10_000;
const IO_TIMEOUT_MS = 5_000;

const enc = new TextEncoder();
const dec = new TextDecoder();

export interface DirectoryOptions {
  /** answer list requests (seeds and clients) */
  serveList: boolean;
  /** called with each record that is new or newer than the one known */
  onAccepted?: (b: SignedBinding) => void;
  logger?: Pick<Logger, 'debug' | 'warn'>;
  now?: () => number;
}

export class BindingDirectory {
  readonly cache: BindingCache;
  private readonly log?: Pick<Logger, 'debug' | 'warn'>;
  /** records refused so far (forged, expired, malformed): visible to tests and logs */
  rejected = 0;

  constructor(
    private readonly host: Host,
    private readonly o: DirectoryOptions,
  ) {
    this.cache = new BindingCache(o.now);
    this.log = o.logger;
  }

  async start(): Promise<void> {
    await this.host.handle(BINDING_PUSH_PROTOCOL, (stream, conn) => this.onPush(stream, conn.remotePeer.toString()), {
      maxInboundStreams: 64,
      runOnLimitedConnection: true,
    });
    if (this.o.serveList) {
      await this.host.handle(BINDING_LIST_PROTOCOL, (stream) => this.onList(stream), {
        maxInboundStreams: 16,
        runOnLimitedConnection: true,
      });
    }
  }

  async stop(): Promise<void> {
    await this.host.unhandle([BINDING_PUSH_PROTOCOL, BINDING_LIST_PROTOCOL]).catch(() => undefined);
  }

  /** verify and keep a record; logs refusals */
  offer(value: unknown, from: string): OfferResult {
    const r = this.cache.offer(value);
    if (r === 'accepted') {
      const b = this.cache.get((value as SignedBinding).node_id)!;
      this.log?.debug({ node_id: b.node_id, peer_id: b.peer_id, from }, 'binding accepted');
      this.o.onAccepted?.(b);
    } else if (r.startsWith('rejected')) {
      this.rejected++;
      this.log?.warn({ from, reason: r, node_id: (value as { node_id?: unknown })?.node_id }, 'binding refused');
    }
    return r;
  }

  private async onPush(stream: Stream, from: string): Promise<void> {
    const lp = framed(stream, MAX_PUSH_BYTES);
    try {
      const data = await lp.read({ signal: AbortSignal.timeout(IO_TIMEOUT_MS) });
      let value: unknown;
      try {
        value = JSON.parse(dec.decode(data.subarray()));
      } catch {
        value = undefined;
      }
      const r = value === undefined ? 'rejected: not JSON' : this.offer(value, from);
      await lp.write(enc.encode(JSON.stringify({ result: r })), { signal: AbortSignal.timeout(IO_TIMEOUT_MS) });
      await stream.close({ signal: AbortSignal.timeout(IO_TIMEOUT_MS) });
    } catch (err) {
      stream.abort(describeReadError(err, MAX_PUSH_BYTES));
    }
  }

  private async onList(stream: Stream): Promise<void> {
    const lp = framed(stream, 1024);
    try {
      const records = this.cache.all().slice(0, MAX_LIST_RECORDS);
      await lp.write(enc.encode(JSON.stringify({ records })), { signal: AbortSignal.timeout(IO_TIMEOUT_MS) });
      await stream.close({ signal: AbortSignal.timeout(IO_TIMEOUT_MS) });
    } catch (err) {
      stream.abort(asError(err));
    }
  }

  /** ask one peer for its list; returns how many records were new or newer */
  async fetchFrom(peer: PeerId, signal?: AbortSignal): Promise<number> {
    const s = signal ?? AbortSignal.timeout(IO_TIMEOUT_MS);
    const stream = await this.host.dialProtocol(peer, BINDING_LIST_PROTOCOL, { signal: s, runOnLimitedConnection: true });
    const lp = framed(stream, MAX_LIST_BYTES);
    try {
      await stream.close({ signal: s });
      const data = await lp.read({ signal: s });
      const parsed = JSON.parse(dec.decode(data.subarray())) as { records?: unknown };
      if (!Array.isArray(parsed.records)) throw new Error('list reply without records');
      let n = 0;
      for (const rec of parsed.records.slice(0, MAX_LIST_RECORDS)) if (this.offer(rec, peer.toString()) === 'accepted') n++;
      return n;
    } catch (err) {
      const e = describeReadError(err, MAX_LIST_BYTES);
      stream.abort(e);
      throw e;
    }
  }

  /** the connected peers that serve lists (seeds, other clients) */
  async listServers(): Promise<PeerId[]> {
    const out: PeerId[] = [];
    const seen = new Set<string>();
    for (const conn of this.host.getConnections()) {
      const id = conn.remotePeer.toString();
      if (seen.has(id)) continue;
      seen.add(id);
      try {
        const peer = await this.host.peerStore.get(conn.remotePeer);
        if (peer.protocols.includes(BINDING_LIST_PROTOCOL)) out.push(conn.remotePeer);
      } catch {
        // not identified yet
      }
    }
    return out;
  }

  /** ask every connected list server; resolves when all answered or failed */
  async refresh(signal?: AbortSignal): Promise<number> {
    const servers = await this.listServers();
    const results = await Promise.allSettled(servers.map((p) => this.fetchFrom(p, signal)));
    return results.reduce((n, r) => n + (r.status === 'fulfilled' ? r.value : 0), 0);
  }
}

/** send our record to one peer; resolves with its verdict */
export async function pushBinding(host: Host, peer: PeerId | string, binding: SignedBinding, signal?: AbortSignal): Promise<string> {
  const id = typeof peer === 'string' ? peerIdFromString(peer) : peer;
  const s = signal ?? AbortSignal.timeout(IO_TIMEOUT_MS);
  const stream = await host.dialProtocol(id, BINDING_PUSH_PROTOCOL, { signal: s, runOnLimitedConnection: true });
  const lp = framed(stream, 1024);
  try {
    await lp.write(enc.encode(JSON.stringify(binding)), { signal: s });
    await stream.close({ signal: s });
    const data = await lp.read({ signal: s });
    const reply = JSON.parse(dec.decode(data.subarray())) as { result?: unknown };
    return String(reply.result);
  } catch (err) {
    stream.abort(asError(err));
    throw err;
  }
}
