// The `chain` rental source: the DBC chain decides who may use this machine (original-dbc-node.md §3.6, §4;
// real-clients-contract.md §9-§10).
//
// - machine status: `onlineProfile_getMachineInfo(machine)`.machineStatus → Verify / Online / Rented / unknown
// - renters: `rentMachine_getMachineRentId(machine)`.rentOrder → `rentMachine_getRentOrder(<id as a JSON number>)`;
//   an order counts while its status is `renting` or `waitingVerifying` and the head is below `rentEnd`; its renter
//   is compared by public key (a multisig renter is the Substrate multisig account)
// - verifiers: `onlineCommittee_getCommitteeOps(wallet, machine)`.verifyTime: a committee member may work on the
//   machine while the head is in (v, v + window] for one of its verify times; the window is 4 hours of blocks
// - `terminatingRental_*` methods instead when configured (the original's chain_additional_field=terminatingRental)
// - block time: measured from the chain (Timestamp.Now of the head and of the block 100 below it), re-measured
//   hourly, unless configured
// - caching: answers are kept for the current block; the head is read at most once per `headTtlMs`
// - outage: with no endpoint answering, the last verified answers are served for `outageGraceMs` after the last
//   successful contact (the head is then estimated from the block time); afterwards RentalUnavailableError
// Above ~400 lines on purpose: the original's authorisation state machine over chain data, kept in one place.
import { accountKeyHex } from '../auth/verify.js';
import type { Logger } from '../util/logger.js';
import { ChainRpc, ChainRpcError, ChainUnreachableError, RawNumber, blockNumberOf, type ChainRpcOptions, type RpcParam } from './chain-rpc.js';
import { RentalUnavailableError, type MachineStatus, type Rental, type RentalSource } from './types.js';

/** twox128("Timestamp") ++ twox128("Now"): the block's timestamp (u64 ms, little endian) */
export const TIMESTAMP_NOW_KEY = '0xf0c365c3cf59d671eb72da0e7a4113c49f1f0515f462cdcf84e0f1d6045dfcbb';

/** how the original mapped machineStatus (CHAIN:129-141) */
export function mapMachineStatus(raw: unknown): MachineStatus {
  let name: string | undefined;
  if (typeof raw === 'string') name = raw;
  else if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    const keys = Object.keys(raw);
    if (keys.length === 1) name = keys[0];
  }
  switch ((name ?? '').toLowerCase()) {
    case 'addingcustomizeinfo':
    case 'distributingorder':
    case 'committeeverifying':
    case 'committeerefused':
      return 'verify';
    case 'waitingfulfill':
    case 'online':
      return 'online';
    case 'creating':
    case 'rented':
      return 'rented';
    default:
      return 'unknown';
  }
}

export interface ChainOrder {
  id: string;
  machineId: string | undefined;
  renter: string;
  rentStart: number;
  rentEnd: number;
  /** lower-camel, e.g. renting | waitingVerifying | rentExpired */
  rentStatus: string;
  gpuNum: number;
  gpuIndex: number[];
}

function num(v: unknown): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  if (typeof v === 'string' && /^0x[0-9a-fA-F]+$/.test(v)) return Number.parseInt(v.slice(2), 16);
  return NaN;
}

/** Bytes may arrive as the text, as 0x-hex of its UTF-8, or as a byte array */
function bytesText(v: unknown): string | undefined {
  if (Array.isArray(v) && v.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) return Buffer.from(v as number[]).toString('utf8');
  if (typeof v !== 'string') return undefined;
  if (/^0x([0-9a-fA-F]{2})+$/.test(v)) {
    const text = Buffer.from(v.slice(2), 'hex').toString('utf8');
    if (/^[\x20-\x7e]+$/.test(text)) return text;
  }
  return v;
}

