// A fake DBC chain node for tests and demos: JSON-RPC 2.0 over HTTP (node:http) answering the shapes the GPU node
// reads (real-clients-contract.md §9, original-dbc-node.md §4.2), with a block height we control.
//
// Chain methods: chain_getBlock, chain_getHeader, chain_getBlockHash, state_getStorage (Timestamp.Now only),
// onlineProfile_getMachineInfo, onlineCommittee_getCommitteeOps, rentMachine_getRentOrder (u64 id as a JSON number),
// rentMachine_getMachineRentId, rentMachine_getRentList, rentMachine_isMachineRenter, and the same four
// terminatingRental_* methods. Like the chain, an order is removed when the head reaches its rentEnd (and an
// unconfirmed one `confirmBlocks` after its start), and the machine goes back to `online` without live orders.
// Like an extrinsic, every state change (machine, order, committee) lands in a new block: the head moves on by one,
// so readers that cache per block (the GPU node) see it.
//
// Admin methods (state set by another process: CLI demo, child-process tests): dev_setBlock [n], dev_advance [k],
// dev_setMachine [machineId, status | {status, gpuNum}], dev_addOrder [{machineId, renter, rentEnd, gpuNum?,
// gpuIndex?, rentStatus?, rentStart?}] → id, dev_setOrder [id, patch], dev_removeOrder [id],
// dev_setCommittee [account, machineId, [v1, v2, v3]], dev_setOffline [bool] (chain methods then get no answer at
// all, the connection is dropped), dev_state [], dev_calls [], dev_resetCalls [].
// Above ~400 lines on purpose: one fake of the whole documented RPC surface the node reads, plus fault injection.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeAddress, encodeAddress } from '@polkadot/util-crypto';
import { TIMESTAMP_NOW_KEY } from './chain.js';

export type FakeRentStatus = 'renting' | 'waitingVerifying' | 'rentExpired';

export interface FakeOrder {
  id: number;
  machineId: string;
  renter: string;
  rentStart: number;
  confirmRent: number;
  rentEnd: number;
  stakeAmount: string;
  rentStatus: FakeRentStatus;
  gpuNum: number;
  gpuIndex: number[];
}

export interface FakeOrderInput {
  machineId: string;
  renter: string;
  rentEnd: number;
  gpuNum?: number;
  gpuIndex?: number[];
  rentStatus?: FakeRentStatus;
  rentStart?: number;
}

export interface FakeMachine {
  /** camelCase status as the RPC serialises it: online, rented, committeeVerifying, ... (or an object variant) */
  machineStatus: unknown;
  gpuNum: number;
}

export interface FakeChainOptions {
  /** starting head (default 1000) */
  block?: number;
  /** block time the timestamps show (default 6000) */
  blockMs?: number;
  /** advance one block every blockMs of real time (demo); tests set the height themselves */
  autoAdvance?: boolean;
  /** unconfirmed (waitingVerifying) orders vanish this many blocks after rentStart (the chain: 150); 0 = never */
  confirmBlocks?: number;
  /** accept dev_* methods (default true) */
  admin?: boolean;
}

const SS58 = 42;

function canonical(account: string): string {
  const hex = account.startsWith('0x') ? account.slice(2) : account;
  return encodeAddress(/^[0-9a-fA-F]{64}$/.test(hex) ? Buffer.from(hex, 'hex') : decodeAddress(account), SS58);
}

class RpcFault extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

const notFound = () => new RpcFault(1, 'Something wrong', 'NotFound');
const invalidParams = (what: string) => new RpcFault(-32602, `Invalid params: ${what}`);

export class FakeChain {
  block: number;
  readonly blockMs: number;
  /** timestamp of block 0 */
  readonly genesisMs: number;
  readonly confirmBlocks: number;
  offline = false;
  readonly machines = new Map<string, FakeMachine>();
  readonly orders = new Map<number, FakeOrder>();
  /** `${account ss58}|${machineId}` → verify times */
  readonly committee = new Map<string, number[]>();
  readonly calls = new Map<string, number>();
  nextRentId = 0;
  private server: http.Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly admin: boolean;

