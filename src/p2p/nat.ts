// NAT traversal on top of the circuit relay: AutoNAT v1 (a peer behind NAT learns it, from a seed that dials it
// back) and DCUtR (a relayed connection is upgraded to a direct one by TCP simultaneous open). Both speak the
// standard libp2p wire protocols (/libp2p/autonat/1.0.0, /libp2p/dcutr); the implementation is ours because
// js-libp2p's cannot punch TCP on Node 20: without SO_REUSEPORT a dial never leaves from the listen port, so the
// address a peer observes is a port the NAT never maps for anyone else (docs/p2p.md, "Behind NAT").
//
// What we do instead: every hole-punch dial leaves from one fixed local port, the punch port (Linux lets several
// connecting sockets share a port when none listens on it). A probe connection from that port to a seed keeps its
// NAT mapping open and tells us (identify's observed address) what the mapping is: that address is what we offer in
// DCUtR's CONNECT. On a NAT that maps a source port to the same public port whatever the destination (Linux
// masquerade, most home routers) the peer's SYN arrives through that mapping; on a symmetric NAT it does not and the
// connection stays relayed.
import './polyfill.js';
import net from 'node:net';
import os from 'node:os';
import type { Connection, PeerId, Stream, Transport, Upgrader } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { Logger } from '../util/logger.js';
import type { Host } from './host.js';
import { pbBytes, pbBytesList, pbDecode, pbEncode, pbNumber } from './pb.js';
import { asError, framed } from './rpc.js';

export const AUTONAT_PROTOCOL = '/libp2p/autonat/1.0.0';
export const DCUTR_PROTOCOL = '/libp2p/dcutr';

/** AutoNAT v1 Message.type / DialResponse.status */
const DIAL = 0;
const DIAL_RESPONSE = 1;
export const AutonatStatus = { OK: 0, E_DIAL_ERROR: 100, E_DIAL_REFUSED: 101, E_BAD_REQUEST: 200, E_INTERNAL_ERROR: 300 } as const;
/** DCUtR HolePunch.type */
const CONNECT = 100;
const SYNC = 300;

const MAX_MESSAGE_BYTES = 4096;
const IO_TIMEOUT_MS = 5000;
/** addresses of one AutoNAT request or DCUtR CONNECT we look at; more are ignored */
const MAX_ADDRS = 4;

export type Reachability = 'unknown' | 'public' | 'private';

/**
 * A libp2p service that dials TCP from the punch port. libp2p's dial queue passes a dial only its signal and
 * priority (not `localPort`, not DCUtR's `initiator: false`), so the punch goes around it: a second TCP transport,
 * whose dials leave from `localPort`, upgraded by libp2p's own upgrader (the connection is then libp2p's like any).
 */
export interface PunchDialer {
  /** the local port dials leave from; set before the first dial */
  localPort: number;
  dial(ma: Multiaddr, o: { signal: AbortSignal; initiator: boolean }): Promise<Connection>;
}

export function punchDialer(): (components: { upgrader: Upgrader } & Record<string, unknown>) => PunchDialer {
  return (components) => {
    const dialOpts: { localPort?: number } = {};
    const transport = (tcp({ dialOpts: dialOpts as never }) as unknown as (c: unknown) => Transport)(components);
    return {
      get localPort() {
        return dialOpts.localPort ?? 0;
      },
      set localPort(p: number) {
        dialOpts.localPort = p;
      },
      dial: async (ma, o) => {
        if (!dialOpts.localPort) throw new Error('no punch port');
        // the connection keeps the signal it was dialled with: give it one that only the dial's own deadline aborts
        const ac = new AbortController();
        const stop = () => ac.abort(o.signal.reason);
        if (o.signal.aborted) stop();
        o.signal.addEventListener('abort', stop, { once: true });
        try {
          return await dialWith(ma, { ...o, signal: ac.signal });
        } finally {
          o.signal.removeEventListener('abort', stop);
        }
      },
    };
    function dialWith(ma: Multiaddr, o: { signal: AbortSignal; initiator: boolean }): Promise<Connection> {
      if (o.initiator) return transport.dial(ma, { upgrader: components.upgrader, signal: o.signal } as never);
      // the responder of a simultaneous open: the whole upgrade (multistream, Noise, and yamux, which takes its
      // role from the raw connection's direction) runs as if the connection had come in
      const upgrader = {
        upgradeOutbound: (maConn: { direction: string }, opts: object) => {
          maConn.direction = 'inbound';
          return components.upgrader.upgradeOutbound(maConn as never, { ...opts, initiator: false } as never);
        },
      };
      return transport.dial(ma, { upgrader, signal: o.signal, initiator: false } as never);
    }
  };
}

