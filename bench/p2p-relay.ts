// The P2P request path against the in-process path of `dbc up`, same machine, same run. Prints JSON.
//
// relay:  POST tasks (list) with session auth, the same body every time (the steady-state cost of an authorised
//         request), through
//           in_process  `dbc up` (HTTP API and GPU node in one process), and
//           p2p         `dbc client` -> libp2p (TCP, Noise, Yamux) -> `dbc node`, with a `dbc seed`; every role its
//                       own process; once with --rpc-mode stream (one stream per request, the fallback) and once with
//                       --rpc-mode mux (requests share long-lived streams, the default).
//         Keep-alive HTTP, CONCURRENCY requests in flight, WARMUP_S then SECONDS per mode; req/s, p50, p99.
//         Targets: p2p throughput >= 2,000 req/s and relay overhead (in_process / p2p throughput, and p2p / in_process
//         p50) <= 1.5x.
// scale:  1 seed, SCALE_NODES GPU node processes on loopback and a client (one per request mode, same seed and
//         nodes). Each request goes to a node chosen at random (session auth on every node); SCALE_CONCURRENCY in
//         flight; every node warmed with SCALE_WARMUP_PER_NODE requests first. Measured with a 2-node network, then
//         with all nodes up: random over all of them (p99 / the 2-node network's p99: target <= 2x), and random
//         over the same 2 nodes as before (what the mere presence of the other processes costs on this machine).
// The load generator runs in this process; the servers are child processes. On a 2-core machine they all share the
// cores, so both paths are measured under the same constraint.
import { keepAlivePoster } from './http-post.js';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { breakdown } from './profile-breakdown.js';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { identityFromSeed } from '../src/auth/identity.js';
import { signNonce } from '../src/cli/sign.js';
import { cliPath, post, signedBody, startDevnet, waitFor, type Devnet } from '../test/helpers/devnet.js';
import { dialAddr, LOOPBACK_LISTEN, seedArgs, startRole, type RoleProc } from '../test/helpers/p2p.js';
import { percentile, rounder } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 24);
const SCALE_NODES = Number(process.env.BENCH_SCALE_NODES ?? 20);
const SCALE_CONCURRENCY = Number(process.env.BENCH_SCALE_CONCURRENCY ?? 8);
const SCALE_SECONDS = Number(process.env.BENCH_SCALE_SECONDS ?? 5);
/** requests sent to every node before a scale measurement, so that each node process is as warm (JIT) as with 2 */
const SCALE_WARMUP_PER_NODE = Number(process.env.BENCH_SCALE_WARMUP_PER_NODE ?? 300);
const TARGET_REQ_PER_S = 3000;
const TARGET_RELAYED_REQ_PER_S = 500;
/** BENCH_PROFILE_DIR=DIR: CPU-profile the mux client and the direct node (node --cpu-prof) and report where the time goes */
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;

/** the profiles written under PROFILE_DIR/{client,node}, summarised (bench/profile-breakdown.ts) */
function profileBreakdown(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const role of ['client', 'node']) {
    const dir = join(PROFILE_DIR!, role);
    const file = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.cpuprofile')) : undefined;
    out[role] = file ? breakdown(join(dir, file)) : 'no profile written';
  }
  return out;
}
const TARGET_OVERHEAD = 1.5;
const TARGET_SCALE_RATIO = 2;

export interface LoadResult {
  req_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  requests: number;
  seconds: number;
  first_error?: string;
}

const round = rounder(2);

