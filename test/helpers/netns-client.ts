// Runs one client action from inside a network namespace (the tests' "internet"), as a child process:
//   ip netns exec NS node netns-client.js '{"op":"ssh","host":..,"port":..,"user":..,"password":..,"cmd":..,"timeoutMs":..}'
//   ip netns exec NS node netns-client.js '{"op":"udp","host":..,"port":..,"text":..,"count":..}'
//   ip netns exec NS node netns-client.js '{"op":"post","url":..,"body":{..},"count":..,"inflight":..}'
// Prints one JSON line {ok, out} or {ok:false, error}. `post` sends the body count times (default 1), inflight at
// once, and answers the first reply, how many had errcode 0, and the rate.
import dgram from 'node:dgram';
import { sshExec } from './devnet.js';

interface Cmd {
  op: 'ssh' | 'udp' | 'post';
  url?: string;
  body?: unknown;
  inflight?: number;
  host: string;
  port: number;
  user?: string;
  password?: string;
  cmd?: string;
  timeoutMs?: number;
  text?: string;
  count?: number;
}

const c = JSON.parse(process.argv[2] ?? '{}') as Cmd;
try {
  if (c.op === 'post') {
    const total = c.count ?? 1;
    let next = 0;
    let okCount = 0;
    let first: unknown;
    const t0 = performance.now();
    const worker = async () => {
      while (next < total) {
        next++;
        const r = await fetch(c.url!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(c.body ?? {}) });
        const j = (await r.json()) as { errcode?: number };
        first ??= j;
        if (j.errcode === 0) okCount++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(c.inflight ?? 1, total) }, worker));
    const seconds = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ ok: true, out: { first, ok: okCount, total, rps: Math.round(total / seconds) } }));
  } else if (c.op === 'ssh') {
    const out = await sshExec(c.host, c.port, c.user ?? 'dbc', c.password ?? '', c.cmd ?? 'true', c.timeoutMs ?? 15_000);
    console.log(JSON.stringify({ ok: true, out }));
  } else {
    // send a datagram every 300 ms until an answer comes back (the guest runs dbc-udp-echo) or count runs out
    const sock = dgram.createSocket('udp4');
    let answer = '';
    sock.on('message', (m) => (answer ||= m.toString()));
    await new Promise<void>((res) => sock.bind(0, () => res()));
    for (let i = 0; i < (c.count ?? 5) && !answer; i++) {
      await new Promise<void>((res, rej) => sock.send(`${c.text ?? 'hello'}\n`, c.port, c.host, (e) => (e ? rej(e) : res())));
      await new Promise((r) => setTimeout(r, 300));
    }
    sock.close();
    console.log(JSON.stringify({ ok: answer !== '', out: answer }));
  }
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: (err as Error).message }));
  process.exit(0);
}
