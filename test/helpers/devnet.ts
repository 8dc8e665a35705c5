// Test helpers: run `dbc up` as a real child process on a temporary data dir, talk to its HTTP API with signed
// requests, log in to guests over SSH.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'ssh2';
import { signNonce } from '../../src/cli/sign.js';
import { processesMentioning } from '../../src/util/proc.js';
import { createHash } from 'node:crypto';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const cliPath = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

/** the test guest image, built once by scripts/build-test-image.sh and cached under .cache/ */
export function ensureTestImage(): string {
  const image = join(repoRoot, '.cache', 'images', 'dbc-test.qcow2');
  if (!existsSync(image)) {
    execFileSync('bash', [join(repoRoot, 'scripts', 'build-test-image.sh'), image], { stdio: 'inherit' });
  }
  return image;
}

/**
 * The Debian 12 cloud image (scripts/build-cloud-image.sh: debootstrap, ~4 min, root and the Debian archive),
 * built once and cached under .cache/
 */
export function ensureCloudImage(): string {
  const image = join(repoRoot, '.cache', 'images', 'debian-12-cloud.qcow2');
  if (!existsSync(image)) {
    execFileSync('bash', [join(repoRoot, 'scripts', 'build-cloud-image.sh'), image], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return image;
}

export interface DevnetJson {
  api: string;
  node_id: string;
  renter: { wallet: string; seed: string };
  image: string;
  /** image centres the client knows (the local rsync daemon first) */
  image_servers?: Array<{ id: string; host: string; port: number; module: string }>;
}

export interface Devnet extends DevnetJson {
  dataDir: string;
  proc: ChildProcess;
  /** SIGTERM and wait */
  stop(): Promise<void>;
  /** SIGKILL and wait (VMs keep running) */
  kill9(): Promise<void>;
  /** start the daemon again on the same data dir and port */
  restart(): Promise<void>;
  /** remove the data dir and any QEMU left behind */
  destroy(): Promise<void>;
  output(): string;
}

export interface DevnetOptions {
  dataDir?: string;
  /** the base image `dbc up --image` installs (default: the test image) */
  image?: string;
  shutdownTimeoutS?: number;
  sweepS?: number;
  deleteGraceS?: number;
  /** more `dbc up` flags, e.g. ['--image-server', 'ID_9,127.0.0.1,873,images'] */
  extraArgs?: string[];
  /** more environment for the daemon */
  env?: Record<string, string>;
  /** run the daemon inside this network namespace (`ip netns exec NS node ...`) */
  netns?: string;
}

/** wait until dbc up (re)writes devnet.json: its mtime differs from `before` (undefined: no file before) */
async function waitForFile(file: string, proc: ChildProcess, before: number | undefined, timeoutMs: number, log: () => string): Promise<DevnetJson> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (proc.exitCode !== null) throw new Error(`dbc up exited with ${proc.exitCode}:\n${log()}`);
    if (existsSync(file)) {
      try {
        const j = JSON.parse(readFileSync(file, 'utf8')) as DevnetJson;
        if (statSync(file).mtimeMs !== before) return j;
      } catch {
        // being written
      }
    }
    await sleep(100);
  }
  throw new Error(`dbc up not ready after ${timeoutMs} ms:\n${log()}`);
}

