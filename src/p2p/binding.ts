// node_id -> peer: the binding record. A GPU node signs `{node_id, peer_id, addrs, version, name, issued,
// expires}` with its sr25519 node key; a client dials a node's peer only after verifying that signature against the
// node_id (the sr25519 public key) and the expiry. The peer id itself is authenticated by Noise when dialled, so a
// valid record is enough to know that the peer we talk to is the machine that holds node_id's key.
// Pure: no I/O; the clock is a parameter.
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { verifySr25519 } from '../auth/verify.js';

export interface BindingRecord {
  /** the node's sr25519 public key, 64 lowercase hex */
  node_id: string;
  /** the libp2p peer id (base58) of the process serving node_id */
  peer_id: string;
  /** multiaddrs the peer can be dialled on (relay addresses included) */
  addrs: string[];
  /** DBC version the node reports (mining_nodes) */
  version: string;
  /** the node's name (mining_nodes) */
  name: string;
  /** when the record was signed, ms since the epoch: the newest record of a node_id wins */
  issued: number;
  /** the record is void after this, ms since the epoch */
  expires: number;
}

export interface SignedBinding extends BindingRecord {
  /** sr25519 signature by node_id over bindingMessage(record), 128 hex */
  sig: string;
}

export type BindingCheck = { ok: true; binding: SignedBinding } | { ok: false; reason: string };

export const BINDING_DHT_NAMESPACE = 'dbc';
export const DEFAULT_BINDING_TTL_MS = 10 * 60_000;
export const MAX_BINDING_TTL_MS = 24 * 3600_000;
/** how far a record's `issued` may lie in the future (clock skew between machines) */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;
export const MAX_BINDING_BYTES = 8192;
export const MAX_BINDING_ADDRS = 16;
const MAX_ADDR_CHARS = 512;
const MAX_NAME_CHARS = 128;
const MAX_VERSION_CHARS = 32;
const NODE_ID = /^[0-9a-f]{64}$/;
const SIG = /^[0-9a-f]{128}$/;

/** the exact text a node signs: a fixed prefix and a JSON array, so that field order can never differ */
export function bindingMessage(r: BindingRecord): string {
  return `dbc-binding/1:${JSON.stringify([r.node_id, r.peer_id, r.addrs, r.version, r.name, r.issued, r.expires])}`;
}

export interface MakeBindingOptions {
  nodeId: string;
  /** sr25519 signature (hex, with or without 0x) over the UTF-8 message */
  sign: (message: string) => string;
  peerId: string;
  addrs: string[];
  version: string;
  name: string;
  ttlMs?: number;
  now?: number;
}

export function makeBinding(o: MakeBindingOptions): SignedBinding {
  const issued = o.now ?? Date.now();
  const record: BindingRecord = {
    node_id: o.nodeId.toLowerCase(),
    peer_id: o.peerId,
    addrs: dedupeAddrs(o.addrs).slice(0, MAX_BINDING_ADDRS),
    version: o.version.slice(0, MAX_VERSION_CHARS),
    name: o.name.slice(0, MAX_NAME_CHARS),
    issued,
    expires: issued + Math.min(o.ttlMs ?? DEFAULT_BINDING_TTL_MS, MAX_BINDING_TTL_MS),
  };
  return { ...record, sig: o.sign(bindingMessage(record)).toLowerCase().replace(/^0x/, '') };
}

/** addresses without their /p2p/<peer id> suffix (the record names the peer once), duplicates dropped */
function dedupeAddrs(addrs: string[]): string[] {
  const seen = new Set<string>();
  for (const a of addrs) {
    const ma = a.replace(/\/p2p\/[^/]+$/, '');
    if (ma.length > 0 && ma.length <= MAX_ADDR_CHARS) seen.add(ma);
  }
  return [...seen];
}

export function encodeBinding(b: SignedBinding): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(b));
}

/** JSON of a record (unverified); throws on bytes that are not JSON or too large */
export function decodeBinding(bytes: Uint8Array): unknown {
  if (bytes.byteLength > MAX_BINDING_BYTES) throw new Error(`binding record larger than ${MAX_BINDING_BYTES} bytes`);
  return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
}

export interface VerifyOptions {
  now?: number;
  /** the record must be for this node_id */
  nodeId?: string;
}

const isStr = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;

