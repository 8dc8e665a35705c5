// The task engine: the VM state machine of a GPU node. It owns the tasks table, runs every lifecycle action as an
// operation (one at a time per task), drives the hypervisor and storage, and reconciles the database with the QEMU
// processes at start and on a timer. It knows nothing of HTTP or wallets beyond the owner's account string.
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, openSync, readSync, closeSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { LanErrors, NodeErrors, publicErrorText } from '../protocol/errors.js';
import type { NetworkRow } from '../store/networks.js';
import type { DiskRow, OperationRow, TaskRow, TaskStore } from '../store/tasks.js';
import type { Hypervisor, HostForward, VmSpec } from './types.js';
import { STORED_TASK_ID_RE, type CreateParams, type ModifyParams } from '../node/params.js';
import { expandForwards, hostPorts, parseCustomPorts, type PortMapping } from '../net/ports.js';
import { isHostPortFree } from '../net/port-probe.js';
import * as qemuImg from '../storage/qemu-img.js';
import { writeNoCloudSeed } from '../storage/seed.js';
import { imageFacts } from '../storage/qemu-extra.js';
import type { SideOpResult, StorageHost } from '../storage/host.js';
import { StorageService, type StorageOptions } from '../storage/service.js';
import type { NetworkDriver } from '../net/driver.js';
import { nicMac } from '../net/mac.js';
import { shownPath } from '../images/names.js';
import { isListedImageName } from '../images/local.js';
import { generatePassword, localTimestamp, randomBase58 } from '../util/format.js';

export type { Logger } from '../util/logger.js';
import type { Logger } from '../util/logger.js';

export interface EngineConfig {
  /** base images (the original's /data) */
  imageDir: string;
  /** one folder per VM: overlay, seed, serial log, run/ sockets */
  vmDir: string;
  /** host address the user-mode forwards bind to */
  forwardHost: string;
  /** address VNC listens on */
  vncListen: string;
  /** address shown to renters as ssh_ip */
  publicHost: string;
  /** ACPI shutdown wait before the hard stop */
  shutdownTimeoutMs: number;
  /** logical cores of the host, the per-VM cpu limit */
  hostCores: number;
  /** memory a new VM may take, in GiB (per VM) */
  hostMemGiB: () => number;
  /** GPUs (PCI addresses) ready for vfio passthrough */
  passthroughGpus: () => Promise<string[]>;
  /** reconciler period */
  reconcileIntervalMs?: number;
  /** disks, snapshots, images (issue 4): allowed directories, rsync bandwidth limit */
  storage?: StorageOptions;
  /** the node's network mode: user (QEMU hostfwd) or bridge (taps, dnsmasq, nftables), LANs, multicast */
  network: NetworkDriver;
  /** LANs without members are deleted after this long unused (the original: 3 days) */
  lanIdleMs?: number;
}

const MARK_TRANSIENT = new Set([
  'creating', 'starting', 'being shutdown', 'being poweroff', 'restarting', 'resetting', 'deleting',
]);

type OpKind = 'create' | 'start' | 'shutdown' | 'poweroff' | 'restart' | 'reset' | 'delete' | 'recover';

interface OpPlan {
  kind: OpKind;
  transient: string;
  errorStatus: string;
  wantRunning: 0 | 1;
  /** the task's final status, or the status and a note for the operation (e.g. how a shutdown ended) */
  work: (op: OperationRow) => Promise<string | { status: string; stage: string }>;
}

export class TaskEngine {
  private readonly inFlight = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** disks, snapshots, image directory and transfers (storage/service.ts) */
  readonly storage: StorageService;

  constructor(
    private readonly store: TaskStore,
    private readonly hv: Hypervisor,
    private readonly config: EngineConfig,
    private readonly log: Logger,
  ) {
    this.storage = new StorageService(this.storageHost(), config.storage);
  }

  // --- lifecycle of the engine ------------------------------------------------------------------------

  async init(): Promise<void> {
    mkdirSync(this.config.vmDir, { recursive: true });
    mkdirSync(this.config.imageDir, { recursive: true });
    this.hv.onExit((exit) => this.onVmExit(exit.taskId, exit.reason));
    await this.net.init();
    await this.reconcile(true);
    await this.storage.init();
    const every = this.config.reconcileIntervalMs ?? 15_000;
    this.timer = setInterval(() => {
      this.reconcile(false).catch((err) => this.log.error({ err }, 'reconcile failed'));
    }, every);
    this.timer.unref();
  }