export function parseRentOrder(id: string, r: unknown): ChainOrder | null {
  if (r === null || typeof r !== 'object') return null;
  const o = r as Record<string, unknown>;
  const pick = (camel: string, snake: string) => (o[camel] !== undefined ? o[camel] : o[snake]);
  const renter = pick('renter', 'renter');
  const rentEnd = num(pick('rentEnd', 'rent_end'));
  if (typeof renter !== 'string' || !Number.isFinite(rentEnd)) return null;
  const statusRaw = pick('rentStatus', 'rent_status');
  let rentStatus = typeof statusRaw === 'string' ? statusRaw : statusRaw && typeof statusRaw === 'object' ? (Object.keys(statusRaw)[0] ?? '') : '';
  rentStatus = rentStatus.charAt(0).toLowerCase() + rentStatus.slice(1);
  const idx = pick('gpuIndex', 'gpu_index');
  return {
    id,
    machineId: bytesText(pick('machineId', 'machine_id')),
    renter,
    rentStart: num(pick('rentStart', 'rent_start')) || 0,
    rentEnd,
    rentStatus,
    gpuNum: num(pick('gpuNum', 'gpu_num')) || 0,
    gpuIndex: Array.isArray(idx) ? idx.map(num).filter((n) => Number.isInteger(n) && n >= 0) : [],
  };
}

/** `renting` and `waitingVerifying` orders count (the renter creates VMs before confirmRent) */
export function orderCounts(status: string): boolean {
  return status === 'renting' || status === 'waitingVerifying';
}

/** a rent_order the client means: a decimal id; "", "undefined" and anything else mean "find the wallet's order" */
export function givenRentOrder(rentOrder: string | undefined): string | undefined {
  return rentOrder !== undefined && /^\d{1,20}$/.test(rentOrder) ? rentOrder : undefined;
}

const U64_MAX = 0xffffffffffffffffn;
const isU64 = (id: string) => /^\d{1,20}$/.test(id) && BigInt(id) <= U64_MAX;

export interface ChainRentalsOptions {
  /** this machine's id on the chain (the node id, 64 hex) */
  machineId: string;
  /** endpoints (URLs or host:port) or a ready client */
  rpc: ChainRpc | ChainRpcOptions;
  /** use the terminatingRental_* RPC family (the original's chain_additional_field=terminatingRental) */
  terminatingRental?: boolean;
  /** serve the last verified state this long after the last successful chain contact (default 300 s) */
  outageGraceMs?: number;
  /** read the head at most this often; answers are cached for the head's block (default 1000 ms) */
  headTtlMs?: number;
  /** fixed block time instead of measuring it from the chain's timestamps */
  blockTimeMs?: number;
  /** re-measure the block time this often (default 1 h) */
  blockTimeTtlMs?: number;
  /** blocks averaged for the block time (default 100) */
  blockTimeSpan?: number;
  /** a committee member's verify window after each of its verify times (default 4 h = 2400 blocks of 6 s) */
  verifyWindowMs?: number;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

type Answer = { ok: true; value: unknown } | { ok: false; error: ChainRpcError };

interface Head {
  number: number;
  /** when it was read (unix ms) */
  atMs: number;
}

interface View {
  head: number;
  stale: boolean;
  /** ms since the last successful contact when stale */
  outageMs: number;
}

/** used only when the chain cannot tell its block time (no Timestamp storage answer); logged when used */
const FALLBACK_BLOCK_MS = 6000;
const CACHE_MAX = 10_000;
const LAST_KNOWN_MAX = 4096;

export class ChainRentals implements RentalSource {
  readonly kind = 'chain' as const;
  readonly machineId: string;
  readonly rpc: ChainRpc;
  readonly outageGraceMs: number;
  private readonly methods: { machineInfo: string; committeeOps: string; rentOrder: string; machineRentId: string };
  private readonly headTtlMs: number;
  private readonly fixedBlockMs: number | undefined;
  private readonly blockTimeTtlMs: number;
  private readonly blockTimeSpan: number;
  private readonly verifyWindowMs: number;
  private readonly log: Pick<Logger, 'info' | 'warn'> | undefined;

  private head: Head | undefined;
  private headFetch: Promise<Head> | undefined;
  /** when reading the head last failed: within headTtlMs the outage path is taken without waiting on the network */
  private headFailedAtMs: number | undefined;
  private lastOkMs: number | undefined;
  private cacheBlock = -1;
  private readonly cache = new Map<string, Promise<Answer>>();
  private readonly lastKnown = new Map<string, Answer>();
  private measured: { blockMs: number; atMs: number; source: 'chain' | 'fallback' } | undefined;
  private measuring: Promise<number> | undefined;

