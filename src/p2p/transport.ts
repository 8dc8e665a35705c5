// The client's NodeTransport over libp2p. node_id -> verified binding (cache; else the connected seeds' lists and
// the DHT, within resolveTimeoutMs) -> dial the bound peer id (Noise proves the peer holds that key) -> one
// /dbc/rpc/1.0.0 stream per request. Failures keep the client's original texts: an unknown node, or one no
// address of which answers, is `create node request failed`; the deadline is a TimeoutError (`<op> timeout`).
import './polyfill.js';
import type { PeerId, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { ClientErrors, DbcError } from '../errors/index.js';
import type { ChannelOpen, NodeReply, NodeRequest, NodeTransport, PeerEntry } from '../protocol/types.js';
import type { ByteChannel } from '../util/channel.js';
import { CHANNEL_PROTOCOL, openOnStream } from './channel.js';
import { bindingDhtKey, decodeBinding, type SignedBinding } from './binding.js';
import { BindingDirectory } from './directory.js';
import type { Host } from './host.js';
import { MuxChannel, RPC_MUX_PROTOCOL } from './mux.js';
import { callOnStream, DEFAULT_DEADLINE_MS, DEFAULT_MAX_REPLY_BYTES, DEFAULT_MAX_REQUEST_BYTES, FrameError, RPC_PROTOCOL } from './rpc.js';
import type { Logger } from '../util/logger.js';
import { TimeoutError } from '../util/deadline.js';

export interface P2PTransportOptions {
  /** how long an unknown node_id is looked for (seed lists + DHT) before `create node request failed` */
  resolveTimeoutMs?: number;
  /** how often the seeds' binding lists are fetched (restarted nodes, new nodes for mining_nodes) */
  refreshMs?: number;
  /** deadline when the caller gives none */
  defaultTimeoutMs?: number;
  maxReplyBytes?: number;
  maxRequestBytes?: number;
  /** requests in flight to one node; more wait for a slot (within their deadline) */
  maxInflightPerNode?: number;
  /** how long a node_id that could not be found is answered from memory without looking again */
  negativeCacheMs?: number;
  /**
   * stream: one /dbc/rpc/1.0.0 stream per request (the default, as specified); mux: requests share a few
   * long-lived /dbc/rpc-mux/1.0.0 streams per node (much faster in js-libp2p; see src/p2p/mux.ts)
   */
  rpcMode?: RpcMode;
  /** mux mode: long-lived streams per node */
  muxStreams?: number;
  logger?: Logger;
}

/** a counting semaphore with a FIFO queue */
class Slots {
  private used = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly max: number) {}
  async take(signal: AbortSignal): Promise<void> {
    if (this.used < this.max) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const go = () => {
        signal.removeEventListener('abort', onAbort);
        this.used++;
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(go);
    });
  }
  give(): void {
    this.used--;
    this.waiting.shift()?.();
  }
  get idle(): boolean {
    return this.used === 0 && this.waiting.length === 0;
  }
}

const isRelayedAddr = (addr: string): boolean => addr.includes('/p2p-circuit');

function ipPort(addr: string): string {
  try {
    const parts = multiaddr(addr).getComponents();
    const host = parts.find((c) => c.name === 'ip4' || c.name === 'ip6' || c.name.startsWith('dns'))?.value;
    const port = parts.find((c) => c.name === 'tcp')?.value;
    return host && port ? `${host}:${port}` : addr;
  } catch {
    return addr;
  }
}

interface Conn {
  mux?: MuxChannel;
  stream?: Stream;
}

export type RpcMode = 'stream' | 'mux';

export class P2PTransport implements NodeTransport {
  private readonly channels = new Map<string, MuxChannel[]>();
  private readonly opening = new Map<string, Promise<MuxChannel | undefined>>();
  /** peers that do not speak the mux protocol */
  private readonly noMux = new Set<string>();
  /** mux channels and streams opened over a relayed connection (left for a direct one once there is one) */
  private readonly relayedChannels = new WeakSet<MuxChannel>();
  private readonly relayedStreams = new WeakSet<Stream>();
  readonly directory: BindingDirectory;
  private readonly slots = new Map<string, Slots>();
  private readonly missing = new Map<string, number>();
  private readonly resolving = new Map<string, Promise<SignedBinding | undefined>>();
  private timer?: NodeJS.Timeout;
  private readonly o: Required<Omit<P2PTransportOptions, 'logger'>> & { logger?: Logger };
  /** peers we opened request streams to, by peer id (tests: a forged binding is never dialled) */
  readonly dialled = new Set<string>();

