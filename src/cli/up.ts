// `dbc up`: the embedded default. One process runs a GPU node, the client HTTP API in front of it, and a local
// rental for a demo renter; it writes DIR/devnet.json and prints a walkthrough.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { placeFile } from '../util/files.js';
import type { Command } from 'commander';
import pino from 'pino';
import { startGateway, startImageCentres } from '../api/gateway.js';
import { InProcessTransport } from '../api/in-process.js';
import { identityFromSeed } from '../auth/identity.js';
import { startGpuNode, nodeLayout, type NetworkConfig } from '../node/bootstrap.js';
import { addNetworkOptions, networkFromFlags, type NetworkFlags } from './network.js';
import { addStorageOptions, storageFromFlags } from './storage-flags.js';
import { addGatewayOptions, gatewayFromFlags, type GatewayFlags } from './http-flags.js';
import type { AuthBudgetOptions } from '../api/auth-budget.js';
import type { HttpLimits } from '../api/server.js';
import { LocalRentals } from '../rental/local.js';
import { FakeChain } from '../rental/fake-chain.js';
import { addRentalOptions, chainRentalsFactory, fakeChainHelp, rentalsFromFlags, type ChainRentalsConfig, type RentalsKind } from './chain.js';
import { signNonce } from './sign.js';
import type { ImageServer } from '../images/servers.js';
import { AuthErrors } from '../errors/index.js';
import { defaultDataDir, packageRoot } from './paths.js';

export const DEFAULT_IMAGE = 'dbc-test.qcow2';

export interface UpOptions {
  dataDir: string;
  httpPort: number;
  host: string;
  image?: string;
  shutdownTimeoutMs?: number;
  guestReadyTimeoutMs?: number;
  sweepIntervalMs?: number;
  deleteGraceMs?: number;
  quiet?: boolean;
  /** who may use the machine (default local: a 30-day local rental for the demo renter) */
  rentals?: RentalsKind;
  /** for rentals 'chain' (endpoints required) and 'chain-fake' (endpoints ignored: an in-process fake chain) */
  chain?: Partial<ChainRentalsConfig>;
  /** image centres `ID,host,port,module` (the original's image_server=) */
  imageServers?: string[];
  /** upload credentials `host:port/module=[upload_module/]user:/path/to/password-file` (docs/storage.md) */
  imageServerSecrets?: string[];
  /** start the local image centre (rsync daemon on DIR/image-server/) as the first free ID_n; default true */
  localImageServer?: boolean;
  /** the address the node reaches the local centre at (default: host; 127.0.0.1 for 0.0.0.0) */
  advertise?: string;
  /** directories besides the image directory that mount_dir / local_dir may name */
  allowDirs?: string[];
  /** the node's network mode (default user) and the LAN idle time */
  network?: NetworkConfig;
  lanIdleMs?: number;
  diskOvercommit?: number;
  /** used nonces are remembered this long (the replay window; default 7 days) */
  nonceWindowMs?: number;
  /** the node's per-wallet failed-auth budget (default 10 failures refilled over 60 s; 0 failures: off) */
  walletAuthBudget?: { failures: number; windowMs: number };
  /** HTTP server limits and the per-address failed-auth budget (--http-*) */
  http?: Partial<HttpLimits>;
  authBudget?: Partial<AuthBudgetOptions>;
}

export interface Devnet {
  api: string;
  node_id: string;
  renter: { wallet: string; seed: string };
  image: string;
  /** how rentals are decided; for the chain sources the RPC endpoints (chain-fake: the in-process fake chain) */
  rentals?: RentalsKind;
  chain_rpc?: string[];
  /** the image centres the client knows (the local one first) */
  image_servers?: ImageServer[];
}

