// The gateway's long-lived routes (docs/events.md, docs/console.md): GET /api/v1/events (Server-Sent Events),
// and websocket upgrades on /api/v1/events/ws, /api/v1/console, /api/v1/vnc. Each presents a ticket that a signed
// POST obtained from a GPU node; the gateway remembers which node issued it (from the reply it relayed) and opens
// a channel there through its NodeTransport; the node checks the ticket. Nothing here trusts the ticket itself.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ChannelRefused } from '../p2p/channel.js';
import { ClientErrors, DbcError, NodeErrors } from '../errors/index.js';
import type { ChannelKind, NodeTransport, RouteId } from '../protocol/types.js';
import type { ByteChannel } from '../util/channel.js';

/** which node issued a ticket, kept a little longer than the node keeps the ticket */
const TICKET_MEMORY_MS = 70_000;
const MAX_REMEMBERED = 100_000;
/** a websocket whose client does not read: beyond this much unsent data it is closed */
const MAX_WS_BUFFER = 8 * 1024 * 1024;
const WS_PING_MS = 20_000;
const TICKET_ROUTES: ReadonlySet<RouteId> = new Set<RouteId>(['events.ticket', 'tasks.console', 'tasks.vnc']);
const NODE_ID = /^[0-9a-fA-F]{64}$/;

type StreamName = 'events' | 'events.ws' | 'console.ws' | 'vnc.ws';
const KIND: Record<StreamName, ChannelKind> = { events: 'events', 'events.ws': 'events', 'console.ws': 'console', 'vnc.ws': 'vnc' };

interface Refusal {
  status: number;
  body: { errcode: number; message: string };
}

const dec = new TextDecoder();