  constructor(opts: FakeChainOptions = {}) {
    this.block = opts.block ?? 1000;
    this.blockMs = opts.blockMs ?? 6000;
    this.genesisMs = Date.now() - this.block * this.blockMs;
    this.confirmBlocks = opts.confirmBlocks ?? 150;
    this.admin = opts.admin ?? true;
    if (opts.autoAdvance) {
      this.timer = setInterval(() => this.advance(1), this.blockMs);
      this.timer.unref();
    }
  }

  // --- state, set by code ------------------------------------------------------------------------------

  /** set the machine's status (and GPU count); a new block */
  setMachine(machineId: string, status: unknown, gpuNum?: number): void {
    const old = this.machines.get(machineId);
    this.machines.set(machineId, { machineStatus: status, gpuNum: gpuNum ?? old?.gpuNum ?? 0 });
    this.newBlock();
  }

  /** a rent order (rentStart: the head before the change); the machine becomes `rented`; a new block */
  addOrder(o: FakeOrderInput): number {
    const id = this.nextRentId++;
    const status = o.rentStatus ?? 'renting';
    this.orders.set(id, {
      id,
      machineId: o.machineId,
      renter: canonical(o.renter),
      rentStart: o.rentStart ?? this.block,
      confirmRent: status === 'renting' ? (o.rentStart ?? this.block) : 0,
      rentEnd: o.rentEnd,
      stakeAmount: '0',
      rentStatus: status,
      gpuNum: o.gpuNum ?? o.gpuIndex?.length ?? 0,
      gpuIndex: o.gpuIndex ?? [],
    });
    const m = this.machines.get(o.machineId);
    if (!m) this.machines.set(o.machineId, { machineStatus: 'rented', gpuNum: o.gpuNum ?? 0 });
    else if (mapsTo(m.machineStatus, ['online', 'waitingFulfill'])) m.machineStatus = 'rented';
    this.newBlock();
    return id;
  }

  /** change an order as it stands (no chain rules applied); a new block */
  setOrder(id: number, patch: Partial<Omit<FakeOrder, 'id'>>): void {
    const o = this.orders.get(id);
    if (!o) throw new Error(`no order ${id}`);
    Object.assign(o, patch, patch.renter ? { renter: canonical(patch.renter) } : {});
    this.newBlock();
  }

  /** end an order now; a new block */
  removeOrder(id: number): boolean {
    const done = this.dropOrder(id);
    this.newBlock();
    return done;
  }

  private dropOrder(id: number): boolean {
    const o = this.orders.get(id);
    if (!o) return false;
    this.orders.delete(id);
    const m = this.machines.get(o.machineId);
    if (m && mapsTo(m.machineStatus, ['rented']) && ![...this.orders.values()].some((x) => x.machineId === o.machineId)) {
      m.machineStatus = 'online';
    }
    return true;
  }

  /** the committee member's verify times for the machine; a new block */
  setCommittee(account: string, machineId: string, verifyTime: number[]): void {
    this.committee.set(`${canonical(account)}|${machineId}`, verifyTime);
    this.newBlock();
  }

  private newBlock(): void {
    this.setBlock(this.block + 1);
  }

