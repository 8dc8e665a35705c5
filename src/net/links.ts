// Idempotent host link management for the GPU node's networks: the node bridge with one tap per VM, per-LAN
// VXLAN devices (unicast, static all-zeros FDB entries towards the peer hosts), sysctls and the underlay address.
// Every "ensure" call compares the kernel's state (`ip -j -d link show`) with the wanted one and changes only what
// differs, so calling it twice is harmless. Names and addresses are validated before they reach any argv.
import fs from 'node:fs/promises';
import path from 'node:path';
import { run, CommandError } from './exec.js';
import { parseCidr, parseIp, formatIp } from './ipv4.js';

const NAME = /^[A-Za-z0-9_.-]{1,15}$/;
const ZERO_MAC = '00:00:00:00:00:00';

export function validLinkName(name: unknown): name is string {
  return typeof name === 'string' && NAME.test(name) && name !== '.' && name !== '..';
}

function checkName(name: unknown, what = 'link name'): string {
  if (!validLinkName(name)) throw new Error(`invalid ${what}: ${JSON.stringify(name)}`);
  return name;
}

function checkMtu(mtu: unknown): number | undefined {
  if (mtu === undefined) return undefined;
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- names whatever value the caller passed, as String() writes it
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new Error(`invalid mtu: ${String(mtu)}`);
  return mtu;
}

/** Runs a tool; the error carries the command's stderr (CommandError's message already does). */
async function ip(args: string[]): Promise<string> {
  return run('ip', args);
}

async function bridgeCmd(args: string[]): Promise<string> {
  return run('bridge', args);
}

function isMissing(err: unknown): boolean {
  return err instanceof CommandError && /does not exist|Cannot find device/i.test(err.stderr);
}

interface LinkInfo {
  ifname: string;
  flags?: string[];
  mtu?: number;
  master?: string;
  addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }>;
  linkinfo?: {
    info_kind?: string;
    info_data?: Record<string, unknown>;
    info_slave_kind?: string;
    info_slave_data?: Record<string, unknown>;
  };
}

function parseJsonArray<T>(text: string, what: string): T[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const parsed: unknown = JSON.parse(trimmed);
  if (!Array.isArray(parsed)) throw new Error(`${what}: unexpected output`);
  return parsed as T[];
}

