// The original custom_port syntax (§6.3/§7 of original-dbc-node.md): "tcp,123", "udp,111:222", "tcp,333-444",
// "tcp,555-666:777-888". The original skipped malformed entries silently; we refuse them so a renter learns why a
// port is not reachable.
import { NodeErrors } from '../errors/index.js';
import { jsonList } from '../util/json-list.js';
import type { HostForward } from '../vm/types.js';

export interface PortMapping {
  proto: 'tcp' | 'udp';
  hostFrom: number;
  hostTo: number;
  guestFrom: number;
  guestTo: number;
}

/** ports one entry may open; a wide range would create thousands of forwards */
export const MAX_PORTS_PER_ENTRY = 1000;
/** ports one custom_port list may open in total */
export const MAX_PORTS_PER_LIST = 4096;

const PORT_RE = /^[0-9]{1,5}$/;
const RANGE_RE = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/;

/** a digit string or an integer in 1..65535, else null */
export function parsePort(value: unknown): number | null {
  let n: number;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return null;
    n = value;
  } else if (typeof value === 'string') {
    const s = value.trim();
    if (!PORT_RE.test(s)) return null;
    n = Number(s);
  } else {
    return null;
  }
  return n >= 1 && n <= 65535 ? n : null;
}

function parseRange(text: string, entry: string): [number, number] {
  const m = RANGE_RE.exec(text.trim());
  if (!m) throw NodeErrors.customPortInvalid(entry);
  const from = parsePort(m[1]);
  const to = m[2] === undefined ? from : parsePort(m[2]);
  if (from === null || to === null || to < from) throw NodeErrors.customPortInvalid(entry);
  return [from, to];
}

export function parseCustomPort(entry: string): PortMapping {
  if (typeof entry !== 'string') throw NodeErrors.customPortInvalid(String(entry));
  const parts = entry.split(',');
  if (parts.length !== 2) throw NodeErrors.customPortInvalid(entry);
  const proto = parts[0]!.trim().toLowerCase();
  if (proto !== 'tcp' && proto !== 'udp') throw NodeErrors.customPortInvalid(entry);
  const sides = parts[1]!.split(':');
  if (sides.length > 2) throw NodeErrors.customPortInvalid(entry);
  const [hostFrom, hostTo] = parseRange(sides[0]!, entry);
  const [guestFrom, guestTo] = sides.length === 2 ? parseRange(sides[1]!, entry) : [hostFrom, hostTo];
  if (hostTo - hostFrom !== guestTo - guestFrom) throw NodeErrors.customPortInvalid(entry);
  if (hostTo - hostFrom + 1 > MAX_PORTS_PER_ENTRY) throw NodeErrors.customPortInvalid(entry);
  return { proto, hostFrom, hostTo, guestFrom, guestTo };
}

/** custom_port as clients send it: an array of strings, or that array as a JSON string; empty means none */
export function parseCustomPorts(list: unknown): PortMapping[] {
  const entries = jsonList(list, {
    notJson: (text) => NodeErrors.customPortInvalid(text),
    notArray: (value) => NodeErrors.customPortInvalid(String(value)),
  });
  const mappings: PortMapping[] = [];
  const seen = new Set<string>();
  let total = 0;
  for (const entry of entries) {
    if (typeof entry !== 'string') throw NodeErrors.customPortInvalid(JSON.stringify(entry) ?? String(entry));
    const m = parseCustomPort(entry);
    total += m.hostTo - m.hostFrom + 1;
    if (total > MAX_PORTS_PER_LIST) throw NodeErrors.customPortInvalid(entry);
    for (let p = m.hostFrom; p <= m.hostTo; p++) {
      const key = `${m.proto}/${p}`;
      if (seen.has(key)) throw NodeErrors.customPortConflict(p);
      seen.add(key);
    }
    mappings.push(m);
  }
  return mappings;
}

/** one user-mode forward per port of each range */
export function expandForwards(mappings: readonly PortMapping[], hostAddr: string): HostForward[] {
  const forwards: HostForward[] = [];
  for (const m of mappings) {
    for (let i = 0; i <= m.hostTo - m.hostFrom; i++) {
      forwards.push({ proto: m.proto, hostAddr, hostPort: m.hostFrom + i, guestPort: m.guestFrom + i });
    }
  }
  return forwards;
}

export function hostPorts(mappings: readonly PortMapping[]): Array<{ proto: 'tcp' | 'udp'; port: number }> {
  const ports: Array<{ proto: 'tcp' | 'udp'; port: number }> = [];
  for (const m of mappings) {
    for (let p = m.hostFrom; p <= m.hostTo; p++) ports.push({ proto: m.proto, port: p });
  }
  return ports;
}
