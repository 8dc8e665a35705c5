// The `message` of /mining_nodes with a peer (§12 of original-dbc-node.md), built from a HostInfo snapshot.
// Strings with units everywhere, as the original sent them, except gpu_count / gpu_used (see below).
import type { HostInfo } from './inventory.js';

const KiB_PER_GiB = 1024 * 1024;

/** the original's nominal system disk (g_disk_system_size), also held back from /data */
export const SYSTEM_DISK_GIB = 350;
/** the original's g_reserved_memory, held back only when the host has more than 64 GB */
export const RESERVED_MEM_GIB = 32;
const RESERVE_THRESHOLD_GIB = 64;

/** C++ `ostream << double`: 6 significant digits, no trailing zeros */
function cppNumber(x: number): string {
  return String(Number(x.toPrecision(6)));
}

/**
 * The original scale_size limited to G (size2GB): KiB -> the largest of K, M, G that keeps the integer part
 * below 1024 (G has no cap), a whole number when exact, else 2 decimals: 0 -> "0K", 2048 -> "2M", "23.45G".
 */
export function formatSize(kib: number): string {
  const sign = kib < 0 ? '-' : '';
  const bytes = Math.abs(Math.trunc(kib)) * 1024;
  const units = ['K', 'M', 'G'];
  let text = '0K';
  for (let i = 0; i < units.length; i++) {
    const n = 1024 ** (i + 1);
    const whole = Math.floor(bytes / n);
    text = bytes % n === 0 ? `${whole}${units[i]}` : `${cppNumber(Number((bytes / n).toFixed(2)))}${units[i]}`;
    if (whole < 1024) break;
  }
  return sign + text;
}

/** share as the original printed it: "12.5%", "43.9262%" */
function percent(ratio: number): string {
  return `${cppNumber(Number.isFinite(ratio) ? ratio * 100 : 0)}%`;
}

/** "*.b.*.d": the original hid the 1st and 3rd octet; IPv6 hides every other group the same way */
export function maskIp(ip: string): string {
  const v4 = ip.split('.');
  if (v4.length === 4) return v4.map((p, i) => (i % 2 === 0 ? '*' : p)).join('.');
  if (ip.includes(':'))
    return ip
      .split(':')
      .map((p, i) => (i % 2 === 0 && p !== '' ? '*' : p))
      .join(':');
  return ip ? '*' : '';
}

export interface MiningNodeOptions {
  version: string;
  nodeType?: string;
  /** public IP of the host; sent masked */
  ip: string;
  images: Array<{ image_name: string; image_size: string }>;
  /** GPUs held by tasks that are not shut off */
  gpuUsed: number;
  networkMode?: string;
  reservedMemGiB?: number;
  systemDiskGiB?: number;
}

export function miningNodeMessage(host: HostInfo, opts: MiningNodeOptions): object {
  const systemDiskGiB = opts.systemDiskGiB ?? SYSTEM_DISK_GIB;

  // one physical core per socket stays with the host, as in the original
  const reservedThreads = host.cpu.physicalCpus * Math.max(1, host.cpu.threadsPerCore);
  const usableCores = Math.max(1, host.cpu.cores - reservedThreads);

  const memReserveKiB = host.mem.totalKiB > RESERVE_THRESHOLD_GIB * KiB_PER_GiB ? (opts.reservedMemGiB ?? RESERVED_MEM_GIB) * KiB_PER_GiB : 0;
  const memSizeKiB = Math.max(0, host.mem.totalKiB - memReserveKiB);
  const memFreeKiB = Math.min(memSizeKiB, Math.max(0, host.mem.availableKiB - memReserveKiB));

  const diskTotalKiB = Math.floor(host.disk.totalBytes / 1024);
  const diskAvailKiB = Math.floor(host.disk.freeBytes / 1024);
  // system disks of future VMs come out of /data, so that much is never offered as data disk space
  const diskFreeKiB = Math.max(0, Math.min(diskTotalKiB - systemDiskGiB * KiB_PER_GiB, diskAvailKiB));

  const message: Record<string, unknown> = {
    version: opts.version,
    node_type: opts.nodeType ?? '1',
    ip: maskIp(opts.ip),
    os: host.os,
    cpu: {
      type: host.cpu.type,
      hz: `${host.cpu.mhz}MHz`,
      cores: String(usableCores),
      used_usage: percent(host.cpu.usedPercent / 100),
      physical_cpus: String(host.cpu.physicalCpus),
    },
    gpu: {
      // numbers, not the original's strings: real clients compute `gpu_count - gpu_used` (real-clients-contract §5)
      gpu_count: host.gpus.length,
      gpu_used: Math.min(host.gpus.length, Math.max(0, opts.gpuUsed)),
      gpus: host.gpus.map((g) => ({
        index: g.index,
        name: g.name,
        mem: formatSize(g.memTotalMiB * 1024),
        pci: g.pciBusId,
      })),
    },
    mem: {
      size: formatSize(memSizeKiB),
      free: formatSize(memFreeKiB),
      used_usage: percent(memSizeKiB > 0 ? (memSizeKiB - memFreeKiB) / memSizeKiB : 0),
    },
    disk_system: { type: host.disk.type, size: `${systemDiskGiB}G` },
    disk_data: [
      {
        // the original's data mount point; the node's real directory is not for strangers
        path: '/data',
        type: host.disk.type,
        size: formatSize(diskTotalKiB),
        free: formatSize(diskFreeKiB),
        used_usage: percent(diskTotalKiB > 0 ? (diskTotalKiB - diskAvailKiB) / diskTotalKiB : 0),
      },
    ],
    images: opts.images.map((i) => ({ image_name: i.image_name, image_size: i.image_size })),
  };
  if (opts.networkMode !== undefined) message.network_mode = opts.networkMode;
  return message;
}