export class GatewayStreams {
  private readonly issuers = new Map<string, { nodeId: string; expires: number }>();
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 1024 * 1024,
    // noVNC asks for the `binary` subprotocol
    handleProtocols: (protocols) => (protocols.has('binary') ? 'binary' : false),
  });
  private readonly live = new Set<ByteChannel>();

  constructor(private readonly transport: NodeTransport) {}

  /** a relayed reply: when it carries a ticket, remember the node that issued it */
  noteReply(route: RouteId, nodeId: string, reply: unknown): void {
    if (!TICKET_ROUTES.has(route)) return;
    const message = (reply as { errcode?: number; message?: { ticket?: unknown } } | null)?.message;
    const ticket = (reply as { errcode?: number })?.errcode === 0 ? message?.ticket : undefined;
    if (typeof ticket !== 'string') return;
    const now = Date.now();
    if (this.issuers.size >= MAX_REMEMBERED) {
      for (const [t, v] of this.issuers) if (v.expires <= now) this.issuers.delete(t);
      if (this.issuers.size >= MAX_REMEMBERED) this.issuers.delete(this.issuers.keys().next().value as string);
    }
    this.issuers.set(ticket, { nodeId, expires: now + TICKET_MEMORY_MS });
  }

  /** channels open now (tests) */
  get openCount(): number {
    return this.live.size;
  }

  close(): void {
    for (const c of [...this.live]) c.close('the gateway is stopping');
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }

  /** GET /api/v1/events?ticket=…[&task_id=…][&type=…]: Server-Sent Events; resumes after Last-Event-ID */
  async sse(req: IncomingMessage, res: ServerResponse, query: Record<string, string>): Promise<void> {
    const lastId = headerOf(req, 'last-event-id') ?? query.last_event_id;
    let ch: ByteChannel;
    try {
      ch = await this.open('events', query, lastId);
    } catch (err) {
      const r = refusal(err);
      res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.body));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', connection: 'keep-alive' });
    res.write(': dbc events\n\n');
    eachLine(ch, (line) => {
      if (line === '') {
        res.write(': keepalive\n\n');
        return;
      }
      let id = '';
      try {
        const raw = (JSON.parse(line) as { id?: unknown }).id;
        id = typeof raw === 'string' ? raw : '';
      } catch {
        return;
      }
      res.write(`id: ${id}\ndata: ${line}\n\n`);
    });
    ch.onClose(() => res.end());
    res.on('close', () => ch.close('the client went away'));
  }

  /** an upgrade request on the gateway's port; answers anything that is not one of ours with 400 */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, stream: StreamName | undefined, query: Record<string, string>): Promise<void> {
    socket.on('error', () => socket.destroy());
    if (!stream || stream === 'events') {
      writeRefusal(socket, { status: 400, body: ClientErrors.uriUsage('GET /events/ws, /console or /vnc with ?ticket=<ticket> (a websocket)').toEnvelope() });
      return;
    }
    let ch: ByteChannel;
    try {
      ch = await this.open(KIND[stream], query, headerOf(req, 'last-event-id') ?? query.last_event_id);
    } catch (err) {
      writeRefusal(socket, refusal(err));
      return;
    }
    if (socket.destroyed) {
      ch.close('the client went away');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.join(ws, ch, stream));
  }

  private join(ws: WebSocket, ch: ByteChannel, stream: StreamName): void {
    const sock = (ws as unknown as { _socket?: { setTimeout?: (ms: number) => void } })._socket;
    sock?.setTimeout?.(0); // the HTTP idle timeout does not apply to a websocket; pings keep it honest
    let alive = true;
    const ping = setInterval(() => {
      if (!alive) {
        ws.terminate();
        return;
      }
      alive = false;
      ws.ping();
    }, WS_PING_MS);
    ws.on('pong', () => (alive = true));
    const tooSlow = () => {
      if (ws.bufferedAmount <= MAX_WS_BUFFER) return false;
      ws.close(1013, 'reader too slow');
      return true;
    };
    if (stream === 'events.ws') {
      eachLine(ch, (line) => {
        if (line !== '' && !tooSlow()) ws.send(line);
      });
    } else {
      ch.onData((d) => {
        if (!tooSlow()) ws.send(d, { binary: true });
      });
    }
    ws.on('message', (data, isBinary) => {
      if (stream === 'events.ws') return;
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!isBinary && stream === 'console.ws') {
        // text frames are control messages ({"type":"resize",…}: a serial line has no size) or typed text
        const text = bytes.toString('utf8');
        if (text.startsWith('{')) {
          try {
            if (typeof (JSON.parse(text) as { type?: unknown }).type === 'string') return;
          } catch {
            // not JSON: keys
          }
        }
      }
      ch.send(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    });
    ch.onClose((reason) => {
      clearInterval(ping);
      if (ws.readyState === ws.OPEN) ws.close(1000, (reason ?? 'closed').slice(0, 120));
    });
    ws.on('close', () => {
      clearInterval(ping);
      ch.close('the client went away');
    });
    ws.on('error', () => ws.terminate());
  }

  private async open(kind: ChannelKind, query: Record<string, string>, lastEventId?: string): Promise<ByteChannel> {
    const ticket = decodeURIComponentSafe(query.ticket ?? '');
    if (ticket === '')
      throw ClientErrors.uriUsage(
        kind === 'events' ? '/events?ticket=<ticket from POST /events/ticket>' : `/${kind}?ticket=<ticket from POST /tasks/${kind}/<task_id>>`,
      );
    // kept until it expires, also after use: a reused ticket must reach its node, which refuses it
    const remembered = this.issuers.get(ticket);
    const nodeId = remembered && remembered.expires > Date.now() ? remembered.nodeId : (query.node_id ?? '');
    if (nodeId === '') throw new ChannelRefused(NodeErrors.ticketInvalid().toEnvelope());
    if (!NODE_ID.test(nodeId) || !this.transport.openChannel) throw ClientErrors.createNodeRequestFailed();
    const params: Record<string, string> = {};
    for (const k of ['task_id', 'type'] as const) {
      const v = query[k];
      if (v !== undefined) params[k] = decodeURIComponentSafe(v);
    }
    if (lastEventId) params.last_event_id = lastEventId;
    const ch = await this.transport.openChannel(nodeId, { kind, ticket, params });
    this.live.add(ch);
    ch.onClose(() => this.live.delete(ch));
    return ch;
  }
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** lines of a channel (events: one JSON object per line) */
function eachLine(ch: ByteChannel, cb: (line: string) => void): void {
  let rest = '';
  ch.onData((d) => {
    rest += dec.decode(d, { stream: true });
    let nl;
    while ((nl = rest.indexOf('\n')) >= 0) {
      cb(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
    }
  });
}

/** the HTTP answer for a refused stream: the node's or gateway's envelope, 403 for a refused ticket */
function refusal(err: unknown): Refusal {
  if (err instanceof ChannelRefused) return { status: 403, body: err.envelope };
  if (err instanceof DbcError) {
    const body = err.toEnvelope();
    return { status: err.code === 'NODE_TICKET_INVALID' ? 403 : err.httpStatus === 200 ? 403 : err.httpStatus, body };
  }
  return { status: 502, body: { errcode: -1, message: 'cannot reach the node' } };
}

function writeRefusal(socket: Duplex, r: Refusal): void {
  const body = JSON.stringify(r.body);
  const reason = r.status === 403 ? 'Forbidden' : r.status === 400 ? 'Bad Request' : r.status === 404 ? 'Not Found' : 'Error';
  socket.end(
    `HTTP/1.1 ${r.status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
