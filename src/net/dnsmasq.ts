// One dnsmasq per bridge, DHCP only (no DNS), static leases only: the node picks each VM's address and writes
// `mac,ip` lines to <dir>/hosts, which dnsmasq re-reads on SIGHUP. dnsmasq daemonizes itself (so it outlives a
// kill -9 of the node daemon) and writes <dir>/dnsmasq.pid; the next start() adopts a running instance whose
// command line is exactly ours instead of starting a second one.
//
// dnsmasq drops root after start-up (Debian: to "nobody") and re-reads the hosts file as that user, so the state
// dir and all its parents must be searchable by others: start() chmods `dir` to 0755, and when a parent is not
// searchable (a 0700 data dir, e.g. mkdtemp) it runs dnsmasq with `--user=root` instead of losing SIGHUP reloads.
// A daemonized dnsmasq is re-parented to PID 1, which may be slow to reap it: a zombie (state Z) counts as gone.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseCidr, parseIp, formatIp, netmask, contains, broadcast } from './ipv4.js';
import { validLinkName } from './links.js';
import { processGone } from '../util/proc.js';

export interface DhcpHost {
  mac: string;
  ip: string;
}

export interface DnsmasqConfig {
  iface: string;
  /** state dir (created): hosts, leases, dnsmasq.pid, dnsmasq.log */
  dir: string;
  /** CIDR of the served network, host bits zero: "10.200.0.0/24" */
  network: string;
  /** dnsmasq lease time: '12h', '3600', '45m', 'infinite'; default '12h' */
  leaseTime?: string;
  /** DHCP option 3; null sends an explicitly empty router option (no default route) */
  router: string | null;
  /** DHCP option 6 */
  dns?: string[];
  /** DHCP option 26 (interface MTU), e.g. 1450 on a VXLAN-backed LAN */
  mtu?: number;
  hosts: DhcpHost[];
  /** dnsmasq binary; default 'dnsmasq' from PATH */
  bin?: string;
  /**
   * `--user=` for dnsmasq's privilege drop; default: dnsmasq's compiled-in user (nobody), or 'root' when the state
   * dir's parents are not searchable by that user
   */
  user?: string;
}

