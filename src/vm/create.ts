// tasks/start: every check before anything is written (image, data file, LAN, filters, ports, disk quota, GPUs,
// cores, memory), then the task record, then the create operation: overlay and data disk (qemu-img), the NoCloud
// seed, the boot. The record exists before any file or process does, so a crash is resumed by the reconciler.
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CreateParams, TaskOwner } from '../domain/commands.js';
import type { Disk, Task } from '../domain/task.js';
import { isListedImageName } from '../images/local.js';
import { nicMac } from '../net/mac.js';
import type { OpContext } from '../ops/index.js';
import { NodeErrors } from '../errors/index.js';
import { imageFacts } from '../storage/qemu-extra.js';
import * as qemuImg from '../storage/qemu-img.js';
import { generatePassword, localTimestamp, randomBase58 } from '../util/format.js';
import type { LifecycleDeps, TaskLifecycle } from './lifecycle.js';

export async function createTask(d: LifecycleDeps, lifecycle: TaskLifecycle, owner: TaskOwner, p: CreateParams): Promise<{ task: Task; operationId: string }> {
  const taskId = p.taskId ?? newTaskId(d);
  if (d.store.get(taskId)) throw NodeErrors.taskIdExists();

  baseImage(d, p.imageName);
  const dataPath = p.dataFileName === undefined ? undefined : ownDataFile(d, owner.account, p.dataFileName);

  if (p.publicIp !== '') throw NodeErrors.publicIpNotSupported();
  const lan = d.net.checkCreate(owner.account, p);
  d.net.filters(p.networkFilters);

  await d.placement.checkPorts(taskId, { ssh: p.sshPort, rdp: p.rdpPort, vnc: p.vncPort, custom: p.customPorts });

  // the data disk and the system overlay are promises the image directory's file system must be able to keep
  if (
    p.diskGb > 0 &&
    dataPath === undefined &&
    !(await d.storage.quota.allows(d.paths.imageDir, p.diskGb * 1024 ** 3 + (await baseVirtualSize(d, p.imageName))))
  ) {
    throw NodeErrors.diskAllocate();
  }
  if (p.gpuCount > owner.rentedGpus) throw NodeErrors.gpuExceedsLease();
  const gpus = await d.placement.allocateGpus(p.gpuCount);
  if (p.cpuCores > d.config.hostCores) throw NodeErrors.cpuAllocate();
  if (p.memGb > d.config.hostMemGiB()) throw NodeErrors.memAllocate();

  const now = Date.now();
  const task: Task = {
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
    gpus,
    disk_size_gb: p.diskGb,
    custom_ports: p.customPorts,
    multicast: p.multicast,
    network_name: p.networkName,
    network_filters: p.networkFilters,
    public_ip: p.publicIp,
    pending: {},
    want_running: true,
    guest_ready: false,
    guest_ready_time: '',
    last_error: '',
    closed_at: null,
    updated_at: now,
  };
  const disks: Disk[] = [];
  if (p.biosMode !== 'pxe') {
    disks.push({ task_id: taskId, name: 'vda', path: join(d.paths.taskDir(taskId), 'vda.qcow2'), size_gb: 0, kind: 'os', owned: true });
    disks.push({
      task_id: taskId,
      name: 'vdb',
      path: dataPath ?? join(d.paths.imageDir, `data_${randomBase58(6, randomBytes)}_${taskId}.qcow2`),
      size_gb: p.diskGb,
      kind: 'data',
      owned: dataPath === undefined,
    });
  }
  // the record exists before any file or process does: a crash from here on is resumed by the reconciler
  d.store.insert(task, disks);
  if (lan) {
    try {
      d.net.lans.assign(taskId, lan, nicMac(taskId, 'lan0'));
    } catch (err) {
      d.store.remove(taskId);
      throw err;
    }
  }
  const operationId = lifecycle.run(task, lifecycle.createPlan(taskId), { creating: true });
  return { task, operationId };
}

/** the create operation's work: files that are not there yet, the seed, the boot */
export async function createWork(d: LifecycleDeps, taskId: string, ctx: OpContext): Promise<void> {
  const task = d.booter.mustGet(taskId);
  mkdirSync(d.paths.runDir(taskId), { recursive: true });
  for (const disk of d.store.disks(taskId)) {
    if (existsSync(disk.path)) continue;
    const tmp = `${disk.path}.part`;
    rmSync(tmp, { force: true });
    if (disk.kind === 'os') {
      ctx.progress({ percent: 20, stage: 'overlay' });
      await qemuImg.createOverlay(join(d.paths.imageDir, task.image_name), tmp);
    } else {
      ctx.progress({ percent: 40, stage: 'data disk' });
      await qemuImg.createDisk(tmp, disk.size_gb);
    }
    renameSync(tmp, disk.path);
  }
  ctx.progress({ percent: 60, stage: 'seed' });
  await d.booter.writeSeed(task);
  ctx.progress({ percent: 80, stage: 'boot' });
  await d.booter.boot(task);
}

/**
 * A base image VMs may be built on: a listed image of the image directory (the original's list skips names with
 * `data`), never a file some task uses as a disk. Base images are only ever opened read-only (as a backing file).
 */
function baseImage(d: LifecycleDeps, name: string): string {
  const path = join(d.paths.imageDir, name);
  if (!isListedImageName(name) || !isFileAt(path) || d.store.allDisks().some((x) => x.path === path)) {
    throw NodeErrors.imageNotExist(`/data/${name}`);
  }
  return path;
}

async function baseVirtualSize(d: LifecycleDeps, name: string): Promise<number> {
  try {
    return (await imageFacts(join(d.paths.imageDir, name))).virtualSize;
  } catch {
    return 0;
  }
}

/**
 * A data disk the caller may attach read-write as vdb: a `data` file of the image directory that the caller
 * downloaded there (images/download) and no other task uses. Anything else, including another renter's disk and
 * the operator's base images, gets the same `not exist` text, so a guessed name confirms nothing.
 */
function ownDataFile(d: LifecycleDeps, account: string, name: string): string {
  const path = join(d.paths.imageDir, name);
  const notExist = NodeErrors.dataFileNotExist(`/data/${name}`);
  if (!name.includes('data') || !isFileAt(path, false)) throw notExist;
  const users = d.store.allDisks().filter((x) => x.path === path);
  const download = d.store.transfersOf('download', name).find((t) => t.local_path === path && t.status === 'done');
  const first = users[0];
  const owner = first ? d.store.get(first.task_id)?.wallet : download?.wallet;
  if (owner !== account) throw notExist;
  if (first) throw NodeErrors.dataFileInUse(first.task_id);
  return path;
}

function newTaskId(d: LifecycleDeps): string {
  for (;;) {
    const id = randomBase58(22, randomBytes);
    if (!d.store.get(id)) return id;
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
