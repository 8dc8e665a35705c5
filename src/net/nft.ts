// The bridge network mode's kernel side: one nftables table (family ip) generated from desired state and replaced in
// one atomic `nft -f -` transaction, so after a daemon restart the ruleset is exactly the expected one (no duplicates,
// no stale rules). It forwards the VMs' ports (DNAT), masquerades their outbound traffic, enforces each VM's
// network_filters on new connections, keeps VMs off the host's own services, and never routes the isolated (LAN)
// interfaces.
//
// The rendered text is formatted as `nft list table ip <t>` prints it (tabs, a blank line between chains, /32 as a bare
// address, set elements sorted), so a listing compares equal to renderRuleset() of the same state.
//
// Every value that reaches the text is validated here; task ids, interface names and the table name are whitelisted,
// addresses and ports are re-formatted from numbers, so nothing a renter sends can add syntax.
import { run, CommandError } from './exec.js';
import type { FilterRule } from './filters.js';
import { contains, formatCidr, formatIp, parseCidr, parseIp, broadcast, type Cidr } from './ipv4.js';

export interface NftForward {
  proto: 'tcp' | 'udp';
  hostFrom: number;
  hostTo: number;
  guestFrom: number;
  guestTo: number;
}

export interface NftTask {
  /** /^[A-Za-z0-9_]{1,64}$/ */
  taskId: string;
  vmIp: string;
  forwards: NftForward[];
  filters: FilterRule[];
}

export interface NftState {
  /** /^[a-z][a-z0-9_]{0,31}$/, production 'dbc' */
  table: string;
  /** DNAT applies to these destination addresses; [] = any local address (fib daddr type local, loopback excluded) */
  hostIps: string[];
  /** the node bridge, e.g. dbcbr0 10.200.0.0/24 10.200.0.1 */
  bridge: { name: string; cidr: string; gatewayIp: string };
  /** interfaces whose name starts with this (LAN bridges, e.g. 'dlb') may only send DHCP to the host, never routed */
  isolatedPrefix: string;
  tasks: NftTask[];
}

const TABLE_RE = /^[a-z][a-z0-9_]{0,31}$/;
const TASK_ID_RE = /^[A-Za-z0-9_]{1,64}$/;
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const PREFIX_RE = /^[A-Za-z0-9_.-]{1,14}$/;
/** a port-shifting range forward is rendered as a map with one element per port */
const MAX_FORWARD_PORTS = 65535;

function checkTable(table: unknown): string {
  if (typeof table !== 'string' || !TABLE_RE.test(table)) throw new Error(`nft: invalid table name ${JSON.stringify(table)}`);
  return table;
}

function checkIp(ip: unknown, what: string): number {
  const n = parseIp(ip);
  if (n === null) throw new Error(`nft: invalid ${what} ${JSON.stringify(ip)}`);
  return n;
}

function checkPort(p: unknown, what: string): number {
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) {
    throw new Error(`nft: invalid ${what} ${JSON.stringify(p)}`);
  }
  return p;
}

function checkIfname(name: unknown, what: string): string {
  if (typeof name !== 'string' || !IFNAME_RE.test(name)) throw new Error(`nft: invalid ${what} ${JSON.stringify(name)}`);
  return name;
}

function range(from: number, to: number): string {
  return from === to ? String(from) : `${from}-${to}`;
}

/** an address or an anonymous set as nft lists it (a single element prints bare; elements sorted) */
function ipSet(ips: readonly number[]): string {
  const sorted = [...new Set(ips)].sort((a, b) => a - b).map(formatIp);
  return sorted.length === 1 ? sorted[0]! : `{ ${sorted.join(', ')} }`;
}

/** "a.b.c.d/n" as nft lists it: /32 prints as the bare address */
function cidrText(c: Cidr): string {
  return c.prefix === 32 ? formatIp(c.network) : formatCidr(c);
}

type CheckedForward = NftForward;

