// The libp2p host every role runs: TCP + Noise + Yamux, identify, ping, bootstrap from seeds, a private Kademlia
// DHT (its own protocol id and a `/dbc/` record namespace) and circuit relay v2 (server on seeds, transport
// everywhere, a reservation on nodes that ask for one so that a node behind NAT stays reachable).
import './polyfill.js';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { bootstrap } from '@libp2p/bootstrap';
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { identify } from '@libp2p/identify';
import type { Libp2p, PrivateKey, ServiceMap } from '@libp2p/interface';
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht';
import { ping, type Ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type ServiceFactoryMap } from 'libp2p';
import { punchDialer, type PunchDialer } from './nat.js';
import { BINDING_DHT_NAMESPACE, selectBindingRecord, validateBindingRecord } from './binding.js';

export type Role = 'seed' | 'node' | 'client';

export const DHT_PROTOCOL = '/dbc/kad/1.0.0';
export const PEER_KEY_FILE = 'peer.key';

/** the libp2p key file of a role: a node's is DIR/peer.key; a seed or client sharing a data dir gets its own */
export function peerKeyFile(role: Role): string {
  return role === 'node' ? PEER_KEY_FILE : `${role}-${PEER_KEY_FILE}`;
}
export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/0';

export interface HostOptions {
  role: Role;
  privateKey: PrivateKey;
  /** multiaddrs to listen on (default TCP on 0.0.0.0, any port) */
  listen?: string[];
  /** multiaddrs to announce instead of the listen addresses (e.g. a forwarded public port) */
  announce?: string[];
  /** seed multiaddrs, each with /p2p/<peer id> */
  seeds?: string[];
  /** node only: take a relay reservation on a seed and announce the /p2p-circuit address (for a node behind NAT) */
  relay?: boolean;
  /** announce only relayed addresses (what a node behind NAT is reachable on; tests use it to simulate NAT) */
  relayOnly?: boolean;
  /** answer DHT queries (seeds and nodes: yes; clients: no) */
  dhtServer?: boolean;
}

export type DbcServices = ServiceMap & {
  identify: unknown;
  ping: Ping;
  dht: KadDHT;
  relay?: unknown;
  punch?: PunchDialer;
};

export type Host = Libp2p<DbcServices>;

/** the persisted Ed25519 libp2p key of a data dir (created on first use), so the peer id survives restarts */
export async function loadOrCreatePeerKey(dataDir: string, fileName = PEER_KEY_FILE): Promise<PrivateKey> {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, fileName);
  if (existsSync(file)) return privateKeyFromProtobuf(readFileSync(file));
  const key = await generateKeyPair('Ed25519');
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, privateKeyToProtobuf(key), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return key;
}

/** throws a readable error for a --seed that is not a multiaddr with a /p2p/<peer id> */
export function checkSeedAddr(addr: string): string {
  let ma;
  try {
    ma = multiaddr(addr);
  } catch (err) {
    throw new Error(`--seed ${addr}: not a multiaddr (${(err as Error).message})`);
  }
  if (ma.getComponents().every((c) => c.name !== 'p2p')) throw new Error(`--seed ${addr}: needs a /p2p/<peer id> part`);
  return addr;
}

/** the peer ids named by --seed multiaddrs */
export function seedPeerIds(seeds: string[]): string[] {
  return seeds
    .map(
      (s) =>
        multiaddr(checkSeedAddr(s))
          .getComponents()
          .find((c) => c.name === 'p2p')?.value ?? '',
    )
    .filter(Boolean);
}

export async function createHost(o: HostOptions): Promise<Host> {
  const seeds = (o.seeds ?? []).map(checkSeedAddr);
  const listen = [...(o.listen?.length ? o.listen : [DEFAULT_LISTEN])];
  if (o.role === 'node' && (o.relay || o.relayOnly)) listen.push('/p2p-circuit');
  const dhtServer = o.dhtServer ?? o.role !== 'client';

  const services: ServiceFactoryMap<DbcServices> = {
    identify: identify(),
    // the connection monitor, kad-dht (it pings every new contact before adding it to the routing table) and callers
    // ping concurrently: one outbound ping stream per connection (the default) makes kad drop the contact
    ping: ping({ maxOutboundStreams: 8, maxInboundStreams: 8 }),
    dht: kadDHT({
      protocol: DHT_PROTOCOL,
      clientMode: !dhtServer,
      // a private network: loopback and LAN addresses are as good as public ones
      peerInfoMapper: passthroughMapper,
      validators: { [BINDING_DHT_NAMESPACE]: validateBindingRecord },
      selectors: { [BINDING_DHT_NAMESPACE]: selectBindingRecord },
      initialQuerySelfInterval: 500,
    }),
  };
  // nodes and clients: TCP dials from the hole-punch port (src/p2p/nat.ts)
  if (o.role !== 'seed') services.punch = punchDialer();
  if (o.role === 'seed') {
    services.relay = circuitRelayServer({
      reservations: {
        maxReservations: 1024,
        // the relay carries whole RPC exchanges for nodes behind NAT: no 2-minute / 128 KiB cap
        applyDefaultLimit: false,
      },
    });
  }

  const node = await createLibp2p({
    privateKey: o.privateKey,
    addresses: {
      listen,
      ...(o.announce?.length ? { announce: o.announce } : {}),
      ...(o.relayOnly ? { announceFilter: (addrs: Multiaddr[]) => addrs.filter((a) => a.toString().includes('/p2p-circuit')) } : {}),
    },
    transports: [tcp(), circuitRelayTransport({ reservationCompletionTimeout: 10_000 })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: seeds.length ? [bootstrap({ list: seeds, timeout: 10, tagTTL: 24 * 3600_000 })] : [],
    connectionManager: {
      maxConnections: 1024,
      // every process of a loopback test network comes from 127.0.0.1: the default (5 per second per host)
      // would refuse a seed's or client's peers as they start together
      inboundConnectionThreshold: 1000,
      maxIncomingPendingConnections: 256,
      dialTimeout: 10_000,
    },
    services,
  });
  return node;
}

/** the host's addresses with /p2p/<peer id>, as written to DIR/<role>.json and given to --seed */
export function hostMultiaddrs(host: Host): string[] {
  return host.getMultiaddrs().map((ma) => ma.toString());
}

/**
 * Dial the seeds that are not connected, now and every intervalMs (bootstrap dials them once, at start): a seed
 * that starts later or restarts is picked up again. Returns a stop function.
 */
export function keepSeedsConnected(host: Host, seeds: string[], intervalMs = 10_000): () => void {
  const targets = seeds.map((s) => multiaddr(checkSeedAddr(s)));
  let running = false;
  const tick = async () => {
    if (running || host.status !== 'started') return;
    running = true;
    try {
      const connected = new Set(host.getConnections().map((c) => c.remotePeer.toString()));
      await Promise.allSettled(
        targets
          .filter((ma) => !connected.has(ma.getComponents().find((c) => c.name === 'p2p')?.value ?? ''))
          .map((ma) => host.dial(ma, { signal: AbortSignal.timeout(Math.min(intervalMs, 10_000)) })),
      );
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
