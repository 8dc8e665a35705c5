// Test helpers for the P2P network: run `dbc seed`, `dbc node` and `dbc client` as child processes on temporary
// data dirs (loopback only), wait for their DIR/<role>.json, stop, kill, restart them, clean up QEMUs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { cliPath, killQemuUnder, sleep } from './devnet.js';

export type RoleName = 'seed' | 'node' | 'client';

export interface RoleInfo {
  peer_id: string;
  multiaddrs: string[];
  node_id?: string;
  api?: string;
}

export interface RoleProc {
  role: RoleName;
  dataDir: string;
  proc: ChildProcess;
  info: RoleInfo;
  /** stdout + stderr of every run so far */
  output(): string;
  running(): boolean;
  /** SIGTERM and wait */
  stop(): Promise<void>;
  /** SIGKILL and wait */
  kill9(): Promise<void>;
  /** start again on the same data dir (optionally other arguments) and wait until ready */
  restart(args?: string[]): Promise<void>;
  /** stop if running, kill QEMUs under the data dir, remove it */
  destroy(): Promise<void>;
}

export const LOOPBACK_LISTEN = '/ip4/127.0.0.1/tcp/0';

function exited(p: ChildProcess): Promise<void> {
  return p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => p.once('exit', () => r()));
}

async function waitRoleFile(file: string, proc: ChildProcess, before: number | undefined, timeoutMs: number, log: () => string): Promise<RoleInfo> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${file}: process exited (${proc.exitCode ?? proc.signalCode}):\n${log()}`);
    if (existsSync(file)) {
      try {
        const mtime = statSync(file).mtimeMs;
        const j = JSON.parse(readFileSync(file, 'utf8')) as RoleInfo;
        if (mtime !== before) return j;
      } catch {
        // being written
      }
    }
    await sleep(50);
  }
  throw new Error(`${file} not written after ${timeoutMs} ms:\n${log()}`);
}

export interface StartRoleOptions {
  dataDir?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** options for node itself, before the script (e.g. --cpu-prof) */
  execArgv?: string[];
  /** run the role inside this network namespace (`ip netns exec NS node ...`) */
  netns?: string;
}

/** start `dbc <role> --data-dir DIR ...args` and wait for DIR/<role>.json */
export async function startRole(role: RoleName, args: string[], o: StartRoleOptions = {}): Promise<RoleProc> {
  const dataDir = o.dataDir ?? mkdtempSync(join(os.tmpdir(), `dbc-p2p-${role}-`));
  let out = '';
  let currentArgs = args;
  const launch = async () => {
    const file = join(dataDir, `${role}.json`);
    const before = existsSync(file) ? statSync(file).mtimeMs : undefined;
    const argv = [...(o.execArgv ?? []), cliPath, role, '--data-dir', dataDir, ...currentArgs];
    const [bin, args] = o.netns ? ['ip', ['netns', 'exec', o.netns, process.execPath, ...argv]] : [process.execPath, argv];
    const proc = spawn(bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DBC_LOG_LEVEL: process.env.DBC_LOG_LEVEL ?? 'debug', ...o.env },
    });
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    const info = await waitRoleFile(file, proc, before, o.timeoutMs ?? 60_000, () => out);
    return { proc, info };
  };
  const first = await launch();
  const r: RoleProc = {
    role,
    dataDir,
    proc: first.proc,
    info: first.info,
    output: () => out,
    running: () => r.proc.exitCode === null && r.proc.signalCode === null,
    async stop() {
      if (!r.running()) return;
      r.proc.kill('SIGTERM');
      await exited(r.proc);
    },
    async kill9() {
      if (!r.running()) return;
      r.proc.kill('SIGKILL');
      await exited(r.proc);
    },
    async restart(newArgs?: string[]) {
      if (r.running()) await r.stop();
      if (newArgs) currentArgs = newArgs;
      const again = await launch();
      r.proc = again.proc;
      r.info = again.info;
    },
    async destroy() {
      await r.stop().catch(() => undefined);
      killQemuUnder(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return r;
}

/** the first multiaddr of a role (loopback when it listens on 127.0.0.1), with /p2p/<peer id> */
export function dialAddr(r: RoleProc | RoleInfo): string {
  const info = 'info' in r ? r.info : r;
  const addr = info.multiaddrs.find((a) => a.includes('/127.0.0.1/')) ?? info.multiaddrs[0];
  if (!addr) throw new Error('role has no multiaddr');
  return addr;
}

export const seedArgs = (seeds: Array<RoleProc | string>): string[] => seeds.flatMap((s) => ['--seed', typeof s === 'string' ? s : dialAddr(s)]);
