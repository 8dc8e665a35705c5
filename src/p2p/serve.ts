// The GPU node's side of the network: answer /dbc/rpc/1.0.0 streams (and /dbc/rpc-mux/1.0.0) with GpuNode.handle, and keep a signed binding
// record {node_id, peer_id, addrs, ...} published: pushed to every peer that takes bindings (seeds, clients) as it
// is identified, put in the DHT under /dbc/<node_id>, re-signed when our addresses change (a relay reservation, a
// new port) and before it expires.
import './polyfill.js';
import type { PeerId } from '@libp2p/interface';
import type { ChannelOpen, NodeReply, NodeRequest } from '../protocol/types.js';
import type { Logger } from '../util/logger.js';
import { bindingDhtKey, DEFAULT_BINDING_TTL_MS, encodeBinding, makeBinding, type SignedBinding } from './binding.js';
import { BINDING_PUSH_PROTOCOL, pushBinding } from './directory.js';
import { hostMultiaddrs, type Host } from './host.js';
import { RPC_MUX_PROTOCOL, serveMuxStream } from './mux.js';
import { CHANNEL_PROTOCOL, serveChannelStream } from './channel.js';
import { toEnvelope } from '../protocol/errors.js';
import type { ByteChannel } from '../util/channel.js';
import { DEFAULT_MAX_REPLY_BYTES, DEFAULT_MAX_REQUEST_BYTES, RPC_PROTOCOL, serveStream } from './rpc.js';

export interface ServedNode {
  nodeId: string;
  name: string;
  version: string;
  handle(req: NodeRequest): Promise<NodeReply>;
  /** long-lived channels (events, console, VNC); absent: the protocol is not served */
  openChannel?(open: ChannelOpen): Promise<ByteChannel>;
}

export interface NodeServiceOptions {
  host: Host;
  node: ServedNode;
  /** sr25519 signature by the node key over the UTF-8 message, hex */
  sign: (message: string) => string;
  bindingTtlMs?: number;
  /** how often the record is re-signed and pushed again (default: a third of the TTL) */
  republishMs?: number;
  maxRequestBytes?: number;
  maxReplyBytes?: number;
  /** requests being handled at once, over all peers; more are answered BUSY */
  maxInflight?: number;
  /** concurrent request streams one connection may open; more are reset by libp2p */
  maxStreamsPerConnection?: number;
  /** how long a peer may take to send its request frame */
  readTimeoutMs?: number;
  /** also put the record in the DHT (default true) */
  dht?: boolean;
  logger?: Logger;
}

export class NodeService {
  private current?: SignedBinding;
  private timer?: NodeJS.Timeout;
  private addrTimer?: NodeJS.Timeout;
  private inflight = 0;
  private stopped = false;
  /** requests answered so far (tests, logs) */
  served = 0;
  /** requests answered `<op> timeout` at their deadline */
  timedOut = 0;
  private readonly onIdentify = (evt: CustomEvent<{ peerId: PeerId; protocols: string[] }>) => {
    if (evt.detail.protocols.includes(BINDING_PUSH_PROTOCOL)) void this.pushTo(evt.detail.peerId);
  };
  private readonly onSelfUpdate = () => {
    // addresses settle in bursts (listen, relay reservation, identify): re-sign once they have
    clearTimeout(this.addrTimer);
    this.addrTimer = setTimeout(() => {
      const addrs = this.addrs();
      if (this.current && JSON.stringify(addrs) !== JSON.stringify(this.current.addrs)) void this.publish();
    }, 200);
  };

  constructor(private readonly o: NodeServiceOptions) {}

  get host(): Host {
    return this.o.host;
  }

