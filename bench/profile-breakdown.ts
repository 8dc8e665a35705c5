// Where a process's CPU time goes, from a V8 .cpuprofile (node --cpu-prof): self time summed per category, in
// percent of the profile's samples. Categories are decided by the frame's script URL (or function name for the
// engine's own entries), first match wins.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const CATEGORIES: Array<[string, (url: string, fn: string) => boolean]> = [
  ['idle', (_u, f) => f === '(idle)'],
  ['gc', (_u, f) => f === '(garbage collector)'],
  ['noise (encryption)', (u) => /libp2p-noise|@noble\/ciphers|@noble\/hashes|@noble\/curves/.test(u)],
  ['yamux', (u) => /libp2p-yamux/.test(u)],
  [
    'libp2p streams and framing',
    (u) =>
      /@libp2p\/utils|uint8arraylist|it-[a-z-]+\/|multistream|@libp2p\/interface|\/libp2p\/dist|@libp2p\/tcp|p-queue|race-signal|abort-error|main-event|progress-events/.test(
        u,
      ),
  ],
  ['sr25519 / polkadot', (u) => /@polkadot/.test(u)],
  ['our rpc (src/p2p)', (u) => /\/dist\/src\/p2p\//.test(u)],
  ['our gateway (src/api)', (u) => /\/dist\/src\/api\//.test(u)],
  ['our node (src/node, auth, vm, store)', (u) => /\/dist\/src\//.test(u)],
  ['node http', (u) => /node:(_http|http|internal\/http)|node:internal\/streams|node:stream/.test(u)],
  ['node net / tcp', (u) => /node:net|node:internal\/stream_base|node:internal\/net/.test(u)],
  ['JSON', (_u, f) => /^JSON\.|^parse$|^stringify$/.test(f)],
  ['sqlite', (u) => /better-sqlite3/.test(u)],
  ['logging (pino)', (u) => /pino|sonic-boom/.test(u)],
  ['other node internals', (u) => u.startsWith('node:')],
  ['engine / native', (u) => u === ''],
];

export function breakdown(file: string): Record<string, number> {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const time = new Map<number, number>();
  p.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const out: Record<string, number> = {};
  let total = 0;
  for (const [id, t] of time) {
    const n = byId.get(id);
    if (!n) continue;
    const { url, functionName } = n.callFrame;
    const cat = CATEGORIES.find(([, m]) => m(url, functionName))?.[0] ?? 'other';
    out[cat] = (out[cat] ?? 0) + t;
    total += t;
  }
  const busy = total - (out.idle ?? 0);
  const pct: Record<string, number> = { busy_ms: Math.round(busy / 1000) };
  for (const [k, v] of Object.entries(out).sort((a, b) => b[1] - a[1])) if (k !== 'idle') pct[`${k} %`] = Math.round((1000 * v) / Math.max(1, busy)) / 10;
  return pct;
}
