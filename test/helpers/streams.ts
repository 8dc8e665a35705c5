// Test clients for the gateway's long-lived routes: Server-Sent Events over plain http, websockets with `ws`.
import http from 'node:http';
import { WebSocket } from 'ws';
import { waitFor } from './devnet.js';

export interface SseEvent {
  id: string;
  data: any;
}

export interface SseClient {
  status: number;
  /** the body when the server refused (status != 200) */
  refusal: string;
  events: SseEvent[];
  comments: number;
  /** resolves with the first held or later event that pred accepts */
  next(pred: (e: SseEvent) => boolean, timeoutMs: number, what?: string): Promise<SseEvent>;
  close(): void;
}

/** GET url as an EventSource would (Accept: text/event-stream, Last-Event-ID when given) */
export function sse(url: string, lastEventId?: string): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (lastEventId) headers['last-event-id'] = lastEventId;
    const req = http.get(url, { headers }, (res) => {
      const c: SseClient = {
        status: res.statusCode ?? 0,
        refusal: '',
        events: [],
        comments: 0,
        async next(pred, timeoutMs, what = 'an event') {
          return waitFor(what, async () => c.events.find(pred), timeoutMs, 50);
        },
        close: () => req.destroy(),
      };
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk: string) => {
        if (c.status !== 200) {
          c.refusal += chunk;
          return;
        }
        buf += chunk;
        let sep;
        while ((sep = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, sep);
          buf = buf.slice(sep + 2);
          let id = '';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) c.comments++;
            else if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) c.events.push({ id, data: JSON.parse(data) });
        }
      });
      res.on('error', () => undefined);
      if (c.status !== 200) res.on('end', () => resolve(c));
      else resolve(c);
    });
    req.on('error', reject);
  });
}

export class WsRefusal extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`websocket refused: ${status} ${body}`);
  }
}

/** every websocket wsOpen made, so that a suite's after() can end them whatever failed (closeAllWebSockets) */
const opened = new Set<WebSocket>();
export function closeAllWebSockets(): void {
  for (const ws of opened) ws.terminate();
  opened.clear();
}

/** open a websocket; rejects with {status, body} when the upgrade is refused */
export function wsOpen(url: string, protocols?: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    opened.add(ws);
    ws.once('close', () => opened.delete(ws));
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => reject(new WsRefusal(res.statusCode ?? 0, body)));
    });
    ws.once('error', (err) => reject(err));
  });
}

/** a shell prompt at the end of the console; busybox ash follows it with a cursor position query (ESC [6n) */
export const SHELL_PROMPT = new RegExp(`[$#] ?(${String.fromCharCode(27)}\\[6n)?$`, 'm');

/** a serial console seen as text: everything received so far, and a way to wait for a pattern after a mark */
export class ConsoleText {
  text = '';
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => (this.text += d.toString('utf8')));
  }
  mark(): number {
    return this.text.length;
  }
  type(s: string): void {
    this.ws.send(Buffer.from(s, 'utf8'));
  }
  async waitFor(re: RegExp, from: number, timeoutMs: number): Promise<string> {
    try {
      return await waitFor(`console ${re}`, async () => (re.test(this.text.slice(from)) ? this.text.slice(from) : undefined), timeoutMs, 50);
    } catch (err) {
      throw new Error(`${(err as Error).message}; the console shows: ${JSON.stringify(this.text.slice(-600))}`);
    }
  }
}
