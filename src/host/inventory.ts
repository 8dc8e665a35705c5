// What this machine has, for /mining_nodes and for resource checks: CPU, memory, the data disk and the GPUs that can
// be passed through. Read from /proc, /sys and nvidia-smi; every root is injectable so tests run on fixture trees.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { normalisePciBusId, parseNvidiaSmiXml, type GpuInfo } from './nvidia.js';

export interface HostInfo {
  /** "<NAME> <VERSION> <kernel> GNU/Linux", as the original built it from /etc/os-release and `uname -o -r` */
  os: string;
  cpu: {
    /** /proc/cpuinfo model name */
    type: string;
    /** nominal MHz from the model name ("@ 2.40GHz"), else the current `cpu MHz` */
    mhz: number;
    /** logical CPUs */
    cores: number;
    /** sockets (distinct `physical id`) */
    physicalCpus: number;
    /** hardware threads per physical core, to reserve whole cores */
    threadsPerCore: number;
    /** busy share of all CPUs since the previous sample, 0..100 */
    usedPercent: number;
  };
  mem: { totalKiB: number; availableKiB: number };
  gpus: GpuInfo[];
  /** one entry per GPU slot: every PCI function of it must go to the guest together */
  gpuPassthrough: Array<{ pciBusId: string; functions: string[]; vfioReady: boolean }>;
  disk: { path: string; totalBytes: number; freeBytes: number; type: 'SSD' | 'HDD' };
}

export interface HostInventoryOptions {
  /** the data dir whose filesystem holds images and VM disks */
  dataDir: string;
  procRoot?: string;
  sysRoot?: string;
  /** for /etc/os-release */
  etcRoot?: string;
  /** for /dev/vfio */
  devRoot?: string;
  /** `uname -r`; default os.release() */
  kernelRelease?: string;
  /** output of `nvidia-smi -q -x`, null when there is no usable nvidia-smi */
  nvidiaSmi?: () => Promise<string | null>;
  /** how long a snapshot is reused; /mining_nodes may be polled often */
  cacheMs?: number;
}

interface CpuSample {
  total: number;
  idle: number;
}

const NVIDIA_VENDOR = '0x10de';
const PCI_ADDR = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

export function runNvidiaSmi(): Promise<string | null> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', ['-q', '-x'], { timeout: 15_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout) => {
      // absent binary, no driver loaded, or a GPU fallen off the bus: no GPUs from this source
      resolve(err ? null : stdout);
    });
  });
}

async function readText(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return null;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function parseCpuinfo(text: string): Omit<HostInfo['cpu'], 'usedPercent'> {
  let type = '';
  let curMhz = 0;
  let cores = 0;
  let coresPerSocket = 0;
  let siblings = 0;
  const sockets = new Set<string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (key === 'processor') cores++;
    else if (key === 'model name' && !type) type = value;
    else if (key === 'cpu MHz' && !curMhz) curMhz = Number(value) || 0;
    else if (key === 'physical id') sockets.add(value);
    else if (key === 'cpu cores' && !coresPerSocket) coresPerSocket = Number(value) || 0;
    else if (key === 'siblings' && !siblings) siblings = Number(value) || 0;
  }
  const nominal = /([0-9.]+)\s*([GM])Hz/i.exec(type);
  const mhz = nominal ? Math.round(Number(nominal[1]) * (nominal[2]!.toUpperCase() === 'G' ? 1000 : 1)) : Math.round(curMhz);
  const threadsPerCore = coresPerSocket > 0 && siblings >= coresPerSocket ? Math.round(siblings / coresPerSocket) : 1;
  return { type, mhz, cores, physicalCpus: Math.max(1, sockets.size), threadsPerCore };
}

export function parseMeminfo(text: string): HostInfo['mem'] {
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  const totalKiB = field('MemTotal');
  let availableKiB = field('MemAvailable');
  // kernels before 3.14 lack MemAvailable
  if (!/^MemAvailable:/m.test(text)) availableKiB = field('MemFree') + field('Buffers') + field('Cached');
  return { totalKiB, availableKiB: Math.min(availableKiB, totalKiB) };
}

/** first line of /proc/stat: user nice system idle iowait irq softirq steal (guest is already in user) */
export function parseProcStat(text: string): CpuSample | null {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (!line) return null;
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (v.length < 4 || v.some((n) => !Number.isFinite(n))) return null;
  return { total: v.reduce((a, b) => a + b, 0), idle: v[3]! + (v[4] ?? 0) };
}