function checkForward(f: unknown, taskId: string): CheckedForward {
  if (typeof f !== 'object' || f === null) throw new Error(`nft: task ${taskId}: forward must be an object`);
  const o = f as Record<string, unknown>;
  if (o.proto !== 'tcp' && o.proto !== 'udp') throw new Error(`nft: task ${taskId}: invalid forward proto ${JSON.stringify(o.proto)}`);
  const hostFrom = checkPort(o.hostFrom, `task ${taskId} forward hostFrom`);
  const hostTo = checkPort(o.hostTo, `task ${taskId} forward hostTo`);
  const guestFrom = checkPort(o.guestFrom, `task ${taskId} forward guestFrom`);
  const guestTo = checkPort(o.guestTo, `task ${taskId} forward guestTo`);
  if (hostFrom > hostTo || guestFrom > guestTo || hostTo - hostFrom !== guestTo - guestFrom) {
    throw new Error(`nft: task ${taskId}: forward ${o.proto} ${hostFrom}-${hostTo} -> ${guestFrom}-${guestTo} has mismatched ranges`);
  }
  if (hostTo - hostFrom + 1 > MAX_FORWARD_PORTS) throw new Error(`nft: task ${taskId}: forward range too wide`);
  return { proto: o.proto, hostFrom, hostTo, guestFrom, guestTo };
}

interface CheckedFilter {
  dir: 'in' | 'out' | 'inout';
  protos: Array<'all' | 'tcp' | 'udp' | 'icmp'>;
  portFrom: number | null;
  portTo: number | null;
  cidr: Cidr | null;
  action: 'accept' | 'drop';
}

function checkFilter(r: unknown, taskId: string): CheckedFilter {
  const fail = (why: string): Error => new Error(`nft: task ${taskId}: invalid filter rule (${why})`);
  if (typeof r !== 'object' || r === null) throw fail('not an object');
  const o = r as Record<string, unknown>;
  if (o.dir !== 'in' && o.dir !== 'out' && o.dir !== 'inout') throw fail('dir');
  if (o.action !== 'accept' && o.action !== 'drop') throw fail('action');
  if (!Array.isArray(o.protos) || o.protos.length === 0) throw fail('protos');
  const protos = [...new Set(o.protos as unknown[])];
  const l4 = protos.every((p) => p === 'tcp' || p === 'udp');
  if (!l4 && !(protos.length === 1 && (protos[0] === 'all' || protos[0] === 'icmp'))) throw fail('protos');
  const sorted = (l4 ? (['tcp', 'udp'] as const).filter((p) => protos.includes(p)) : protos) as CheckedFilter['protos'];
  let portFrom: number | null = null;
  let portTo: number | null = null;
  if (o.portFrom !== null || o.portTo !== null) {
    if (!l4) throw fail('ports need tcp or udp');
    portFrom = checkPort(o.portFrom, `task ${taskId} filter portFrom`);
    portTo = checkPort(o.portTo, `task ${taskId} filter portTo`);
    if (portFrom > portTo) throw fail('portFrom > portTo');
  }
  let cidr: Cidr | null = null;
  if (o.cidr !== null) {
    cidr = parseCidr(o.cidr, { allowBare: true });
    if (!cidr) throw fail(`cidr ${JSON.stringify(o.cidr)}`);
    if (cidr.prefix === 0) cidr = null;
  }
  return { dir: o.dir, protos: sorted, portFrom, portTo, cidr, action: o.action };
}