export interface DhcpLease {
  expires: number;
  mac: string;
  ip: string;
  hostname: string;
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;
// eslint-disable-next-line no-control-regex -- refuses commas and control characters in a path handed to dnsmasq
const BAD_PATH_CHARS = /[,\x00-\x1f\x7f]/;

function checkPath(p: unknown, what: string): string {
  if (typeof p !== 'string' || !path.isAbsolute(p) || BAD_PATH_CHARS.test(p) || p.length > 1024 || p.split('/').includes('..')) {
    throw new Error(`invalid dnsmasq ${what}: ${JSON.stringify(p)}`);
  }
  return p;
}

function checkIp(ip: unknown, what: string): string {
  const n = parseIp(ip);
  if (n === null) throw new Error(`invalid dnsmasq ${what}: ${JSON.stringify(ip)}`);
  return formatIp(n);
}

/** Validates and normalizes a host list (lowercase MACs; unique MACs and IPs; each a usable address of the network). */
export function normalizeHosts(hosts: unknown, network: string): DhcpHost[] {
  const net = parseCidr(network, { strict: true });
  if (!net) throw new Error(`invalid dnsmasq network: ${JSON.stringify(network)}`);
  if (!Array.isArray(hosts)) throw new Error('invalid dnsmasq hosts: not an array');
  const macs = new Set<string>();
  const ips = new Set<string>();
  return hosts.map((h: unknown) => {
    const { mac, ip } = (h ?? {}) as { mac?: unknown; ip?: unknown };
    if (typeof mac !== 'string' || !MAC.test(mac)) throw new Error(`invalid dnsmasq host mac: ${JSON.stringify(mac)}`);
    const n = parseIp(ip);
    if (n === null || !contains(net, n) || (net.prefix < 31 && (n === net.network || n === broadcast(net)))) {
      throw new Error(`invalid dnsmasq host ip for ${network}: ${JSON.stringify(ip)}`);
    }
    const m = mac.toLowerCase();
    const a = formatIp(n);
    if (macs.has(m)) throw new Error(`duplicate dnsmasq host mac: ${m}`);
    if (ips.has(a)) throw new Error(`duplicate dnsmasq host ip: ${a}`);
    macs.add(m);
    ips.add(a);
    return { mac: m, ip: a };
  });
}

/** Alive = exists and is not a zombie (a daemonized dnsmasq is reaped by PID 1, maybe late). */
function alive(pid: number): boolean {
  return !processGone(pid);
}

function cmdline(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (raw === '') return null;
    return raw.replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

/** Whether `dir` and every ancestor has the search bit for others (a missing dir counts as searchable: mkdir 0755). */
function searchableByOthers(dir: string): boolean {
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      if ((statSync(d).mode & 0o001) === 0) return false;
    } catch {
      /* created later with mode 0755 */
    }
    if (d === '/' || path.dirname(d) === d) return true;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Dnsmasq {
  private readonly cfg: Required<Omit<DnsmasqConfig, 'user' | 'mtu'>> & { user?: string; mtu?: number };
  private hosts: DhcpHost[];
  private pidValue: number | null = null;
  /** the `--user=` actually used: cfg.user, or 'root' when the state dir is not reachable for an unprivileged user */
  private runUser: string | undefined;
  readonly hostsFile: string;
  readonly leaseFile: string;
  readonly pidFile: string;
  readonly logFile: string;

  constructor(cfg: DnsmasqConfig) {
    if (!validLinkName(cfg.iface)) throw new Error(`invalid dnsmasq interface: ${JSON.stringify(cfg.iface)}`);
    const dir = checkPath(cfg.dir, 'state dir').replace(/\/+$/, '') || '/';
    if (dir === '/') throw new Error('invalid dnsmasq state dir: /');
    const net = parseCidr(cfg.network, { strict: true });
    if (!net || net.prefix > 30) throw new Error(`invalid dnsmasq network: ${JSON.stringify(cfg.network)}`);
    const leaseTime = cfg.leaseTime ?? '12h';
    if (!/^([1-9][0-9]{0,8}[smhdw]?|infinite)$/.test(leaseTime)) throw new Error(`invalid dnsmasq lease time: ${JSON.stringify(leaseTime)}`);
    const router = cfg.router === null ? null : checkIp(cfg.router, 'router');
    const dns = (cfg.dns ?? []).map((d) => checkIp(d, 'dns server'));
    if (cfg.mtu !== undefined && (!Number.isInteger(cfg.mtu) || cfg.mtu < 576 || cfg.mtu > 65535)) {
      throw new Error(`invalid dnsmasq mtu: ${String(cfg.mtu)}`);
    }
    const bin = cfg.bin ?? 'dnsmasq';
    if (bin !== 'dnsmasq') checkPath(bin, 'binary');
    if (cfg.user !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(cfg.user)) throw new Error(`invalid dnsmasq user: ${JSON.stringify(cfg.user)}`);
    this.cfg = {
      iface: cfg.iface,
      dir,
      network: `${formatIp(net.network)}/${net.prefix}`,
      leaseTime,
      router,
      dns,
      hosts: [],
      bin,
      user: cfg.user,
      mtu: cfg.mtu,
    };
    this.hosts = normalizeHosts(cfg.hosts, this.cfg.network);
    this.runUser = cfg.user ?? (searchableByOthers(path.dirname(dir)) ? undefined : 'root');
    this.hostsFile = path.join(dir, 'hosts');
    this.leaseFile = path.join(dir, 'leases');
    this.pidFile = path.join(dir, 'dnsmasq.pid');
    this.logFile = path.join(dir, 'dnsmasq.log');
  }

  /** The exact argv (without the binary) this config runs dnsmasq with; an adopted instance must match it. */
  args(): string[] {
    const c = this.cfg;
    const net = parseCidr(c.network, { strict: true })!;
    const a = [
      '--conf-file=/dev/null',
      '--port=0',
      `--interface=${c.iface}`,
      '--bind-interfaces',
      '--except-interface=lo',
      `--pid-file=${this.pidFile}`,
      `--dhcp-range=${formatIp(net.network)},static,${netmask(net.prefix)},${c.leaseTime}`,
      `--dhcp-hostsfile=${this.hostsFile}`,
      `--dhcp-leasefile=${this.leaseFile}`,
      '--dhcp-authoritative',
      `--log-facility=${this.logFile}`,
      '--log-dhcp',
      c.router === null ? '--dhcp-option=3' : `--dhcp-option=option:router,${c.router}`,
    ];
    if (c.dns.length > 0) a.push(`--dhcp-option=option:dns-server,${c.dns.join(',')}`);
    if (c.mtu !== undefined) a.push(`--dhcp-option=option:mtu,${c.mtu}`);
    if (this.runUser !== undefined) a.push(`--user=${this.runUser}`);
    return a;
  }

  /** A running dnsmasq started by an earlier Dnsmasq on the same interface and state dir, or null. */
  private ownedPid(): { pid: number; sameArgs: boolean } | null {
    let text: string;
    try {
      text = readFileSync(this.pidFile, 'utf8').trim();
    } catch {
      return null;
    }
    if (!/^[1-9][0-9]{0,9}$/.test(text)) return null;
    const pid = Number(text);
    if (!alive(pid)) return null;
    const argv = cmdline(pid);
    if (!argv || path.basename(argv[0] ?? '') !== path.basename(this.cfg.bin)) return null;
    const rest = argv.slice(1);
    if (!rest.includes(`--interface=${this.cfg.iface}`) || !rest.includes(`--pid-file=${this.pidFile}`)) return null;
    const want = this.args();
    const sameArgs = rest.length === want.length && rest.every((x, i) => x === want[i]);
    return { pid, sameArgs };
  }

  private async prepareDir(): Promise<void> {
    await fs.mkdir(this.cfg.dir, { recursive: true, mode: 0o755 });
    await fs.chmod(this.cfg.dir, 0o755);
    // parents just created are subject to the umask: decide on the privilege drop with the final modes
    this.runUser = this.cfg.user ?? (searchableByOthers(path.dirname(this.cfg.dir)) ? undefined : 'root');
  }

  /**
   * Synchronous on purpose: a few hundred bytes, and no await between the caller computing the list and the file
   * holding it, so concurrent setHosts calls (VMs starting together) can neither interleave nor land out of order.
   */
  private writeHosts(): void {
    const tmp = `${this.hostsFile}.tmp-${process.pid}`;
    const body = this.hosts.map((h) => `${h.mac},${h.ip}\n`).join('');
    writeFileSync(tmp, body, { mode: 0o644 });
    chmodSync(tmp, 0o644);
    renameSync(tmp, this.hostsFile);
  }

  /**
   * Writes the hosts file, then adopts a running instance with the same command line (SIGHUP so it reads the
   * hosts just written) or starts a new one. An owned instance with another command line (changed router/MTU/...)
   * is stopped and replaced. Resolves once the pid file names a live process.
   */
  async start(): Promise<{ pid: number; adopted: boolean }> {
    await this.prepareDir();
    this.writeHosts();
    const owned = this.ownedPid();
    if (owned?.sameArgs) {
      this.pidValue = owned.pid;
      signal(owned.pid, 'SIGHUP');
      return { pid: owned.pid, adopted: true };
    }
    if (owned) {
      this.pidValue = owned.pid;
      await this.stop();
    }
    await fs.rm(this.pidFile, { force: true });
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      // the foreground dnsmasq exits once the daemon has bound its sockets (or reports the start-up error)
      const child = spawn(this.cfg.bin, this.args(), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        if (err.length < 16_384) err += d.toString();
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error('dnsmasq did not daemonize within 10 s'));
      }, 10_000);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`dnsmasq: ${e.message}`));
      });
      child.once('exit', (c) => {
        clearTimeout(timer);
        // give a still-open stderr pipe a moment to drain
        setTimeout(() => resolve({ code: c, stderr: err }), 20);
      });
    });
    if (code !== 0) throw new Error(`dnsmasq on ${this.cfg.iface} failed (exit ${String(code)}): ${stderr.trim()}`);
    const deadline = Date.now() + 5_000;
    for (;;) {
      const o = this.ownedPid();
      if (o) {
        this.pidValue = o.pid;
        return { pid: o.pid, adopted: false };
      }
      if (Date.now() > deadline) throw new Error(`dnsmasq on ${this.cfg.iface} started but ${this.pidFile} names no live dnsmasq`);
      await sleep(20);
    }
  }

  /** Replaces the static leases: atomic rewrite of the hosts file, then SIGHUP (when running). */
  async setHosts(hosts: DhcpHost[]): Promise<void> {
    this.hosts = normalizeHosts(hosts, this.cfg.network);
    mkdirSync(this.cfg.dir, { recursive: true, mode: 0o755 });
    this.writeHosts();
    const pid = this.pid();
    if (pid !== null) signal(pid, 'SIGHUP');
  }

  /** Current leases from the lease file (`expires mac ip hostname clientid` lines; hostname '*' → ''). */
  leases(): DhcpLease[] {
    if (!existsSync(this.leaseFile)) return [];
    const out: DhcpLease[] = [];
    for (const line of readFileSync(this.leaseFile, 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || !/^[0-9]+$/.test(f[0]!) || !MAC.test(f[1]!) || parseIp(f[2]) === null) continue;
      out.push({ expires: Number(f[0]), mac: f[1]!.toLowerCase(), ip: f[2]!, hostname: f[3] === '*' ? '' : f[3]! });
    }
    return out;
  }

  /** The running instance's pid (ours or adoptable from the pid file), or null. */
  pid(): number | null {
    if (this.pidValue !== null && alive(this.pidValue)) {
      const argv = cmdline(this.pidValue);
      if (argv && argv.includes(`--pid-file=${this.pidFile}`)) return this.pidValue;
    }
    const o = this.ownedPid();
    this.pidValue = o?.pid ?? null;
    return this.pidValue;
  }

  /** SIGTERM (SIGKILL after 5 s), wait until gone or a zombie, remove the pid file. Not running is fine. */
  async stop(): Promise<void> {
    const pid = this.pid();
    if (pid !== null) {
      signal(pid, 'SIGTERM');
      let deadline = Date.now() + 5_000;
      while (alive(pid) && Date.now() < deadline) await sleep(20);
      if (alive(pid)) {
        signal(pid, 'SIGKILL');
        deadline = Date.now() + 2_000;
        while (alive(pid) && Date.now() < deadline) await sleep(20);
        if (alive(pid)) throw new Error(`dnsmasq ${pid} on ${this.cfg.iface} did not exit`);
      }
    }
    this.pidValue = null;
    await fs.rm(this.pidFile, { force: true });
  }
}