export const isRelayed = (ma: Multiaddr | string): boolean => ma.toString().includes('/p2p-circuit');

/** /ip4|ip6/<host>/tcp/<port> (nothing else, no /p2p) or undefined */
export function tcpEndpoint(ma: Multiaddr): { host: string; port: number } | undefined {
  const c = ma.getComponents();
  if (c.length !== 2 || (c[0]!.name !== 'ip4' && c[0]!.name !== 'ip6') || c[1]!.name !== 'tcp') return undefined;
  const port = Number(c[1]!.value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host: c[0]!.value!, port };
}

/** the transport part of an address: without /p2p/<id>, undefined for anything not plain TCP */
function plainTcp(bytesOrMa: Uint8Array | Multiaddr): Multiaddr | undefined {
  try {
    const ma = bytesOrMa instanceof Uint8Array ? multiaddr(bytesOrMa) : bytesOrMa;
    const parts = ma.getComponents().filter((c) => c.name !== 'p2p');
    if (parts.length !== 2) return undefined;
    const plain = multiaddr(`/${parts[0]!.name}/${parts[0]!.value}/${parts[1]!.name}/${parts[1]!.value}`);
    return tcpEndpoint(plain) ? plain : undefined;
  } catch {
    return undefined;
  }
}

/** every address of this host's interfaces */
function localHosts(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) out.add(i.address);
  return out;
}

/** a TCP port nobody listens on now (the punch port when none is configured) */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface NatOptions {
  host: Host;
  /** answer AutoNAT dial-back requests (seeds) */
  serveAutonat?: boolean;
  /** learn our reachability from the seeds and hole-punch relayed connections (nodes, clients) */
  punch?: boolean;
  /** the local TCP port hole-punch dials leave from (0 or absent: a free one at start) */
  punchPort?: number;
  /** peer ids of the seeds (AutoNAT servers, probe targets) */
  seedPeers?: string[];
  /** how long a relayed connection lives on after a direct one replaced it, so requests on it can finish */
  relayedGraceMs?: number;
  /** how often reachability and the punch mapping are checked again */
  recheckMs?: number;
  logger?: Logger;
  /** called when reachability changes */
  onReachability?: (r: Reachability) => void;
}

export interface NatStatus {
  reachability: Reachability;
  /** the public address of the punch port as a seed saw it */
  punch_addr?: string;
  punch_port?: number;
  punch_attempts: number;
  punch_successes: number;
  autonat_served: number;
}

export class NatService {
  reachability: Reachability = 'unknown';
  punchPort = 0;
  punchAddr?: Multiaddr;
  private probe?: Connection;
  private readonly observed = new Map<string, Multiaddr>();
  private readonly waiters = new Map<string, (ma: Multiaddr) => void>();
  private readonly punching = new Set<string>();
  /** ids of the connections our punches made */
  private readonly punched = new Set<string>();
  private readonly lastPunch = new Map<string, number>();
  private autonatInflight = 0;
  private timer?: NodeJS.Timeout;
  private checking?: Promise<void>;
  private stopped = false;
  private attempts = 0;
  private successes = 0;
  private served = 0;
  private readonly log?: Logger;

  constructor(private readonly o: NatOptions) {
    this.log = o.logger;
  }

  private readonly onIdentify = (evt: CustomEvent<{ peerId: PeerId; connection: Connection; observedAddr?: Multiaddr }>) => {
    const { connection, observedAddr, peerId } = evt.detail;
    if (!observedAddr) return;
    const plain = plainTcp(observedAddr);
    if (!plain) return;
    this.observed.set(connection.id, plain);
    this.waiters.get(connection.id)?.(plain);
    if (this.o.punch && this.isSeed(peerId) && this.reachability === 'unknown') this.recheckSoon();
  };