export function parseOsRelease(text: string): { name: string; version: string; prettyName: string } {
  const get = (key: string) => {
    const m = new RegExp(`^${key}=(.*)$`, 'm').exec(text);
    return m ? m[1]!.trim().replace(/^(["'])(.*)\1$/, '$2') : '';
  };
  return { name: get('NAME'), version: get('VERSION'), prettyName: get('PRETTY_NAME') };
}

export class HostInventory {
  private readonly dataDir: string;
  private readonly procRoot: string;
  private readonly sysRoot: string;
  private readonly etcRoot: string;
  private readonly devRoot: string;
  private readonly kernelRelease: string;
  private readonly nvidiaSmi: () => Promise<string | null>;
  private readonly cacheMs: number;
  private lastCpuSample: CpuSample | null = null;
  private lastUsedPercent = 0;
  private cached: { at: number; snapshot: Promise<HostInfo> } | null = null;

  constructor(opts: HostInventoryOptions) {
    this.dataDir = opts.dataDir;
    this.procRoot = opts.procRoot ?? '/proc';
    this.sysRoot = opts.sysRoot ?? '/sys';
    this.etcRoot = opts.etcRoot ?? '/etc';
    this.devRoot = opts.devRoot ?? '/dev';
    this.kernelRelease = opts.kernelRelease ?? os.release();
    this.nvidiaSmi = opts.nvidiaSmi ?? runNvidiaSmi;
    this.cacheMs = opts.cacheMs ?? 2000;
  }

  async snapshot(): Promise<HostInfo> {
    const now = Date.now();
    if (this.cached && now - this.cached.at < this.cacheMs) return this.cached.snapshot;
    const snapshot = this.collect();
    this.cached = { at: now, snapshot };
    snapshot.catch(() => {
      if (this.cached?.snapshot === snapshot) this.cached = null;
    });
    return snapshot;
  }

  private async collect(): Promise<HostInfo> {
    const [osName, cpu, mem, gpus, disk] = await Promise.all([this.readOs(), this.readCpu(), this.readMem(), this.readGpus(), this.readDisk()]);
    const gpuPassthrough = await this.readPassthrough(gpus);
    return { os: osName, cpu, mem, gpus, gpuPassthrough, disk };
  }

  private async readOs(): Promise<string> {
    const rel = parseOsRelease((await readText(path.join(this.etcRoot, 'os-release'))) ?? '');
    const distro = rel.name && rel.version ? `${rel.name} ${rel.version}` : rel.prettyName || rel.name || 'Linux';
    return `${distro} ${this.kernelRelease} GNU/Linux`;
  }

  private async readCpu(): Promise<HostInfo['cpu']> {
    const info = parseCpuinfo((await readText(path.join(this.procRoot, 'cpuinfo'))) ?? '');
    if (info.cores === 0) info.cores = Math.max(1, os.availableParallelism());
    return { ...info, usedPercent: await this.cpuUsedPercent() };
  }

  /** usage since the previous sample; the first call (or one with no ticks since) samples twice, 100 ms apart */
  private async cpuUsedPercent(): Promise<number> {
    const sample = async () => parseProcStat((await readText(path.join(this.procRoot, 'stat'))) ?? '');
    let prev = this.lastCpuSample;
    let cur = await sample();
    if (!cur) return 0;
    if (!prev || cur.total - prev.total <= 0) {
      prev = cur;
      await sleep(100);
      cur = (await sample()) ?? prev;
    }
    this.lastCpuSample = cur;
    const dTotal = cur.total - prev.total;
    if (dTotal <= 0) return this.lastUsedPercent;
    const busy = Math.min(1, Math.max(0, (dTotal - (cur.idle - prev.idle)) / dTotal));
    this.lastUsedPercent = Math.round(busy * 10000) / 100;
    return this.lastUsedPercent;
  }

  private async readMem(): Promise<HostInfo['mem']> {
    const text = await readText(path.join(this.procRoot, 'meminfo'));
    if (text === null) return { totalKiB: Math.floor(os.totalmem() / 1024), availableKiB: Math.floor(os.freemem() / 1024) };
    return parseMeminfo(text);
  }

  private async readDisk(): Promise<HostInfo['disk']> {
    const st = await fs.statfs(this.dataDir);
    return {
      path: this.dataDir,
      totalBytes: st.blocks * st.bsize,
      freeBytes: st.bavail * st.bsize,
      type: await this.diskType(),
    };
  }

  /** rotational flag of the block device under the data dir; SSD when unknown (overlayfs, tmpfs, containers) */
  private async diskType(): Promise<'SSD' | 'HDD'> {
    try {
      const st = await fs.stat(this.dataDir, { bigint: true });
      const dev = st.dev;
      const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
      const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
      const devDir = path.join(this.sysRoot, 'dev', 'block', `${major}:${minor}`);
      // a partition has no queue/ of its own: its parent disk does
      const flag = (await readText(path.join(devDir, 'queue', 'rotational'))) ?? (await readText(path.join(devDir, '..', 'queue', 'rotational')));
      return flag?.trim() === '1' ? 'HDD' : 'SSD';
    } catch {
      return 'SSD';
    }
  }

  /** nvidia-smi's view, plus NVIDIA display/3D controllers it cannot see (bound to vfio-pci, or no driver) */
  private async readGpus(): Promise<GpuInfo[]> {
    const xml = await this.nvidiaSmi().catch(() => null);
    const gpus = xml ? parseNvidiaSmiXml(xml) : [];
    const known = new Set(gpus.map((g) => g.pciBusId));
    const driverVersion = gpus[0]?.driverVersion ?? '';
    const cudaVersion = gpus[0]?.cudaVersion ?? '';
    for (const dev of await this.sysfsNvidiaControllers()) {
      if (known.has(dev.pciBusId)) continue;
      gpus.push({
        index: gpus.length,
        name: `NVIDIA ${dev.deviceId}`,
        uuid: '',
        pciBusId: dev.pciBusId,
        memTotalMiB: 0,
        memUsedMiB: 0,
        driverVersion,
        cudaVersion,
      });
    }
    return gpus;
  }

  private async sysfsNvidiaControllers(): Promise<Array<{ pciBusId: string; deviceId: string }>> {
    const dir = path.join(this.sysRoot, 'bus', 'pci', 'devices');
    let names: string[];
    try {
      names = (await fs.readdir(dir)).filter((n) => PCI_ADDR.test(n)).sort();
    } catch {
      return [];
    }
    const found: Array<{ pciBusId: string; deviceId: string }> = [];
    for (const name of names) {
      const vendor = (await readText(path.join(dir, name, 'vendor')))?.trim().toLowerCase();
      if (vendor !== NVIDIA_VENDOR) continue;
      const cls = (await readText(path.join(dir, name, 'class')))?.trim().toLowerCase() ?? '';
      // 0x0300xx VGA, 0x0302xx 3D controller (compute GPUs); not the HDMI audio or USB-C functions
      if (!/^0x030[02]/.test(cls)) continue;
      const device = (await readText(path.join(dir, name, 'device')))?.trim().toLowerCase().replace(/^0x/, '') ?? '';
      found.push({ pciBusId: name, deviceId: `10de:${device}` });
    }
    return found;
  }

  private async readPassthrough(gpus: GpuInfo[]): Promise<HostInfo['gpuPassthrough']> {
    const dir = path.join(this.sysRoot, 'bus', 'pci', 'devices');
    const vfioPresent = await exists(path.join(this.devRoot, 'vfio'));
    let all: string[] = [];
    try {
      all = (await fs.readdir(dir)).filter((n) => PCI_ADDR.test(n));
    } catch {
      // no sysfs: report the GPU's own function only
    }
    const slots = new Set<string>();
    const result: HostInfo['gpuPassthrough'] = [];
    for (const gpu of gpus) {
      const busId = normalisePciBusId(gpu.pciBusId);
      if (!busId) continue;
      const slot = busId.slice(0, -2); // 0000:3b:00
      if (slots.has(slot)) continue;
      slots.add(slot);
      const functions = all.filter((n) => n.startsWith(`${slot}.`)).sort();
      if (functions.length === 0) functions.push(busId);
      let vfioReady = vfioPresent;
      for (const fn of functions) {
        if (!vfioReady) break;
        const driver = await fs.readlink(path.join(dir, fn, 'driver')).catch(() => '');
        vfioReady = path.basename(driver) === 'vfio-pci';
      }
      result.push({ pciBusId: busId, functions, vfioReady });
    }
    return result;
  }
}
