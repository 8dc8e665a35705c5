// Builds a GPU node from a data dir: database, identity, authenticator, rentals, inventory, hypervisor, task services.
// Used by `dbc up` (in-process) and `dbc node` (networked, a later issue).
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Authenticator, type AuthenticatorOptions } from '../auth/authenticator.js';
import { loadOrCreateNodeIdentity, type NodeIdentity } from '../auth/identity.js';
import { cryptoReady } from '../auth/verify.js';
import { HostInventory } from '../host/inventory.js';
import { NodeErrors } from '../errors/index.js';
import { DBC_VERSION } from '../protocol/types.js';
import { LocalRentals } from '../rental/local.js';
import type { RentalSource } from '../rental/types.js';
import { openDb, type Db } from '../store/db.js';
import { TaskStore } from '../store/tasks.js';
import type { Logger } from '../util/logger.js';
import type { TaskLifecycle } from '../vm/lifecycle.js';
import type { StorageService } from '../storage/service.js';
import { buildTaskServices, type TaskServices } from './services.js';
import { QemuHypervisor } from '../vm/qemu.js';
import type { Hypervisor } from '../vm/types.js';
import { GpuNode, type ExpiryPolicy } from './gpu-node.js';
import { NetworkStore } from '../store/networks.js';
import { UserNetwork, type NetworkDriver } from '../net/driver.js';
import { BridgeNetwork } from '../net/bridge-mode.js';
import { defaultRouteSource } from '../net/links.js';
import { parseIp } from '../net/ipv4.js';
import type { ImageServerSecrets } from '../images/secrets.js';
import { setupGuestGuard, type GuestGuardMode } from '../net/guest-guard.js';
import { EventLog } from '../ops/event-log.js';
import { ConsoleHub } from '../vm/console-hub.js';
import { NodeChannels } from './channels.js';
import { TicketStore } from './tickets.js';

/** the node's network mode (driver.ts); user is the default */
export type NetworkConfig =
  | { mode: 'user'; /** net/guest-guard.ts; default auto */ guestGuard?: GuestGuardMode }
  | {
      mode: 'bridge';
      /** node bridge name and subnet (default dbcbr0, 10.200.0.0/24) */
      bridge?: string;
      cidr?: string;
      /** addresses the forwarded ports answer on; default: any address of the host */
      hostIps?: string[];
      /** this host's VXLAN/multicast underlay address; default: the default route's source address */
      underlay?: string;
      /** the other GPU hosts' underlay addresses (unicast VXLAN peers) */
      peers?: string[];
      /** nftables table (default dbc) */
      table?: string;
      dns?: string[];
    };

export interface NodeOptions {
  dataDir: string;
  name?: string;
  /** address shown to renters as ssh_ip */
  publicHost: string;
  /** address user-mode forwards bind to */
  forwardHost: string;
  /** address VNC listens on */
  vncListen: string;
  logger: Logger;
  shutdownTimeoutMs?: number;
  /** a booted VM is `running` once its guest answers, or after this with guest_ready false (default 300 s) */
  guestReadyTimeoutMs?: number;
  /** once the guest agent answers, how long SSH or a console marker is still waited for (vm/readiness.ts) */
  agentGraceMs?: number;
  expiry?: Partial<ExpiryPolicy>;
  reconcileIntervalMs?: number;
  hypervisor?: Hypervisor;
  /** who may use the machine: default the local registry; a factory gets the node id (the chain's machine id) */
  rentals?: RentalSource | RentalSourceFactory;
  network?: NetworkConfig;
  /** LANs without members are removed after this long (default 3 days) */
  lanIdleMs?: number;
  /** replay window (nonceWindowMs, default 7 days) and failed-auth budget (docs/request-flow.md) */
  auth?: AuthenticatorOptions;
  /** provisioned disk bytes may reach the file system capacity times this (default 1.0) */
  diskOvercommit?: number;
  /** upload credentials of image centres (images/secrets.ts) */
  imageSecrets?: ImageServerSecrets;
}

async function buildNetwork(cfg: NetworkConfig, env: { db: Db; dataDir: string; logger: Logger; hv: Hypervisor; forwardHost: string }): Promise<NetworkDriver> {
  const common = { store: new NetworkStore(env.db), log: env.logger, now: () => Date.now() };
  if (cfg.mode === 'user') return new UserNetwork({ ...common, hv: env.hv, forwardHost: env.forwardHost });
  const underlay = cfg.underlay ?? (await defaultRouteSource())?.src;
  if (!underlay) throw new Error('bridge mode needs an underlay address (--lan-local) when the host has no default route');
  const peers = [...new Set((cfg.peers ?? []).filter((p) => p !== underlay))];
  for (const p of [underlay, ...peers]) if (parseIp(p) === null) throw new Error(`invalid LAN host address ${p}`);
  // every host sorts the same address list, so each takes a different slice of every LAN's addresses
  const hosts = [underlay, ...peers].sort((a, b) => parseIp(a)! - parseIp(b)!);
  return new BridgeNetwork({
    ...common,
    hostIndex: hosts.indexOf(underlay),
    hostCount: hosts.length,
    bridge: cfg.bridge ?? 'dbcbr0',
    cidr: cfg.cidr ?? '10.200.0.0/24',
    stateDir: join(env.dataDir, 'net'),
    hostIps: cfg.hostIps ?? [],
    underlay,
    peers,
    table: cfg.table,
    dns: cfg.dns,
  });
}