  constructor(opts: ChainRentalsOptions) {
    this.machineId = opts.machineId;
    this.rpc = opts.rpc instanceof ChainRpc ? opts.rpc : new ChainRpc(opts.rpc);
    const p = opts.terminatingRental ? 'terminatingRental' : undefined;
    this.methods = {
      machineInfo: p ? `${p}_getMachineInfo` : 'onlineProfile_getMachineInfo',
      committeeOps: p ? `${p}_getCommitteeOps` : 'onlineCommittee_getCommitteeOps',
      rentOrder: p ? `${p}_getRentOrder` : 'rentMachine_getRentOrder',
      machineRentId: p ? `${p}_getMachineRentId` : 'rentMachine_getMachineRentId',
    };
    this.outageGraceMs = opts.outageGraceMs ?? 300_000;
    this.headTtlMs = opts.headTtlMs ?? 1000;
    this.fixedBlockMs = opts.blockTimeMs;
    this.blockTimeTtlMs = opts.blockTimeTtlMs ?? 3600_000;
    this.blockTimeSpan = Math.max(1, opts.blockTimeSpan ?? 100);
    this.verifyWindowMs = opts.verifyWindowMs ?? 4 * 3600_000;
    this.log = opts.logger;
  }

  // --- RentalSource ------------------------------------------------------------------------------------

  async machineStatus(nowMs: number): Promise<MachineStatus> {
    const view = await this.view(nowMs);
    const a = await this.query(view, nowMs, this.methods.machineInfo, [this.machineId]);
    return a.ok ? mapMachineStatus((a.value as { machineStatus?: unknown } | null)?.machineStatus) : 'unknown';
  }

  async freshMachineStatus(nowMs: number): Promise<MachineStatus> {
    const view = await this.view(nowMs);
    if (view.stale) throw this.unavailable(view.outageMs);
    return this.machineStatus(nowMs);
  }

  async active(account: string, nowMs: number, rentOrder?: string): Promise<Rental | null> {
    const key = accountKeyHex(account);
    if (key === null) return null;
    const view = await this.view(nowMs);
    const orders = await this.orders(view, nowMs, givenRentOrder(rentOrder));
    const mine = orders.filter((o) => accountKeyHex(o.renter) === key && this.live(o, view.head));
    if (mine.length === 0) return null;
    return this.rentalOf(account, mine, view, nowMs, givenRentOrder(rentOrder));
  }

  async known(nowMs: number = Date.now()): Promise<Rental[]> {
    const view = await this.view(nowMs);
    if (view.stale) throw this.unavailable(view.outageMs);
    const orders = await this.orders(view, nowMs, undefined);
    const out: Rental[] = [];
    for (const o of orders) {
      const r = await this.rentalOf(o.renter, [o], view, nowMs, o.id);
      // an order the chain still lists but that no longer counts has ended
      if (!this.live(o, view.head)) r.untilMs = Math.min(r.untilMs, nowMs);
      out.push(r);
    }
    return out;
  }

  async verifier(account: string, nowMs: number): Promise<Rental | null> {
    if (accountKeyHex(account) === null) return null;
    const view = await this.view(nowMs);
    const a = await this.query(view, nowMs, this.methods.committeeOps, [account, this.machineId]);
    if (!a.ok) return null;
    const times = (a.value as { verifyTime?: unknown } | null)?.verifyTime;
    if (!Array.isArray(times)) return null;
    const blockMs = await this.blockTimeMs(nowMs);
    const window = Math.max(1, Math.round(this.verifyWindowMs / blockMs));
    let end = -1;
    for (const t of times.map(num)) {
      if (Number.isFinite(t) && view.head > t && view.head <= t + window) end = Math.max(end, t + window);
    }
    if (end < 0) return null;
    return { account, gpus: 0, untilMs: nowMs + (end - view.head + 1) * blockMs, rentEnd: end, role: 'verifier' };
  }

  // --- what else callers may want --------------------------------------------------------------------

  /** the chain's block time in ms (measured, configured, or the logged fallback) */
  async blockTimeMs(nowMs: number = Date.now()): Promise<number> {
    if (this.fixedBlockMs !== undefined) return this.fixedBlockMs;
    if (this.measured && nowMs - this.measured.atMs < this.blockTimeTtlMs) return this.measured.blockMs;
    this.measuring ??= this.measureBlockTime(nowMs).finally(() => {
      this.measuring = undefined;
    });
    return this.measuring;
  }