  private readonly onConnectionOpen = (evt: CustomEvent<Connection>) => {
    const conn = evt.detail;
    if (!this.o.punch || conn.direction !== 'inbound' || !isRelayed(conn.remoteAddr)) return;
    // we are B (reached through the relay): start the hole punch, as DCUtR's spec has it
    void this.upgradeInbound(conn).catch((err: unknown) =>
      this.log?.debug({ peer: conn.remotePeer.toString(), err: asError(err).message }, 'hole punch failed'),
    );
  };

  private readonly onConnectionClose = (evt: CustomEvent<Connection>) => {
    this.observed.delete(evt.detail.id);
    if (this.punched.delete(evt.detail.id)) {
      this.log?.info({ peer: evt.detail.remotePeer.toString(), open_ms: Date.now() - evt.detail.timeline.open }, 'hole-punched connection closed');
    }
    if (this.probe?.id === evt.detail.id) this.probe = undefined;
  };

  async start(): Promise<void> {
    const { host } = this.o;
    host.addEventListener('peer:identify', this.onIdentify);
    host.addEventListener('connection:open', this.onConnectionOpen);
    host.addEventListener('connection:close', this.onConnectionClose);
    if (this.o.serveAutonat) {
      await host.handle(AUTONAT_PROTOCOL, (stream, conn) => void this.serveAutonat(stream, conn), { maxInboundStreams: 8, maxOutboundStreams: 8 });
    }
    if (this.o.punch) {
      this.punchPort = this.o.punchPort || (await freePort());
      await host.handle(DCUTR_PROTOCOL, (stream, conn) => void this.handleUpgrade(stream, conn), {
        maxInboundStreams: 4,
        maxOutboundStreams: 4,
        runOnLimitedConnection: true,
      });
      this.timer = setInterval(() => this.recheckSoon(), this.o.recheckMs ?? 300_000);
      this.timer.unref();
      this.recheckSoon();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const { host } = this.o;
    host.removeEventListener('peer:identify', this.onIdentify as never);
    host.removeEventListener('connection:open', this.onConnectionOpen as never);
    host.removeEventListener('connection:close', this.onConnectionClose as never);
    await host.unhandle([AUTONAT_PROTOCOL, DCUTR_PROTOCOL]).catch(() => undefined);
  }

  status(): NatStatus {
    return {
      reachability: this.reachability,
      ...(this.punchAddr ? { punch_addr: this.punchAddr.toString() } : {}),
      ...(this.punchPort ? { punch_port: this.punchPort } : {}),
      punch_attempts: this.attempts,
      punch_successes: this.successes,
      autonat_served: this.served,
    };
  }

  private dialer(): PunchDialer {
    const d = (this.o.host.services as { punch?: PunchDialer }).punch;
    if (!d) throw new Error('the host has no punch dialer');
    d.localPort = this.punchPort;
    return d;
  }

  private isSeed(peer: PeerId): boolean {
    return (this.o.seedPeers ?? []).includes(peer.toString());
  }

  private seedConnections(): Connection[] {
    return this.o.host.getConnections().filter((c) => c.status === 'open' && this.isSeed(c.remotePeer) && !isRelayed(c.remoteAddr));
  }

  /** check reachability and the punch mapping (one at a time) */
  recheckSoon(): void {
    if (this.checking || this.stopped) return;
    this.checking = this.recheck()
      .catch((err: unknown) => this.log?.debug({ err: asError(err).message }, 'NAT check failed'))
      .finally(() => (this.checking = undefined));
  }

  private async recheck(): Promise<void> {
    const seeds = this.seedConnections();
    const first = seeds.find((c) => c.id !== this.probe?.id);
    if (!first) return;
    await this.refreshProbe(first);
    const seen = this.observed.get(first.id);
    if (!seen) return;
    const r = await this.askAutonat(first, tcpEndpoint(seen)!.host);
    if (r !== this.reachability && r !== 'unknown') {
      this.reachability = r;
      this.log?.info({ reachability: r, observed: tcpEndpoint(seen)!.host, punch_addr: this.punchAddr?.toString() }, 'reachability');
      this.o.onReachability?.(r);
    }
  }

  /** a connection from the punch port to a seed: keeps the NAT mapping open and tells us its public side */
  private async refreshProbe(seedConn: Connection): Promise<void> {
    if (this.probe?.status === 'open' && this.punchAddr) return;
    const target = plainTcp(seedConn.remoteAddr);
    if (!target) return;
    const conn = await this.dialer().dial(target.encapsulate(`/p2p/${seedConn.remotePeer.toString()}`), {
      initiator: true,
      signal: AbortSignal.timeout(IO_TIMEOUT_MS),
    });
    this.probe = conn;
    const seen =
      this.observed.get(conn.id) ??
      (await new Promise<Multiaddr | undefined>((resolve) => {
        const t = setTimeout(() => resolve(undefined), IO_TIMEOUT_MS);
        this.waiters.set(conn.id, (ma) => {
          clearTimeout(t);
          resolve(ma);
        });
      }).finally(() => this.waiters.delete(conn.id)));
    if (seen) this.punchAddr = seen;
  }

  /** AutoNAT v1 client: ask a seed to dial us back on our listen ports at the address it sees us at */
  private async askAutonat(conn: Connection, observedHost: string): Promise<Reachability> {
    const ports = new Set<number>();
    for (const ma of this.o.host.getMultiaddrs()) {
      const ep = plainTcp(ma);
      if (ep && !isRelayed(ma)) ports.add(tcpEndpoint(ep)!.port);
    }
    if (ports.size === 0) return 'private';
    const family = observedHost.includes(':') ? 'ip6' : 'ip4';
    const addrs = [...ports].slice(0, MAX_ADDRS).map((p) => multiaddr(`/${family}/${observedHost}/tcp/${p}`).bytes);
    const request = pbEncode([
      [1, DIAL],
      [2, pbEncode([[1, pbEncode([[1, this.o.host.peerId.toMultihash().bytes], ...addrs.map((a): [number, Uint8Array] => [2, a])])]])],
    ]);
    const signal = AbortSignal.timeout(IO_TIMEOUT_MS * 2);
    const stream = await conn.newStream(AUTONAT_PROTOCOL, { signal });
    const lp = framed(stream, MAX_MESSAGE_BYTES);
    try {
      await lp.write(request, { signal });
      const reply = pbDecode((await lp.read({ signal })).subarray());
      await stream.close({ signal }).catch(() => undefined);
      const resp = pbBytes(reply, 3);
      if (pbNumber(reply, 1) !== DIAL_RESPONSE || !resp) return 'unknown';
      const status = pbNumber(pbDecode(resp), 1) ?? AutonatStatus.OK;
      if (status === AutonatStatus.OK) return 'public';
      if (status === AutonatStatus.E_DIAL_ERROR) return 'private';
      return 'unknown';
    } catch (err) {
      stream.abort(asError(err));
      throw err;
    }
  }

  /**
   * AutoNAT v1 server (seeds): dial the asking peer back on the addresses it names, but only at the address we see
   * its connection come from (we never dial a third party for anyone), never ourselves, at most 8 checks at once.
   */
  private async serveAutonat(stream: Stream, conn: Connection): Promise<void> {
    const lp = framed(stream, MAX_MESSAGE_BYTES);
    const signal = AbortSignal.timeout(IO_TIMEOUT_MS * 2);
    const answer = async (status: number, text: string, addr?: Uint8Array) => {
      const resp = pbEncode([
        [1, status],
        [2, new TextEncoder().encode(text)],
        [3, addr],
      ]);
      await lp.write(
        pbEncode([
          [1, DIAL_RESPONSE],
          [3, resp],
        ]),
        { signal },
      );
      await stream.close({ signal }).catch(() => undefined);
    };
    try {
      const msg = pbDecode((await lp.read({ signal })).subarray());
      const dial = pbBytes(msg, 2);
      const peer = dial ? pbBytes(pbDecode(dial), 1) : undefined;
      if (pbNumber(msg, 1) !== DIAL || !peer) return await answer(AutonatStatus.E_BAD_REQUEST, 'no dial request');
      const info = pbDecode(peer);
      const id = pbBytes(info, 1);
      const mine = conn.remotePeer.toMultihash().bytes;
      if (!id || id.length !== mine.length || id.some((b, i) => b !== mine[i])) return await answer(AutonatStatus.E_BAD_REQUEST, 'peer id mismatch');
      const from = isRelayed(conn.remoteAddr) ? undefined : plainTcp(conn.remoteAddr);
      if (!from) return await answer(AutonatStatus.E_DIAL_REFUSED, 'not over a direct connection');
      const fromHost = tcpEndpoint(from)!.host;
      const ours = localHosts();
      const targets = pbBytesList(info, 2)
        .slice(0, MAX_ADDRS)
        .map((b) => plainTcp(b))
        .filter((ma): ma is Multiaddr => ma !== undefined && tcpEndpoint(ma)!.host === fromHost && !ours.has(fromHost));
      if (targets.length === 0) return await answer(AutonatStatus.E_DIAL_REFUSED, 'no address to dial');
      if (this.autonatInflight >= 8) return await answer(AutonatStatus.E_DIAL_REFUSED, 'busy');
      this.autonatInflight++;
      this.served++;
      try {
        let last = '';
        for (const ma of targets) {
          try {
            const back = await this.o.host.dial(ma.encapsulate(`/p2p/${conn.remotePeer.toString()}`), {
              force: true,
              signal: AbortSignal.timeout(IO_TIMEOUT_MS),
            });
            await back.close().catch(() => undefined);
            return await answer(AutonatStatus.OK, 'dialled back', ma.bytes);
          } catch (err) {
            last = asError(err).message;
          }
        }
        return await answer(AutonatStatus.E_DIAL_ERROR, last.slice(0, 200));
      } finally {
        this.autonatInflight--;
      }
    } catch (err) {
      stream.abort(asError(err));
    }
  }

  private hasDirect(peer: PeerId): boolean {
    return this.o.host.getConnections(peer).some((c) => c.status === 'open' && !isRelayed(c.remoteAddr));
  }

  /** the addresses a CONNECT may name that we will dial: plain TCP, at most MAX_ADDRS */
  private dialable(list: Uint8Array[]): Multiaddr[] {
    return list
      .slice(0, MAX_ADDRS)
      .map((b) => plainTcp(b))
      .filter((ma): ma is Multiaddr => ma !== undefined);
  }

  private ourAddrs(): Uint8Array[] {
    return this.punchAddr ? [this.punchAddr.bytes] : [];
  }

  /** one punch at a time per peer, and not more than once in 30 s (a relayed peer cannot make us dial in a loop) */
  private claim(peer: string): boolean {
    const last = this.lastPunch.get(peer) ?? 0;
    if (this.punching.has(peer) || Date.now() - last < 30_000) return false;
    if (this.lastPunch.size > 10_000) this.lastPunch.clear();
    this.lastPunch.set(peer, Date.now());
    this.punching.add(peer);
    return true;
  }

  /** dial the peer's public punch addresses from our punch port; true when a direct connection is up */
  private async punchDial(peer: PeerId, targets: Multiaddr[], initiator: boolean): Promise<Connection | undefined> {
    this.attempts++;
    const attempts = targets.map((ma) =>
      this.dialer().dial(ma.encapsulate(`/p2p/${peer.toString()}`), { initiator, signal: AbortSignal.timeout(IO_TIMEOUT_MS) }),
    );
    try {
      const conn = await Promise.any(attempts);
      // as responder (an inbound-style upgrade) Noise does not check whom it expects: we do
      if (isRelayed(conn.remoteAddr) || !conn.remotePeer.equals(peer)) {
        await conn.close().catch(() => undefined);
        return undefined;
      }
      this.successes++;
      this.punched.add(conn.id);
      return conn;
    } catch (err) {
      const errors = err instanceof AggregateError ? err.errors : [err];
      this.log?.debug({ peer: peer.toString(), targets: targets.map(String), errors: errors.map((e) => asError(e).message) }, 'hole punch dial failed');
      return undefined;
    }
  }

  /** after a direct connection is up, the relayed one carries on for a grace period (requests on it finish) */
  private retire(relayed: Connection): void {
    const t = setTimeout(() => void relayed.close().catch(() => undefined), this.o.relayedGraceMs ?? 35_000);
    t.unref();
  }

  /** B: we were reached through the relay. CONNECT with our punch address, wait for A's, SYNC, dial after RTT/2 */
  private async upgradeInbound(relayed: Connection): Promise<void> {
    const peer = relayed.remotePeer;
    if (this.hasDirect(peer) || !this.punchAddr || !this.claim(peer.toString())) return;
    try {
      for (let attempt = 1; attempt <= 3 && !this.stopped; attempt++) {
        const signal = AbortSignal.timeout(IO_TIMEOUT_MS * 2);
        const stream = await relayed.newStream(DCUTR_PROTOCOL, { signal, runOnLimitedConnection: true });
        const lp = framed(stream, MAX_MESSAGE_BYTES);
        let conn: Connection | undefined;
        try {
          const t0 = Date.now();
          await lp.write(pbEncode([[1, CONNECT], ...this.ourAddrs().map((a): [number, Uint8Array] => [2, a])]), { signal });
          const connect = pbDecode((await lp.read({ signal })).subarray());
          if (pbNumber(connect, 1) !== CONNECT) throw new Error('expected CONNECT');
          const targets = this.dialable(pbBytesList(connect, 2));
          if (targets.length === 0) throw new Error('the peer named no address to punch');
          const rtt = Date.now() - t0;
          await lp.write(pbEncode([[1, SYNC]]), { signal });
          await new Promise((r) => setTimeout(r, rtt / 2));
          conn = await this.punchDial(peer, targets, false);
          await stream.close({ signal }).catch(() => undefined);
        } catch (err) {
          stream.abort(asError(err));
          throw err;
        }
        if (conn) {
          this.log?.info({ peer: peer.toString(), addr: conn.remoteAddr.toString(), attempt }, 'hole punch: direct connection');
          this.retire(relayed);
          return;
        }
        if (this.hasDirect(peer)) return;
      }
      this.log?.info({ peer: peer.toString() }, 'hole punch failed: staying on the relay');
    } finally {
      this.punching.delete(peer.toString());
    }
  }

  /** A: the peer we reached through the relay started a punch. Answer CONNECT, wait for SYNC, dial at once */
  private async handleUpgrade(stream: Stream, relayed: Connection): Promise<void> {
    const lp = framed(stream, MAX_MESSAGE_BYTES);
    const signal = AbortSignal.timeout(IO_TIMEOUT_MS * 2);
    try {
      if (!isRelayed(relayed.remoteAddr)) throw new Error('DCUtR over a direct connection');
      const connect = pbDecode((await lp.read({ signal })).subarray());
      if (pbNumber(connect, 1) !== CONNECT) throw new Error('expected CONNECT');
      const targets = this.dialable(pbBytesList(connect, 2));
      await lp.write(pbEncode([[1, CONNECT], ...this.ourAddrs().map((a): [number, Uint8Array] => [2, a])]), { signal });
      const sync = pbDecode((await lp.read({ signal })).subarray());
      if (pbNumber(sync, 1) !== SYNC) throw new Error('expected SYNC');
      await stream.close({ signal }).catch(() => undefined);
      if (targets.length === 0 || this.hasDirect(relayed.remotePeer)) return;
      const conn = await this.punchDial(relayed.remotePeer, targets, true);
      if (conn) {
        this.log?.info({ peer: relayed.remotePeer.toString(), addr: conn.remoteAddr.toString() }, 'hole punch: direct connection');
        this.retire(relayed);
      }
    } catch (err) {
      this.log?.debug({ peer: relayed.remotePeer.toString(), err: asError(err).message }, 'hole punch (answering side) failed');
      stream.abort(asError(err));
    }
  }
}