export type RentalSourceFactory = (env: { nodeId: string; db: Db; logger: Logger }) => RentalSource;

export interface NodeLayout {
  dbFile: string;
  imageDir: string;
  vmDir: string;
}

export function nodeLayout(dataDir: string): NodeLayout {
  return { dbFile: join(dataDir, 'node.db'), imageDir: join(dataDir, 'images'), vmDir: join(dataDir, 'vms') };
}

export interface RunningNode {
  node: GpuNode;
  /** every task-side service (ops, events, lifecycle, storage, LANs, reconciler) */
  services: TaskServices;
  /** the VM lifecycle */
  tasks: TaskLifecycle;
  storage: StorageService;
  db: Db;
  identity: NodeIdentity;
  rentals: RentalSource;
  layout: NodeLayout;
  close(): Promise<void>;
}

export async function startGpuNode(opts: NodeOptions): Promise<RunningNode> {
  await cryptoReady();
  mkdirSync(opts.dataDir, { recursive: true });
  const layout = nodeLayout(opts.dataDir);
  const identity = loadOrCreateNodeIdentity(opts.dataDir);
  const db = openDb(layout.dbFile);
  const auth = new Authenticator(db, opts.auth);
  const rentals =
    typeof opts.rentals === 'function' ? opts.rentals({ nodeId: identity.nodeId, db, logger: opts.logger }) : (opts.rentals ?? new LocalRentals(db));
  const inventory = new HostInventory({ dataDir: opts.dataDir });
  const netCfg = opts.network ?? { mode: 'user' };
  // user mode: keep guests off the host's own services (QEMU -runas + nftables); bridge mode locks them out itself
  const guard = netCfg.mode === 'user' && !opts.hypervisor ? await setupGuestGuard(netCfg.guestGuard ?? 'auto', opts.logger) : null;
  const hv = opts.hypervisor ?? new QemuHypervisor({ logger: opts.logger, runAs: guard?.owner ?? null });
  const network = await buildNetwork(opts.network ?? { mode: 'user' }, { db, dataDir: opts.dataDir, logger: opts.logger, hv, forwardHost: opts.forwardHost });
  const services = buildTaskServices(
    new TaskStore(db),
    hv,
    network,
    {
      imageDir: layout.imageDir,
      vmDir: layout.vmDir,
      forwardHost: opts.forwardHost,
      vncListen: opts.vncListen,
      shutdownTimeoutMs: opts.shutdownTimeoutMs ?? 60_000,
      guestReadyTimeoutMs: opts.guestReadyTimeoutMs,
      agentGraceMs: opts.agentGraceMs,
      hostCores: os.cpus().length,
      hostMemGiB: () => Math.max(1, Math.floor(os.totalmem() / 1024 ** 3)),
      passthroughGpus: async () => (await inventory.snapshot()).gpuPassthrough.filter((g) => g.vfioReady).map((g) => g.pciBusId),
      reconcileIntervalMs: opts.reconcileIntervalMs,
      lanIdleMs: opts.lanIdleMs,
      storage: { diskOvercommit: opts.diskOvercommit, secrets: opts.imageSecrets },
    },
    opts.logger,
  );
  await services.start();
  const tickets = new TicketStore();
  const eventLog = new EventLog(services.events);
  const consoles = new ConsoleHub();
  const channels = new NodeChannels({
    tickets,
    events: eventLog,
    consoles,
    tasks: services.tasks,
    vncHost: opts.vncListen === '0.0.0.0' || opts.vncListen === '::' ? '127.0.0.1' : opts.vncListen,
    log: opts.logger,
  });
  const node = new GpuNode(
    {
      nodeId: identity.nodeId,
      name: opts.name ?? os.hostname(),
      version: DBC_VERSION,
      tasks: services.tasks,
      storage: services.storage,
      lans: services.lans,
      net: network,
      ops: services.ops,
      events: services.events,
      auth,
      tickets,
      channels,
      rentals,
      inventory,
      imageDir: layout.imageDir,
      publicHost: opts.publicHost,
      now: () => Date.now(),
      dropCaches: async () => {
        try {
          writeFileSync('/proc/sys/vm/drop_caches', '3\n');
        } catch (err) {
          throw NodeErrors.freeMemoryFailed((err as Error).message);
        }
      },
    },
    opts.logger,
    {
      sweepIntervalMs: opts.expiry?.sweepIntervalMs ?? 60_000,
      deleteGraceMs: opts.expiry?.deleteGraceMs ?? 3 * 24 * 3600_000,
    },
  );
  node.start();
  return {
    node,
    services,
    tasks: services.tasks,
    storage: services.storage,
    db,
    identity,
    rentals,
    layout,
    async close() {
      node.stop();
      channels.close();
      consoles.close();
      eventLog.close();
      await services.close();
      db.close();
    },
  };
}