  setBlock(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bad block ${n}`);
    this.block = n;
    // on_finalize: orders end at rentEnd; unconfirmed ones after the confirm window
    for (const o of [...this.orders.values()]) {
      const unconfirmed = this.confirmBlocks > 0 && o.rentStatus === 'waitingVerifying' && n >= o.rentStart + this.confirmBlocks;
      if (n >= o.rentEnd || unconfirmed) this.dropOrder(o.id);
    }
  }

  advance(k = 1): void {
    this.setBlock(this.block + k);
  }

  timestampOf(block: number): number {
    return this.genesisMs + block * this.blockMs;
  }

  callCount(method: string): number {
    return this.calls.get(method) ?? 0;
  }

  state(): unknown {
    return {
      block: this.block,
      blockMs: this.blockMs,
      offline: this.offline,
      machines: Object.fromEntries(this.machines),
      orders: [...this.orders.values()],
      committee: Object.fromEntries(this.committee),
    };
  }

  // --- the server ----------------------------------------------------------------------------------------

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = http.createServer((req, res) => this.onRequest(req, res));
    server.keepAliveTimeout = 1000;
    this.server = server;
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(port, host, () => ok());
    });
    const a = server.address() as AddressInfo;
    return `http://${host.includes(':') ? `[${host}]` : host}:${a.port}/`;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((ok) => {
      server.close(() => ok());
      server.closeAllConnections();
    });
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1 << 20) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      let id: unknown = null;
      let reply: unknown;
      try {
        if (req.method !== 'POST') throw new RpcFault(-32600, 'only POST');
        let msg: { id?: unknown; method?: unknown; params?: unknown };
        try {
          msg = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof msg;
        } catch {
          throw new RpcFault(-32700, 'Parse error');
        }
        id = msg.id ?? null;
        if (typeof msg.method !== 'string') throw new RpcFault(-32600, 'Invalid request');
        const params = Array.isArray(msg.params) ? msg.params : [];
        if (this.offline && !msg.method.startsWith('dev_')) {
          req.socket.destroy(); // no answer at all, as an unreachable node
          return;
        }
        this.calls.set(msg.method, (this.calls.get(msg.method) ?? 0) + 1);
        reply = { jsonrpc: '2.0', id, result: this.dispatch(msg.method, params) };
      } catch (err) {
        const f = err instanceof RpcFault ? err : new RpcFault(-32603, (err as Error).message);
        reply = { jsonrpc: '2.0', id, error: { code: f.code, message: f.message, ...(f.data !== undefined ? { data: f.data } : {}) } };
      }
      const body = JSON.stringify(reply);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  }

  private header(n: number) {
    return {
      parentHash: hashOf(Math.max(0, n - 1)),
      number: `0x${n.toString(16)}`,
      stateRoot: `0x${'00'.repeat(32)}`,
      extrinsicsRoot: `0x${'00'.repeat(32)}`,
      digest: { logs: [] },
    };
  }

  private blockAt(hash: unknown): number {
    if (hash === undefined || hash === null) return this.block;
    if (typeof hash !== 'string' || !/^0x[0-9a-f]{64}$/.test(hash)) throw invalidParams('block hash');
    const n = Number.parseInt(hash.slice(2), 16);
    if (n > this.block) throw new RpcFault(4003, 'Unknown block');
    return n;
  }

  private dispatch(method: string, p: unknown[]): unknown {
    const str = (i: number, what: string): string => {
      if (typeof p[i] !== 'string') throw invalidParams(what);
      return p[i];
    };
    const [family, name] = method.split('_', 2) as [string, string | undefined];
    if ((family === 'rentMachine' || family === 'terminatingRental' || family === 'onlineProfile' || family === 'onlineCommittee') && name) {
      return this.rental(family, name, p, str);
    }
    switch (method) {
      case 'chain_getBlock':
        return { block: { header: this.header(this.blockAt(p[0])), extrinsics: [] }, justifications: null };
      case 'chain_getHeader':
        return this.header(this.blockAt(p[0]));
      case 'chain_getBlockHash': {
        const n = p[0] === undefined || p[0] === null ? this.block : p[0];
        if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw invalidParams('block number');
        return n > this.block ? null : hashOf(n);
      }
      case 'state_getStorage': {
        const key = str(0, 'storage key');
        const n = this.blockAt(p[1]);
        if (key !== TIMESTAMP_NOW_KEY) return null;
        const buf = Buffer.alloc(8);
        buf.writeBigUInt64LE(BigInt(this.timestampOf(n)));
        return `0x${buf.toString('hex')}`;
      }
    }
    if (method.startsWith('dev_')) {
      if (!this.admin) throw new RpcFault(-32601, 'Method not found');
      return this.dev(method, p);
    }
    throw new RpcFault(-32601, 'Method not found');
  }

  private rental(family: string, name: string, p: unknown[], str: (i: number, what: string) => string): unknown {
    switch (name) {
      case 'getMachineInfo': {
        const m = this.machines.get(str(0, 'machine id'));
        if (!m) throw notFound();
        return {
          machineStatus: m.machineStatus,
          renters: [...new Set([...this.orders.values()].filter((o) => o.rentStatus === 'renting').map((o) => o.renter))],
          machineInfoDetail: { committeeUploadInfo: { gpuNum: m.gpuNum } },
        };
      }
      case 'getCommitteeOps': {
        const account = str(0, 'account');
        const machineId = str(1, 'machine id');
        let key: string;
        try {
          key = `${canonical(account)}|${machineId}`;
        } catch {
          throw invalidParams('account');
        }
        const v = this.committee.get(key);
        if (!v) throw notFound();
        return { stakedDbc: '0', verifyTime: v, confirmHash: `0x${'00'.repeat(16)}`, hashTime: 0, confirmTime: 0, machineStatus: 'booked' };
      }
      case 'getRentOrder': {
        // u64: a JSON number; a quoted id is a type error on the real node
        if (typeof p[0] !== 'number' || !Number.isSafeInteger(p[0]) || p[0] < 0) throw invalidParams('invalid type, expected u64');
        const o = this.orders.get(p[0]);
        if (!o) throw notFound();
        const { id: _id, ...rest } = o;
        return { ...rest };
      }
      case 'getMachineRentId': {
        const machineId = str(0, 'machine id');
        const live = [...this.orders.values()].filter((o) => o.machineId === machineId);
        return { rentOrder: live.map((o) => o.id).sort((a, b) => a - b), usedGpu: live.flatMap((o) => o.gpuIndex).sort((a, b) => a - b) };
      }
      case 'getRentList': {
        const renter = canonical(str(0, 'account'));
        return [...this.orders.values()].filter((o) => o.renter === renter).map((o) => o.id);
      }
      case 'isMachineRenter': {
        const machineId = str(0, 'machine id');
        const renter = canonical(str(1, 'account'));
        return [...this.orders.values()].some((o) => o.machineId === machineId && o.renter === renter);
      }
    }
    throw new RpcFault(-32601, `Method not found: ${family}_${name}`);
  }

  private dev(method: string, p: unknown[]): unknown {
    const n = (i: number): number => {
      if (typeof p[i] !== 'number' || !Number.isSafeInteger(p[i])) throw invalidParams(`param ${i} must be an integer`);
      return p[i];
    };
    switch (method) {
      case 'dev_setBlock':
        this.setBlock(n(0));
        return this.block;
      case 'dev_advance':
        this.advance(p[0] === undefined ? 1 : n(0));
        return this.block;
      case 'dev_setMachine': {
        if (typeof p[0] !== 'string') throw invalidParams('machine id');
        const v = p[1];
        if (v !== null && typeof v === 'object' && !Array.isArray(v) && 'status' in v) {
          const o = v as { status: unknown; gpuNum?: unknown };
          this.setMachine(p[0], o.status, typeof o.gpuNum === 'number' ? o.gpuNum : undefined);
        } else this.setMachine(p[0], v);
        return this.machines.get(p[0]);
      }
      case 'dev_addOrder': {
        const o = p[0] as Partial<FakeOrderInput> | undefined;
        if (!o || typeof o.machineId !== 'string' || typeof o.renter !== 'string' || typeof o.rentEnd !== 'number') {
          throw invalidParams('{machineId, renter, rentEnd} required');
        }
        try {
          return this.addOrder(o as FakeOrderInput);
        } catch (err) {
          throw invalidParams((err as Error).message);
        }
      }
      case 'dev_setOrder':
        this.setOrder(n(0), p[1] ?? {});
        return this.orders.get(n(0));
      case 'dev_removeOrder':
        return this.removeOrder(n(0));
      case 'dev_setCommittee': {
        if (typeof p[0] !== 'string' || typeof p[1] !== 'string' || !Array.isArray(p[2])) throw invalidParams('[account, machineId, [blocks]]');
        this.setCommittee(p[0], p[1], p[2].map(Number));
        return true;
      }
      case 'dev_setOffline':
        this.offline = p[0] === true;
        return this.offline;
      case 'dev_state':
        return this.state();
      case 'dev_calls':
        return Object.fromEntries(this.calls);
      case 'dev_resetCalls':
        this.calls.clear();
        return true;
    }
    throw new RpcFault(-32601, 'Method not found');
  }
}

function hashOf(n: number): string {
  return `0x${n.toString(16).padStart(64, '0')}`;
}

function mapsTo(status: unknown, names: string[]): boolean {
  return typeof status === 'string' && names.includes(status);
}

/** call a fake (or real) chain's JSON-RPC method from code: tests and the CLI drive a fake chain in another process */
export async function chainCall<T = unknown>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = (await res.json()) as { result?: T; error?: { message: string; data?: unknown } };
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- error.data is any JSON value; String() names it as before
  if (body.error) throw new Error(`${method}: ${body.error.message}${body.error.data !== undefined ? ` (${String(body.error.data)})` : ''}`);
  return body.result as T;
}