/** drive the API with `concurrency` keep-alive connections; next() gives [url path, body] per request */
async function load(api: string, next: () => [string, string], seconds: number, warmupS: number, concurrency: number): Promise<LoadResult> {
  const poster = keepAlivePoster(concurrency);
  const base = new URL(api);
  const send = (path: string, body: string) => poster.post(new URL(path, base), body);
  let measuring = false;
  let stop = false;
  let count = 0;
  let errors = 0;
  let firstError: string | undefined;
  let lat = new Float64Array(1 << 16);
  const worker = async () => {
    while (!stop) {
      const [path, body] = next();
      const t0 = performance.now();
      let why = '';
      try {
        const r = await send(path, body);
        if (r.status !== 200 || (JSON.parse(r.text) as { errcode?: number }).errcode !== 0) why = `HTTP ${r.status}: ${r.text.slice(0, 300)}`;
      } catch (err) {
        why = String(err);
      }
      if (!measuring) continue;
      if (count === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[count++] = performance.now() - t0;
      if (why) {
        errors++;
        firstError ??= why;
      }
    }
  };
  const workers = Array.from({ length: concurrency }, () => worker());
  await new Promise((r) => setTimeout(r, warmupS * 1000));
  const start = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const end = performance.now();
  const n = count;
  stop = true;
  await Promise.all(workers);
  poster.close();
  const sorted = lat.slice(0, n).sort();
  const out: LoadResult = {
    req_per_s: Math.round(n / ((end - start) / 1000)),
    p50_ms: round(percentile(sorted, 50)),
    p99_ms: round(percentile(sorted, 99)),
    errors,
    requests: n,
    seconds: round((end - start) / 1000),
  };
  if (firstError) out.first_error = firstError;
  return out;
}

/** a session id of `renterSeed` on `nodeId` (through `api`) and the body that uses it */
async function sessionBody(api: string, nodeId: string, renterSeed: string): Promise<string> {
  const sid = await post(api, 'mining_nodes/session_id', signedBody(nodeId, renterSeed));
  if (sid.body.errcode !== 0) throw new Error(`mining_nodes/session_id on ${nodeId}: ${sid.text}`);
  const sessionId = String(sid.body.message.session_id);
  const body = JSON.stringify({
    peer_nodes_list: [nodeId],
    additional: {},
    session_id: sessionId,
    session_id_sign: signNonce(renterSeed, sessionId).session_id_sign,
  });
  const probe = await post(api, 'tasks', body, true);
  if (probe.body.errcode !== 0) throw new Error(`tasks with session auth on ${nodeId}: ${probe.text}`);
  return body;
}

function grant(node: RoleProc, wallet: string): void {
  execFileSync(process.execPath, [cliPath, 'rental', 'grant', '--data-dir', node.dataDir, '--wallet', wallet, '--days', '1'], { stdio: 'pipe' });
}

const nodeArgs = (seed: RoleProc, name: string) => ['--listen', LOOPBACK_LISTEN, '--host', '127.0.0.1', '--name', name, ...seedArgs([seed])];

async function waitKnown(client: RoleProc, n: number): Promise<void> {
  await waitFor(
    `${n} nodes known to the client`,
    async () => {
      const r = await post(client.info.api!, 'mining_nodes', { peer_nodes_list: [], additional: {} });
      return (r.body.message.mining_nodes as unknown[]).length >= n;
    },
    60_000,
    200,
  );
}

async function relayBench(): Promise<Record<string, unknown>> {
  // in-process: dbc up (its own renter with a local rental)
  let up: Devnet | undefined;
  let inProcess: LoadResult;
  try {
    up = await startDevnet();
    const body = await sessionBody(up.api, up.node_id, up.renter.seed);
    inProcess = await load(up.api, () => ['/api/v1/tasks', body], SECONDS, WARMUP_S, CONCURRENCY);
  } finally {
    await up?.destroy();
  }

  // p2p: seed, node, client as processes; the client once per request mode
  const procs: RoleProc[] = [];
  try {
    const renterSeed = `0x${randomBytes(32).toString('hex')}`;
    const seed = await startRole('seed', ['--listen', LOOPBACK_LISTEN]);
    procs.push(seed);
    // how /peers/active shows a connection through the seed's relay: the seed's ip:port
    const seedAddr = `127.0.0.1:${dialAddr(seed).split('/')[4]}`;
    const node = await startRole('node', nodeArgs(seed, 'bench-node'), {
      execArgv: PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', join(PROFILE_DIR, 'node')] : [],
    });
    procs.push(node);
    grant(node, identityFromSeed(renterSeed).address);
    // the same node reached through the seed's circuit relay (announcing only its relayed address, no hole punch).
    // After a hole punch the path is a direct TCP connection like the `mux` run's; on loopback there is no NAT to
    // hold the first SYN, so a punch here is luck (test/integration/p2p-nat.test.ts punches through real NATs)
    const viaRelay = await startRole('node', [...nodeArgs(seed, 'bench-relayed'), '--relay-only', '--no-hole-punch']);
    procs.push(viaRelay);
    grant(viaRelay, identityFromSeed(renterSeed).address);
    const modes: Record<string, unknown> = {};
    const all = [
      ['stream', 'stream', node],
      ['mux', 'mux', node],
      ['mux_via_circuit_relay', 'mux', viaRelay],
    ] as const;
    // profiling: the mux run alone, so that the node's profile is that run's
    const runs = PROFILE_DIR ? all.filter(([name]) => name === 'mux') : all;
    for (const [name, mode, target] of runs) {
      const profiled = PROFILE_DIR !== undefined && name === 'mux';
      const client = await startRole('client', ['--listen', LOOPBACK_LISTEN, '--http-port', '0', '--rpc-mode', mode, ...seedArgs([seed])], {
        execArgv: profiled ? ['--cpu-prof', '--cpu-prof-dir', join(PROFILE_DIR, 'client')] : [],
      });
      try {
        await waitKnown(client, 2);
        const body = await sessionBody(client.info.api!, target.info.node_id!, renterSeed);
        const connection = await waitFor(
          `${name}: the client's connection to the node`,
          async () => {
            const r = await post(client.info.api!, 'peers/active', {});
            const list = r.body.message.peer_nodes_list as Array<{ node_id: string; addr: string }>;
            const addr = list.find((e) => e.node_id === target.info.node_id)?.addr;
            return addr ? (addr === seedAddr ? 'relayed' : 'direct') : undefined;
          },
          30_000,
          200,
        );
        const p2p = await load(client.info.api!, () => ['/api/v1/tasks', body], SECONDS, WARMUP_S, CONCURRENCY);
        const throughputOverhead = round(inProcess.req_per_s / Math.max(1, p2p.req_per_s));
        const latencyOverhead = round(p2p.p50_ms / inProcess.p50_ms);
        modes[name] = {
          connection,
          ...p2p,
          overhead_throughput_x: throughputOverhead,
          overhead_p50_x: latencyOverhead,
          overhead_p99_x: round(p2p.p99_ms / inProcess.p99_ms),
          pass_req_per_s: p2p.errors === 0 && p2p.req_per_s >= TARGET_REQ_PER_S,
          pass_overhead: p2p.errors === 0 && throughputOverhead <= TARGET_OVERHEAD && latencyOverhead <= TARGET_OVERHEAD,
        };
      } finally {
        await client.destroy();
      }
    }
    return {
      in_process: inProcess,
      p2p_stream: modes.stream,
      p2p_mux: modes.mux,
      p2p_mux_via_circuit_relay: modes.mux_via_circuit_relay,
      target_circuit_relay_req_per_s: TARGET_RELAYED_REQ_PER_S,
      target_req_per_s: TARGET_REQ_PER_S,
      target_overhead_x: TARGET_OVERHEAD,
      concurrency: CONCURRENCY,
      seconds_per_mode: SECONDS,
    };
  } finally {
    await Promise.all(procs.reverse().map((p) => p.destroy()));
  }
}

async function scaleBench(): Promise<Record<string, unknown>> {
  const procs: RoleProc[] = [];
  try {
    const renterSeed = `0x${randomBytes(32).toString('hex')}`;
    const wallet = identityFromSeed(renterSeed).address;
    const seed = await startRole('seed', ['--listen', LOOPBACK_LISTEN]);
    procs.push(seed);
    // one client per request mode, on the same seed and nodes; only the one being measured gets traffic
    const clients: Record<string, RoleProc> = {};
    for (const mode of ['stream', 'mux']) {
      clients[mode] = await startRole('client', ['--listen', LOOPBACK_LISTEN, '--http-port', '0', '--rpc-mode', mode, ...seedArgs([seed])]);
      procs.push(clients[mode]);
    }
    const nodes: RoleProc[] = [];
    const addNodes = async (count: number) => {
      // a few at a time: each start loads the whole program on a 2-core machine
      for (let i = 0; i < count; i += 4) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(4, count - i) }, (_, j) =>
            startRole('node', nodeArgs(seed, `scale-${nodes.length + i + j + 1}`), { timeoutMs: 120_000 }),
          ),
        );
        nodes.push(...batch);
        procs.push(...batch);
      }
    };
    // session bodies per client (a session is per node, its signature per session id): [mode] -> bodies
    const bodies: Record<string, string[]> = { stream: [], mux: [] };
    const ready = async () => {
      for (const [mode, client] of Object.entries(clients)) {
        await waitKnown(client, nodes.length);
        for (const n of nodes.slice(bodies[mode]!.length)) {
          if (mode === 'stream') grant(n, wallet);
          bodies[mode]!.push(await sessionBody(client.info.api!, n.info.node_id!, renterSeed));
        }
      }
    };
    /** `count` nodes (the first ones) chosen at random per request, for each client */
    const measure = async (count: number) => {
      const out: Record<string, LoadResult> = {};
      for (const [mode, client] of Object.entries(clients)) {
        const list = bodies[mode]!.slice(0, count);
        // warm every node (and the client's path to it) the same, whatever the number of nodes
        let i = 0;
        await Promise.all(
          Array.from({ length: SCALE_CONCURRENCY }, async () => {
            while (i < list.length * SCALE_WARMUP_PER_NODE) {
              const body = list[i++ % list.length]!;
              await fetch(`${client.info.api}/api/v1/tasks`, { method: 'POST', body }).then((r) => r.text());
            }
          }),
        );
        out[mode] = await load(
          client.info.api!,
          () => ['/api/v1/tasks', list[Math.floor(Math.random() * list.length)]!],
          SCALE_SECONDS,
          WARMUP_S,
          SCALE_CONCURRENCY,
        );
      }
      return out;
    };

    await addNodes(2);
    await ready();
    const two = await measure(2);
    const t0 = Date.now();
    await addNodes(SCALE_NODES - 2);
    await ready();
    const startMs = Date.now() - t0;
    // let the newcomers' start-up work (DHT self-queries, binding pushes) settle
    await new Promise((r) => setTimeout(r, 3000));
    const all = await measure(nodes.length);
    // the same two nodes as before, now with all the others up: what the extra processes cost by being there
    const twoOfAll = await measure(2);
    const rssMb = nodes.map((n) => {
      try {
        return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${n.proc.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
      } catch {
        return 0;
      }
    });
    const result: Record<string, unknown> = {
      nodes: SCALE_NODES,
      node_processes: nodes.length,
      concurrency: SCALE_CONCURRENCY,
      warmup_requests_per_node: SCALE_WARMUP_PER_NODE,
      target_ratio_x: TARGET_SCALE_RATIO,
      extra_nodes_start_s: round(startMs / 1000, 1),
      node_rss_mb_avg: round(rssMb.reduce((a, b) => a + b, 0) / Math.max(1, rssMb.length), 1),
    };
    for (const mode of Object.keys(clients)) {
      const ratio = round(all[mode]!.p99_ms / two[mode]!.p99_ms);
      result[mode] = {
        two_node_network: two[mode],
        all_nodes_random: all[mode],
        two_nodes_random_in_full_network: twoOfAll[mode],
        p99_ratio_x: ratio,
        p99_ratio_same_network_x: round(all[mode]!.p99_ms / twoOfAll[mode]!.p99_ms),
        pass: two[mode]!.errors === 0 && all[mode]!.errors === 0 && ratio <= TARGET_SCALE_RATIO,
      };
    }
    return result;
  } finally {
    await Promise.all(procs.reverse().map((p) => p.destroy()));
  }
}

export async function benchP2PRelay(): Promise<Record<string, unknown>> {
  const loadBefore = os.loadavg();
  const only = process.env.BENCH_P2P_ONLY;
  const relay = only === 'scale' ? undefined : await relayBench();
  // the profiles are written as the processes exit (relayBench has stopped them)
  if (relay && PROFILE_DIR) relay.cpu_profile_mux = profileBreakdown();
  const scale = only === 'relay' ? undefined : await scaleBench();
  return {
    relay,
    scale,
    cores: os.cpus().length,
    node: process.version,
    loadavg_before: loadBefore.map((x) => round(x)),
    loadavg_after: os.loadavg().map((x) => round(x)),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  benchP2PRelay().then(
    (r) => {
      console.log(JSON.stringify(r, null, 2));
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