/** one filter rule as the text of one nft rule in the VM's in or out chain */
function filterRuleText(f: CheckedFilter, side: 'in' | 'out'): string {
  const parts: string[] = [];
  // in: the traffic comes from the cidr to the VM; out: it goes from the VM to the cidr
  if (f.cidr) parts.push(`ip ${side === 'in' ? 'saddr' : 'daddr'} ${cidrText(f.cidr)}`);
  const p = f.protos;
  if (p[0] === 'icmp') {
    parts.push('ip protocol icmp');
  } else if (p[0] !== 'all') {
    if (f.portFrom !== null && f.portTo !== null) {
      const ports = range(f.portFrom, f.portTo);
      parts.push(p.length === 1 ? `${p[0]} dport ${ports}` : `meta l4proto { ${p.join(', ')} } th dport ${ports}`);
    } else {
      parts.push(p.length === 1 ? `ip protocol ${p[0]}` : `ip protocol { ${p.join(', ')} }`);
    }
  }
  // accept = this VM's filter lets it pass: go on with the forward chain (the peer VM's filter and the structural
  // rules still apply); drop is final
  parts.push(f.action === 'accept' ? 'return' : 'drop');
  return parts.join(' ');
}

function forwardRuleText(f: CheckedForward, vmIp: string): string {
  const match = `${f.proto} dport ${range(f.hostFrom, f.hostTo)}`;
  if (f.hostFrom === f.guestFrom) return `${match} dnat to ${vmIp}`; // same ports: keep the destination port
  if (f.hostFrom === f.hostTo) return `${match} dnat to ${vmIp}:${f.guestFrom}`;
  // a shifted range: `dnat to ip:8000-8010` would pick any port of the range, not the matching one (nft 1.0.6 has no
  // offset syntax), so map each port
  const elems: string[] = [];
  for (let i = 0; i <= f.hostTo - f.hostFrom; i++) elems.push(`${f.hostFrom + i} : ${f.guestFrom + i}`);
  return `${match} dnat to ${vmIp}:${f.proto} dport map { ${elems.join(', ')} }`;
}

interface CheckedTask {
  taskId: string;
  vmIp: string;
  vmIpNum: number;
  forwards: CheckedForward[];
  filters: CheckedFilter[];
}

interface Checked {
  table: string;
  hostIps: number[];
  bridge: { name: string; cidr: Cidr; gatewayIp: number };
  isolatedPrefix: string;
  tasks: CheckedTask[];
}

function check(s: NftState): Checked {
  if (typeof s !== 'object' || s === null) throw new Error('nft: state must be an object');
  const table = checkTable(s.table);
  if (!Array.isArray(s.hostIps)) throw new Error('nft: hostIps must be an array');
  const hostIps = s.hostIps.map((ip) => checkIp(ip, 'host ip'));
  if (typeof s.bridge !== 'object' || s.bridge === null) throw new Error('nft: bridge must be an object');
  const bridgeName = checkIfname(s.bridge.name, 'bridge name');
  const cidr = parseCidr(s.bridge.cidr);
  if (!cidr || cidr.prefix < 8 || cidr.prefix > 30) throw new Error(`nft: invalid bridge cidr ${JSON.stringify(s.bridge.cidr)}`);
  const gatewayIp = checkIp(s.bridge.gatewayIp, 'bridge gateway ip');
  const bcast = broadcast(cidr);
  if (!contains(cidr, gatewayIp) || gatewayIp === cidr.network || gatewayIp === bcast) {
    throw new Error(`nft: gateway ${s.bridge.gatewayIp} is not a host address of ${formatCidr(cidr)}`);
  }
  if (typeof s.isolatedPrefix !== 'string' || !PREFIX_RE.test(s.isolatedPrefix)) {
    throw new Error(`nft: invalid isolated interface prefix ${JSON.stringify(s.isolatedPrefix)}`);
  }
  if (bridgeName.startsWith(s.isolatedPrefix)) {
    throw new Error(`nft: bridge ${bridgeName} must not start with the isolated prefix ${s.isolatedPrefix}`);
  }
  if (!Array.isArray(s.tasks)) throw new Error('nft: tasks must be an array');

  const ids = new Set<string>();
  const ips = new Map<number, string>();
  const tasks: CheckedTask[] = [];
  for (const t of s.tasks) {
    if (typeof t !== 'object' || t === null) throw new Error('nft: task must be an object');
    if (typeof t.taskId !== 'string' || !TASK_ID_RE.test(t.taskId)) throw new Error(`nft: invalid task id ${JSON.stringify(t.taskId)}`);
    const taskId = t.taskId;
    if (ids.has(taskId)) throw new Error(`nft: duplicate task id ${taskId}`);
    ids.add(taskId);
    const vmIpNum = checkIp(t.vmIp, `vm ip of task ${taskId}`);
    if (!contains(cidr, vmIpNum) || vmIpNum === cidr.network || vmIpNum === bcast || vmIpNum === gatewayIp) {
      throw new Error(`nft: vm ip ${t.vmIp} of task ${taskId} is not a free host address of ${formatCidr(cidr)}`);
    }
    const other = ips.get(vmIpNum);
    if (other !== undefined) throw new Error(`nft: tasks ${other} and ${taskId} share the vm ip ${t.vmIp}`);
    ips.set(vmIpNum, taskId);
    if (!Array.isArray(t.forwards)) throw new Error(`nft: task ${taskId}: forwards must be an array`);
    if (!Array.isArray(t.filters)) throw new Error(`nft: task ${taskId}: filters must be an array`);
    const forwards = t.forwards.map((f) => checkForward(f, taskId));
    forwards.sort((a, b) => (a.proto === b.proto ? a.hostFrom - b.hostFrom : a.proto < b.proto ? -1 : 1));
    const filters = t.filters.map((r) => checkFilter(r, taskId));
    tasks.push({ taskId, vmIp: formatIp(vmIpNum), vmIpNum, forwards, filters });
  }
  tasks.sort((a, b) => (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0));
  return { table, hostIps, bridge: { name: bridgeName, cidr, gatewayIp }, isolatedPrefix: s.isolatedPrefix, tasks };
}

