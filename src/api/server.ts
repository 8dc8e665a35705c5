// The client gateway: `POST /api/v1/...` -> resolve -> parse the envelope -> pre-check -> relay a NodeRequest to
// the GPU node in peer_nodes_list[0] -> answer the node's JSON with HTTP 200. Every refusal, ours or fastify's,
// leaves as the DBC envelope {"errcode": <non-zero>, "message": "<text>"} with the original's HTTP status.
import { readFileSync } from 'node:fs';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ClientErrors, DbcError, RPC_INVALID_REQUEST, RPC_RESPONSE_ERROR } from '../protocol/errors.js';
import { ROUTES } from '../protocol/routes.js';
import { DBC_VERSION, type NodeReply, type NodeRequest, type NodeTransport } from '../protocol/types.js';
import { AuthBudget, type AuthBudgetOptions } from './auth-budget.js';
import { atoi, clientPreCheck, parseBody } from './envelope.js';
import { buildOpenApi } from './openapi.js';
import { resolve } from './router.js';
import { GatewayStreams } from './streams.js';
import { UiFiles, type UiOptions } from './ui.js';
import { ClientImages, LOCAL_IMAGE_ROUTES } from '../images/client.js';
import { isTimeoutError, withDeadline } from '../util/deadline.js';

export interface ApiOptions {
  /**
   * How NodeRequests reach GPU nodes. Contract: `request()` resolves with the node's reply, or rejects with
   * - a DbcError: sent as is (its HTTP status and envelope), e.g. `create node request failed` for an unknown node;
   * - a TimeoutError (util/deadline.ts; or any Error named 'TimeoutError') once `opts.timeoutMs` has passed: sent as
   *   `<op> timeout` (500, -1);
   * - any other Error: sent as `<op> failed: <text>` (500, -1).
   * The server also enforces the deadline itself, so a transport that never settles cannot hang an HTTP call.
   */
  transport: NodeTransport;
  logger?: FastifyBaseLogger | false;
  /** maximum request body, bytes; the original's evhttp limit was 32 MiB */
  bodyLimit?: number;
  /** how long to wait for the GPU node; the original's MAX_WAIT_HTTP_RESPONSE_TIME was 30 s */
  requestTimeoutMs?: number;
  /** image centres (`--image-server ID,host,port,module`) and the host's image directory; absent: none configured */
  images?: ClientImages;
  /** HTTP server limits (timeouts, keep-alive, connection cap); absent fields take the defaults below */
  http?: Partial<HttpLimits>;
  /** per-address budget for failed authentication (`check authority failed`); limit 0 disables it */
  authBudget?: Partial<AuthBudgetOptions>;
  /** the renter's web page (api/ui.ts); absent: GET / and /ui/ answer as any unknown URI */
  ui?: UiOptions;
}

/** HTTP server limits, see docs/request-flow.md "HTTP limits" */
export interface HttpLimits {
  /** the whole request (headers and body) must arrive within this (Node server.requestTimeout) */
  requestTimeoutMs: number;
  /** the request headers must arrive within this (Node server.headersTimeout); the slowloris defence */
  headersTimeoutMs: number;
  /** an idle keep-alive connection is closed after this (Node server.keepAliveTimeout) */
  keepAliveTimeoutMs: number;
  /** a connection with no traffic at all for this long is closed, also while the node works (socket timeout) */
  idleTimeoutMs: number;
  /** requests one connection may carry; the last reply says `Connection: close` (0: unlimited) */
  maxRequestsPerSocket: number;
  /** open connections at most; beyond it new connections are closed at once (Node server.maxConnections) */
  maxConnections: number;
}

/** the soft RLIMIT_NOFILE of this process (Node raises it to the hard limit at start), 1024 when unknown */
function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? 1 << 20 : Number(m[1]);
  } catch {
    // not Linux
  }
  return 1024;
}

/** the defaults: half the process's file descriptors for HTTP connections (64..10,000), the rest for the node */
export function defaultHttpLimits(): HttpLimits {
  return {
    requestTimeoutMs: 60_000,
    headersTimeoutMs: 10_000,
    keepAliveTimeoutMs: 5_000,
    idleTimeoutMs: 120_000,
    maxRequestsPerSocket: 1_000,
    maxConnections: Math.max(64, Math.min(10_000, Math.floor(openFileLimit() / 2))),
  };
}