  /** stop timers and let go of QEMU processes; VMs keep running */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled([...this.inFlight.values()]);
    await this.storage.close();
    await this.net.close();
    await this.hv.detachAll();
  }

  get net(): NetworkDriver {
    return this.config.network;
  }

  /** rules and leases for the VMs running now; failures are logged (the reconciler tries again) */
  async syncNetwork(strict = false): Promise<void> {
    const running = new Set(this.hv.running());
    try {
      // the taps of VMs being started or stopped right now stay; rules are for the running ones only
      await this.net.sync(this.store.all().filter((t) => running.has(t.task_id)), new Set(this.inFlight.keys()));
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'network sync failed');
      if (strict) throw err;
    }
  }

  /** wait for every operation in flight (tests) */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()]);
  }

  // --- queries ------------------------------------------------------------------------------------------

  /** the caller's task or `task_id not exist` (also for someone else's task: no probing) */
  owned(taskId: string, account: string): TaskRow {
    if (!STORED_TASK_ID_RE.test(taskId)) throw NodeErrors.taskNotExist();
    const task = this.store.get(taskId);
    if (!task || task.wallet !== account) throw NodeErrors.taskNotExist();
    return task;
  }

  list(account: string): TaskRow[] {
    return this.store.byWallet(account);
  }

  all(): TaskRow[] {
    return this.store.all();
  }

  disks(taskId: string): DiskRow[] {
    return this.store.disks(taskId);
  }

  operation(id: string, account: string): OperationRow {
    const op = this.store.operation(id);
    if (!op || op.wallet !== account) throw NodeErrors.generic('operation not exist');
    return op;
  }

  operationsOf(taskId: string): OperationRow[] {
    return this.store.operationsOfTask(taskId);
  }

  isBusy(taskId: string): boolean {
    return this.inFlight.has(taskId);
  }

  gpusInUse(): number {
    return this.store.all().filter((t) => t.status !== 'closed').reduce((n, t) => n + t.gpu_count, 0);
  }

  // --- create ---------------------------------------------------------------------------------------------

  async create(owner: { account: string; rentOrder: string; rentedGpus: number }, p: CreateParams): Promise<{ task: TaskRow; operationId: string }> {
    const taskId = p.taskId ?? this.newTaskId();
    if (this.store.get(taskId)) throw NodeErrors.taskIdExists();

    this.baseImage(p.imageName);
    const dataPath = p.dataFileName === undefined ? undefined : this.ownDataFile(owner.account, p.dataFileName);

    if (p.publicIp !== '') throw NodeErrors.invalidParam('public_ip is not supported on this node');
    const lan = this.net.checkCreate(owner.account, p);
    this.net.filters(p.networkFilters);

    await this.checkPorts(taskId, { ssh: p.sshPort, rdp: p.rdpPort, vnc: p.vncPort, custom: p.customMappings });

    // the data disk and the system overlay are promises the image directory's file system must be able to keep
    if (p.diskGb > 0 && dataPath === undefined && !(await this.storage.quota.allows(this.config.imageDir, p.diskGb * 1024 ** 3 + (await this.baseVirtualSize(p.imageName))))) {
      throw NodeErrors.diskAllocate();
    }
    if (p.gpuCount > owner.rentedGpus) throw NodeErrors.gpuExceedsLease();
    const gpus = await this.allocateGpus(p.gpuCount);
    if (p.cpuCores > this.config.hostCores) throw NodeErrors.cpuAllocate();
    if (p.memGb > this.config.hostMemGiB()) throw NodeErrors.memAllocate();

    const now = Date.now();
    const vmDir = this.taskDir(taskId);
    const task: TaskRow = {
      task_id: taskId,
      wallet: owner.account,
      rent_order: owner.rentOrder,
      status: 'creating',
      desc: p.desc,
      create_time: localTimestamp(now),
      created_at: now,
      image_name: p.imageName,
      os: p.os,
      bios_mode: p.biosMode,
      nic_model: p.nicModel,
      ssh_port: p.sshPort,
      rdp_port: p.rdpPort,
      vnc_port: p.vncPort,
      vnc_password: generatePassword(8, randomBytes),
      login_user: p.os === 'windows' ? 'Administrator' : 'dbc',
      login_password: generatePassword(16, randomBytes),
      cpu_cores: p.cpuCores,
      mem_size_gb: p.memGb,
      gpu_count: p.gpuCount,
      gpus: JSON.stringify(gpus),
      disk_size_gb: p.diskGb,
      custom_ports: JSON.stringify(p.customPorts),
      multicast: JSON.stringify(p.multicast),
      network_name: p.networkName,
      network_filters: JSON.stringify(p.networkFilters),
      public_ip: p.publicIp,
      pending: '{}',
      want_running: 1,
      last_error: '',
      closed_at: null,
      updated_at: now,
    };
    const disks: DiskRow[] = [];
    if (p.biosMode !== 'pxe') {
      disks.push({ task_id: taskId, name: 'vda', path: join(vmDir, 'vda.qcow2'), size_gb: 0, kind: 'os', owned: 1 });
      disks.push({
        task_id: taskId,
        name: 'vdb',
        path: dataPath ?? join(this.config.imageDir, `data_${randomBase58(6, randomBytes)}_${taskId}.qcow2`),
        size_gb: p.diskGb,
        kind: 'data',
        owned: dataPath ? 0 : 1,
      });
    }
    // the record exists before any file or process does: a crash from here on is resumed by the reconciler
    this.store.insert(task, disks);
    if (lan) {
      try {
        this.net.lans.assign(taskId, lan, nicMac(taskId, 'lan0'));
      } catch (err) {
        this.store.remove(taskId);
        throw err;
      }
    }
    const operationId = this.runOp(task, this.createPlan(taskId), true);
    return { task, operationId };
  }

  private createPlan(taskId: string): OpPlan {
    return {
      kind: 'create',
      transient: 'creating',
      errorStatus: 'create error',
      wantRunning: 1,
      work: async (op) => {
        const task = this.mustGet(taskId);
        mkdirSync(this.runDir(taskId), { recursive: true });
        for (const disk of this.store.disks(taskId)) {
          if (existsSync(disk.path)) continue;
          const tmp = `${disk.path}.part`;
          rmSync(tmp, { force: true });
          if (disk.kind === 'os') {
            this.progress(op, 20, 'overlay');
            await qemuImg.createOverlay(join(this.config.imageDir, task.image_name), tmp);
          } else {
            this.progress(op, 40, 'data disk');
            await qemuImg.createDisk(tmp, disk.size_gb);
          }
          renameSync(tmp, disk.path);
        }
        this.progress(op, 60, 'seed');
        await this.writeSeed(task);
        this.progress(op, 80, 'boot');
        await this.boot(task);
        return 'running';
      },
    };
  }

  /**
   * A base image VMs may be built on: a listed image of the image directory (the original's list skips names with
   * `data`), never a file some task uses as a disk. Base images are only ever opened read-only (as a backing file).
   */
  private baseImage(name: string): string {
    const path = join(this.config.imageDir, name);
    if (!isListedImageName(name) || !isFileAt(path) || this.store.allDisks().some((d) => d.path === path)) {
      throw NodeErrors.imageNotExist(`/data/${name}`);
    }
    return path;
  }

  private async baseVirtualSize(name: string): Promise<number> {
    try {
      return (await imageFacts(join(this.config.imageDir, name))).virtualSize;
    } catch {
      return 0;
    }
  }

  /**
   * A data disk the caller may attach read-write as vdb: a `data` file of the image directory that the caller
   * downloaded there (images/download) and no other task uses. Anything else, including another renter's disk and
   * the operator's base images, gets the same `not exist` text, so a guessed name confirms nothing.
   */
  private ownDataFile(account: string, name: string): string {
    const path = join(this.config.imageDir, name);
    const notExist = NodeErrors.dataFileNotExist(`/data/${name}`);
    if (!name.includes('data') || !isPlainFile(path)) throw notExist;
    const users = this.store.allDisks().filter((d) => d.path === path);
    const download = this.store.transfersOf('download', name).find((t) => t.local_path === path && t.status === 'done');
    const owner = users.length > 0 ? this.store.get(users[0]!.task_id)?.wallet : download?.wallet;
    if (owner !== account) throw notExist;
    if (users.length > 0) throw NodeErrors.invalidParam(`data_file_name is used by another task: ${users[0]!.task_id}`);
    return path;
  }

  // --- power actions ----------------------------------------------------------------------------------

  start(task: TaskRow): string {
    if (task.status === 'running') {
      return this.runOp(task, {
        kind: 'start', transient: 'starting', errorStatus: 'start error', wantRunning: 1,
        work: async () => {
          const state = await this.hv.state(task.task_id);
          if (state === 'running') throw NodeErrors.taskState('running');
          await this.hv.wakeup(task.task_id);
          return 'running';
        },
      });
    }
    this.requireSettled(task);
    return this.runOp(task, {
      kind: 'start', transient: 'starting', errorStatus: 'start error', wantRunning: 1,
      work: async () => {
        const state = await this.hv.state(task.task_id);
        if (state === 'suspended' || state === 'paused') await this.hv.wakeup(task.task_id);
        else if (state === 'shutoff') await this.boot(this.applyPending(task.task_id));
        return 'running';
      },
    });
  }

  shutdown(task: TaskRow): string {
    this.requireRunning(task);
    return this.runOp(task, {
      kind: 'shutdown', transient: 'being shutdown', errorStatus: 'shutdown error', wantRunning: 0,
      work: async () => {
        const how = await this.hv.shutdown(task.task_id, this.config.shutdownTimeoutMs);
        await this.net.release(task.task_id);
        this.log.info({ task_id: task.task_id, how }, 'vm shut down');
        return { status: 'closed', stage: how === 'acpi' ? 'closed by ACPI shutdown' : 'closed by hard stop after the ACPI timeout' };
      },
    });
  }

  poweroff(task: TaskRow): string {
    this.requireRunning(task);
    return this.runOp(task, this.poweroffPlan(task.task_id));
  }

  private poweroffPlan(taskId: string): OpPlan {
    return {
      kind: 'poweroff', transient: 'being poweroff', errorStatus: 'poweroff error', wantRunning: 0,
      work: async () => {
        await this.hv.destroy(taskId);
        await this.net.release(taskId);
        return 'closed';
      },
    };
  }

  restart(task: TaskRow, force: boolean): string {
    this.requireSettled(task);
    return this.runOp(task, {
      kind: 'restart', transient: 'restarting', errorStatus: 'restart error', wantRunning: 1,
      work: async () => {
        const state = await this.hv.state(task.task_id);
        if (state !== 'shutoff') {
          if (force) await this.hv.destroy(task.task_id);
          else await this.hv.shutdown(task.task_id, this.config.shutdownTimeoutMs);
        }
        await this.boot(this.applyPending(task.task_id));
        return 'running';
      },
    });
  }

  reset(task: TaskRow): string {
    this.requireRunning(task);
    return this.runOp(task, {
      kind: 'reset', transient: 'resetting', errorStatus: 'reset error', wantRunning: 1,
      work: async () => {
        await this.hv.reset(task.task_id);
        return 'running';
      },
    });
  }

  remove(task: TaskRow): string {
    if (this.inFlight.has(task.task_id) && task.status !== 'creating') throw NodeErrors.taskBusy(task.status);
    return this.runOp(task, this.deletePlan(task.task_id), false, true);
  }

  private deletePlan(taskId: string): OpPlan {
    return {
      kind: 'delete', transient: 'deleting', errorStatus: 'delete error', wantRunning: 0,
      work: async () => {
        await this.hv.destroy(taskId);
        await this.net.release(taskId);
        const row = this.store.get(taskId);
        if (row) await this.net.forget(row);
        for (const disk of this.store.disks(taskId)) {
          if (disk.owned) {
            rmSync(disk.path, { force: true });
            rmSync(`${disk.path}.part`, { force: true });
          }
        }
        rmSync(this.taskDir(taskId), { recursive: true, force: true });
        this.store.remove(taskId);
        return 'deleted';
      },
    };
  }

  // --- modify, passwd, logs ---------------------------------------------------------------------------

  async modify(task: TaskRow, m: ModifyParams): Promise<string> {
    if (this.inFlight.has(task.task_id)) throw NodeErrors.taskBusy(task.status);
    const ssh = m.sshPort ?? task.ssh_port;
    const rdp = m.rdpPort ?? task.rdp_port;
    const vnc = m.vncPort ?? task.vnc_port;
    const customMappings = m.customMappings ?? parseCustomPorts(JSON.parse(task.custom_ports));
    if (ssh && rdp && ssh === rdp) throw NodeErrors.samePorts();
    await this.checkPorts(
      task.task_id,
      { ssh, rdp, vnc, custom: customMappings },
      { ssh: task.ssh_port, rdp: task.rdp_port, vnc: task.vnc_port, custom: parseCustomPorts(JSON.parse(task.custom_ports)) },
      'new',
    );
    const pending: Record<string, number> = JSON.parse(task.pending);
    let nextBoot = false;
    if (m.vncPort !== undefined && m.vncPort !== task.vnc_port) {
      pending.vnc_port = m.vncPort;
      nextBoot = true;
    }
    if (m.gpuCount !== undefined && m.gpuCount !== task.gpu_count) {
      const available = (await this.config.passthroughGpus()).length;
      if (m.gpuCount > available) throw NodeErrors.gpuNotAvailable(m.gpuCount, available);
      pending.gpu_count = m.gpuCount;
      nextBoot = true;
    }
    if (m.cpuCores !== undefined && m.cpuCores !== task.cpu_cores) {
      if (m.cpuCores > this.config.hostCores) throw NodeErrors.cpuAllocate();
      pending.cpu_cores = m.cpuCores;
      nextBoot = true;
    }
    if (m.memGb !== undefined && m.memGb !== task.mem_size_gb) {
      if (m.memGb > this.config.hostMemGiB()) throw NodeErrors.memAllocate();
      pending.mem_size_gb = m.memGb;
      nextBoot = true;
    }
    if (m.publicIp !== undefined && m.publicIp !== '') {
      throw NodeErrors.invalidParam('public_ip is not supported on this node');
    }
    if (m.networkFilters) this.net.filters(m.networkFilters);

    // ports apply at once on a running VM: swap the forwards, then record them
    const newTask: TaskRow = {
      ...task,
      ssh_port: ssh,
      rdp_port: rdp,
      custom_ports: JSON.stringify(m.customPorts ?? JSON.parse(task.custom_ports)),
    };
    const oldFwd = this.forwardsOf(task);
    const newFwd = this.forwardsOf(newTask);
    const key = (f: HostForward) => `${f.proto}:${f.hostAddr}:${f.hostPort}:${f.guestPort}`;
    if (!this.net.kernelForwards && this.hv.running().includes(task.task_id)) {
      const keep = new Set(newFwd.map(key));
      const had = new Set(oldFwd.map(key));
      for (const f of oldFwd) if (!keep.has(key(f))) await this.hv.removeForward(task.task_id, f);
      for (const f of newFwd) if (!had.has(key(f))) await this.hv.addForward(task.task_id, f);
    }
    this.store.update(task.task_id, {
      ssh_port: ssh,
      rdp_port: rdp,
      custom_ports: newTask.custom_ports,
      network_filters: m.networkFilters ? JSON.stringify(m.networkFilters) : task.network_filters,
      pending: JSON.stringify(pending),
    });
    // bridge mode: forwards and filters are the kernel's; the renter learns at once when they cannot be applied
    if (this.net.kernelForwards) await this.syncNetwork(true);
    return nextBoot ? 'some changes will take effect on the next boot' : 'ok';
  }

  async passwd(task: TaskRow, username: string, password: string): Promise<void> {
    if (task.status !== 'running' || !this.hv.running().includes(task.task_id)) throw NodeErrors.passwdNotRunning();
    await this.hv.agent(task.task_id, 'guest-set-user-password', {
      username,
      password: Buffer.from(password, 'utf8').toString('base64'),
      crypted: false,
    }, 10_000);
    this.store.update(task.task_id, { login_user: username, login_password: password });
  }

  /** serial console lines; head or tail, at most `lines` lines and 1024 bytes (the API docs' cap) */
  logs(task: TaskRow, flag: 'head' | 'tail', lines: number, maxBytes = 1024): string[] {
    const file = this.serialLog(task.task_id);
    if (!existsSync(file)) throw NodeErrors.logNotExist();
    const window = 64 * 1024;
    const size = statSync(file).size;
    const start = flag === 'head' ? 0 : Math.max(0, size - window);
    const len = Math.min(window, size - start);
    const buf = Buffer.alloc(len);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buf, 0, len, start);
    } finally {
      closeSync(fd);
    }
    let all = buf
      .toString('utf8')
      // eslint-disable-next-line no-control-regex
      .replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '')
      .split('\n')
      .map((l) => l.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').trimEnd());
    if (flag === 'tail' && start > 0) all = all.slice(1); // the first line may be cut
    if (all.length > 0 && all[all.length - 1] === '') all.pop();
    const picked = flag === 'head' ? all.slice(0, lines) : all.slice(-lines);
    const out: string[] = [];
    let bytes = 0;
    // keep the lines nearest to the start (head) or the end (tail) within the byte cap
    const ordered = flag === 'head' ? picked : [...picked].reverse();
    for (const line of ordered) {
      const n = Buffer.byteLength(line) + 1;
      if (bytes + n > maxBytes) break;
      bytes += n;
      out.push(line);
    }
    return flag === 'head' ? out : out.reverse();
  }

  // --- rental expiry ------------------------------------------------------------------------------------

  /** stop every VM of account because its rental ended; remembers when, for the grace period */
  closeForExpiry(account: string, nowMs: number): void {
    for (const task of this.store.byWallet(account)) {
      if (task.closed_at === null) this.store.update(task.task_id, { closed_at: nowMs });
      if (this.inFlight.has(task.task_id)) continue;
      if (task.status !== 'closed' || this.hv.running().includes(task.task_id)) {
        this.runOp(task, this.poweroffPlan(task.task_id));
      }
    }
  }

  /** delete the VMs of account that were closed for expiry more than graceMs ago */
  deleteExpired(account: string, nowMs: number, graceMs: number): void {
    for (const task of this.store.byWallet(account)) {
      if (task.closed_at !== null && nowMs - task.closed_at >= graceMs && !this.inFlight.has(task.task_id)) {
        this.runOp(task, this.deletePlan(task.task_id), false, true);
      }
    }
  }

  /** the rental came back (relet): forget the expiry mark */
  clearExpiry(account: string): void {
    for (const task of this.store.byWallet(account)) {
      if (task.closed_at !== null) this.store.update(task.task_id, { closed_at: null });
    }
  }

  // --- detail -----------------------------------------------------------------------------------------

  forwardsOf(task: TaskRow): HostForward[] {
    const host = this.config.forwardHost;
    const fwd: HostForward[] = [];
    if (task.ssh_port) fwd.push({ proto: 'tcp', hostAddr: host, hostPort: task.ssh_port, guestPort: 22 });
    if (task.rdp_port) fwd.push({ proto: 'tcp', hostAddr: host, hostPort: task.rdp_port, guestPort: 3389 });
    fwd.push(...expandForwards(parseCustomPorts(JSON.parse(task.custom_ports)), host));
    return fwd;
  }

  /** a task disk's path as a renter sees it (`/data/...`, never the node's data directory) */
  shownDiskPath(taskId: string, path: string): string {
    return shownPath(path, this.config.imageDir, { taskId, dir: this.taskDir(taskId) });
  }

  runDir(taskId: string): string {
    return join(this.taskDir(taskId), 'run');
  }

  serialLog(taskId: string): string {
    return join(this.taskDir(taskId), 'serial.log');
  }

  // --- internals --------------------------------------------------------------------------------------

  private taskDir(taskId: string): string {
    if (!STORED_TASK_ID_RE.test(taskId)) throw NodeErrors.taskNotExist();
    return join(this.config.vmDir, taskId);
  }

  private mustGet(taskId: string): TaskRow {
    const t = this.store.get(taskId);
    if (!t) throw NodeErrors.taskNotExist();
    return t;
  }

  private newTaskId(): string {
    for (;;) {
      const id = randomBase58(22, randomBytes);
      if (!this.store.get(id)) return id;
    }
  }

  private progress(op: OperationRow, progress: number, stage: string): void {
    this.store.updateOperation(op.id, { progress, stage });
  }

  private requireRunning(task: TaskRow): void {
    if (this.inFlight.has(task.task_id) || MARK_TRANSIENT.has(task.status)) throw NodeErrors.taskBusy(task.status);
    if (task.status !== 'running') throw NodeErrors.taskState(task.status === 'closed' ? 'shut_off' : task.status);
  }

  private requireSettled(task: TaskRow): void {
    if (this.inFlight.has(task.task_id) || MARK_TRANSIENT.has(task.status)) throw NodeErrors.taskBusy(task.status);
  }

  /**
   * Runs plan as an operation: the task shows plan.transient at once, then the final status or plan.errorStatus.
   * One operation per task at a time; `resume` re-runs work left by a daemon that died.
   */
  private runOp(task: TaskRow, plan: OpPlan, creating = false, deleting = false): string {
    const id = task.task_id;
    if (this.inFlight.has(id) && !deleting) throw NodeErrors.taskBusy(task.status);
    const op = this.store.createOperation({ id: randomUUID(), task_id: id, wallet: task.wallet, kind: plan.kind, status: 'running' });
    if (!creating) this.store.update(id, { status: plan.transient, want_running: plan.wantRunning });
    const previous = this.inFlight.get(id);
    const run = (async () => {
      if (previous) await previous.catch(() => undefined);
      try {
        const result = await plan.work(op);
        // rules and taps follow the VMs that run now, before the task says so
        await this.syncNetwork();
        const final = typeof result === 'string' ? result : result.status;
        if (final !== 'deleted') this.store.update(id, { status: final, last_error: '' });
        this.store.updateOperation(op.id, { status: 'done', progress: 100, stage: typeof result === 'string' ? final : result.stage });
        this.log.info({ task_id: id, op: plan.kind, status: final }, 'operation done');
      } catch (err) {
        this.log.warn({ task_id: id, op: plan.kind, operation_id: op.id, err: err instanceof Error ? err.message : String(err) }, 'operation failed');
        const text = publicErrorText(err);
        await this.syncNetwork();
        if (this.store.get(id)) this.store.update(id, { status: plan.errorStatus, last_error: text });
        this.store.updateOperation(op.id, { status: 'failed', error: text });
      }
    })();
    const tracked = run.finally(() => {
      if (this.inFlight.get(id) === tracked) this.inFlight.delete(id);
    });
    this.inFlight.set(id, tracked);
    return op.id;
  }

  private applyPending(taskId: string): TaskRow {
    const task = this.mustGet(taskId);
    const pending = JSON.parse(task.pending) as Partial<TaskRow>;
    if (Object.keys(pending).length > 0) this.store.update(taskId, { ...pending, pending: '{}' });
    return this.mustGet(taskId);
  }

  private async writeSeed(task: TaskRow): Promise<void> {
    if (task.bios_mode === 'pxe') return;
    const iso = join(this.taskDir(task.task_id), 'seed.iso');
    const tmp = `${iso}.part`;
    rmSync(tmp, { force: true });
    await writeNoCloudSeed(tmp, {
      instanceId: task.task_id,
      hostname: `dbc-${task.task_id.slice(0, 12).replace(/[^A-Za-z0-9-]/g, "-")}`,
      user: task.login_user === 'Administrator' ? 'administrator' : task.login_user,
      password: task.login_password,
    });
    renameSync(tmp, iso);
  }

  private async specOf(task: TaskRow, vmNet: { tap?: string; extraNics: VmSpec['extraNics'] } = { extraNics: [] }): Promise<VmSpec> {
    const seed = join(this.taskDir(task.task_id), 'seed.iso');
    return {
      taskId: task.task_id,
      runDir: this.runDir(task.task_id),
      name: task.task_id,
      cpuCores: task.cpu_cores,
      memMiB: task.mem_size_gb * 1024,
      disks: this.store.disks(task.task_id).map((d) => ({ name: d.name, path: d.path })),
      seedIso: existsSync(seed) ? seed : undefined,
      biosMode: task.bios_mode,
      os: task.os,
      nicModel: task.nic_model,
      forwards: vmNet.tap ? [] : this.forwardsOf(task),
      tap: vmNet.tap,
      extraNics: vmNet.extraNics,
      vnc: { listen: this.config.vncListen, port: task.vnc_port, password: task.vnc_password },
      gpus: JSON.parse(task.gpus) as string[],
      serialLog: this.serialLog(task.task_id),
    };
  }

  private async boot(task: TaskRow): Promise<void> {
    mkdirSync(this.runDir(task.task_id), { recursive: true });
    if ((await this.hv.state(task.task_id)) !== 'shutoff') return;
    if (task.gpu_count > 0) {
      // GPUs may have been taken by another VM or vanished since the task was created
      const available = await this.config.passthroughGpus();
      const want = JSON.parse(task.gpus) as string[];
      if (want.length < task.gpu_count || want.some((g) => !available.includes(g))) {
        const gpus = await this.allocateGpus(task.gpu_count, task.task_id);
        this.store.update(task.task_id, { gpus: JSON.stringify(gpus) });
        task = this.mustGet(task.task_id);
      }
    }
    const vmNet = await this.net.prepare(task);
    try {
      await this.hv.start(await this.specOf(task, vmNet));
    } catch (err) {
      await this.net.release(task.task_id).catch(() => undefined);
      throw err;
    }
  }

  private async allocateGpus(count: number, exceptTask?: string): Promise<string[]> {
    if (count === 0) return [];
    const available = await this.config.passthroughGpus();
    const used = new Set(
      this.store
        .all()
        .filter((t) => t.task_id !== exceptTask && t.status !== 'closed')
        .flatMap((t) => JSON.parse(t.gpus) as string[]),
    );
    const free = available.filter((g) => !used.has(g));
    if (free.length < count) throw NodeErrors.gpuNotAvailable(count, free.length);
    return free.slice(0, count);
  }

  /**
   * Host ports must be unique across the node's VMs (running or not: a stopped VM takes its ports back when it
   * starts) and free on the host. `before` holds the task's current ports, which it may keep.
   */
  private async checkPorts(
    taskId: string,
    want: { ssh: number; rdp: number; vnc: number; custom: PortMapping[] },
    before?: { ssh: number; rdp: number; vnc: number; custom: PortMapping[] },
    prefix = '',
  ): Promise<void> {
    const taken = new Map<string, { kind: 'ssh_port' | 'rdp_port' | 'vnc_port' | 'custom_port'; port: number }>();
    for (const t of this.store.all()) {
      if (t.task_id === taskId) continue;
      if (t.ssh_port) taken.set(`tcp:${t.ssh_port}`, { kind: 'ssh_port', port: t.ssh_port });
      if (t.rdp_port) taken.set(`tcp:${t.rdp_port}`, { kind: 'rdp_port', port: t.rdp_port });
      taken.set(`vnc:${t.vnc_port}`, { kind: 'vnc_port', port: t.vnc_port });
      taken.set(`tcp:${t.vnc_port}`, { kind: 'vnc_port', port: t.vnc_port });
      const pending = JSON.parse(t.pending) as { vnc_port?: number };
      if (pending.vnc_port) taken.set(`tcp:${pending.vnc_port}`, { kind: 'vnc_port', port: pending.vnc_port });
      for (const hp of hostPorts(parseCustomPorts(JSON.parse(t.custom_ports)))) {
        taken.set(`${hp.proto}:${hp.port}`, { kind: 'custom_port', port: hp.port });
      }
    }
    const conflict = (kind: 'ssh_port' | 'rdp_port' | 'vnc_port', port: number) => {
      if (prefix) return NodeErrors.newPortUsed(`new_${kind}`, port);
      return NodeErrors.portConflict(kind, port);
    };
    const check = async (kind: 'ssh_port' | 'rdp_port' | 'vnc_port', port: number, current: number | undefined) => {
      if (!port) return;
      if (taken.has(`tcp:${port}`)) throw conflict(kind, port);
      if (port !== current && !(await isHostPortFree(port, kind === 'vnc_port' ? this.config.vncListen : this.config.forwardHost, 'tcp'))) {
        throw prefix ? NodeErrors.newPortUsed(`new_${kind}`, port) : NodeErrors.portOccupied(kind);
      }
    };
    await check('ssh_port', want.ssh, before?.ssh);
    await check('rdp_port', want.rdp, before?.rdp);
    await check('vnc_port', want.vnc, before?.vnc);
    const own = new Set([want.ssh, want.rdp, want.vnc].filter((p) => p > 0).map((p) => `tcp:${p}`));
    const beforeCustom = new Set(before ? hostPorts(before.custom).map((h) => `${h.proto}:${h.port}`) : []);
    for (const hp of hostPorts(want.custom)) {
      const k = `${hp.proto}:${hp.port}`;
      if (taken.has(k) || own.has(k)) throw NodeErrors.customPortConflict(hp.port);
      if (!beforeCustom.has(k) && !(await isHostPortFree(hp.port, this.config.forwardHost, hp.proto))) {
        throw NodeErrors.customPortConflict(hp.port);
      }
    }
  }

  private onVmExit(taskId: string, reason: string): void {
    if (this.closed || this.inFlight.has(taskId)) return; // the operation in flight owns the outcome
    const task = this.store.get(taskId);
    if (!task) return;
    this.log.info({ task_id: taskId, reason }, 'vm exited');
    this.store.update(taskId, { status: 'closed', want_running: 0 });
    void this.net
      .release(taskId)
      .catch((err) => this.log.warn({ task_id: taskId, err: (err as Error).message }, 'network release failed'))
      .then(() => this.syncNetwork());
  }

  /** make the database and the QEMU processes agree */
  private async reconcile(atStart: boolean): Promise<void> {
    if (atStart) {
      for (const op of this.store.unfinishedOperations()) {
        this.store.updateOperation(op.id, { status: 'failed', error: 'interrupted by a node restart; resumed by the reconciler' });
      }
    }
    const tasks = this.store.all();
    const known = new Set(tasks.map((t) => t.task_id));
    for (const task of tasks) {
      if (this.inFlight.has(task.task_id)) continue;
      const id = task.task_id;
      let alive = this.hv.running().includes(id);
      if (!alive && atStart) alive = await this.hv.adopt(id, this.runDir(id)).catch(() => false);
      if (task.status === 'creating') {
        this.runOp(task, this.createPlan(id), true);
      } else if (task.status === 'deleting') {
        this.runOp(task, this.deletePlan(id), false, true);
      } else if (alive) {
        if (task.status !== 'running') this.store.update(id, { status: 'running', want_running: 1 });
      } else if (atStart && task.want_running === 1 && (task.status === 'running' || MARK_TRANSIENT.has(task.status))) {
        // it was running when the node went down and died with the host or was killed: bring it back
        this.runOp(task, {
          kind: 'recover', transient: 'starting', errorStatus: 'start error', wantRunning: 1,
          work: async () => {
            await this.boot(this.applyPending(id));
            return 'running';
          },
        });
      } else if (task.status === 'running' || MARK_TRANSIENT.has(task.status)) {
        this.store.update(id, { status: 'closed', want_running: 0 });
      }
    }
    if (atStart) {
      // QEMU processes or folders of tasks the database no longer has (killed mid-delete)
      let dirs: string[] = [];
      try {
        dirs = readdirSync(this.config.vmDir);
      } catch {
        dirs = [];
      }
      for (const dir of dirs) {
        if (known.has(dir) || !STORED_TASK_ID_RE.test(dir)) continue;
        if (await this.hv.adopt(dir, this.runDir(dir)).catch(() => false)) await this.hv.destroy(dir);
        rmSync(join(this.config.vmDir, dir), { recursive: true, force: true });
        this.log.warn({ task_id: dir }, 'removed leftovers of a deleted task');
      }
    }
    if (!this.closed) await this.cleanIdleLans();
    await this.syncNetwork();
  }

  /** LANs nobody used for lanIdleMs: their devices and DHCP go, then the record */
  private async cleanIdleLans(): Promise<void> {
    for (const row of this.net.lans.idle(this.config.lanIdleMs ?? 3 * 24 * 3600_000)) {
      try {
        await this.net.lanDeleted(row);
        this.net.lans.remove(row.name);
        this.log.info({ network_name: row.name }, 'idle LAN removed');
      } catch (err) {
        this.log.warn({ network_name: row.name, err: (err as Error).message }, 'idle LAN cleanup failed');
      }
    }
  }

  // --- private LANs (original §11) ------------------------------------------------------------------------

  /** lan/create: the record, then the mode's devices and DHCP; the record goes again when those fail */
  async createLan(account: string, name: unknown, ipCidr: unknown): Promise<Record<string, unknown>> {
    const row = this.net.lans.create(account, name, ipCidr);
    try {
      await this.net.lanCreated(row);
    } catch (err) {
      await this.net.lanDeleted(row).catch(() => undefined);
      this.net.lans.remove(row.name);
      throw err;
    }
    this.log.info({ network_name: row.name, ip_cidr: row.ip_cidr, vni: row.vni }, 'LAN created');
    return this.describeLan(row);
  }

  /** lan/delete/<name>: the owner's, without member VMs */
  async deleteLan(account: string, name: string): Promise<void> {
    const row = this.net.lans.checkDelete(account, name);
    await this.net.lanDeleted(row);
    this.net.lans.remove(row.name);
    this.log.info({ network_name: row.name }, 'LAN deleted');
  }

  /** the caller's LANs in the original's list shape */
  listLans(account: string): Array<Record<string, unknown>> {
    return this.net.lans.list(account).map((row) => this.describeLan(row));
  }

  /** one of the caller's LANs, or `network name not exist` (also for another renter's) */
  lanDetail(account: string, name: string): Record<string, unknown> {
    const row = this.net.lans.get(name);
    if (!row || row.wallet !== account) throw LanErrors.notExist();
    return this.describeLan(row);
  }

  private describeLan(row: NetworkRow): Record<string, unknown> {
    return this.net.lans.describe(row, { ...this.net.lanFields(row), members_local_address: this.net.lans.leases(row.name).map((a) => ({ task_id: a.task_id, ip: a.ip })) });
  }

  // --- storage operations (disks, snapshots; issue 4) -------------------------------------------------------

  private storageHost(): StorageHost {
    return {
      store: this.store,
      hv: this.hv,
      imageDir: this.config.imageDir,
      log: this.log,
      taskDir: (taskId) => this.taskDir(taskId),
      isBusy: (taskId) => this.inFlight.has(taskId),
      isTransient: (status) => MARK_TRANSIENT.has(status),
      sideOp: (task, kind, work, lock) => this.sideOp(task, kind, work, lock),
    };
  }

  /**
   * An operation that leaves the task's status alone (disk and snapshot work). With `lock` it holds the task's
   * operation slot, so no power action, delete or other locked storage work runs meanwhile.
   */
  private sideOp(
    task: TaskRow,
    kind: string,
    work: (op: OperationRow) => Promise<SideOpResult>,
    lock: boolean,
  ): { id: string; done: Promise<void> } {
    const id = task.task_id;
    if (lock && (this.inFlight.has(id) || MARK_TRANSIENT.has(task.status))) throw NodeErrors.taskBusy(task.status);
    const op = this.store.createOperation({ id: randomUUID(), task_id: id, wallet: task.wallet, kind, status: 'running' });
    const done = (async () => {
      try {
        const r = await work(op);
        if (r.finished === false) this.store.updateOperation(op.id, { stage: r.stage });
        else this.store.updateOperation(op.id, { status: 'done', progress: 100, stage: r.stage });
        this.log.info({ task_id: id, op: kind, stage: r.stage }, 'storage operation');
      } catch (err) {
        this.log.warn({ task_id: id, op: kind, operation_id: op.id, err: err instanceof Error ? err.message : String(err) }, 'storage operation failed');
        this.store.updateOperation(op.id, { status: 'failed', error: publicErrorText(err) });
        throw err;
      }
    })();
    if (lock) {
      const tracked = done.catch(() => undefined).finally(() => {
        if (this.inFlight.get(id) === tracked) this.inFlight.delete(id);
      });
      this.inFlight.set(id, tracked);
    }
    return { id: op.id, done };
  }

  /** read the first bytes of the serial log (tests, diagnostics) */
  serialText(taskId: string): string {
    const f = this.serialLog(taskId);
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }
}

/** a regular file (a base image may be the operator's symlink; a renter's data file may not) */
function isFileAt(path: string, followLinks = true): boolean {
  try {
    return (followLinks ? statSync(path) : lstatSync(path)).isFile();
  } catch {
    return false;
  }
}

function isPlainFile(path: string): boolean {
  return isFileAt(path, false);
}