/** put the base image into the node's image dir: a given file, the repo's cached build, or a fresh build */
async function ensureImage(imageDir: string, given: string | undefined, say: (s: string) => void): Promise<string> {
  mkdirSync(imageDir, { recursive: true });
  const name = given ? basename(given) : DEFAULT_IMAGE;
  const target = join(imageDir, name);
  if (existsSync(target)) return name;
  const source = given ? resolve(given) : join(packageRoot(), '.cache', 'images', DEFAULT_IMAGE);
  if (!existsSync(source)) {
    if (given) throw new Error(`--image ${given}: no such file`);
    say(`building the test guest image (${DEFAULT_IMAGE}) with scripts/build-test-image.sh ...`);
    await new Promise<void>((ok, fail) => {
      const child = spawn('bash', [join(packageRoot(), 'scripts', 'build-test-image.sh'), source], { stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('error', fail);
      child.on('exit', (code) => (code === 0 ? ok() : fail(new Error(`build-test-image.sh exited with ${code}`))));
    });
  }
  return placeFile(source, imageDir);
}

function loadOrCreateRenterSeed(dataDir: string): string {
  const file = join(dataDir, 'devnet.json');
  if (existsSync(file)) {
    try {
      const old = JSON.parse(readFileSync(file, 'utf8')) as Devnet;
      if (/^0x[0-9a-f]{64}$/.test(old.renter?.seed ?? '')) return old.renter.seed;
    } catch {
      // rewritten below
    }
  }
  return `0x${randomBytes(32).toString('hex')}`;
}

export async function runUp(o: UpOptions): Promise<{ devnet: Devnet; close(): Promise<void> }> {
  const say = (s: string) => {
    if (!o.quiet) console.log(s);
  };
  mkdirSync(o.dataDir, { recursive: true });
  const logger = pino({ level: process.env.DBC_LOG_LEVEL ?? 'info' }, pino.destination({ dest: join(o.dataDir, 'dbc.log'), sync: false, mkdir: true }));
  const layout = nodeLayout(o.dataDir);
  const image = await ensureImage(layout.imageDir, o.image, say);

  // the image centres (a bad flag is refused before anything starts), the local one seeded with the base image as
  // ID_1 unless --image-server took that id; the node (relayed uploads, snapshots, resumed uploads) and the gateway
  // (its own uploads) hold the upload credentials, requests never carry them
  const centres = await startImageCentres({
    imageServers: o.imageServers,
    imageServerSecrets: o.imageServerSecrets,
    localImageServer: o.localImageServer !== false,
    dataDir: o.dataDir,
    host: o.host,
    advertise: o.advertise,
    seed: [join(layout.imageDir, image)],
  });
  const kind = o.rentals ?? 'local';
  let fake: FakeChain | undefined;
  let chainRpc: string[] | undefined;
  if (kind === 'chain-fake') {
    fake = new FakeChain({ autoAdvance: true });
    chainRpc = [
      await fake.listen(0, '127.0.0.1').catch(async (err: unknown) => {
        await centres.close();
        throw err;
      }),
    ];
  } else if (kind === 'chain') {
    chainRpc = o.chain?.endpoints ?? [];
    if (chainRpc.length === 0) {
      await centres.close();
      throw new Error('rentals chain needs at least one chain RPC endpoint');
    }
  }
  const running = await startGpuNode({
    dataDir: o.dataDir,
    name: 'dbc-up',
    publicHost: o.host === '0.0.0.0' ? '127.0.0.1' : o.host,
    forwardHost: o.host,
    vncListen: o.host,
    logger,
    shutdownTimeoutMs: o.shutdownTimeoutMs,
    guestReadyTimeoutMs: o.guestReadyTimeoutMs,
    expiry: { sweepIntervalMs: o.sweepIntervalMs, deleteGraceMs: o.deleteGraceMs },
    rentals: chainRpc ? chainRentalsFactory({ ...o.chain, endpoints: chainRpc }) : undefined,
    network: o.network,
    lanIdleMs: o.lanIdleMs,
    diskOvercommit: o.diskOvercommit,
    auth: { nonceWindowMs: o.nonceWindowMs, failureBudget: o.walletAuthBudget },
    imageSecrets: centres.secrets,
  }).catch(async (err: unknown) => {
    await centres.close();
    await fake?.close();
    throw err;
  });

  const seed = loadOrCreateRenterSeed(o.dataDir);
  const renter = identityFromSeed(seed);
  const gpus = (await running.node.ctx.inventory.snapshot()).gpus.length;
  if (kind === 'local') {
    (running.rentals as LocalRentals).grant(renter.address, gpus, Date.now() + 30 * 24 * 3600_000);
  } else if (fake) {
    // the demo renter rents the whole machine for 30 days of blocks
    fake.setMachine(running.identity.nodeId, 'online', gpus);
    fake.addOrder({
      machineId: running.identity.nodeId,
      renter: renter.address,
      rentEnd: fake.block + Math.ceil((30 * 24 * 3600_000) / fake.blockMs),
      gpuNum: gpus,
      gpuIndex: Array.from({ length: gpus }, (_, i) => i),
    });
  }

  running.storage.allowDirs((o.allowDirs ?? []).map((d) => resolve(d)));
  const gateway = await startGateway({
    transport: new InProcessTransport(running.node),
    host: o.host,
    httpPort: o.httpPort,
    centres,
    localImageDir: layout.imageDir,
    log: logger,
    // client-local uploads: the node's own check_authority (rental first, then the nonce), never a renter's disk
    authenticate: async (body) => {
      const caller = await running.node.authorizeFor('images.upload', body);
      if (!caller) throw AuthErrors.noCredential();
      return caller.identity.account;
    },
    isTaskDisk: (file) => running.storage.images.isTaskDisk(file),
    http: o.http,
    authBudget: o.authBudget,
    // the web page, with the demo renter offered to a browser on this host (api/ui.ts)
    ui: { dir: join(packageRoot(), 'dist', 'ui'), devnet: { node_id: running.identity.nodeId, wallet: renter.address, seed } },
  }).catch(async (err: unknown) => {
    await running.close();
    await centres.close();
    await fake?.close();
    throw err;
  });
  const apiUrl = gateway.url;

  const devnet: Devnet = { api: apiUrl, node_id: running.identity.nodeId, renter: { wallet: renter.address, seed }, image, rentals: kind };
  if (chainRpc) devnet.chain_rpc = chainRpc;
  devnet.image_servers = gateway.images.registry.list();
  const file = join(o.dataDir, 'devnet.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(devnet, null, 2) + '\n', { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  say(walkthrough(devnet));
  logger.info({ api: apiUrl, node_id: devnet.node_id }, 'dbc up ready');

  let closing: Promise<void> | undefined;
  return {
    devnet,
    close() {
      closing ??= (async () => {
        await gateway.close();
        await running.close();
        await centres.close();
        await fake?.close();
        logger.flush();
      })();
      return closing;
    },
  };
}

function walkthrough(d: Devnet): string {
  const body = (additional: object, auth: object) => JSON.stringify({ peer_nodes_list: [d.node_id], additional, ...auth });
  const signed = () => {
    const s = signNonce(d.renter.seed);
    return { wallet: s.wallet, nonce: s.nonce, sign: s.sign };
  };
  const curl = (path: string, json: string) => `curl -s -X POST ${d.api}/api/v1/${path} -d '${json}'`;
  return [
    `dbc up: GPU node ${d.node_id} ready; API ${d.api}; renter ${d.renter.wallet}`,
    `web page: ${d.api}/ (a browser on this host: "Sign in as the demo renter")`,
    `devnet written; every nonce below is single-use; fresh ones: dbc sign --seed ${d.renter.seed}`,
    ...(d.rentals === 'chain-fake'
      ? [
          `rentals from a fake DBC chain at ${d.chain_rpc![0]} (the renter holds a 30-day order)`,
          fakeChainHelp(d.chain_rpc![0]!, { machine: d.node_id, renter: d.renter.wallet }),
        ]
      : d.rentals === 'chain'
        ? [`rentals from the DBC chain (${d.chain_rpc!.join(', ')}): the machine id is the node id; rent it there first`]
        : []),
    '',
    '# machine info (no auth)',
    curl('mining_nodes', body({}, {})),
    '# create a VM (answers at once with status "creating")',
    curl('tasks/start', body({ image_name: d.image, ssh_port: '20022', vnc_port: '5901', cpu_cores: '1', mem_size: '1', disk_size: '1' }, signed())),
    '# list your VMs, then read one with tasks/<task_id> for ssh_port, user_name and login_password',
    curl('tasks', body({}, signed())),
    '# a session id for third parties (sign it with: dbc sign --seed <seed> --session-id <id>)',
    curl('mining_nodes/session_id', body({}, signed())),
    ...(d.image_servers && d.image_servers.length > 0
      ? [
          `# image centres: ${d.image_servers.map((s) => `${s.id}=rsync://${s.host}:${s.port}/${s.module}`).join(' ')}; list one (no auth)`,
          `curl -s -X POST ${d.api}/api/v1/images -d '${JSON.stringify({ peer_nodes_list: [], additional: { image_server: d.image_servers[0]!.id } })}'`,
        ]
      : []),
    '',
  ].join('\n');
}

function collectList(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerUp(program: Command): void {
  const cmd = program
    .command('up')
    .description('run a whole network in one process: GPU node, HTTP API, local rental for a demo renter')
    .option('--data-dir <dir>', 'data directory', defaultDataDir())
    .option('--http-port <n>', 'HTTP API port', '5052')
    .option('--host <addr>', 'address to listen on (API, forwarded ports, VNC)', '127.0.0.1')
    .option('--image <file>', `base image to serve (default: ${DEFAULT_IMAGE}, built if missing)`)
    .option('--shutdown-timeout <seconds>', 'ACPI shutdown wait before the hard stop', '60')
    .option('--guest-ready-timeout <seconds>', 'a booted VM is running once its guest answers (agent, SSH banner, console), or after this', '300')
    .option('--expiry-sweep <seconds>', 'how often ended rentals are looked for', '60')
    .option('--delete-grace <seconds>', 'delete VMs this long after their rental ended (original: 3 days)', String(3 * 24 * 3600))
    .option('--allow-dir <dir>', 'a directory mount_dir (disk/add) and local_dir (images/download) may name besides /data; repeatable', collectList, [])
    .option('--nonce-window <seconds>', 'replay window: used wallet nonces are remembered this long (docs/request-flow.md)', String(7 * 24 * 3600))
    .option('--wallet-auth-fail-limit <n>', 'failed authentications per wallet in a burst before its requests are refused unverified (0: no budget)', '10')
    .option('--wallet-auth-fail-window <seconds>', 'a spent --wallet-auth-fail-limit refills completely in this time', '60');
  addGatewayOptions(addStorageOptions(addNetworkOptions(cmd)), { localImageServer: true });
  addRentalOptions(cmd, { allowFake: true }).action(async (opts: Record<string, string> & { chainRpc?: string[]; chainTerminatingRental?: boolean }) => {
    const num = (k: string, min: number, max: number) => {
      const n = Number(opts[k]);
      if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} must be in [${min}, ${max}]`);
      return n;
    };
    const rentals = rentalsFromFlags(opts, { allowFake: true });
    const net = networkFromFlags(opts as unknown as NetworkFlags);
    const up = await runUp({
      dataDir: resolve(opts.dataDir!),
      httpPort: num('httpPort', 0, 65535),
      host: opts.host!,
      image: opts.image,
      shutdownTimeoutMs: num('shutdownTimeout', 1, 3600) * 1000,
      guestReadyTimeoutMs: num('guestReadyTimeout', 1, 86400) * 1000,
      sweepIntervalMs: num('expirySweep', 1, 86400) * 1000,
      deleteGraceMs: num('deleteGrace', 0, 365 * 86400) * 1000,
      rentals: rentals.kind,
      chain: rentals.chain,
      allowDirs: opts.allowDir as unknown as string[],
      network: net.network,
      lanIdleMs: net.lanIdleMs,
      nonceWindowMs: num('nonceWindow', 60, 365 * 86400) * 1000,
      walletAuthBudget: { failures: Math.floor(num('walletAuthFailLimit', 0, 1_000_000)), windowMs: num('walletAuthFailWindow', 1, 86400) * 1000 },
      ...storageFromFlags(opts as { diskOvercommit?: string }),
      ...gatewayFromFlags(opts as unknown as GatewayFlags),
    });
    const stop = () => {
      up.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
