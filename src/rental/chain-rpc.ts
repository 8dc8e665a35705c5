// JSON-RPC 2.0 over HTTP(S) to DBC chain nodes, as the original HttpDBCChainClient did (original-dbc-node.md §4.1):
// `POST /` with `{"jsonrpc":"2.0","id":1,"method":..,"params":[..]}` to one of several endpoints. Endpoints are ranked
// by block height (higher first), then latency (lower first); unreachable ones go last. A call tries the endpoints in
// rank order and moves on only when an endpoint gave no usable answer (no connection, timeout, HTTP error, a body
// that is not JSON-RPC); a JSON-RPC error is an answer and is returned to the caller as ChainRpcError.

/** no endpoint answered */
export class ChainUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChainUnreachableError';
  }
}

/** an endpoint answered with a JSON-RPC error object */
export class ChainRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data: unknown,
  ) {
    super(message);
    this.name = 'ChainRpcError';
  }
}

/** a JSON number written verbatim into the params, for u64 values (rent order ids) that must not be quoted */
export class RawNumber {
  constructor(readonly digits: string) {
    if (!/^\d{1,20}$/.test(digits) || BigInt(digits) > 0xffffffffffffffffn) throw new Error(`not a u64: ${digits}`);
  }
}

export type RpcParam = RawNumber | string | number | boolean | null | RpcParam[] | { [k: string]: RpcParam };

export interface EndpointScore {
  url: string;
  /** best block seen at the last ranking (0 when unreachable) */
  block: number;
  /** round trip of chain_getBlock at the last ranking, ms (Infinity when unreachable) */
  latencyMs: number;
  /** when the endpoint last failed to answer (unix ms), 0 if never */
  lastFailureMs: number;
}

export interface ChainRpcOptions {
  endpoints: string[];
  /** per-request timeout (the original: 5 s connect + 10 s read) */
  timeoutMs?: number;
  /** re-rank the endpoints when the last ranking is older than this (the original re-ranked every prune cycle) */
  rankIntervalMs?: number;
  now?: () => number;
}

/** `host:port` (the original's dbc_chain_domain form, port 443 by default → https) or a full http(s) URL */
export function normalizeEndpoint(text: string): string {
  const s = text.trim();
  if (s === '') throw new Error('empty chain RPC endpoint');
  if (/^https?:\/\//i.test(s)) {
    const u = new URL(s);
    return u.toString();
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) throw new Error(`chain RPC endpoint must be http(s): ${s}`);
  const u = new URL(`https://${s}`);
  return u.toString();
}

function serializeParam(p: RpcParam): string {
  if (p instanceof RawNumber) return p.digits;
  if (Array.isArray(p)) return `[${p.map(serializeParam).join(',')}]`;
  if (p !== null && typeof p === 'object') {
    return `{${Object.entries(p)
      .map(([k, v]) => `${JSON.stringify(k)}:${serializeParam(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(p);
}

export function rpcBody(method: string, params: RpcParam[], id = 1): string {
  return `{"jsonrpc":"2.0","id":${id},"method":${JSON.stringify(method)},"params":${serializeParam(params)}}`;
}

/** the block number in a chain_getBlock (or chain_getHeader) result: `block.header.number`, a hex string */
export function blockNumberOf(result: unknown): number {
  const r = result as { block?: { header?: { number?: unknown } }; number?: unknown } | null;
  const raw = r?.block?.header?.number ?? r?.number;
  if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0) return raw;
  if (typeof raw === 'string' && /^(0x)?[0-9a-fA-F]{1,12}$/.test(raw)) return Number.parseInt(raw.replace(/^0x/, ''), 16);
  throw new Error('chain_getBlock: no block.header.number');
}

class NoAnswer extends Error {}

export class ChainRpc {
  private readonly scores: EndpointScore[];
  private readonly timeoutMs: number;
  private readonly rankIntervalMs: number;
  private readonly now: () => number;
  private rankedAtMs = 0;
  private ranking: Promise<void> | undefined;
  private nextId = 1;

  constructor(opts: ChainRpcOptions) {
    if (opts.endpoints.length === 0) throw new Error('no chain RPC endpoint given');
    const urls = [...new Set(opts.endpoints.map(normalizeEndpoint))];
    this.scores = urls.map((url) => ({ url, block: 0, latencyMs: Infinity, lastFailureMs: 0 }));
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.rankIntervalMs = opts.rankIntervalMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** the endpoints in the order calls try them */
  endpoints(): EndpointScore[] {
    return this.scores.map((s) => ({ ...s }));
  }

  /** chain_getBlock on every endpoint at once; order by block (desc), then latency (asc); unreachable last */
  async rank(): Promise<EndpointScore[]> {
    this.ranking ??= (async () => {
      await Promise.all(
        this.scores.map(async (s) => {
          const t0 = performance.now();
          try {
            const result = await this.post(s.url, 'chain_getBlock', []);
            s.block = blockNumberOf(result);
            s.latencyMs = Math.round(performance.now() - t0);
          } catch {
            s.block = 0;
            s.latencyMs = Infinity;
            s.lastFailureMs = this.now();
          }
        }),
      );
      const index = new Map(this.scores.map((s, i) => [s, i]));
      this.scores.sort((a, b) => b.block - a.block || a.latencyMs - b.latencyMs || index.get(a)! - index.get(b)!);
      this.rankedAtMs = this.now();
    })().finally(() => {
      this.ranking = undefined;
    });
    await this.ranking;
    return this.endpoints();
  }

  /** one JSON-RPC call, failing over through the ranked endpoints */
  async call<T = unknown>(method: string, params: RpcParam[] = []): Promise<T> {
    if (this.rankedAtMs === 0 || this.now() - this.rankedAtMs >= this.rankIntervalMs) {
      await this.rank().catch(() => undefined);
    }
    const failures: string[] = [];
    for (const s of [...this.scores]) {
      try {
        return (await this.post(s.url, method, params)) as T;
      } catch (err) {
        if (err instanceof ChainRpcError) throw err;
        s.lastFailureMs = this.now();
        failures.push(`${s.url}: ${(err as Error).message}`);
        // an endpoint that stopped answering goes to the back until the next ranking
        const i = this.scores.indexOf(s);
        if (i >= 0 && this.scores.length > 1) {
          this.scores.splice(i, 1);
          this.scores.push(s);
        }
      }
    }
    throw new ChainUnreachableError(`no chain RPC endpoint answered ${method} (${failures.join('; ')})`);
  }

  private async post(url: string, method: string, params: RpcParam[]): Promise<unknown> {
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: rpcBody(method, params, this.nextId++),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      throw new NoAnswer(cause ?? (err as Error).message);
    }
    if (!res.ok) throw new NoAnswer(`HTTP ${res.status}`);
    let body: { result?: unknown; error?: { code?: unknown; message?: unknown; data?: unknown } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new NoAnswer('answer is not JSON');
    }
    if (body === null || typeof body !== 'object') throw new NoAnswer('answer is not a JSON-RPC object');
    if (body.error !== undefined && body.error !== null) {
      const e = body.error;
      throw new ChainRpcError(typeof e.code === 'number' ? e.code : 0, typeof e.message === 'string' ? e.message : 'error', e.data);
    }
    if (!('result' in body)) throw new NoAnswer('answer has no result');
    return body.result;
  }
}