/** shape, limits, expiry and signature of a record; never throws */
export function verifyBinding(value: unknown, o: VerifyOptions = {}): BindingCheck {
  const now = o.now ?? Date.now();
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not an object' };
  const v = value as Record<string, unknown>;
  if (!isStr(v.node_id, 64) || !NODE_ID.test(v.node_id)) return { ok: false, reason: 'bad node_id' };
  if (o.nodeId !== undefined && v.node_id !== o.nodeId.toLowerCase()) return { ok: false, reason: 'node_id mismatch' };
  if (!isStr(v.peer_id, 128)) return { ok: false, reason: 'bad peer_id' };
  try {
    peerIdFromString(v.peer_id);
  } catch {
    return { ok: false, reason: 'bad peer_id' };
  }
  if (!Array.isArray(v.addrs) || v.addrs.length > MAX_BINDING_ADDRS) return { ok: false, reason: 'bad addrs' };
  for (const a of v.addrs) {
    if (!isStr(a, MAX_ADDR_CHARS)) return { ok: false, reason: 'bad addrs' };
    try {
      multiaddr(a);
    } catch {
      return { ok: false, reason: 'bad addrs' };
    }
  }
  if (!isStr(v.version, MAX_VERSION_CHARS) || !isStr(v.name, MAX_NAME_CHARS)) return { ok: false, reason: 'bad version or name' };
  if (!Number.isSafeInteger(v.issued) || !Number.isSafeInteger(v.expires)) return { ok: false, reason: 'bad issued or expires' };
  const issued = v.issued as number;
  const expires = v.expires as number;
  if (expires <= now) return { ok: false, reason: 'expired' };
  if (issued > now + MAX_CLOCK_SKEW_MS) return { ok: false, reason: 'issued in the future' };
  if (expires <= issued || expires - issued > MAX_BINDING_TTL_MS) return { ok: false, reason: 'bad lifetime' };
  if (!isStr(v.sig, 130) || !SIG.test(v.sig)) return { ok: false, reason: 'bad signature' };
  const binding: SignedBinding = {
    node_id: v.node_id,
    peer_id: v.peer_id,
    addrs: [...(v.addrs as string[])],
    version: v.version,
    name: v.name,
    issued,
    expires,
    sig: v.sig,
  };
  if (!verifySr25519(bindingMessage(binding), binding.sig, binding.node_id)) return { ok: false, reason: 'bad signature' };
  return { ok: true, binding };
}

/** true when a replaces b (same node_id): signed later, or as late and lasting longer */
export function isNewer(a: BindingRecord, b: BindingRecord): boolean {
  return a.issued > b.issued || (a.issued === b.issued && a.expires > b.expires);
}

export function bindingDhtKey(nodeId: string): Uint8Array {
  return new TextEncoder().encode(`/${BINDING_DHT_NAMESPACE}/${nodeId.toLowerCase()}`);
}

function nodeIdOfKey(key: Uint8Array): string {
  const text = new TextDecoder().decode(key);
  const prefix = `/${BINDING_DHT_NAMESPACE}/`;
  if (!text.startsWith(prefix)) throw new Error('not a dbc binding key');
  return text.slice(prefix.length);
}

/** kad-dht validator for `/dbc/<node_id>`: a valid, unexpired record signed by that node_id */
export function validateBindingRecord(key: Uint8Array, value: Uint8Array): void {
  const check = verifyBinding(decodeBinding(value), { nodeId: nodeIdOfKey(key) });
  if (!check.ok) throw new Error(`invalid binding record: ${check.reason}`);
}

/** kad-dht selector: the newest valid record */
export function selectBindingRecord(key: Uint8Array, records: Uint8Array[]): number {
  let best = -1;
  let bestRec: SignedBinding | undefined;
  const nodeId = nodeIdOfKey(key);
  records.forEach((bytes, i) => {
    let check: BindingCheck;
    try {
      check = verifyBinding(decodeBinding(bytes), { nodeId });
    } catch {
      return;
    }
    if (check.ok && (bestRec === undefined || isNewer(check.binding, bestRec))) {
      best = i;
      bestRec = check.binding;
    }
  });
  return Math.max(best, 0);
}

export type OfferResult = 'accepted' | 'unchanged' | 'older' | `rejected: ${string}`;

/**
 * The verified bindings a client knows, newest per node_id, dropped at expiry. Bounded: when full, a record for a
 * node_id not yet known is refused (the known ones keep being refreshed).
 */
export class BindingCache {
  private readonly map = new Map<string, SignedBinding>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly maxEntries = 100_000,
  ) {}

  offer(value: unknown): OfferResult {
    const check = verifyBinding(value, { now: this.now() });
    if (!check.ok) return `rejected: ${check.reason}`;
    const b = check.binding;
    const old = this.get(b.node_id);
    if (old) {
      if (old.issued === b.issued && old.expires === b.expires && old.peer_id === b.peer_id) return 'unchanged';
      if (!isNewer(b, old)) return 'older';
    } else if (this.map.size >= this.maxEntries) {
      this.prune();
      if (this.map.size >= this.maxEntries) return 'rejected: cache full';
    }
    this.map.set(b.node_id, b);
    return 'accepted';
  }

  get(nodeId: string): SignedBinding | undefined {
    const id = nodeId.toLowerCase();
    const b = this.map.get(id);
    if (b && b.expires <= this.now()) {
      this.map.delete(id);
      return undefined;
    }
    return b;
  }

  /** the node_id served by a peer, if a valid record says so */
  byPeer(peerId: string): SignedBinding | undefined {
    for (const b of this.all()) if (b.peer_id === peerId) return b;
    return undefined;
  }

  all(): SignedBinding[] {
    this.prune();
    return [...this.map.values()];
  }

  delete(nodeId: string): void {
    this.map.delete(nodeId.toLowerCase());
  }

  get size(): number {
    return this.map.size;
  }

  private prune(): void {
    const now = this.now();
    for (const [id, b] of this.map) if (b.expires <= now) this.map.delete(id);
  }
}