  async start(): Promise<void> {
    const { host, node } = this.o;
    const maxInflight = this.o.maxInflight ?? 1024;
    const serveOpts = {
      nodeId: node.nodeId,
      maxRequestBytes: this.o.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
      maxReplyBytes: this.o.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
      readTimeoutMs: this.o.readTimeoutMs,
      busy: () => this.inflight >= maxInflight,
      handle: async (req: NodeRequest): Promise<NodeReply> => {
        this.inflight++;
        try {
          const reply = await node.handle(req);
          this.served++;
          return reply;
        } finally {
          this.inflight--;
        }
      },
      onDeadline: () => void this.timedOut++,
    };
    await host.handle(RPC_PROTOCOL, (stream) => void serveStream(stream, serveOpts), {
      maxInboundStreams: this.o.maxStreamsPerConnection ?? 1000,
      runOnLimitedConnection: true,
    });
    await host.handle(RPC_MUX_PROTOCOL, (stream) => void serveMuxStream(stream, serveOpts), {
      maxInboundStreams: 16,
      runOnLimitedConnection: true,
    });
    const openChannel = node.openChannel?.bind(node);
    if (openChannel) {
      await host.handle(
        CHANNEL_PROTOCOL,
        (stream) => void serveChannelStream(stream, { nodeId: node.nodeId, open: openChannel, toEnvelope: (err) => toEnvelope(err).body }),
        // a console or events stream per viewer: more than RPC's 16 mux streams, far fewer than per-request streams
        { maxInboundStreams: 256, runOnLimitedConnection: true },
      );
    }
    host.addEventListener('peer:identify', this.onIdentify);
    host.addEventListener('self:peer:update', this.onSelfUpdate);
    await this.publish();
    const ttl = this.o.bindingTtlMs ?? DEFAULT_BINDING_TTL_MS;
    this.timer = setInterval(() => void this.publish(), this.o.republishMs ?? Math.max(1000, Math.floor(ttl / 3)));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.addrTimer);
    this.o.host.removeEventListener('peer:identify', this.onIdentify as never);
    this.o.host.removeEventListener('self:peer:update', this.onSelfUpdate);
    await this.o.host.unhandle([RPC_PROTOCOL, RPC_MUX_PROTOCOL, CHANNEL_PROTOCOL]).catch(() => undefined);
  }

  /** the record as last signed */
  binding(): SignedBinding {
    return this.current ?? this.sign();
  }

  private addrs(): string[] {
    return hostMultiaddrs(this.o.host)
      .map((a) => a.replace(/\/p2p\/[^/]+$/, ''))
      .sort();
  }

  private sign(): SignedBinding {
    const { node } = this.o;
    this.current = makeBinding({
      nodeId: node.nodeId,
      sign: this.o.sign,
      peerId: this.o.host.peerId.toString(),
      addrs: this.addrs(),
      version: node.version,
      name: node.name,
      ttlMs: this.o.bindingTtlMs,
    });
    return this.current;
  }

  /** re-sign, push to every connected peer that takes bindings, put in the DHT; never throws */
  async publish(): Promise<void> {
    if (this.stopped) return;
    const b = this.sign();
    const peers = new Map<string, PeerId>();
    for (const conn of this.o.host.getConnections()) peers.set(conn.remotePeer.toString(), conn.remotePeer);
    await Promise.allSettled([...peers.values()].map((p) => this.pushTo(p, true)));
    if (this.o.dht !== false) void this.putDht(b);
  }

  private async pushTo(peer: PeerId, checkProtocols = false): Promise<void> {
    if (this.stopped) return;
    try {
      if (checkProtocols) {
        const info = await this.o.host.peerStore.get(peer);
        if (!info.protocols.includes(BINDING_PUSH_PROTOCOL)) return;
      }
      const verdict = await pushBinding(this.o.host, peer, this.binding());
      this.o.logger?.debug({ peer: peer.toString(), verdict }, 'binding pushed');
    } catch (err) {
      this.o.logger?.debug({ peer: peer.toString(), err: (err as Error).message }, 'binding push failed');
    }
  }

  private async putDht(b: SignedBinding): Promise<void> {
    const dht = this.o.host.services.dht;
    try {
      const signal = AbortSignal.timeout(10_000);
      for await (const _ of dht.put(bindingDhtKey(b.node_id), encodeBinding(b), { signal })) {
        // drain the query events
      }
    } catch (err) {
      this.o.logger?.debug({ err: (err as Error).message }, 'binding DHT put failed');
    }
  }
}
