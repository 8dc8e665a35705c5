// Live consoles and events (issue 14), same run, same VM where the paths compare:
//   echo: keystroke-to-echo at a logged-in shell on the serial console, N keys one at a time, p50/p99:
//         direct on QEMU's chardev socket (no node in between; measured while no viewer holds it), through `dbc up`'s
//         websocket, and through `dbc client` -> libp2p -> `dbc node` (seed, node, client as processes).
//         Target: each path's p50 and p99 <= 1.3 x direct + 2 ms.
//   events: a disk/add + disk/delete loop on a closed VM makes operation events; delivery latency = the SSE
//         client's receive time - the event's `time` (recorded by the node when the bus emitted it, same host clock),
//         p50/p99 through dbc up and through the client. Target p99 <= 50 ms.
//   vnc: full-frame FramebufferUpdate requests one after another for 5 s, frames per second: direct (the bench answers
//         QEMU's VNC password itself) vs through the websocket proxy (no password: the node answers it).
// Prints one JSON object.
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authenticateToServer, ByteReader } from '../src/vm/vnc-proxy.js';
import { freeTcpPort, post, signedBody, sleep } from '../test/helpers/devnet.js';
import { ConsoleText, SHELL_PROMPT, sse, wsOpen } from '../test/helpers/streams.js';
import { freeVncPort, taskDetail, waitOperation, waitStatus } from '../test/helpers/tasks.js';
import { startTopology, type Topology, type TopologyNode } from '../test/helpers/topology.js';
import { rounder } from './stats.js';

const KEYS = Number(process.env.BENCH_CONSOLE_KEYS ?? 100);
const EVENT_ROUNDS = Number(process.env.BENCH_CONSOLE_EVENT_ROUNDS ?? 20);
const VNC_SECONDS = 5;
const round = rounder(2);
const BACKSPACE = new RegExp(String.fromCharCode(8));

interface Lat {
  p50: number;
  p99: number;
  n: number;
}
function lat(xs: number[]): Lat {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: round(s[Math.floor(s.length / 2)] ?? NaN), p99: round(s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? NaN), n: s.length };
}

/** anything that carries console bytes both ways */
interface Pipe {
  text: () => string;
  type: (s: string) => void;
  close: () => void;
}
function socketPipe(sock: net.Socket): Pipe {
  let text = '';
  sock.on('data', (d: Buffer) => (text += d.toString('utf8')));
  return { text: () => text, type: (s) => sock.write(s), close: () => sock.destroy() };
}
function wsPipe(c: ConsoleText): Pipe {
  return { text: () => c.text, type: (s) => c.type(s), close: () => c.ws.close() };
}