async function linkInfo(name: string): Promise<LinkInfo | null> {
  try {
    const out = await ip(['-j', '-d', 'link', 'show', 'dev', name]);
    return parseJsonArray<LinkInfo>(out, 'ip link show')[0] ?? null;
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
}

async function addrInfo(name: string): Promise<Array<{ family?: string; local?: string; prefixlen?: number }>> {
  const out = await ip(['-j', 'addr', 'show', 'dev', name]);
  return parseJsonArray<LinkInfo>(out, 'ip addr show')[0]?.addr_info ?? [];
}

function kindOf(info: LinkInfo): string | undefined {
  return info.linkinfo?.info_kind;
}

async function ensureUpMtuMaster(name: string, info: LinkInfo, opts: { mtu?: number; master?: string }): Promise<void> {
  if (opts.master !== undefined && info.master !== opts.master) await ip(['link', 'set', 'dev', name, 'master', opts.master]);
  if (opts.mtu !== undefined && info.mtu !== opts.mtu) await ip(['link', 'set', 'dev', name, 'mtu', String(opts.mtu)]);
  if (!(info.flags ?? []).includes('UP')) await ip(['link', 'set', 'dev', name, 'up']);
}

/** Creates a link unless it exists; a concurrent creator ("File exists") is not an error. Returns the fresh state. */
async function createIfAbsent(name: string, create: string[]): Promise<LinkInfo> {
  let info = await linkInfo(name);
  if (!info) {
    try {
      await run(create[0]!, create.slice(1));
    } catch (err) {
      if (!(err instanceof CommandError && /File exists|Device or resource busy/i.test(err.stderr))) throw err;
    }
    info = await linkInfo(name);
    if (!info) throw new Error(`${name} was not created`);
  }
  return info;
}

export async function linkExists(name: string): Promise<boolean> {
  return (await linkInfo(checkName(name))) !== null;
}

/**
 * A Linux bridge without STP and with forward delay 0 (ports forward at once), the given address (added when
 * missing; the same address with another prefix is replaced), the given MTU, up.
 */
export async function ensureBridge(name: string, opts: { address?: string; mtu?: number } = {}): Promise<void> {
  checkName(name);
  const mtu = checkMtu(opts.mtu);
  let addr: { ip: string; prefix: number } | undefined;
  if (opts.address !== undefined) {
    const c = parseCidr(opts.address);
    const ipNum = parseIp(opts.address.split('/')[0]);
    if (!c || ipNum === null || c.prefix > 30) throw new Error(`invalid bridge address: ${JSON.stringify(opts.address)}`);
    addr = { ip: formatIp(ipNum), prefix: c.prefix };
  }
  const info = await createIfAbsent(name, ['ip', 'link', 'add', 'name', name, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  if (kindOf(info) !== 'bridge') throw new Error(`${name} exists but is not a bridge (${kindOf(info) ?? 'unknown kind'})`);
  const data = info.linkinfo?.info_data ?? {};
  if (data['stp_state'] !== 0 || data['forward_delay'] !== 0) {
    await ip(['link', 'set', 'dev', name, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  }
  if (addr) {
    const v4 = (await addrInfo(name)).filter((a) => a.family === 'inet');
    if (!v4.some((a) => a.local === addr.ip && a.prefixlen === addr.prefix)) {
      for (const a of v4.filter((x) => x.local === addr.ip)) {
        await ip(['addr', 'del', `${addr.ip}/${String(a.prefixlen)}`, 'dev', name]);
      }
      await ip(['addr', 'add', `${addr.ip}/${addr.prefix}`, 'dev', name]);
    }
  }
  await ensureUpMtuMaster(name, info, { mtu });
}

/**
 * A persistent tap (`ip tuntap add dev NAME mode tap`, single queue) that QEMU opens by `ifname=`, enslaved to the
 * bridge, up. `isolated` (default false) is applied every call: isolated ports cannot talk to each other, only to
 * non-isolated ports (the bridge itself, the uplink).
 */
export async function ensureTap(name: string, bridge: string, opts: { mtu?: number; isolated?: boolean } = {}): Promise<void> {
  checkName(name);
  checkName(bridge, 'bridge name');
  const mtu = checkMtu(opts.mtu);
  let info = await createIfAbsent(name, ['ip', 'tuntap', 'add', 'dev', name, 'mode', 'tap']);
  if (kindOf(info) !== 'tun' || info.linkinfo?.info_data?.['type'] !== 'tap') {
    throw new Error(`${name} exists but is not a tap (${kindOf(info) ?? 'unknown kind'})`);
  }
  await ensureUpMtuMaster(name, info, { mtu, master: bridge });
  const wantIsolated = opts.isolated === true;
  info = (await linkInfo(name)) ?? info;
  if (info.linkinfo?.info_slave_data?.['isolated'] !== wantIsolated) {
    await bridgeCmd(['link', 'set', 'dev', name, 'isolated', wantIsolated ? 'on' : 'off']);
  }
}

interface FdbEntry {
  mac?: string;
  dst?: string;
}

async function vxlanPeers(name: string): Promise<string[]> {
  const out = await bridgeCmd(['-j', 'fdb', 'show', 'dev', name]);
  return parseJsonArray<FdbEntry>(out, 'bridge fdb show')
    .filter((e) => e.mac === ZERO_MAC && typeof e.dst === 'string')
    .map((e) => e.dst as string);
}

/**
 * A unicast VXLAN device (no multicast group, no learning) enslaved to `bridge`, with exactly one all-zeros FDB
 * entry per peer (BUM traffic is head-end replicated to every peer). A device whose VNI, local address or port
 * differ is recreated; the peer list is re-synced (stale peers removed) on every call.
 */
export async function ensureVxlan(
  name: string,
  opts: { vni: number; local: string; port?: number; bridge: string; peers: string[]; mtu?: number },
): Promise<void> {
  checkName(name);
  checkName(opts.bridge, 'bridge name');
  const mtu = checkMtu(opts.mtu);
  const { vni } = opts;
  if (!Number.isInteger(vni) || vni < 1 || vni > 0xffffff) throw new Error(`invalid vni: ${String(vni)}`);
  const port = opts.port ?? 4789;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid vxlan port: ${String(port)}`);
  const localNum = parseIp(opts.local);
  if (localNum === null) throw new Error(`invalid vxlan local address: ${JSON.stringify(opts.local)}`);
  const local = formatIp(localNum);
  if (!Array.isArray(opts.peers)) throw new Error('invalid vxlan peers');
  const peers = [
    ...new Set(
      opts.peers.map((p) => {
        const n = parseIp(p);
        if (n === null) throw new Error(`invalid vxlan peer: ${JSON.stringify(p)}`);
        return formatIp(n);
      }),
    ),
  ].filter((p) => p !== local);

  const create = ['ip', 'link', 'add', name, 'type', 'vxlan', 'id', String(vni), 'local', local, 'dstport', String(port), 'nolearning'];
  let info = await linkInfo(name);
  if (info) {
    if (kindOf(info) !== 'vxlan') throw new Error(`${name} exists but is not a vxlan device (${kindOf(info) ?? 'unknown kind'})`);
    const d = info.linkinfo?.info_data ?? {};
    if (d['id'] !== vni || d['local'] !== local || d['port'] !== port || d['learning'] !== false || d['group'] !== undefined) {
      await deleteLink(name);
      info = null;
    }
  }
  if (!info) info = await createIfAbsent(name, create);

  const have = await vxlanPeers(name);
  for (const p of peers) {
    if (!have.includes(p)) await bridgeCmd(['fdb', 'append', ZERO_MAC, 'dev', name, 'dst', p]);
  }
  for (const p of have) {
    if (!peers.includes(p)) await bridgeCmd(['fdb', 'del', ZERO_MAC, 'dev', name, 'dst', p]);
  }
  await ensureUpMtuMaster(name, info, { mtu, master: opts.bridge });
}

/** Deletes a link; absent is fine. */
export async function deleteLink(name: string): Promise<void> {
  checkName(name);
  try {
    await ip(['link', 'del', 'dev', name]);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}

/** Names of the links (in this network namespace) starting with `prefix`, sorted. */
export async function listLinks(prefix: string): Promise<string[]> {
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9_.-]{0,15}$/.test(prefix)) throw new Error(`invalid link prefix: ${JSON.stringify(prefix)}`);
  const out = await ip(['-j', 'link', 'show']);
  return parseJsonArray<LinkInfo>(out, 'ip link show')
    .map((l) => l.ifname)
    .filter((n) => typeof n === 'string' && n.startsWith(prefix))
    .sort();
}

/**
 * Writes /proc/sys/<key>. Keys in dotted form (net.ipv4.ip_forward) or slash form (net/ipv4/conf/br.0/forwarding,
 * needed when a component such as an interface name contains a dot).
 */
export async function setSysctl(key: string, value: string): Promise<void> {
  if (typeof key !== 'string' || key.length > 200) throw new Error(`invalid sysctl key: ${JSON.stringify(key)}`);
  const parts = key.includes('/') ? key.split('/') : key.split('.');
  if (parts.length < 2 || !parts.every((p) => /^[A-Za-z0-9_.:-]+$/.test(p) && p !== '.' && p !== '..')) {
    throw new Error(`invalid sysctl key: ${JSON.stringify(key)}`);
  }
  if (typeof value !== 'string' || !/^[\x20-\x7e]{1,200}$/.test(value)) throw new Error(`invalid sysctl value: ${JSON.stringify(value)}`);
  const file = path.join('/proc/sys', ...parts);
  try {
    await fs.writeFile(file, value);
  } catch (err) {
    throw new Error(`sysctl ${key}=${value} failed: ${(err as Error).message}`);
  }
}

/** The default-route interface and its source address (the VXLAN underlay address); null without a default route. */
export async function defaultRouteSource(): Promise<{ dev: string; src: string } | null> {
  let dev: string | undefined;
  let src: string | undefined;
  try {
    const r = parseJsonArray<{ dev?: string; prefsrc?: string }>(await ip(['-j', '-4', 'route', 'get', '1.1.1.1']), 'ip route get')[0];
    dev = r?.dev;
    src = r?.prefsrc;
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
  }
  if (!dev) {
    const d = parseJsonArray<{ dev?: string }>(await ip(['-j', '-4', 'route', 'show', 'default']), 'ip route show')[0];
    dev = d?.dev;
  }
  if (!dev || !validLinkName(dev)) return null;
  if (!src || parseIp(src) === null) {
    src = (await addrInfo(dev)).find((a) => a.family === 'inet' && typeof a.local === 'string')?.local;
  }
  if (!src || parseIp(src) === null) return null;
  return { dev, src };
}