export async function startDevnet(o: DevnetOptions = {}): Promise<Devnet> {
  const image = o.image ?? ensureTestImage();
  const dataDir = o.dataDir ?? mkdtempSync(join(os.tmpdir(), 'dbc-e2e-'));
  let port = 0;
  let out = '';
  const launch = async () => {
    const devnetFile = join(dataDir, 'devnet.json');
    const before = existsSync(devnetFile) ? statSync(devnetFile).mtimeMs : undefined;
    const args = [
      cliPath,
      'up',
      '--data-dir',
      dataDir,
      '--http-port',
      String(port),
      '--image',
      image,
      '--shutdown-timeout',
      String(o.shutdownTimeoutS ?? 20),
      '--expiry-sweep',
      String(o.sweepS ?? 60),
      '--delete-grace',
      String(o.deleteGraceS ?? 3 * 24 * 3600),
      ...(o.extraArgs ?? []),
    ];
    const [bin, argv] = o.netns ? ['ip', ['netns', 'exec', o.netns, process.execPath, ...args]] : [process.execPath, args];
    const proc = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DBC_LOG_LEVEL: 'debug', ...o.env } });
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    const j = await waitForFile(devnetFile, proc, before, 60_000, () => out);
    port = Number(new URL(j.api).port);
    return { proc, j };
  };
  let { proc, j } = await launch();
  const exited = (p: ChildProcess) => (p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => p.once('exit', () => r())));
  const devnet: Devnet = {
    ...j,
    dataDir,
    proc,
    output: () => out,
    async stop() {
      devnet.proc.kill('SIGTERM');
      await exited(devnet.proc);
    },
    async kill9() {
      devnet.proc.kill('SIGKILL');
      await exited(devnet.proc);
    },
    async restart() {
      ({ proc, j } = await launch());
      devnet.proc = proc;
      Object.assign(devnet, j);
    },
    async destroy() {
      if (devnet.proc.exitCode === null && devnet.proc.signalCode === null) await devnet.stop();
      killQemuUnder(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return devnet;
}

/** kill QEMU processes whose command line mentions dir (cleanup after tests) */
export function killQemuUnder(dir: string): void {
  for (const pid of qemuPidsUnder(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

export function qemuPidsUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSafe('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (cmd.startsWith('qemu-system') && cmd.includes(dir) && !/\) Z /.test(stat)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, everyMs = 250): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export interface Reply {
  status: number;
  body: { errcode: number; message: any; operation_id?: string };
  text: string;
}

export async function post(api: string, path: string, body: unknown, raw = false): Promise<Reply> {
  const send = () =>
    fetch(`${api}/api/v1/${path}`, {
      method: 'POST',
      body: raw ? (body as string) : JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
  let res: Response;
  try {
    res = await send();
  } catch (err) {
    // a pooled keep-alive socket the server closed (its 5 s keep-alive) while this process was blocked in a
    // synchronous CLI call: the request never left, so one fresh attempt is safe
    const code = ((err as { cause?: { code?: string } }).cause ?? {}).code;
    if (code !== 'UND_ERR_SOCKET' && code !== 'ECONNRESET') throw err;
    res = await send();
  }
  const text = await res.text();
  let parsed: Reply['body'];
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`not JSON (${res.status}): ${text}`);
  }
  return { status: res.status, body: parsed, text };
}

/**
 * Announce a large body (Content-Length) and send only its first 64 KiB, then wait for the server's answer: an
 * oversize refusal comes before the body is read, and the connection is dropped without EPIPE noise.
 */
export function postLarge(api: string, path: string, bodyBytes: number): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${api}/api/v1/${path}`);
    const req = http.request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': bodyBytes },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error('no answer to an oversize body'));
    }, 15_000);
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), text });
      });
    });
    req.on('error', () => undefined); // the server may close the connection after answering
    req.write('{"peer_nodes_list":[],"additional":{"x":"' + 'y'.repeat(64 * 1024));
  });
}

/** a body signed by seed with a fresh nonce */
export function signedBody(nodeId: string, seed: string, additional: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const s = signNonce(seed);
  return { peer_nodes_list: [nodeId], additional, wallet: s.wallet, nonce: s.nonce, sign: s.sign, ...extra };
}

export function sessionBody(nodeId: string, sessionId: string, seed: string, additional: Record<string, unknown> = {}) {
  const s = signNonce(seed, sessionId);
  return { peer_nodes_list: [nodeId], additional, session_id: sessionId, session_id_sign: s.session_id_sign };
}

export async function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** run cmd over SSH with password auth; resolves with stdout */
export function sshExec(host: string, port: number, username: string, password: string, cmd: string, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = new Client();
    const timer = setTimeout(() => {
      conn.end();
      reject(new Error('ssh timeout'));
    }, timeoutMs);
    conn
      .on('ready', () => {
        conn.exec(cmd, (err, stream) => {
          if (err) {
            clearTimeout(timer);
            conn.end();
            return reject(err);
          }
          let out = '';
          stream.on('data', (d: Buffer) => (out += d.toString()));
          stream.stderr.on('data', (d: Buffer) => (out += d.toString()));
          stream.on('close', () => {
            clearTimeout(timer);
            conn.end();
            resolve(out);
          });
        });
      })
      .on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      })
      .connect({ host, port, username, password, readyTimeout: timeoutMs, hostVerifier: () => true });
  });
}

/** the first bytes a VNC server sends, and its security types after we answer the version */
export function vncHandshake(host: string, port: number): Promise<{ version: string; securityTypes: number[] }> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host, port });
    let buf = Buffer.alloc(0);
    let version = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('vnc timeout'));
    }, 10_000);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!version && buf.length >= 12) {
        version = buf.subarray(0, 12).toString('latin1').trim();
        buf = buf.subarray(12);
        sock.write('RFB 003.008\n');
      }
      if (version && buf.length >= 1) {
        const n = buf[0]!;
        if (buf.length >= 1 + n) {
          clearTimeout(timer);
          sock.destroy();
          resolve({ version, securityTypes: [...buf.subarray(1, 1 + n)] });
        }
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** kill rsync processes (daemons, transfers) whose command line mentions dir */
export function killRsyncUnder(dir: string): void {
  for (const pid of processesMentioning('rsync', dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
