// Issue 10 finding 7: slow clients must not lock everyone out. Thousands of half-sent requests are held against a
// real `dbc up`; a fresh client is still served, connections beyond the cap are closed at once, and the slow ones
// are closed by the header / request timeouts; an idle keep-alive connection is closed by the keep-alive timeout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { freeVncPort } from '../helpers/tasks.js';
import { freeTcpPort, post, signedBody, startDevnet, sleep, type Devnet } from '../helpers/devnet.js';

const CAP = 2500;
const HEADERS_TIMEOUT_S = 3;
const BODY_TIMEOUT_S = 5;
const KEEP_ALIVE_S = 1;

interface Slow {
  sock: net.Socket;
  opened: number;
  closedAt?: number;
  data: string;
}

/** open n connections that each send part of a request and then nothing; resolves once all are connected or closed */
async function openSlow(host: string, port: number, n: number, kind: 'headers' | 'body'): Promise<Slow[]> {
  const all: Slow[] = [];
  for (let i = 0; i < n; i += 200) {
    await Promise.all(
      Array.from(
        { length: Math.min(200, n - i) },
        () =>
          new Promise<void>((resolve) => {
            const sock = net.createConnection({ host, port });
            const s: Slow = { sock, opened: Date.now(), data: '' };
            all.push(s);
            let settled = false;
            const done = () => {
              if (!settled) {
                settled = true;
                resolve();
              }
            };
            sock.setEncoding('latin1');
            sock.on('data', (d: string) => (s.data += d));
            sock.on('error', () => undefined);
            sock.on('close', () => {
              s.closedAt = Date.now();
              done();
            });
            sock.on('connect', () => {
              sock.write(
                kind === 'headers'
                  ? 'POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: '
                  : 'POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"peer_nodes_list":',
              );
              // a connection beyond the cap is accepted by the kernel and closed by the server at once: wait a moment
              setTimeout(done, 50);
            });
          }),
      ),
    );
  }
  return all;
}

/** the version route over a fresh connection; the time it took, or undefined when refused */
async function freshClient(api: string, timeoutMs = 2000): Promise<number | undefined> {
  const t0 = Date.now();
  try {
    const res = await fetch(`${api}/api/v1/`, { signal: AbortSignal.timeout(timeoutMs), headers: { connection: 'close' } });
    const body = (await res.json()) as { errcode: number };
    return res.status === 200 && body.errcode === 0 ? Date.now() - t0 : undefined;
  } catch {
    return undefined;
  }
}

