// The DBC `network_filters` security group (§7.3 of original-dbc-node.md): a list of "dir,proto,port,cidr,action"
// strings. The original turned each item into a libvirt nwfilter rule; we parse them into FilterRule values that
// src/net/nft.ts renders into per-VM nftables chains. Malformed items are refused with a text naming the item and why.
import { FilterErrors } from '../errors/index.js';
import { formatCidr, parseCidr, parseIp } from './ipv4.js';
import { jsonList } from '../util/json-list.js';

export type FilterDir = 'in' | 'out' | 'inout';
export type FilterProto = 'all' | 'tcp' | 'udp' | 'icmp';
export type FilterAction = 'accept' | 'drop';

export interface FilterRule {
  /** the item as given (trimmed) */
  text: string;
  /** in: traffic to the VM; out: traffic from the VM; inout: both */
  dir: FilterDir;
  /** ['all'], ['icmp'], or a non-empty subset of tcp/udp (the `dns` alias gives both) */
  protos: FilterProto[];
  /** destination port range (the guest's port for `in`); null = any port */
  portFrom: number | null;
  portTo: number | null;
  /** normalized "a.b.c.d/n" (host bits cleared), null = any address */
  cidr: string | null;
  action: FilterAction;
}

/** items one list may hold */
export const MAX_NETWORK_FILTERS = 64;

interface Alias {
  protos: FilterProto[];
  from: number;
  to: number;
}

const ALIASES: Readonly<Record<string, Alias>> = {
  ssh: { protos: ['tcp'], from: 22, to: 22 },
  rdp: { protos: ['tcp'], from: 3389, to: 3389 },
  http: { protos: ['tcp'], from: 80, to: 80 },
  https: { protos: ['tcp'], from: 443, to: 443 },
  ftp: { protos: ['tcp'], from: 20, to: 21 },
  dns: { protos: ['tcp', 'udp'], from: 53, to: 53 },
  'dns(udp)': { protos: ['udp'], from: 53, to: 53 },
  'dns(tcp)': { protos: ['tcp'], from: 53, to: 53 },
};

const ANY_PORT = new Set(['', 'all', 'any', '*', '0']);
const ANY_ADDR = new Set(['any', 'all', '0.0.0.0', '0.0.0.0/0']);
const PORT_RANGE_RE = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/;
const MAX_QUOTED = 120;

function quote(item: unknown): string {
  let s: string;
  if (typeof item === 'string') {
    s = item.length > MAX_QUOTED ? `${item.slice(0, MAX_QUOTED)}...` : item;
    s = JSON.stringify(s);
  } else {
    s = JSON.stringify(item) ?? String(item);
    if (s.length > MAX_QUOTED) s = `${s.slice(0, MAX_QUOTED)}...`;
  }
  return s;
}

function parsePortField(text: string, item: string): { from: number; to: number } | null {
  if (ANY_PORT.has(text)) return null;
  const m = PORT_RANGE_RE.exec(text);
  const from = m ? Number(m[1]) : NaN;
  const to = m ? (m[2] === undefined ? from : Number(m[2])) : NaN;
  if (!m || from < 1 || to > 65535 || from > to) throw FilterErrors.port(quote(item));
  return { from, to };
}

function parseCidrField(text: string, item: string): string | null {
  if (ANY_ADDR.has(text)) return null;
  const c = parseCidr(text, { allowBare: true });
  if (!c) throw FilterErrors.address(quote(item));
  return c.prefix === 0 ? null : formatCidr(c);
}

/** one "dir,proto,port,cidr,action" item */
export function parseNetworkFilter(item: unknown): FilterRule {
  if (typeof item !== 'string') throw FilterErrors.notString(quote(item));
  const text = item.trim();
  const fields = text.split(',').map((f) => f.trim().toLowerCase());
  if (fields.length !== 5) {
    throw FilterErrors.fieldCount(quote(item), fields.length);
  }
  const [dirText, protoText, portText, cidrText, actionText] = fields as [string, string, string, string, string];

  if (dirText !== 'in' && dirText !== 'out' && dirText !== 'inout') {
    throw FilterErrors.direction(quote(item));
  }
  const dir: FilterDir = dirText;

  let protos: FilterProto[];
  let portFrom: number | null = null;
  let portTo: number | null = null;
  const alias = ALIASES[protoText];
  if (alias) {
    // the port field is ignored with an alias (the original did the same)
    protos = [...alias.protos];
    portFrom = alias.from;
    portTo = alias.to;
  } else if (protoText === 'tcp' || protoText === 'udp') {
    protos = [protoText];
    const range = parsePortField(portText, item);
    if (range) {
      portFrom = range.from;
      portTo = range.to;
    }
  } else if (protoText === 'all' || protoText === 'icmp') {
    protos = [protoText];
    if (!ANY_PORT.has(portText)) throw FilterErrors.portNotAll(quote(item), protoText);
  } else {
    throw FilterErrors.protocol(quote(item), Object.keys(ALIASES).join(', '));
  }

  const cidr = parseCidrField(cidrText, item);

  if (actionText !== 'accept' && actionText !== 'drop') throw FilterErrors.action(quote(item));
  const action: FilterAction = actionText;

  return { text, dir, protos, portFrom, portTo, cidr, action };
}

/** `all` protocol, any port, any address, accept: the original ordered these before every other rule */
export function isCatchAllAccept(r: FilterRule): boolean {
  return r.action === 'accept' && r.protos.length === 1 && r.protos[0] === 'all' && r.portFrom === null && r.cidr === null;
}

/**
 * network_filters as clients send them: an array of strings, or that array as a JSON string; empty means none.
 * With `nodeAddresses`, a drop rule for exactly one of the node's own addresses (/32) is refused.
 */
export function parseNetworkFilters(list: unknown, opts: { nodeAddresses?: readonly string[] } = {}): FilterRule[] {
  const entries = jsonList(list, {
    notJson: (text) => FilterErrors.notJson(quote(text)),
    notArray: () => FilterErrors.notArray(),
  });
  if (entries.length > MAX_NETWORK_FILTERS) {
    throw FilterErrors.tooMany(MAX_NETWORK_FILTERS, entries.length);
  }
  const own = new Map<string, string>();
  for (const a of opts.nodeAddresses ?? []) {
    if (parseIp(a) !== null) own.set(`${a}/32`, a);
  }
  const rules = entries.map((item) => {
    const rule = parseNetworkFilter(item);
    const hit = rule.action === 'drop' && rule.cidr !== null ? own.get(rule.cidr) : undefined;
    if (hit !== undefined) throw FilterErrors.cutsNode(quote(item), hit);
    return rule;
  });
  return [...rules.filter(isCatchAllAccept), ...rules.filter((r) => !isCatchAllAccept(r))];
}

/** the canonical item text of a rule; parseNetworkFilter(formatFilter(r)) gives r back (text aside) */
export function formatFilter(r: FilterRule): string {
  let proto: string;
  if (r.protos.length === 2 && r.protos.includes('tcp') && r.protos.includes('udp')) {
    if (r.portFrom !== 53 || r.portTo !== 53) throw new Error('only the dns alias matches both tcp and udp');
    proto = 'dns';
  } else {
    proto = r.protos[0] ?? 'all';
  }
  const port = proto === 'dns' || r.portFrom === null ? 'all' : r.portFrom === r.portTo ? String(r.portFrom) : `${r.portFrom}-${r.portTo}`;
  return [r.dir, proto, port, r.cidr ?? '0.0.0.0/0', r.action].join(',');
}