  /** the head block as last read, and where the block time came from (for logs and `dbc` output) */
  describe(): { head?: number; blockMs?: number; blockTimeSource?: string; lastOkMs?: number } {
    return {
      head: this.head?.number,
      blockMs: this.fixedBlockMs ?? this.measured?.blockMs,
      blockTimeSource: this.fixedBlockMs !== undefined ? 'configured' : this.measured?.source,
      lastOkMs: this.lastOkMs,
    };
  }

  // --- internals ----------------------------------------------------------------------------------------

  private live(o: ChainOrder, head: number): boolean {
    return orderCounts(o.rentStatus) && head < o.rentEnd && (o.machineId === undefined || o.machineId.toLowerCase() === this.machineId.toLowerCase());
  }

  private async rentalOf(account: string, orders: ChainOrder[], view: View, nowMs: number, given: string | undefined): Promise<Rental> {
    const blockMs = await this.blockTimeMs(nowMs);
    const rentEnd = Math.max(...orders.map((o) => o.rentEnd));
    const gpuIndex = [...new Set(orders.flatMap((o) => o.gpuIndex))].sort((a, b) => a - b);
    return {
      account,
      gpus: orders.reduce((n, o) => n + o.gpuNum, 0),
      untilMs: nowMs + (rentEnd - view.head) * blockMs,
      rentOrder: given ?? orders.map((o) => o.id).join(','),
      gpuIndex,
      rentEnd,
      role: 'renter',
    };
  }

  /** the orders to look at: the given id, or every live order on this machine */
  private async orders(view: View, nowMs: number, given: string | undefined): Promise<ChainOrder[]> {
    let ids: string[];
    if (given !== undefined) ids = [given];
    else {
      const a = await this.query(view, nowMs, this.methods.machineRentId, [this.machineId]);
      const list = a.ok ? (a.value as { rentOrder?: unknown; rent_order?: unknown } | null) : null;
      const raw = list?.rentOrder ?? list?.rent_order;
      ids = Array.isArray(raw) ? raw.map((x) => String(x)) : [];
    }
    // an id beyond u64 cannot name an order
    const answers = await Promise.all(
      ids
        .filter(isU64)
        .slice(0, 256)
        .map(async (id) => ({ id, a: await this.query(view, nowMs, this.methods.rentOrder, [new RawNumber(id)]) })),
    );
    const out: ChainOrder[] = [];
    for (const { id, a } of answers) {
      if (!a.ok) continue; // NotFound: the order ended or never existed
      const o = parseRentOrder(id, a.value);
      if (o) out.push(o);
    }
    return out;
  }

  private unavailable(outageMs: number): RentalUnavailableError {
    const since = this.lastOkMs === undefined ? 'never reached' : `unreachable for ${Math.round(outageMs / 1000)} s`;
    return new RentalUnavailableError(`chain ${since} (outage grace ${Math.round(this.outageGraceMs / 1000)} s)`);
  }

  /** the head now, or the last verified one while inside the outage grace */
  private async view(nowMs: number): Promise<View> {
    try {
      const head = await this.freshHead(nowMs);
      return { head: head.number, stale: false, outageMs: 0 };
    } catch (err) {
      const outageMs = this.lastOkMs === undefined ? Infinity : nowMs - this.lastOkMs;
      if (!this.head || outageMs > this.outageGraceMs) {
        this.log?.warn({ err: (err as Error).message }, 'chain unreachable; refusing');
        throw this.unavailable(outageMs);
      }
      // estimate the head from the block time so ended orders end on time even during the outage
      const blockMs = this.fixedBlockMs ?? this.measured?.blockMs ?? FALLBACK_BLOCK_MS;
      const head = this.head.number + Math.max(0, Math.floor((nowMs - this.head.atMs) / blockMs));
      return { head, stale: true, outageMs };
    }
  }