async function until(p: Pipe, re: RegExp, from: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!re.test(p.text().slice(from))) {
    if (Date.now() > end) throw new Error(`${re} not seen; console: ${JSON.stringify(p.text().slice(-300))}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** log in at the serial console (a fresh login prompt first), ending at a shell prompt */
async function login(p: Pipe, user: string, password: string): Promise<void> {
  let m = p.text().length;
  p.type('\x15\r');
  await until(p, new RegExp(`login: ?$|${SHELL_PROMPT.source}`, 'm'), m, 30_000);
  if (SHELL_PROMPT.test(p.text().slice(m))) return;
  m = p.text().length;
  p.type(`${user}\r`);
  await until(p, /Password: ?$/m, m, 30_000);
  m = p.text().length;
  p.type(`${password}\r`);
  await until(p, SHELL_PROMPT, m, 30_000);
}

async function echoLoop(p: Pipe): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < KEYS; i++) {
    const m = p.text().length;
    const t0 = performance.now();
    p.type('k');
    await until(p, /k/, m, 10_000);
    out.push(performance.now() - t0);
    const m2 = p.text().length;
    p.type('\x7f');
    // the erase comes back as a backspace (busybox ash's line editor)
    await until(p, BACKSPACE, m2, 10_000);
  }
  return out;
}

async function consoleTicket(n: TopologyNode, taskId: string): Promise<string> {
  const r = await post(n.api, `tasks/console/${taskId}`, signedBody(n.node_id, n.renter.seed));
  if (r.body.errcode !== 0) throw new Error(`tasks/console: ${r.text}`);
  return `${n.api.replace(/^http/, 'ws')}${r.body.message.url as string}`;
}

async function createVm(n: TopologyNode): Promise<string> {
  const r = await post(
    n.api,
    'tasks/start',
    signedBody(n.node_id, n.renter.seed, {
      image_name: n.image,
      ssh_port: String(await freeTcpPort()),
      vnc_port: String(await freeVncPort()),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: '1',
    }),
  );
  if (r.body.errcode !== 0) throw new Error(`tasks/start: ${r.text}`);
  const id = String(r.body.message.task_id);
  await waitStatus(n.devnet, id, 'running', 240_000, n.renter.seed);
  return id;
}

async function eventsLatency(n: TopologyNode, taskId: string): Promise<Lat> {
  const t = await post(n.api, 'events/ticket', signedBody(n.node_id, n.renter.seed));
  const s = await sse(`${n.api}${t.body.message.url as string}&task_id=${taskId}&type=operation`);
  const got: number[] = [];
  const seen = new Set<string>();
  const received = new Map<string, number>();
  const poll = setInterval(() => {
    for (const e of s.events) if (!received.has(e.id)) received.set(e.id, Date.now());
  }, 1);
  for (let i = 0; i < EVENT_ROUNDS; i++) {
    const add = await post(n.api, `disk/add/${taskId}`, signedBody(n.node_id, n.renter.seed, { size: 1 }));
    if (add.body.errcode !== 0) throw new Error(`disk/add: ${add.text}`);
    await waitOperation(n.devnet, String(add.body.operation_id), 60_000);
    const disks = await post(n.api, `disk/list/${taskId}`, signedBody(n.node_id, n.renter.seed));
    const last = (disks.body.message as Array<{ name: string }>)
      .map((d) => d.name)
      .sort()
      .at(-1)!;
    const del = await post(n.api, `disk/delete/${taskId}`, signedBody(n.node_id, n.renter.seed, { disk_name: last }));
    if (del.body.errcode === 0) await waitOperation(n.devnet, String(del.body.operation_id), 60_000);
  }
  await sleep(200);
  clearInterval(poll);
  s.close();
  for (const e of s.events) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    got.push((received.get(e.id) ?? Date.now()) - Date.parse(e.data.time as string));
  }
  return lat(got);
}

/** full frames per second from an RFB connection already past the security handshake */
async function framesPerSecond(read: (n: number) => Promise<Buffer>, write: (b: Buffer) => void): Promise<number> {
  write(Buffer.from([1])); // ClientInit, shared
  const init = await read(24);
  const w = init.readUInt16BE(0);
  const h = init.readUInt16BE(2);
  await read(init.readUInt32BE(20)); // the name
  // SetPixelFormat is left as the server's (32 bpp); SetEncodings: raw only
  write(Buffer.from([2, 0, 0, 1, 0, 0, 0, 0]));
  const req = Buffer.alloc(10);
  req.writeUInt8(3, 0);
  req.writeUInt8(0, 1);
  req.writeUInt16BE(w, 6);
  req.writeUInt16BE(h, 8);
  let frames = 0;
  const end = performance.now() + VNC_SECONDS * 1000;
  while (performance.now() < end) {
    write(req);
    for (;;) {
      const head = await read(4);
      if (head[0] === 0) {
        const rects = head.readUInt16BE(2);
        for (let i = 0; i < rects; i++) {
          const r = await read(12);
          const rw = r.readUInt16BE(4);
          const rh = r.readUInt16BE(6);
          const enc = r.readInt32BE(8);
          if (enc === 0) await read(rw * rh * 4);
          else if (enc === -223)
            continue; // DesktopSize pseudo-encoding: no data
          else throw new Error(`unexpected encoding ${enc}`);
        }
        break;
      }
      if (head[0] === 2) continue; // Bell (1 byte; the other 3 belong to the next message: not sent by QEMU here)
      throw new Error(`unexpected RFB message ${head[0]}`);
    }
    frames++;
  }
  return round(frames / VNC_SECONDS);
}

async function vncDirect(n: TopologyNode, taskId: string): Promise<number> {
  const d = await taskDetail(n.devnet, taskId, n.renter.seed);
  const sock = net.connect({ host: '127.0.0.1', port: Number(d.vnc_port) });
  const r = new ByteReader();
  sock.on('data', (b: Buffer) => r.push(b));
  await authenticateToServer(
    (k) => r.read(k),
    (b) => sock.write(b),
    String(d.vnc_password),
  );
  try {
    return await framesPerSecond(
      (k) => r.read(k),
      (b) => sock.write(b),
    );
  } finally {
    sock.destroy();
  }
}

async function vncProxy(n: TopologyNode, taskId: string): Promise<number> {
  const t = await post(n.api, `tasks/vnc/${taskId}`, signedBody(n.node_id, n.renter.seed));
  const ws = await wsOpen(`${n.api.replace(/^http/, 'ws')}${t.body.message.url as string}`, ['binary']);
  const r = new ByteReader();
  ws.on('message', (m: Buffer) => r.push(m));
  const send = (b: Buffer) => ws.send(b);
  try {
    if ((await r.read(12)).toString('latin1') !== 'RFB 003.008\n') throw new Error('not RFB');
    send(Buffer.from('RFB 003.008\n', 'latin1'));
    await r.read(2);
    send(Buffer.from([1]));
    await r.read(4);
    return await framesPerSecond((k) => r.read(k), send);
  } finally {
    ws.close();
  }
}

export async function benchConsole(): Promise<Record<string, unknown>> {
  const started = Date.now();
  const result: Record<string, unknown> = {};
  for (const kind of ['up', 'p2p'] as const) {
    let topo: Topology | undefined;
    try {
      topo = await startTopology(kind);
      const n = topo.nodes[0];
      const taskId = await createVm(n);
      const d = await taskDetail(n.devnet, taskId, n.renter.seed);
      const part: Record<string, unknown> = {};
      if (kind === 'up') {
        // direct: QEMU's chardev socket, while no viewer holds it
        const sock = net.connect(join(n.dataDir, 'vms', taskId, 'run', 'serial.sock'));
        await new Promise<void>((res, rej) => (sock.once('connect', res), sock.once('error', rej)));
        const direct = socketPipe(sock);
        await login(direct, String(d.user_name), String(d.login_password));
        part.echo_direct_ms = lat(await echoLoop(direct));
        direct.type('exit\r');
        direct.close();
        await sleep(500);
      }
      const ws = wsPipe(new ConsoleText(await wsOpen(await consoleTicket(n, taskId))));
      await login(ws, String(d.user_name), String(d.login_password));
      part.echo_ws_ms = lat(await echoLoop(ws));
      ws.type('exit\r');
      ws.close();
      part.vnc_fps_proxy = await vncProxy(n, taskId);
      if (kind === 'up') part.vnc_fps_direct = await vncDirect(n, taskId);
      const off = await post(n.api, `tasks/poweroff/${taskId}`, signedBody(n.node_id, n.renter.seed));
      await waitOperation(n.devnet, String(off.body.operation_id), 60_000);
      part.event_delivery_ms = await eventsLatency(n, taskId);
      result[kind] = part;
    } finally {
      await topo?.destroy();
    }
  }
  const up = result.up as Record<string, Lat & number>;
  const p2p = result.p2p as Record<string, Lat & number>;
  const direct = up.echo_direct_ms as unknown as Lat;
  const ok = (l: Lat) => l.p50 <= direct.p50 * 1.3 + 2 && l.p99 <= direct.p99 * 1.3 + 2;
  return {
    ...result,
    echo_up_vs_direct_p50: round((up.echo_ws_ms as unknown as Lat).p50 / direct.p50),
    echo_p2p_vs_direct_p50: round((p2p.echo_ws_ms as unknown as Lat).p50 / direct.p50),
    target_echo: '<= 1.3 x direct + 2 ms (p50 and p99)',
    pass_echo: ok(up.echo_ws_ms as unknown as Lat) && ok(p2p.echo_ws_ms as unknown as Lat),
    target_event_p99_ms: 50,
    pass_events: (up.event_delivery_ms as unknown as Lat).p99 <= 50 && (p2p.event_delivery_ms as unknown as Lat).p99 <= 50,
    cores: os.cpus().length,
    total_s: round((Date.now() - started) / 1000, 1),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  benchConsole().then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (err) => {
      process.stderr.write(`console bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
