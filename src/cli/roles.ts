// `dbc seed`, `dbc node`, `dbc client`: the three roles of the P2P network as separate processes. Each takes
// --data-dir, --listen (repeatable; default TCP on 0.0.0.0, any port) and --seed (repeatable multiaddr with
// /p2p/<peer id>), and when ready writes DIR/<role>.json: {"peer_id", "multiaddrs": [...]} plus node_id (node) or
// api (client).
import '../p2p/polyfill.js';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { placeFile } from '../util/files.js';
import { ImageServerSecrets } from '../images/secrets.js';
import { Command, Option } from 'commander';
import pino, { type Logger as Pino } from 'pino';
import { startGateway, startImageCentres, walletAllowlist, type ImageCentres } from '../api/gateway.js';
import { startGpuNode, nodeLayout, type NetworkConfig } from '../node/bootstrap.js';
import { addNetworkOptions, networkFromFlags, type NetworkFlags } from './network.js';
import { addStorageOptions, storageFromFlags } from './storage-flags.js';
import { addGatewayOptions, gatewayFromFlags, type GatewayFlags } from './http-flags.js';
import type { AuthBudgetOptions } from '../api/auth-budget.js';
import type { HttpLimits } from '../api/server.js';
import { BindingDirectory } from '../p2p/directory.js';
import {
  createHost,
  DEFAULT_LISTEN,
  hostMultiaddrs,
  keepSeedsConnected,
  loadOrCreatePeerKey,
  peerKeyFile,
  seedPeerIds,
  type Host,
  type Role,
} from '../p2p/host.js';
import { NatService } from '../p2p/nat.js';
import { NodeService } from '../p2p/serve.js';
import { P2PTransport, type RpcMode } from '../p2p/transport.js';
import { defaultDataDir, packageRoot } from './paths.js';

export interface RoleFile {
  peer_id: string;
  multiaddrs: string[];
  node_id?: string;
  api?: string;
}