  private async freshHead(nowMs: number): Promise<Head> {
    if (this.head && nowMs - this.head.atMs < this.headTtlMs && nowMs >= this.head.atMs) return this.head;
    if (this.headFailedAtMs !== undefined && nowMs - this.headFailedAtMs < this.headTtlMs && nowMs >= this.headFailedAtMs) {
      throw new ChainUnreachableError('chain unreachable (recently)');
    }
    this.headFetch ??= (async () => {
      try {
        const result = await this.rpc.call('chain_getBlock', []);
        const head: Head = { number: blockNumberOf(result), atMs: nowMs };
        this.lastOkMs = Math.max(this.lastOkMs ?? 0, nowMs);
        this.head = head;
        this.headFailedAtMs = undefined;
        return head;
      } catch (err) {
        this.headFailedAtMs = nowMs;
        throw err;
      }
    })().finally(() => {
      this.headFetch = undefined;
    });
    return this.headFetch;
  }

  /** one chain query, cached for the block; from the last verified answers when the chain is out */
  private async query(view: View, nowMs: number, method: string, params: RpcParam[]): Promise<Answer> {
    const key = `${method}(${params.map((p) => (p instanceof RawNumber ? p.digits : JSON.stringify(p))).join(',')})`;
    if (view.stale) return this.remembered(key, view.outageMs);
    if (this.cacheBlock !== view.head || this.cache.size >= CACHE_MAX) {
      this.cache.clear();
      this.cacheBlock = view.head;
    }
    let pending = this.cache.get(key);
    if (!pending) {
      pending = this.rpc.call(method, params).then(
        (value): Answer => ({ ok: true, value }),
        (err: unknown): Answer => {
          if (err instanceof ChainRpcError) return { ok: false, error: err };
          throw err;
        },
      );
      this.cache.set(key, pending);
    }
    try {
      const answer = await pending;
      this.lastOkMs = Math.max(this.lastOkMs ?? 0, nowMs);
      this.lastKnown.delete(key);
      this.lastKnown.set(key, answer);
      if (this.lastKnown.size > LAST_KNOWN_MAX) this.lastKnown.delete(this.lastKnown.keys().next().value!);
      return answer;
    } catch (err) {
      if (this.cache.get(key) === pending) this.cache.delete(key);
      if (!(err instanceof ChainUnreachableError)) throw err;
      const outageMs = this.lastOkMs === undefined ? Infinity : nowMs - this.lastOkMs;
      if (outageMs > this.outageGraceMs) throw this.unavailable(outageMs);
      return this.remembered(key, outageMs);
    }
  }

  private remembered(key: string, outageMs: number): Answer {
    const a = this.lastKnown.get(key);
    if (!a) throw new RentalUnavailableError(`${this.unavailable(outageMs).message}; nothing verified yet for this request`);
    return a;
  }

  private async measureBlockTime(nowMs: number): Promise<number> {
    try {
      const head = (await this.freshHead(nowMs)).number;
      const span = Math.min(this.blockTimeSpan, head - 1);
      if (span < 1) throw new Error(`head ${head} is too low to measure`);
      const [a, b] = await Promise.all([this.timestampAt(head - span), this.timestampAt(head)]);
      const blockMs = Math.round((b - a) / span);
      if (!(blockMs >= 100 && blockMs <= 600_000)) throw new Error(`implausible block time ${blockMs} ms`);
      if (this.measured?.blockMs !== blockMs) this.log?.info({ blockMs, span, head }, 'chain block time measured');
      this.measured = { blockMs, atMs: nowMs, source: 'chain' };
      return blockMs;
    } catch (err) {
      if (this.measured?.source === 'chain') return this.measured.blockMs; // keep the last measurement
      this.log?.warn({ err: (err as Error).message, assumedMs: FALLBACK_BLOCK_MS }, 'could not read the block time from the chain');
      // retried after a minute rather than an hour
      this.measured = { blockMs: FALLBACK_BLOCK_MS, atMs: nowMs - this.blockTimeTtlMs + 60_000, source: 'fallback' };
      return FALLBACK_BLOCK_MS;
    }
  }

  private async timestampAt(block: number): Promise<number> {
    const hash = await this.rpc.call<unknown>('chain_getBlockHash', [block]);
    if (typeof hash !== 'string') throw new Error(`no hash for block ${block}`);
    const value = await this.rpc.call<unknown>('state_getStorage', [TIMESTAMP_NOW_KEY, hash]);
    if (typeof value !== 'string' || !/^0x[0-9a-fA-F]{16}$/.test(value)) throw new Error(`no timestamp at block ${block}`);
    return Number(Buffer.from(value.slice(2), 'hex').readBigUInt64LE(0));
  }
}
