// The task side of a GPU node, built once: store, operations and events, paths, placement, network sync, storage,
// the lifecycle (state machine), the reconciler and LANs. bootstrap.ts calls buildTaskServices() and hands the
// services to handlers through NodeContext; start() and close() order their start-up and shut-down.
import { mkdirSync } from 'node:fs';
import type { NetworkDriver } from '../net/driver.js';
import { LanService } from '../net/lan-service.js';
import { EventBus, Operations } from '../ops/index.js';
import { StorageService, type StorageOptions } from '../storage/service.js';
import type { TaskStore } from '../store/tasks.js';
import type { Logger } from '../util/logger.js';
import { VmBooter } from '../vm/boot.js';
import { TaskLifecycle, type LifecycleConfig } from '../vm/lifecycle.js';
import { NetworkSync } from '../vm/network-sync.js';
import { TaskPaths } from '../vm/paths.js';
import { Placement } from '../vm/placement.js';
import { Reconciler } from '../vm/reconciler.js';
import type { Hypervisor } from '../vm/types.js';

export interface TaskServicesConfig extends LifecycleConfig {
  /** base images (the original's /data) */
  imageDir: string;
  /** one folder per VM */
  vmDir: string;
  /** host address the user-mode forwards bind to */
  forwardHost: string;
  /** address VNC listens on */
  vncListen: string;
  /** GPUs (PCI addresses) ready for vfio passthrough */
  passthroughGpus: () => Promise<string[]>;
  reconcileIntervalMs?: number;
  /** LANs without members are deleted after this long unused (the original: 3 days) */
  lanIdleMs?: number;
  storage?: StorageOptions;
}

export interface TaskServices {
  store: TaskStore;
  events: EventBus;
  ops: Operations;
  paths: TaskPaths;
  net: NetworkDriver;
  tasks: TaskLifecycle;
  storage: StorageService;
  lans: LanService;
  reconciler: Reconciler;
  /** network, storage (resumes transfers), interrupted operations, the first reconcile, the timer */
  start(): Promise<void>;
  /** timers stop, operations settle, QEMU processes are let go (VMs keep running) */
  close(): Promise<void>;
}

export function buildTaskServices(store: TaskStore, hv: Hypervisor, net: NetworkDriver, config: TaskServicesConfig, log: Logger): TaskServices {
  const events = new EventBus(log);
  store.onStatus((task, previous) => events.emit({ type: 'task.status', task_id: task.task_id, wallet: task.wallet, status: task.status, previous }));
  const ops = new Operations(store, events, log);
  const paths = new TaskPaths(config.vmDir, config.imageDir);
  const placement = new Placement({
    tasks: () => store.all(),
    forwardHost: config.forwardHost,
    vncListen: config.vncListen,
    passthroughGpus: config.passthroughGpus,
  });
  const netSync = new NetworkSync(store, hv, net, () => ops.lockedKeys(), log);
  const storage = new StorageService({ store, ops, hv, imageDir: config.imageDir, taskDir: (id) => paths.taskDir(id), log }, config.storage);
  const booter = new VmBooter({ store, hv, net, paths, placement, vncListen: config.vncListen });
  const tasks = new TaskLifecycle({ store, hv, net, ops, paths, placement, booter, netSync, storage, config, log });
  const lans = new LanService(net, log, { idleMs: config.lanIdleMs });
  const reconciler = new Reconciler({
    store,
    hv,
    ops,
    paths,
    lifecycle: tasks,
    netSync,
    log,
    housekeeping: () => lans.cleanIdle(),
    release: (taskId) => net.release(taskId),
    intervalMs: config.reconcileIntervalMs,
  });
  return {
    store,
    events,
    ops,
    paths,
    net,
    tasks,
    storage,
    lans,
    reconciler,
    async start() {
      mkdirSync(config.vmDir, { recursive: true });
      mkdirSync(config.imageDir, { recursive: true });
      await net.init();
      await storage.init();
      await ops.recover();
      await reconciler.start();
    },
    async close() {
      reconciler.stop();
      // transfers first: their rsync stops and their operations wait for the next start
      await storage.close();
      await ops.idle();
      await net.close();
      await hv.detachAll();
    },
  };
}