/**
 * host ports forwarded more than once, e.g. ["tcp/6000: task_a, task_b"]. Not an error for renderRuleset (the
 * original did not conflict-check custom ports, and one task must not break every VM's network): the first task by
 * id, then its first forward by proto and port, gets the port. Callers may log these.
 */
export function forwardConflicts(s: NftState): string[] {
  const c = check(s);
  const owners = new Map<string, string[]>();
  for (const t of c.tasks) {
    for (const f of t.forwards) {
      for (let p = f.hostFrom; p <= f.hostTo; p++) {
        const key = `${f.proto}/${p}`;
        const list = owners.get(key) ?? [];
        list.push(t.taskId);
        owners.set(key, list);
      }
    }
  }
  return [...owners].filter(([, ids]) => ids.length > 1).map(([key, ids]) => `${key}: ${ids.join(', ')}`);
}

function chain(name: string, lines: readonly string[]): string {
  return [`\tchain ${name} {`, ...lines.map((l) => `\t\t${l}`), '\t}'].join('\n');
}

/** the table as `nft -f` text; throws on any invalid value. Deterministic: tasks sorted by id, forwards by port. */
export function renderRuleset(s: NftState): string {
  const c = check(s);
  const br = `"${c.bridge.name}"`;
  const iso = `"${c.isolatedPrefix}*"`;
  const chains: string[] = [];

  // --- DNAT: the host's ports to the VMs' ports --------------------------------------------------------------
  chains.push(chain('prerouting', ['type nat hook prerouting priority dstnat; policy accept;', 'jump portfwd']));
  // locally generated connections to a forwarded port (the host itself, e.g. a health check)
  chains.push(chain('output', ['type nat hook output priority -100; policy accept;', 'jump portfwd']));
  const portfwd: string[] =
    c.hostIps.length > 0 ? [`ip daddr != ${ipSet(c.hostIps)} return`] : ['fib daddr type != local return', 'ip daddr 127.0.0.0/8 return'];
  const withForwards = c.tasks.filter((t) => t.forwards.length > 0);
  for (const t of withForwards) portfwd.push(`jump t_${t.taskId}`);
  chains.push(chain('portfwd', portfwd));
  for (const t of withForwards)
    chains.push(
      chain(
        `t_${t.taskId}`,
        t.forwards.map((f) => forwardRuleText(f, t.vmIp)),
      ),
    );

  // --- SNAT: the VMs' outbound traffic; hairpin (a VM reaching a forwarded port of the host) -----------------
  const net = formatCidr(c.bridge.cidr);
  chains.push(
    chain('postrouting', [
      'type nat hook postrouting priority srcnat; policy accept;',
      `ip saddr ${net} oifname != ${br} masquerade`,
      `ip saddr ${net} oifname ${br} ct status dnat masquerade`,
    ]),
  );

  // --- forward: isolation, per-VM filters on new connections, only DNAT'd traffic into the bridge -----------
  const fwd: string[] = [
    'type filter hook forward priority filter; policy accept;',
    // `!= "<prefix>*"` keeps a LAN bridge's own bridged traffic when br_netfilter passes it through this hook
    `iifname ${iso} oifname != ${iso} drop`,
    `oifname ${iso} iifname != ${iso} drop`,
    'ct state established,related accept',
  ];
  const filterChains: string[] = [];
  for (const t of c.tasks) {
    const ins = t.filters.filter((f) => f.dir !== 'out').map((f) => filterRuleText(f, 'in'));
    const outs = t.filters.filter((f) => f.dir !== 'in').map((f) => filterRuleText(f, 'out'));
    if (ins.length > 0) {
      fwd.push(`ip daddr ${t.vmIp} jump f_${t.taskId}_in`);
      filterChains.push(chain(`f_${t.taskId}_in`, ins));
    }
    if (outs.length > 0) {
      fwd.push(`ip saddr ${t.vmIp} jump f_${t.taskId}_out`);
      filterChains.push(chain(`f_${t.taskId}_out`, outs));
    }
  }
  // from the bridge: only the known VMs' addresses (another source is spoofed or an unknown guest)
  if (c.tasks.length > 0) fwd.push(`iifname ${br} ip saddr ${ipSet(c.tasks.map((t) => t.vmIpNum))} accept`);
  fwd.push(`iifname ${br} drop`);
  // into the bridge: only forwarded ports (nothing routes to the VMs' private addresses directly)
  fwd.push(`oifname ${br} ct status dnat accept`, `oifname ${br} drop`);
  chains.push(chain('forward', fwd));
  chains.push(...filterChains);

  // --- input: the VMs may not reach the host's own services ------------------------------------------------
  chains.push(
    chain('input', [
      'type filter hook input priority filter; policy accept;',
      `iifname ${iso} udp dport 67 accept`,
      `iifname ${iso} drop`,
      `iifname ${br} udp dport 67 accept`,
      `iifname ${br} ct state established,related accept`,
      `iifname ${br} icmp type echo-request accept`,
      `iifname ${br} drop`,
    ]),
  );

  return `table ip ${c.table} {\n${chains.join('\n\n')}\n}\n`;
}

/** replaces the table atomically: one transaction creates it if missing, deletes it and adds the rendered one */
export async function applyRuleset(s: NftState): Promise<void> {
  const text = renderRuleset(s);
  const t = checkTable(s.table);
  await run('nft', ['-f', '-'], { input: `table ip ${t} {}\ndelete table ip ${t}\n${text}` });
}

/** removes the table; nothing to do when it is absent */
export async function deleteTable(table: string): Promise<void> {
  const t = checkTable(table);
  await run('nft', ['-f', '-'], { input: `table ip ${t} {}\ndelete table ip ${t}\n` });
}

/** `nft list table ip <t>` text, null when the table does not exist */
export async function listTable(table: string): Promise<string | null> {
  const t = checkTable(table);
  try {
    return await run('nft', ['list', 'table', 'ip', t]);
  } catch (e) {
    if (e instanceof CommandError && /No such file or directory/.test(e.stderr)) return null;
    throw e;
  }
}
