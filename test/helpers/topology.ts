// Two GPU nodes behind an HTTP API, in either of the two ways dbc-node runs, for suites that must see the same
// replies from both:
//  - 'up': two `dbc up` processes (each gateway + one GPU node). The first runs its own image centre (ID_1); the
//    second runs none and knows the first's as ID_A (--image-server), so it downloads what the first uploads.
//  - 'p2p': `dbc seed`, two `dbc node`s and one `dbc client` on loopback; every request goes through the client.
//    The client runs the image centre (--local-image-server, ID_1, holding a copy of the base image as `dbc up`'s
//    does); the nodes hold its upload credentials (--image-server-secret, the client's DIR/rsyncd.password).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cliPath, ensureTestImage, killQemuUnder, killRsyncUnder, post, startDevnet, waitFor, type Devnet } from './devnet.js';
import { LOOPBACK_LISTEN, seedArgs, startRole, type RoleProc } from './p2p.js';

export type TopologyKind = 'up' | 'p2p';

export interface TopologyNode {
  /** the HTTP API that reaches this node (p2p: the client's, shared by both nodes) */
  api: string;
  node_id: string;
  /** the node's data directory (VMs under vms/, images under images/) */
  dataDir: string;
  /** a renter allowed to rent this node */
  renter: { wallet: string; seed: string };
  /** the image file name for tasks/start */
  image: string;
  /** the id under which this node's API names the image centre node 1 uploads to */
  centre: string;
  /** the centre's module directory on this machine (what it lists) */
  centreDir: string;
  /** what test/helpers/tasks.ts needs (waitStatus, waitOperation, taskDetail) */
  devnet: Devnet;
}

export interface Topology {
  kind: TopologyKind;
  nodes: [TopologyNode, TopologyNode];
  /** the tail of every process's output, for assertion messages */
  output(): string;
  /** stop every process, kill QEMUs and rsyncs left under the data dirs, remove the dirs */
  destroy(): Promise<void>;
}

const SHUTDOWN_TIMEOUT_S = 30;

export async function startTopology(kind: TopologyKind): Promise<Topology> {
  return kind === 'up' ? startUp() : startP2p();
}

function tail(name: string, text: string, n = 3000): string {
  return `--- ${name}\n${text.slice(-n)}`;
}

async function startUp(): Promise<Topology> {
  const a = await startDevnet({ shutdownTimeoutS: SHUTDOWN_TIMEOUT_S });
  const giveUp = async (err: unknown): Promise<never> => {
    await a.destroy().catch(() => undefined);
    killRsyncUnder(a.dataDir);
    throw err;
  };
  const centreA = a.image_servers?.[0];
  if (!centreA || centreA.id !== 'ID_1') await giveUp(new Error(`the first dbc up has no local image centre ID_1: ${JSON.stringify(a.image_servers)}`));
  const b = await startDevnet({
    shutdownTimeoutS: SHUTDOWN_TIMEOUT_S,
    extraArgs: ['--no-local-image-server', '--image-server', `ID_A,${centreA!.host},${centreA!.port},${centreA!.module}`],
  }).catch(giveUp);
  const both = [a, b] as const;
  const output = () => both.map((d, i) => tail(`dbc up #${i + 1} ${d.dataDir}`, d.output())).join('\n');
  const centreDir = join(a.dataDir, 'image-server');
  const node = (d: Devnet, centre: string): TopologyNode => ({
    api: d.api,
    node_id: d.node_id,
    dataDir: d.dataDir,
    renter: d.renter,
    image: d.image,
    centre,
    centreDir,
    // the helpers print the output of the whole topology on a timeout
    devnet: { ...d, output },
  });
  return {
    kind: 'up',
    nodes: [node(a, 'ID_1'), node(b, 'ID_A')],
    output,
    async destroy() {
      for (const d of [b, a]) {
        await d.destroy().catch(() => undefined);
        killQemuUnder(d.dataDir);
        killRsyncUnder(d.dataDir);
      }
    },
  };
}

async function startP2p(): Promise<Topology> {
  const image = ensureTestImage();
  const renterSeed = `0x${randomBytes(32).toString('hex')}`;
  const renter = { wallet: identityFromSeed(renterSeed).address, seed: renterSeed };
  const roles: RoleProc[] = [];
  const output = () => roles.map((r) => tail(`${r.role} ${r.dataDir}`, r.output())).join('\n');
  const destroy = async () => {
    // the client first (it relays), then the nodes (their VMs), the seed last
    for (const r of [...roles].reverse()) {
      await r.destroy().catch(() => undefined);
      killQemuUnder(r.dataDir);
      killRsyncUnder(r.dataDir);
    }
  };
  try {
    const seed = await startRole('seed', ['--listen', LOOPBACK_LISTEN]);
    roles.push(seed);
    // the client and its image centre first: the nodes need the centre's port and upload password
    const client = await startRole('client', ['--listen', LOOPBACK_LISTEN, '--http-port', '0', '--local-image-server', ...seedArgs([seed])]);
    roles.push(client);
    const centreDir = join(client.dataDir, 'image-server');
    // the base image on the centre, as `dbc up` seeds its own (a copy of its own, 0644)
    copyFileSync(image, join(centreDir, basename(image)));
    chmodSync(join(centreDir, basename(image)), 0o644);
    const centrePort = Number(readFileSync(join(client.dataDir, 'rsyncd.port'), 'utf8').trim());
    const secret = `127.0.0.1:${centrePort}/images=images-upload/dbc-upload:${join(client.dataDir, 'rsyncd.password')}`;
    const nodeArgs = (name: string) => [
      '--listen',
      LOOPBACK_LISTEN,
      '--host',
      '127.0.0.1',
      '--name',
      name,
      '--image',
      image,
      '--shutdown-timeout',
      String(SHUTDOWN_TIMEOUT_S),
      '--image-server-secret',
      secret,
      ...seedArgs([seed]),
    ];
    const started = await Promise.allSettled([startRole('node', nodeArgs('gpu-1')), startRole('node', nodeArgs('gpu-2'))]);
    const nodes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    roles.splice(1, 0, ...nodes);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const [n1, n2] = nodes as [RoleProc, RoleProc];
    for (const n of [n1, n2]) {
      execFileSync(process.execPath, [cliPath, 'rental', 'grant', '--data-dir', n.dataDir, '--wallet', renter.wallet, '--days', '1'], { stdio: 'pipe' });
    }
    const api = client.info.api!;
    const ids = [n1.info.node_id!, n2.info.node_id!];
    await waitFor(
      'both GPU nodes known to the client',
      async () => {
        const r = await post(api, 'mining_nodes', { peer_nodes_list: [], additional: {} });
        const known = (r.body.message?.mining_nodes ?? []) as Array<{ node_id: string }>;
        return ids.every((id) => known.some((k) => k.node_id === id));
      },
      60_000,
      250,
    );
    const node = (n: RoleProc): TopologyNode => ({
      api,
      node_id: n.info.node_id!,
      dataDir: n.dataDir,
      renter,
      image: basename(image),
      centre: 'ID_1',
      centreDir,
      devnet: { api, node_id: n.info.node_id!, dataDir: n.dataDir, renter, image: basename(image), output } as unknown as Devnet,
    });
    return { kind: 'p2p', nodes: [node(n1), node(n2)], output, destroy };
  } catch (err) {
    const log = output();
    await destroy();
    throw new Error(`${(err as Error).message}\n${log}`);
  }
}