  constructor(
    readonly host: Host,
    opts: P2PTransportOptions = {},
  ) {
    this.o = {
      resolveTimeoutMs: opts.resolveTimeoutMs ?? 2_000,
      refreshMs: opts.refreshMs ?? 5_000,
      defaultTimeoutMs: opts.defaultTimeoutMs ?? DEFAULT_DEADLINE_MS,
      maxReplyBytes: opts.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
      maxRequestBytes: opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
      maxInflightPerNode: opts.maxInflightPerNode ?? 512,
      negativeCacheMs: opts.negativeCacheMs ?? 1_000,
      rpcMode: opts.rpcMode ?? 'mux',
      muxStreams: opts.muxStreams ?? 2,
      logger: opts.logger,
    };
    this.directory = new BindingDirectory(host, {
      serveList: true,
      logger: opts.logger,
      onAccepted: (b) => void this.learn(b),
    });
  }

  async start(): Promise<void> {
    await this.directory.start();
    const tick = () => {
      void this.directory.refresh(AbortSignal.timeout(Math.max(1000, this.o.refreshMs))).catch(() => undefined);
    };
    this.timer = setInterval(tick, this.o.refreshMs);
    this.timer.unref();
    tick();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const list of this.channels.values()) for (const c of list) c.close();
    this.channels.clear();
    await this.directory.stop();
  }

  /** a new or newer binding: its addresses replace what the peer store had for that peer */
  private async learn(b: SignedBinding): Promise<void> {
    this.missing.delete(b.node_id);
    // a record without addresses (a node still waiting for its relay reservation) leaves what identify learnt
    if (b.addrs.length === 0) return;
    try {
      const id = peerIdFromString(b.peer_id);
      await this.host.peerStore.patch(id, { multiaddrs: b.addrs.map((a) => multiaddr(a)) });
    } catch (err) {
      this.o.logger?.debug({ err: (err as Error).message, node_id: b.node_id }, 'peer store update failed');
    }
  }

  knownNodes(): Array<{ node_id: string; name: string; version: string }> {
    return this.directory.cache
      .all()
      .sort((a, b) => a.node_id.localeCompare(b.node_id))
      .map((b) => ({ node_id: b.node_id, name: b.name, version: b.version }));
  }

  /** /peers/active: connected peers; /peers/global: every peer we know an address of (at most 50, shuffled) */
  async peers(kind: 'active' | 'global'): Promise<PeerEntry[]> {
    const label = (peer: string, addr: string): PeerEntry => {
      const b = this.directory.cache.byPeer(peer);
      return { node_id: b?.node_id ?? peer, peer_id: peer, addr: ipPort(addr) };
    };
    if (kind === 'active') {
      const seen = new Map<string, PeerEntry>();
      // a peer's direct connection before a relayed one (the one requests use)
      const conns = [...this.host.getConnections()].sort(
        (a, b) => Number(isRelayedAddr(a.remoteAddr.toString())) - Number(isRelayedAddr(b.remoteAddr.toString())),
      );
      for (const c of conns) {
        const id = c.remotePeer.toString();
        if (!seen.has(id)) seen.set(id, label(id, c.remoteAddr.toString()));
      }
      return [...seen.values()];
    }
    const all = await this.host.peerStore.all();
    const out: PeerEntry[] = [];
    for (const p of all) {
      const tcpAddr = p.addresses.map((a) => a.multiaddr.toString()).find((a) => !a.includes('p2p-circuit'));
      const addr = tcpAddr ?? p.addresses[0]?.multiaddr.toString();
      if (addr) out.push(label(p.id.toString(), addr));
    }
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out.slice(0, 50);
  }

  /** a verified binding for node_id: the cache, else the seeds' lists and the DHT (bounded by resolveTimeoutMs) */
  async resolve(nodeId: string, signal?: AbortSignal, fresh = false): Promise<SignedBinding | undefined> {
    const id = nodeId.toLowerCase();
    if (!fresh) {
      const hit = this.directory.cache.get(id);
      if (hit) return hit;
      const until = this.missing.get(id);
      if (until !== undefined && until > Date.now()) return undefined;
    }
    let p = this.resolving.get(id);
    if (!p) {
      p = this.lookup(id, signal).finally(() => this.resolving.delete(id));
      this.resolving.set(id, p);
    }
    const found = await p;
    if (!found) {
      if (this.missing.size > 10_000) this.missing.clear();
      this.missing.set(id, Date.now() + this.o.negativeCacheMs);
    }
    return found;
  }

  private async lookup(id: string, outer?: AbortSignal): Promise<SignedBinding | undefined> {
    const signals = [AbortSignal.timeout(this.o.resolveTimeoutMs)];
    if (outer) signals.push(outer);
    const signal = AbortSignal.any(signals);
    const before = this.directory.cache.get(id);
    const newer = () => {
      const now = this.directory.cache.get(id);
      return now !== undefined && (!before || now.issued > before.issued);
    };
    const fromLists = this.directory.refresh(signal).catch(() => 0);
    const fromDht = this.dhtGet(id, signal);
    // whichever brings a (newer) record first; else wait for both
    await new Promise<void>((resolve) => {
      let pending = 2;
      const settled = () => {
        if (newer() || --pending === 0) resolve();
      };
      void fromLists.then(settled);
      void fromDht.then(settled);
    });
    return this.directory.cache.get(id);
  }

  private async dhtGet(id: string, signal: AbortSignal): Promise<void> {
    try {
      for await (const ev of this.host.services.dht.get(bindingDhtKey(id), { signal })) {
        if (ev.name === 'VALUE') {
          try {
            this.directory.offer(decodeBinding(ev.value), `dht:${ev.from.toString()}`);
          } catch {
            // malformed: the validator would have refused it too
          }
          if (this.directory.cache.get(id)) return;
        }
      }
    } catch {
      // not found, aborted, no peers
    }
  }

  /** a long-lived channel to the node (p2p/channel.ts); the node checks the ticket */
  async openChannel(nodeId: string, open: ChannelOpen): Promise<ByteChannel> {
    const signal = AbortSignal.timeout(this.o.defaultTimeoutMs);
    const id = nodeId.toLowerCase();
    const b = await this.resolve(id, signal);
    if (!b) throw ClientErrors.createNodeRequestFailed();
    let stream: Stream;
    try {
      stream = await this.open(b, CHANNEL_PROTOCOL, signal);
    } catch (err) {
      if ((err as Error).name === 'UnsupportedProtocolError') throw ClientErrors.createNodeRequestFailed();
      const again = await this.resolve(id, signal, true);
      if (!again) throw ClientErrors.createNodeRequestFailed();
      stream = await this.open(again, CHANNEL_PROTOCOL, signal);
    }
    return openOnStream(stream, { v: 1, node_id: id, ...open }, signal);
  }

  async request(nodeId: string, req: NodeRequest, opts?: { timeoutMs?: number }): Promise<NodeReply> {
    const timeoutMs = opts?.timeoutMs ?? this.o.defaultTimeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const id = nodeId.toLowerCase();
    try {
      let b = await this.resolve(id, deadline);
      if (!b) throw ClientErrors.createNodeRequestFailed();
      const slots = this.slotsOf(id);
      await slots.take(deadline);
      let frame;
      try {
        let conn: Conn;
        try {
          conn = await this.connect(b, deadline);
        } catch (err) {
          if (deadline.aborted) throw err;
          // the node may have moved (restart on a new port): look for a newer record once, then give up
          this.o.logger?.debug({ node_id: id, err: (err as Error).message }, 'dial failed, resolving again');
          const again = await this.resolve(id, deadline, true);
          if (!again || (again.issued === b.issued && again.peer_id === b.peer_id)) throw ClientErrors.createNodeRequestFailed();
          b = again;
          try {
            conn = await this.connect(b, deadline);
          } catch (err2) {
            if (deadline.aborted) throw err2;
            throw ClientErrors.createNodeRequestFailed();
          }
        }
        const base = { v: 1 as const, node_id: id, req, deadline_ms: timeoutMs };
        frame = conn.mux
          ? await conn.mux.call(base, deadline)
          : await callOnStream(conn.stream!, base, { maxReplyBytes: this.o.maxReplyBytes, maxRequestBytes: this.o.maxRequestBytes, signal: deadline });
      } finally {
        slots.give();
        if (slots.idle) this.slots.delete(id);
      }
      if (frame.ok) return frame.reply;
      if (frame.error.code === 'WRONG_NODE') {
        this.directory.cache.delete(id);
        throw ClientErrors.createNodeRequestFailed();
      }
      throw new Error(`node refused the request: ${frame.error.message}`);
    } catch (err) {
      if (err instanceof DbcError) throw err;
      if (deadline.aborted) throw new TimeoutError(`node ${id} did not answer within ${timeoutMs} ms`);
      if (err instanceof FrameError && err.code === 'BAD_FRAME') throw ClientErrors.responseParse();
      if (err instanceof FrameError) throw new Error(err.message);
      const e = err as Error;
      throw new Error(e?.message ? `stream to node failed: ${e.message}` : 'stream to node failed');
    }
  }

  private slotsOf(peer: string): Slots {
    let s = this.slots.get(peer);
    if (!s) {
      s = new Slots(this.o.maxInflightPerNode);
      this.slots.set(peer, s);
    }
    return s;
  }

  /** where the request goes: a mux channel (rpcMode mux, when the node speaks it) or a fresh request stream */
  private async connect(b: SignedBinding, signal: AbortSignal): Promise<Conn> {
    if (this.o.rpcMode === 'mux' && !this.noMux.has(b.peer_id)) {
      const ch = await this.channel(b, signal);
      if (ch) return { mux: ch };
    }
    return { stream: await this.open(b, RPC_PROTOCOL, signal) };
  }

  /** the least busy open mux channel to the peer, opening another while there are fewer than muxStreams */
  private async channel(b: SignedBinding, signal: AbortSignal): Promise<MuxChannel | undefined> {
    // once a direct connection is up (a hole punch after a relayed start), new requests leave the relayed channels
    // (those finish what they carry and go with the relayed connection)
    const direct = this.hasDirect(b.peer_id);
    const list = (this.channels.get(b.peer_id) ?? []).filter((c) => c.open && !(direct && this.relayedChannels.has(c)));
    this.channels.set(b.peer_id, list);
    const best = list.reduce<MuxChannel | undefined>((m, c) => (m === undefined || c.inflight < m.inflight ? c : m), undefined);
    if (best && (list.length >= this.o.muxStreams || best.inflight < 8)) return best;
    let opening = this.opening.get(b.peer_id);
    if (!opening) {
      opening = (async () => {
        try {
          const stream = await this.open(b, RPC_MUX_PROTOCOL, signal);
          const ch = new MuxChannel(stream, { maxReplyBytes: this.o.maxReplyBytes, maxRequestBytes: this.o.maxRequestBytes });
          if (this.relayedStreams.has(stream)) this.relayedChannels.add(ch);
          const chans = this.channels.get(b.peer_id);
          if (chans) chans.push(ch);
          else this.channels.set(b.peer_id, [ch]);
          return ch;
        } catch (err) {
          if ((err as Error).name === 'UnsupportedProtocolError') {
            this.noMux.add(b.peer_id);
            return undefined;
          }
          if (best) return best;
          throw err;
        } finally {
          this.opening.delete(b.peer_id);
        }
      })();
      this.opening.set(b.peer_id, opening);
    }
    return (await opening) ?? best;
  }

  /** a stream to the bound peer: on an open connection when there is one, else dialled */
  private async open(b: SignedBinding, protocol: string, signal: AbortSignal): Promise<Stream> {
    const opts = {
      signal,
      runOnLimitedConnection: true,
      maxOutboundStreams: this.o.maxInflightPerNode + 16,
      // the request is written at once: send the protocol id with it instead of waiting for the echo
      negotiateFully: protocol !== RPC_PROTOCOL,
    };
    this.dialled.add(b.peer_id);
    const conns = this.host.getConnections(this.pid(b.peer_id)).filter((c) => c.status === 'open');
    // a direct connection before a relayed one
    const conn = conns.find((c) => !isRelayedAddr(c.remoteAddr.toString())) ?? conns[0];
    if (conn) {
      try {
        const stream = await conn.newStream(protocol, opts);
        if (isRelayedAddr(conn.remoteAddr.toString())) this.relayedStreams.add(stream);
        return stream;
      } catch (err) {
        if (signal.aborted || (err as Error).name === 'UnsupportedProtocolError') throw err;
        // the connection died under us: dial below
      }
    }
    const conn2 = await this.host.dial(this.pid(b.peer_id), { signal });
    const stream = await conn2.newStream(protocol, opts);
    if (isRelayedAddr(conn2.remoteAddr.toString())) this.relayedStreams.add(stream);
    return stream;
  }

  /** PeerId objects by their string (decoding base58 on every request showed in profiles) */
  private readonly peerIds = new Map<string, PeerId>();
  private pid(peer: string): PeerId {
    let id = this.peerIds.get(peer);
    if (!id) {
      if (this.peerIds.size > 10_000) this.peerIds.clear();
      id = peerIdFromString(peer);
      this.peerIds.set(peer, id);
    }
    return id;
  }

  private hasDirect(peer: string): boolean {
    return this.host.getConnections(this.pid(peer)).some((c) => c.status === 'open' && !isRelayedAddr(c.remoteAddr.toString()));
  }
}
