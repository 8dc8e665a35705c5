// A GPU node's task services over the FakeHypervisor, for state-machine tests without QEMU: a temp data dir with a
// small base image (qemu-img), the SQLite store, user-mode networking and buildTaskServices() with short timeouts.
// Two nodes over the same dir and the same FakeWorld are one daemon before and after a restart (kill() the first).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CreateParams, TaskOwner } from '../../src/domain/commands.js';
import { UserNetwork } from '../../src/net/driver.js';
import { buildTaskServices, type TaskServices } from '../../src/node/services.js';
import type { NodeEvent } from '../../src/ops/index.js';
import { openDb, type Db } from '../../src/store/db.js';
import { NetworkStore } from '../../src/store/networks.js';
import { TaskStore } from '../../src/store/tasks.js';
import { quietLogger } from '../../src/util/logger.js';
import { FakeHypervisor, FakeWorld, type GuestBehaviour } from './fake-hypervisor.js';

export const BASE_IMAGE = 'base.qcow2';

/** a node data dir: images/ with the base image, vms/, node.db */
export interface NodeDir {
  dir: string;
  imageDir: string;
  vmDir: string;
  dbFile: string;
  remove(): void;
}

export function makeNodeDir(): NodeDir {
  const dir = mkdtempSync(join(tmpdir(), 'dbc-lifecycle-'));
  const imageDir = join(dir, 'images');
  const vmDir = join(dir, 'vms');
  mkdirSync(imageDir, { recursive: true });
  mkdirSync(vmDir, { recursive: true });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(imageDir, BASE_IMAGE), '64M']);
  return { dir, imageDir, vmDir, dbFile: join(dir, 'node.db'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface TestNode {
  dir: NodeDir;
  world: FakeWorld;
  hv: FakeHypervisor;
  db: Db;
  store: TaskStore;
  net: UserNetwork;
  services: TaskServices;
  /** every event the node emitted, in order */
  events: NodeEvent[];
  /** the daemon dies: its timer stops, nothing is closed, released or detached (its VMs stay in the world) */
  kill(): void;
  /** services closed (unless killed), the database closed; the dir is removed when this node made it */
  close(): Promise<void>;
}

/** a guest with an agent that answers guest-ping (and nothing else) */
export const PINGING_GUEST: GuestBehaviour = {
  agent: (execute) => {
    if (execute === 'guest-ping') return {};
    throw new Error(`guest agent ${execute}: not supported by this fake guest`);
  },
};

export interface TestNodeOptions {
  /** the data dir of an earlier daemon (a restart); default a new one, removed by close() */
  dir?: NodeDir;
  /** the host's QEMU processes (shared with an earlier daemon); default a new world, or hv's */
  world?: FakeWorld;
  hv?: FakeHypervisor;
  /** guest behaviour of VMs nothing was programmed for */
  guest?: GuestBehaviour;
  shutdownTimeoutMs?: number;
  /** a booted VM is `running` once its guest answers or after this (default 1.5 s; probes every 50 ms) */
  guestReadyTimeoutMs?: number;
  passthroughGpus?: string[];
  /** call services.start() (default true) */
  start?: boolean;
}

export async function makeServices(opts: TestNodeOptions = {}): Promise<TestNode> {
  const dir = opts.dir ?? makeNodeDir();
  const ownsDir = opts.dir === undefined;
  const world = opts.world ?? opts.hv?.world ?? new FakeWorld();
  // by default a guest whose agent answers guest-ping at once: `running` right after the boot
  const hv = opts.hv ?? new FakeHypervisor({ world, guest: opts.guest ?? PINGING_GUEST });
  const db = openDb(dir.dbFile);
  const store = new TaskStore(db);
  const forwardHost = '127.0.0.1';
  const netDriver = new UserNetwork({ store: new NetworkStore(db), log: quietLogger, now: () => Date.now(), hv, forwardHost });
  const gpus = opts.passthroughGpus ?? [];
  const services = buildTaskServices(
    store,
    hv,
    netDriver,
    {
      imageDir: dir.imageDir,
      vmDir: dir.vmDir,
      forwardHost,
      vncListen: '127.0.0.1',
      shutdownTimeoutMs: opts.shutdownTimeoutMs ?? 200,
      guestReadyTimeoutMs: opts.guestReadyTimeoutMs ?? 1500,
      readyProbeIntervalMs: 50,
      // the fake guest has an agent and no SSH server: its answer is enough
      agentGraceMs: 0,
      hostCores: 4,
      hostMemGiB: () => 8,
      passthroughGpus: async () => [...gpus],
      // the timer must not race the tests: they call reconcile() themselves when they need a pass
      reconcileIntervalMs: 3_600_000,
    },
    quietLogger,
  );
  const events: NodeEvent[] = [];
  services.events.on((e) => events.push(e));
  let killed = false;
  let closed = false;
  const node: TestNode = {
    dir,
    world,
    hv,
    db,
    store,
    net: netDriver,
    services,
    events,
    kill() {
      killed = true;
      services.reconciler.stop();
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        if (!killed) await services.close();
      } finally {
        db.close();
        if (ownsDir) dir.remove();
      }
    },
  };
  if (opts.start ?? true) {
    try {
      await services.start();
    } catch (err) {
      await node.close();
      throw err;
    }
  }
  return node;
}

/** a TCP port free on 127.0.0.1 now (the kernel's pick, above the VNC base 5900) */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
      });
    });
    if (port >= 5900) return port;
  }
}

export const OWNER: TaskOwner = { account: '5RenterAccountOfTheLifecycleTests', rentOrder: 'order-1', rentedGpus: 0 };
export const OTHER: TaskOwner = { account: '5AnotherRenterAccount', rentOrder: 'order-2', rentedGpus: 0 };

/** tasks/start parameters of a small linux VM on the base image, with free ssh and vnc ports */
export async function createParams(over: Partial<CreateParams> = {}): Promise<CreateParams> {
  const sshPort = await freePort();
  let vncPort = await freePort();
  while (vncPort === sshPort) vncPort = await freePort();
  return {
    imageName: BASE_IMAGE,
    desc: 'lifecycle test',
    os: 'linux',
    biosMode: 'legacy',
    sshPort,
    rdpPort: 0,
    vncPort,
    gpuCount: 0,
    cpuCores: 1,
    memGb: 1,
    diskGb: 1,
    customPorts: [],
    multicast: [],
    networkName: '',
    networkFilters: [],
    publicIp: '',
    nicModel: 'virtio',
    ...over,
  };
}

/** wait until check() holds (polling every few ms), or fail with what it last saw */
export async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