interface CommonOpts {
  dataDir: string;
  listen?: string[];
  seed?: string[];
  announce?: string[];
  /** nodes and clients: learn reachability (AutoNAT) and hole-punch relayed connections (DCUtR); default on */
  holePunch?: boolean;
  /** the local TCP port hole-punch dials leave from (default: a free one) */
  punchPort?: number | string;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function common(cmd: Command): Command {
  return cmd
    .option('--data-dir <dir>', 'data directory', defaultDataDir())
    .option('--listen <multiaddr>', `libp2p listen address, repeatable (default ${DEFAULT_LISTEN})`, collect)
    .option('--seed <multiaddr>', 'seed to bootstrap from, with /p2p/<peer id>, repeatable', collect)
    .option('--announce <multiaddr>', 'address to announce instead of the listen addresses, repeatable', collect)
    .option('--no-hole-punch', 'nodes and clients: no AutoNAT check and no DCUtR hole punching (relayed connections stay relayed)')
    .option('--punch-port <n>', 'nodes and clients: the local TCP port hole-punch dials leave from (default: a free one)');
}

function num(value: string | undefined, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be in [${min}, ${max}]`);
  return n;
}

const loggers = new Map<string, Pino>();

/** one pino logger per data dir (DIR/dbc.log), shared by a role's parts */
function roleLogger(dataDir: string): Pino {
  let logger = loggers.get(dataDir);
  if (!logger) {
    mkdirSync(dataDir, { recursive: true });
    logger = pino({ level: process.env.DBC_LOG_LEVEL ?? 'info' }, pino.destination({ dest: join(dataDir, 'dbc.log'), sync: false, mkdir: true }));
    loggers.set(dataDir, logger);
  }
  return logger;
}

/** DIR/<role>.json, written aside and renamed so that a reader never sees half a file */
export function writeRoleFile(dataDir: string, role: Role, content: RoleFile): string {
  const file = join(dataDir, `${role}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify(content, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
  return file;
}

async function startHost(role: Role, o: CommonOpts, extra: { relay?: boolean; relayOnly?: boolean } = {}): Promise<Host> {
  const privateKey = await loadOrCreatePeerKey(o.dataDir, peerKeyFile(role));
  const host = await createHost({
    role,
    privateKey,
    listen: o.listen ?? [],
    seeds: o.seed ?? [],
    announce: o.announce ?? [],
    relay: extra.relay,
    relayOnly: extra.relayOnly,
  });
  const stopKeeping = keepSeedsConnected(host, o.seed ?? []);
  host.addEventListener('stop', stopKeeping);
  const punch = role !== 'seed' && o.holePunch !== false;
  if (role === 'seed' || punch) {
    const logger = roleLogger(o.dataDir);
    const nat = new NatService({
      host,
      serveAutonat: role === 'seed',
      punch,
      punchPort: o.punchPort === undefined ? 0 : num(String(o.punchPort), 'punch-port', 1, 65535),
      seedPeers: seedPeerIds(o.seed ?? []),
      logger,
      onReachability: (r) => {
        if (r === 'private' && role === 'node' && !extra.relay) logger.warn('this node is not reachable from the seeds (behind NAT?): start it with --relay');
      },
    });
    await nat.start();
    host.addEventListener('stop', () => void nat.stop());
  }
  return host;
}

/** run until SIGINT/SIGTERM, then close (in order) and exit */
function untilSignal(close: () => Promise<void>, logger: Pino): void {
  let closing = false;
  const stop = (sig: string) => {
    if (closing) return;
    closing = true;
    logger.info({ sig }, 'stopping');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    close().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

function roleFile(host: Host, extra: Partial<RoleFile> = {}): RoleFile {
  return { peer_id: host.peerId.toString(), multiaddrs: hostMultiaddrs(host), ...extra };
}

// --- dbc seed -----------------------------------------------------------------------------------------------

export async function runSeed(o: CommonOpts): Promise<{ host: Host; directory: BindingDirectory; close: () => Promise<void> }> {
  const logger = roleLogger(o.dataDir);
  const host = await startHost('seed', o);
  const directory = new BindingDirectory(host, { serveList: true, logger });
  await directory.start();
  const file = writeRoleFile(o.dataDir, 'seed', roleFile(host));
  logger.info({ file, peer_id: host.peerId.toString(), multiaddrs: hostMultiaddrs(host) }, 'dbc seed ready');
  return {
    host,
    directory,
    close: async () => {
      await directory.stop();
      await host.stop();
    },
  };
}

export function registerSeed(program: Command): void {
  common(program.command('seed').description('run a seed: bootstrap point, DHT server, circuit relay, binding directory')).action(async (opts: CommonOpts) => {
    const o = { ...opts, dataDir: resolve(opts.dataDir) };
    const seed = await runSeed(o);
    console.log(JSON.stringify(roleFile(seed.host)));
    untilSignal(seed.close, roleLogger(o.dataDir));
  });
}

// --- dbc node -----------------------------------------------------------------------------------------------

export interface NodeRoleOptions extends CommonOpts {
  name?: string;
  host: string;
  publicHost?: string;
  image?: string;
  relay?: boolean;
  /** announce only the relayed address (a node behind NAT as seen from outside; tests and benchmarks) */
  relayOnly?: boolean;
  shutdownTimeoutMs?: number;
  guestReadyTimeoutMs?: number;
  sweepIntervalMs?: number;
  deleteGraceMs?: number;
  bindingTtlMs?: number;
  network?: NetworkConfig;
  lanIdleMs?: number;
  /** used nonces are remembered this long (the replay window; default 7 days) */
  nonceWindowMs?: number;
  /** the node's per-wallet failed-auth budget (default 10 failures refilled over 60 s; 0 failures: off) */
  walletAuthBudget?: { failures: number; windowMs: number };
  diskOvercommit?: number;
  /** upload credentials `host:port/module=[upload_module/]user:/path/to/password-file` (docs/storage.md) */
  imageServerSecrets?: string[];
}

/** put a base image into the node's image dir (a copy of its own, read-only; never a hard link) */
function installImage(imageDir: string, file: string): string {
  const source = resolve(file);
  if (!existsSync(source)) throw new Error(`--image ${file}: no such file`);
  return placeFile(source, imageDir);
}

export async function runNode(o: NodeRoleOptions) {
  const logger = roleLogger(o.dataDir);
  const secrets = new ImageServerSecrets();
  for (const t of o.imageServerSecrets ?? []) secrets.add(t);
  if (o.image) installImage(nodeLayout(o.dataDir).imageDir, o.image);
  const running = await startGpuNode({
    dataDir: o.dataDir,
    name: o.name,
    publicHost: o.publicHost ?? (o.host === '0.0.0.0' ? '127.0.0.1' : o.host),
    forwardHost: o.host,
    vncListen: o.host,
    logger,
    shutdownTimeoutMs: o.shutdownTimeoutMs,
    guestReadyTimeoutMs: o.guestReadyTimeoutMs,
    expiry: { sweepIntervalMs: o.sweepIntervalMs, deleteGraceMs: o.deleteGraceMs },
    network: o.network,
    lanIdleMs: o.lanIdleMs,
    auth: { nonceWindowMs: o.nonceWindowMs, failureBudget: o.walletAuthBudget },
    diskOvercommit: o.diskOvercommit,
    imageSecrets: secrets,
  });
  let host: Host | undefined;
  try {
    host = await startHost('node', o, { relay: o.relay, relayOnly: o.relayOnly });
    const service = new NodeService({
      host,
      node: running.node,
      sign: (m) => running.identity.sign(m),
      bindingTtlMs: o.bindingTtlMs,
      logger,
    });
    await service.start();
    const file = writeRoleFile(o.dataDir, 'node', roleFile(host, { node_id: running.identity.nodeId }));
    logger.info({ file, node_id: running.identity.nodeId, peer_id: host.peerId.toString() }, 'dbc node ready');
    const h = host;
    return {
      host,
      service,
      running,
      close: async () => {
        await service.stop();
        await h.stop();
        await running.close();
      },
    };
  } catch (err) {
    try {
      await host?.stop();
    } catch {
      // closing anyway
    }
    await running.close();
    throw err;
  }
}

export function registerNode(program: Command): void {
  addStorageOptions(addNetworkOptions(common(program.command('node').description('run a GPU node on the P2P network (VMs, rentals; no HTTP API)'))))
    .option('--name <name>', 'node name shown by mining_nodes (default: the hostname)')
    .option('--host <addr>', 'address forwarded guest ports and VNC bind to', '0.0.0.0')
    .option('--public-host <addr>', 'address renters are told to connect to (ssh_ip); default --host, or 127.0.0.1 for 0.0.0.0')
    .option('--image <file>', 'base image to install into DIR/images')
    .option(
      '--image-server-secret <host:port/module=[upload_module/]user:/password-file>',
      'upload credentials for an image centre (docs/storage.md); repeatable',
      collect,
      [],
    )
    .option('--relay', 'reserve a slot on a seed relay and announce the relayed address (a node behind NAT)')
    .addOption(new Option('--relay-only', 'announce only the relayed address, as a node behind NAT is seen (tests, benchmarks)').hideHelp())
    .option('--shutdown-timeout <seconds>', 'ACPI shutdown wait before the hard stop', '60')
    .option('--guest-ready-timeout <seconds>', 'a booted VM is running once its guest answers (agent, SSH banner, console), or after this', '300')
    .option('--expiry-sweep <seconds>', 'how often ended rentals are looked for', '60')
    .option('--delete-grace <seconds>', 'delete VMs this long after their rental ended (original: 3 days)', String(3 * 24 * 3600))
    .option('--nonce-window <seconds>', 'replay window: used wallet nonces are remembered this long (docs/request-flow.md)', String(7 * 24 * 3600))
    .option('--wallet-auth-fail-limit <n>', 'failed authentications per wallet in a burst before its requests are refused unverified (0: no budget)', '10')
    .option('--wallet-auth-fail-window <seconds>', 'a spent --wallet-auth-fail-limit refills completely in this time', '60')
    .addOption(new Option('--binding-ttl <seconds>', 'lifetime of the signed node_id -> peer record').default('600'))
    .action(async (opts: CommonOpts & Record<string, string | boolean | undefined>) => {
      const dataDir = resolve(opts.dataDir);
      const node = await runNode({
        ...opts,
        dataDir,
        name: opts.name as string | undefined,
        host: opts.host as string,
        publicHost: opts.publicHost as string | undefined,
        image: opts.image as string | undefined,
        imageServerSecrets: opts.imageServerSecret as unknown as string[],
        relay: opts.relay === true || opts.relayOnly === true,
        relayOnly: opts.relayOnly === true,
        shutdownTimeoutMs: num(opts.shutdownTimeout as string, 'shutdown-timeout', 1, 3600) * 1000,
        guestReadyTimeoutMs: num(opts.guestReadyTimeout as string, 'guest-ready-timeout', 1, 86400) * 1000,
        sweepIntervalMs: num(opts.expirySweep as string, 'expiry-sweep', 1, 86400) * 1000,
        deleteGraceMs: num(opts.deleteGrace as string, 'delete-grace', 0, 365 * 86400) * 1000,
        nonceWindowMs: num(opts.nonceWindow as string, 'nonce-window', 60, 365 * 86400) * 1000,
        walletAuthBudget: {
          failures: Math.floor(num(opts.walletAuthFailLimit as string, 'wallet-auth-fail-limit', 0, 1_000_000)),
          windowMs: num(opts.walletAuthFailWindow as string, 'wallet-auth-fail-window', 1, 86400) * 1000,
        },
        bindingTtlMs: num(opts.bindingTtl as string, 'binding-ttl', 10, 86400) * 1000,
        ...networkFromFlags(opts as unknown as NetworkFlags),
        ...storageFromFlags(opts as { diskOvercommit?: string }),
      });
      console.log(JSON.stringify(roleFile(node.host, { node_id: node.running.identity.nodeId })));
      untilSignal(node.close, roleLogger(dataDir));
    });
}

// --- dbc client ---------------------------------------------------------------------------------------------

export interface ClientRoleOptions extends CommonOpts {
  httpPort: number;
  /** image centres `ID,host,port,module` (the original's image_server=) */
  imageServers?: string[];
  /** upload credentials `host:port/module=[upload_module/]user:/path/to/password-file` (docs/storage.md) */
  imageServerSecrets?: string[];
  /** start a local image centre (rsync daemon on DIR/image-server/) as the first free ID_n; default false */
  localImageServer?: boolean;
  /** the address GPU nodes reach the local centre at (default: host; 127.0.0.1 for 0.0.0.0) */
  advertise?: string;
  /** wallets that may use the client-local upload forms (uploads from DIR/images); none: those forms are refused */
  uploadWallets?: string[];
  host: string;
  requestTimeoutMs?: number;
  resolveTimeoutMs?: number;
  refreshMs?: number;
  rpcMode?: RpcMode;
  /** HTTP server limits and the per-address failed-auth budget (--http-*) */
  http?: Partial<HttpLimits>;
  authBudget?: Partial<AuthBudgetOptions>;
}

export async function runClient(o: ClientRoleOptions) {
  const logger = roleLogger(o.dataDir);
  const allow = o.uploadWallets && o.uploadWallets.length > 0 ? await walletAllowlist(o.dataDir, o.uploadWallets) : undefined;
  let centres: ImageCentres | undefined;
  let host: Host | undefined;
  let transport: P2PTransport | undefined;
  try {
    centres = await startImageCentres({
      imageServers: o.imageServers,
      imageServerSecrets: o.imageServerSecrets,
      localImageServer: o.localImageServer === true,
      dataDir: o.dataDir,
      host: o.host,
      advertise: o.advertise,
    });
    host = await startHost('client', o);
    transport = new P2PTransport(host, {
      logger,
      defaultTimeoutMs: o.requestTimeoutMs,
      resolveTimeoutMs: o.resolveTimeoutMs,
      refreshMs: o.refreshMs,
      rpcMode: o.rpcMode,
    });
    await transport.start();
    const gateway = await startGateway({
      transport,
      host: o.host,
      httpPort: o.httpPort,
      centres,
      localImageDir: join(o.dataDir, 'images'),
      log: logger,
      authenticate: allow?.authenticate,
      requestTimeoutMs: o.requestTimeoutMs,
      http: o.http,
      authBudget: o.authBudget,
      ui: { dir: join(packageRoot(), 'dist', 'ui') },
    });
    const file = writeRoleFile(o.dataDir, 'client', roleFile(host, { api: gateway.url }));
    logger.info({ file, api: gateway.url, peer_id: host.peerId.toString(), image_servers: centres.servers.map((s) => s.id) }, 'dbc client ready');
    const [h, t, c] = [host, transport, centres];
    return {
      host: h,
      transport: t,
      api: gateway.url,
      images: gateway.images,
      close: async () => {
        await gateway.close();
        await t.stop();
        await h.stop();
        await c.close();
        allow?.close();
      },
    };
  } catch (err) {
    try {
      await transport?.stop();
      await host?.stop();
    } catch {
      // closing anyway
    }
    await centres?.close();
    allow?.close();
    throw err;
  }
}

export function registerClient(program: Command): void {
  addGatewayOptions(common(program.command('client').description('run the client gateway: the DBC HTTP API, relaying to GPU nodes over P2P')), {
    localImageServer: false,
  })
    .option('--upload-wallet <wallet>', 'a wallet that may upload images from DATA_DIR/images (the client-local images/upload forms); repeatable', collect)
    .option('--http-port <n>', 'HTTP API port', '5052')
    .option('--host <addr>', 'address the HTTP API listens on', '127.0.0.1')
    .option('--request-timeout <seconds>', 'how long to wait for a GPU node (original: 30)', '30')
    .option('--resolve-timeout <seconds>', 'how long to look for an unknown node_id', '2')
    .option('--refresh <seconds>', 'how often the seeds are asked for node bindings', '5')
    .addOption(
      new Option(
        '--rpc-mode <mode>',
        'mux: requests share long-lived streams (default; falls back to streams for a node that does not speak it); stream: one libp2p stream per request',
      )
        .choices(['stream', 'mux'])
        .default('mux'),
    )
    .action(async (opts: CommonOpts & Record<string, string>) => {
      const dataDir = resolve(opts.dataDir);
      const client = await runClient({
        ...opts,
        dataDir,
        httpPort: num(opts.httpPort, 'http-port', 0, 65535),
        host: opts.host!,
        requestTimeoutMs: num(opts.requestTimeout, 'request-timeout', 0.1, 3600) * 1000,
        resolveTimeoutMs: num(opts.resolveTimeout, 'resolve-timeout', 0.05, 60) * 1000,
        refreshMs: num(opts.refresh, 'refresh', 0.2, 3600) * 1000,
        rpcMode: opts.rpcMode as RpcMode,
        uploadWallets: opts.uploadWallet as unknown as string[] | undefined,
        ...gatewayFromFlags(opts as unknown as GatewayFlags),
      });
      console.log(JSON.stringify(roleFile(client.host, { api: client.api })));
      untilSignal(client.close, roleLogger(dataDir));
    });
}