describe('HTTP hardening: timeouts, connection cap, keep-alive, failed-auth budget', { timeout: 300_000 }, () => {
  let d: Devnet;
  let host = '';
  let port = 0;

  before(async () => {
    d = await startDevnet({
      extraArgs: [
        '--http-max-connections',
        String(CAP),
        '--http-headers-timeout',
        String(HEADERS_TIMEOUT_S),
        '--http-body-timeout',
        String(BODY_TIMEOUT_S),
        '--http-keep-alive-timeout',
        String(KEEP_ALIVE_S),
        '--http-auth-fail-limit',
        '5',
        '--http-auth-fail-window',
        '60',
      ],
    });
    const u = new URL(d.api);
    host = u.hostname;
    port = Number(u.port);
  });
  after(async () => {
    await d?.destroy();
  });

  test('2,000 half-sent requests: a fresh client is served at once, and the timeouts close them all', async () => {
    const t0 = Date.now();
    const slow = [...(await openSlow(host, port, 1500, 'headers')), ...(await openSlow(host, port, 500, 'body'))];
    const openNow = slow.filter((s) => s.closedAt === undefined).length;
    const fresh = await freshClient(d.api);
    console.log(`held ${openNow} of ${slow.length} slow connections after ${Date.now() - t0} ms; fresh client served in ${fresh} ms`);
    assert.ok(fresh !== undefined && fresh < 3000, `fresh client not served (${fresh})`);
    // every slow connection goes within the request timeout (+ Node's checking interval and some slack)
    const deadline = t0 + (BODY_TIMEOUT_S + 6) * 1000;
    while (Date.now() < deadline && slow.some((s) => s.closedAt === undefined)) await sleep(200);
    const open = slow.filter((s) => s.closedAt === undefined);
    const lifetimes = slow
      .filter((s) => s.closedAt !== undefined)
      .map((s) => s.closedAt! - s.opened)
      .sort((a, b) => a - b);
    const answered408 = slow.filter((s) => s.data.startsWith('HTTP/1.1 408')).length;
    console.log(
      `closed ${lifetimes.length}/${slow.length}: lifetime median ${lifetimes[lifetimes.length >> 1]} ms, max ${lifetimes.at(-1)} ms; ${answered408} answered 408`,
    );
    for (const s of open) s.sock.destroy();
    assert.equal(open.length, 0, `${open.length} slow connections still open`);
    const withBody = slow.filter((s) => s.data.length > 0);
    for (const s of withBody) {
      assert.match(s.data, /^HTTP\/1\.1 408 /, s.data.slice(0, 200));
      assert.deepEqual(JSON.parse(s.data.slice(s.data.indexOf('\r\n\r\n') + 4)), { errcode: -32600, message: 'request timeout' });
    }
    assert.ok(await freshClient(d.api), 'still serving');
  });

  test('beyond the connection cap new connections are closed at once; a fresh client is served once the slow ones time out', async () => {
    const t0 = Date.now();
    const slow = await openSlow(host, port, 3000, 'headers');
    const held = slow.filter((s) => s.closedAt === undefined).length;
    const refused = slow.filter((s) => s.closedAt !== undefined);
    const refusedFast = refused.filter((s) => s.closedAt! - s.opened < 2000).length;
    console.log(`cap ${CAP}: held ${held}, refused ${refused.length} (${refusedFast} within 2 s) of ${slow.length} after ${Date.now() - t0} ms`);
    assert.ok(held <= CAP, `held ${held} > cap`);
    assert.ok(refused.length >= slow.length - CAP, `refused ${refused.length}`);
    assert.equal(refusedFast, refused.length, 'refusals close quickly');
    // the cap is full of slow clients: a fresh one gets in as soon as the header timeout frees a slot
    let servedAfter: number | undefined;
    const tFresh = Date.now();
    while (Date.now() - tFresh < (HEADERS_TIMEOUT_S + 5) * 1000) {
      if (await freshClient(d.api, 1000)) {
        servedAfter = Date.now() - tFresh;
        break;
      }
      await sleep(100);
    }
    console.log(`fresh client served after ${servedAfter} ms with the cap full`);
    assert.ok(servedAfter !== undefined, 'a fresh client was never served');
    const deadline = Date.now() + (HEADERS_TIMEOUT_S + 5) * 1000;
    while (Date.now() < deadline && slow.some((s) => s.closedAt === undefined)) await sleep(200);
    const open = slow.filter((s) => s.closedAt === undefined);
    for (const s of open) s.sock.destroy();
    assert.equal(open.length, 0, `${open.length} still open`);
    assert.equal(d.proc.exitCode, null, 'dbc up alive');
  });

  test('failed authentications from one address: after the budget the gateway refuses without asking the node', async () => {
    const forged = () => ({ ...signedBody(d.node_id, d.renter.seed), sign: '0x' + 'ab'.repeat(64) });
    for (let i = 0; i < 5; i++) {
      const r = await post(d.api, 'tasks', forged());
      assert.equal(r.status, 200);
      assert.match(r.body.message, /^check authority failed: /);
      assert.notEqual(r.body.message, 'check authority failed: too many failed attempts from this address, try again later');
    }
    // now even a correct signature is refused: the address is out of budget for the window
    for (const body of [forged(), signedBody(d.node_id, d.renter.seed)]) {
      const r = await post(d.api, 'tasks', body);
      assert.equal(r.status, 429);
      assert.deepEqual(r.body, { errcode: -3, message: 'check authority failed: too many failed attempts from this address, try again later' });
    }
    // routes the gateway answers itself still work
    assert.ok(await freshClient(d.api));
  });

  test('an idle keep-alive connection is closed by the keep-alive timeout', async () => {
    const sock = net.createConnection({ host, port });
    let data = '';
    sock.setEncoding('latin1');
    sock.on('data', (x: string) => (data += x));
    const closed = new Promise<number>((resolve) => sock.on('close', () => resolve(Date.now())));
    await new Promise<void>((r) => sock.on('connect', () => r()));
    sock.write('GET /api/v1/ HTTP/1.1\r\nHost: x\r\n\r\n');
    const t0 = Date.now();
    const end = await Promise.race([closed, sleep(10_000).then(() => 0)]);
    sock.destroy();
    assert.match(data, /^HTTP\/1\.1 200 /);
    assert.match(data, /keep-alive/i);
    assert.ok(end > 0 && end - t0 < (KEEP_ALIVE_S + 3) * 1000, `closed after ${end - t0} ms`);
  });
});

describe('out of file descriptors (default HTTP limits)', { timeout: 120_000 }, () => {
  let d: Devnet;
  let host = '';
  let port = 0;
  before(async () => {
    d = await startDevnet();
    const u = new URL(d.api);
    host = u.hostname;
    port = Number(u.port);
  });
  after(async () => {
    await d?.destroy();
  });

  test('tasks/start says so instead of `ssh_port is occupied`, and the daemon survives', async () => {
    const pid = d.proc.pid!;
    // a keep-alive connection opened while descriptors are plenty carries the create later
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const request = (path: string, body: unknown) =>
      new Promise<{ status: number; body: { errcode: number; message: string } }>((resolve, reject) => {
        const req = http.request({ host, port, path, method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.on('data', (x) => (text += x));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end(JSON.stringify(body));
      });
    const ports = { ssh: String(await freeTcpPort()), vnc: String(await freeVncPort()) };
    assert.equal((await request('/api/v1/', {})).status, 200);
    const hard = /^Max open files\s+\d+\s+(\d+)/m.exec(execFileSync('cat', [`/proc/${pid}/limits`], { encoding: 'utf8' }))![1]!;
    const used = readdirSync(`/proc/${pid}/fd`).length;
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${used + 8}:${hard}`]);
    const hogs: net.Socket[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const s = net.createConnection({ host, port });
        s.on('error', () => undefined);
        hogs.push(s);
      }
      await sleep(200);
      const r = await request(
        '/api/v1/tasks/start',
        signedBody(d.node_id, d.renter.seed, { image_name: d.image, ssh_port: ports.ssh, vnc_port: ports.vnc, cpu_cores: '1', mem_size: '1', disk_size: '1' }),
      );
      console.log(`tasks/start with ${used + 8} descriptors: ${JSON.stringify(r.body)}`);
      assert.doesNotMatch(r.body.message, /occupied/);
      assert.deepEqual(r.body, { errcode: -3, message: 'internal error: host is out of file descriptors, try again later' });
    } finally {
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${hard}:${hard}`]);
      for (const s of hogs) s.destroy();
      agent.destroy();
    }
    await sleep(500);
    assert.equal(d.proc.exitCode, null, `dbc up died:\n${d.output().slice(-2000)}`);
    assert.ok(await freshClient(d.api, 5000), 'serving again');
  });
});