type Envelope = { errcode: number; message: string };

const DEFAULT_BODY_LIMIT = 0x02000000;
const DEFAULT_TIMEOUT_MS = 30_000;
const NODE_ID = /^[0-9a-fA-F]{64}$/;
const HEADERS = { 'access-control-allow-origin': '*', 'content-type': 'application/json' } as const;
const VERSION_JSON = JSON.stringify({ errcode: 0, message: { client_version: DBC_VERSION } });
// A transport without peers (in-process `dbc up`): no peers to list.
const PEERS_JSON = JSON.stringify({ errcode: 0, message: { peer_nodes_list: [] } });

function send(reply: FastifyReply, status: number, json: string): FastifyReply {
  // a Buffer, so that fastify keeps `Content-Type: application/json` as the original sent it (no charset suffix)
  return reply.code(status).headers(HEADERS).send(Buffer.from(json));
}

function envelopeOf(err: unknown, bodyLimit: number): { status: number; body: Envelope } {
  if (err instanceof DbcError) return { status: err.httpStatus, body: err.toEnvelope() };
  const fe = err as Partial<FastifyError> | undefined;
  if (fe?.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const e = ClientErrors.bodyTooLarge(bodyLimit);
    return { status: e.httpStatus, body: e.toEnvelope() };
  }
  const text = err instanceof Error ? err.message : String(err);
  const status = typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 600 ? fe.statusCode : 500;
  return {
    status,
    body: { errcode: status < 500 ? RPC_INVALID_REQUEST : RPC_RESPONSE_ERROR, message: status < 500 ? text : `internal error: ${text}` },
  };
}

/** tasks/logs client-side checks (RAS rest_task_logs); they run before the body is read, as the original. */
function normaliseLogQuery(query: Record<string, string>): void {
  let flag = query.flag ?? '';
  let lineNum = query.line_num ?? '';
  if (flag === '') {
    // the original ignores line_num when flag is missing
    flag = 'tail';
    lineNum = '100';
  } else if (flag === 'head' || flag === 'tail') {
    if (lineNum === '') lineNum = '100';
  } else {
    throw ClientErrors.headOrTailInvalid();
  }
  let lines = atoi(lineNum);
  // sic: the original sends MAX_NUMBER_OF_LINES - 1 for anything above the maximum
  if (lines > 100) lines = 99;
  else if (lines <= 0) throw ClientErrors.invalidLineNum();
  query.flag = flag;
  query.line_num = String(lines);
}

/** Races the transport against our own deadline and maps its failures to the original's texts. */
async function relay(transport: NodeTransport, peer: string, req: NodeRequest, timeoutMs: number): Promise<NodeReply> {
  const op = ROUTES[req.route].op;
  try {
    return await withDeadline(transport.request(peer, req, { timeoutMs }), timeoutMs, 'deadline passed');
  } catch (err) {
    if (err instanceof DbcError) throw err;
    if (isTimeoutError(err)) throw ClientErrors.timeout(op);
    throw ClientErrors.nodeRequestFailed(op, err instanceof Error ? err.message : String(err));
  }
}

function serialiseNodeReply(reply: NodeReply): string {
  if (typeof reply !== 'object' || reply === null || typeof reply.errcode !== 'number') throw ClientErrors.responseParse();
  try {
    return JSON.stringify(reply);
  } catch {
    throw ClientErrors.responseParse();
  }
}

function rawClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  // headersTimeout / requestTimeout passed (Node answers 408 itself without a handler)
  const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const e = tooLarge ? ClientErrors.headersTooLarge() : timedOut ? ClientErrors.requestTimeout() : ClientErrors.malformedRequest();
  const status = `${e.httpStatus} ${STATUS_CODES[e.httpStatus] ?? ''}`;
  const body = JSON.stringify(e.toEnvelope());
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nAccess-Control-Allow-Origin: *\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  const { transport } = opts;
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const openApiJson = JSON.stringify(buildOpenApi());
  const limits: HttpLimits = { ...defaultHttpLimits(), ...opts.http };
  // Node refuses a requestTimeout below headersTimeout
  limits.requestTimeoutMs = Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs);
  const budget = new AuthBudget(opts.authBudget);

  const sendError = (reply: FastifyReply, err: unknown): FastifyReply => {
    const { status, body } = envelopeOf(err, bodyLimit);
    budget.note(reply.request.ip, body.message);
    if (status >= 500 && !(err instanceof DbcError)) reply.log.error({ err }, 'unexpected error');
    return send(reply, status, JSON.stringify(body));
  };

  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    bodyLimit,
    // fastify refuses some URLs before routing (bad %-escapes); answer them in the DBC envelope too
    frameworkErrors: (err, _request, reply) => {
      const e = ClientErrors.uriMalformed(err.message);
      send(reply, e.httpStatus, JSON.stringify(e.toEnvelope()));
    },
    clientErrorHandler: rawClientError,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    maxRequestsPerSocket: limits.maxRequestsPerSocket,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      // how often Node looks for requests past headersTimeout / requestTimeout (default 30 s)
      connectionsCheckingInterval: Math.max(250, Math.min(5_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
  });
  // beyond the cap Node closes a new connection at once (no reply: nothing is read from it)
  if (limits.maxConnections > 0) app.server.maxConnections = limits.maxConnections;
  let dropped = 0;
  let dropLogged = 0;
  // accept() failing (EMFILE/ENFILE: out of descriptors) is emitted as 'error' on the server: without a listener
  // it would kill the process. libuv keeps listening; the failures are logged at most every 10 s.
  let acceptErrors = 0;
  let acceptLogged = 0;
  app.server.on('error', (err: NodeJS.ErrnoException) => {
    if (!app.server.listening) return; // a listen() failure: fastify's listen() rejects with it
    acceptErrors++;
    if (Date.now() - acceptLogged > 10_000) {
      acceptLogged = Date.now();
      app.log.error({ err, acceptErrors }, 'http server: accepting a connection failed');
    }
  });
  app.server.on('drop', () => {
    dropped++;
    if (Date.now() - dropLogged > 10_000) {
      dropLogged = Date.now();
      app.log.warn({ dropped, maxConnections: limits.maxConnections }, 'connection cap reached: new connections closed');
    }
  });

  // The original read any body as text whatever its Content-Type: one parser for every type, JSON parsed later.
  // fastify answers 415 to a media type it cannot parse (`json`, `text`, `application/json, text/plain`) before
  // any parser runs, so the header is replaced by a neutral one first; a missing header stays missing.
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.raw.headers['content-type'] !== undefined) request.raw.headers['content-type'] = 'text/plain';
    done();
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  const streams = new GatewayStreams(transport);
  app.addHook('onClose', async () => streams.close());
  // websocket upgrades (events/ws, console, vnc); any other upgrade is answered 400
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let stream: 'events' | 'events.ws' | 'console.ws' | 'vnc.ws' | undefined;
    let query: Record<string, string> = {};
    try {
      const r = resolve(req.method ?? 'GET', req.url ?? '');
      if (r.kind === 'stream') ({ stream, query } = r);
    } catch {
      // not one of ours
    }
    void streams.upgrade(req, socket, head, stream, query).catch(() => socket.destroy());
  });

  const ui = opts.ui ? new UiFiles(opts.ui) : undefined;
  const page = (request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined => {
    if (!ui || request.method !== 'GET') return undefined;
    const path = (request.raw.url ?? '').split('?')[0]!;
    if (path === '/' || path === '/ui') return reply.code(302).header('location', '/ui/').send();
    if (!path.startsWith('/ui/')) return undefined;
    const f = ui.get(path.slice(4), request.ip);
    if (!f) return undefined;
    return reply
      .code(200)
      .headers({
        'content-type': f.type,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        // the page talks to this origin only; images are data: (noVNC cursors); the wasm signer needs wasm-unsafe-eval
        'content-security-policy':
          "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' ws: wss:; frame-ancestors 'none'",
      })
      .send(f.body);
  };

  async function handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const served = page(request, reply);
    if (served) return served;
    try {
      const resolved = resolve(request.method, request.raw.url ?? '');
      switch (resolved.kind) {
        case 'stream':
          if (resolved.stream !== 'events') throw ClientErrors.uriUsage(`a websocket upgrade on ${request.raw.url?.split('?')[0] ?? ''}`);
          reply.hijack();
          await streams.sse(request.raw, reply.raw, resolved.query);
          return reply;
        case 'version':
          return send(reply, 200, VERSION_JSON);
        case 'openapi':
          return send(reply, 200, openApiJson);
        case 'local':
          if (resolved.route === 'images.servers') return send(reply, 200, imageServersJson(opts.images, request.body as string | undefined));
          return send(reply, 200, await peersJson(transport, resolved.route === 'peers.active' ? 'active' : 'global'));
      }
      const { route, params, query } = resolved;
      const wait = budget.blockedFor(request.ip);
      if (wait > 0) {
        reply.header('retry-after', String(wait));
        throw ClientErrors.authBudget();
      }
      if (route === 'tasks.logs') normaliseLogQuery(query);
      const body = parseBody(request.body as string | undefined);
      const peer = body.peer_nodes_list[0] ?? '';
      if (peer === '') {
        // images: a centre's list, and upload / progress / stop from this host (original §2.7)
        if (opts.images && LOCAL_IMAGE_ROUTES.has(route)) {
          return send(reply, 200, JSON.stringify({ errcode: 0, message: await opts.images.local(route, body.additional, body) }));
        }
        // lan and lan/<name> without a node: the client host itself holds no LANs (the original's client kept a
        // multicast-gossiped copy; ours asks the nodes, see docs/compatibility.md)
        if (route === 'lan.list') return send(reply, 200, JSON.stringify({ errcode: 0, message: { networks: [] } }));
        if (route === 'lan.detail') throw ClientErrors.lanNotExist();
        if (route !== 'mining_nodes.info') throw ClientErrors.peerEmpty();
        return send(reply, 200, JSON.stringify({ errcode: 0, message: { mining_nodes: networkList(transport) } }));
      }
      clientPreCheck(ROUTES[route], body);
      if (!NODE_ID.test(peer)) throw ClientErrors.createNodeRequestFailed();
      const nodeReq: NodeRequest = { route: route, params, query, body };
      // the node gets the whole image centre, resolved from our configuration (the original's image_server field)
      const imageServer = (opts.images ?? NO_IMAGES).resolveFor(route, body.additional);
      if (imageServer) nodeReq.image_server = imageServer;
      const nodeReply = await relay(transport, peer, nodeReq, timeoutMs);
      budget.note(request.ip, (nodeReply as { message?: unknown } | null)?.message);
      streams.noteReply(route, peer, nodeReply);
      return send(reply, 200, serialiseNodeReply(nodeReply));
    } catch (err) {
      return sendError(reply, err);
    }
  }

  app.all('*', handle);
  // unreachable with the catch-all route, kept so that no request can get fastify's own 404 body
  app.setNotFoundHandler(handle);
  app.setErrorHandler((err, _request, reply) => sendError(reply, err));
  return app;
}

// without image configuration every image_server ID is unknown
const NO_IMAGES = new ClientImages({ servers: [], localDir: '/nonexistent' });

/** /images/servers: the configured centre ids; the body, when there is one, must be a JSON object (RAS:4360-4412) */
function imageServersJson(images: ClientImages | undefined, raw: string | undefined): string {
  if (raw !== undefined && raw.trim() !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (err) {
      throw ClientErrors.jsonParse(err instanceof Error ? err.message : String(err));
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw ClientErrors.invalidJson();
  }
  return JSON.stringify({ errcode: 0, message: (images ?? NO_IMAGES).serversMessage() });
}

function networkList(transport: NodeTransport): Array<{ node_id: string; name: string; version: string }> {
  return transport.knownNodes().map(({ node_id, name, version }) => ({ node_id, name, version }));
}

/** /peers/active and /peers/global: from the transport when it has a network, `{peer_nodes_list: [{node_id, addr}]}` */
async function peersJson(transport: NodeTransport, kind: 'active' | 'global'): Promise<string> {
  if (!transport.peers) return PEERS_JSON;
  const list = await transport.peers(kind);
  return JSON.stringify({ errcode: 0, message: { peer_nodes_list: list } });
}
