// Builds the QEMU command line for a VmSpec. Pure and validating: every value that reaches the argv is checked,
// because QEMU's option syntax splits on commas and a crafted path would inject options.
import { existsSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { nicMac } from '../net/mac.js';
import type { ExtraNic, HostForward, NicModel, VmSpec } from './types.js';

export interface QemuEnv {
  accel: 'kvm' | 'tcg';
  ovmfCode: string;
  /** the per-VM copy of the OVMF variable store */
  ovmfVars: string;
}

const TASK_ID = /^[A-Za-z0-9_]{1,64}$/;
const VM_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
// QEMU device ids: a letter first, then letters, digits, '-', '.', '_'
const DEVICE_ID = /^[A-Za-z][A-Za-z0-9_.-]{0,31}$/;
const PCI_ADDR = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
/** sun_path is 108 bytes including the terminating NUL */
const UNIX_PATH_MAX = 107;

const NIC_DEVICES: Record<NicModel, string> = {
  virtio: 'virtio-net-pci',
  e1000: 'e1000',
  rtl8139: 'rtl8139',
};

/** the QEMU block node / legacy drive id of guest disk `name`: the one place this naming lives */
export function driveId(name: string): string {
  return `drive-${name}`;
}

/** a guest disk name that is safe as a QEMU device id (vda, vdb, ...) */
export function validateDiskName(name: string): string {
  if (typeof name !== 'string' || !DEVICE_ID.test(name)) throw new Error(`invalid disk name: ${JSON.stringify(name)}`);
  return name;
}

export function validateTaskId(taskId: string): string {
  if (typeof taskId !== 'string' || !TASK_ID.test(taskId)) throw new Error(`invalid task id: ${JSON.stringify(taskId)}`);
  return taskId;
}

/** an absolute path that is safe inside a QEMU option value */
export function validatePath(p: string, what = 'path'): string {
  if (typeof p !== 'string' || p.length === 0 || p.length > 4096) throw new Error(`invalid ${what}: ${JSON.stringify(p)}`);
  if (!p.startsWith('/')) throw new Error(`${what} must be absolute: ${JSON.stringify(p)}`);
  if (p.includes(',')) throw new Error(`${what} must not contain ',': ${JSON.stringify(p)}`);
  if (CONTROL.test(p)) throw new Error(`${what} must not contain control characters: ${JSON.stringify(p)}`);
  if (p.split('/').includes('..')) throw new Error(`${what} must not contain '..': ${JSON.stringify(p)}`);
  return p;
}

function validateSocketPath(p: string): string {
  validatePath(p, 'socket path');
  if (Buffer.byteLength(p) > UNIX_PATH_MAX) throw new Error(`socket path too long (max ${UNIX_PATH_MAX} bytes): ${p}`);
  return p;
}

export function validatePort(port: number, what = 'port'): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid ${what}: ${port}`);
  return port;
}

function validateIPv4(addr: string, what: string): string {
  if (typeof addr !== 'string' || !isIPv4(addr)) throw new Error(`${what} must be an IPv4 address: ${JSON.stringify(addr)}`);
  return addr;
}

function validateIntRange(n: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`invalid ${what}: ${n} (allowed ${min}..${max})`);
  return n;
}

export function validateForward(fwd: HostForward): HostForward {
  if (fwd.proto !== 'tcp' && fwd.proto !== 'udp') throw new Error(`invalid forward protocol: ${JSON.stringify(fwd.proto)}`);
  validateIPv4(fwd.hostAddr, 'forward host address');
  validatePort(fwd.hostPort, 'forward host port');
  validatePort(fwd.guestPort, 'forward guest port');
  return fwd;
}

/** slirp rule text, as used by -netdev hostfwd= and HMP hostfwd_add: tcp:127.0.0.1:2222-:22 */
export function hostfwdRule(fwd: HostForward): string {
  validateForward(fwd);
  return `${fwd.proto}:${fwd.hostAddr}:${fwd.hostPort}-:${fwd.guestPort}`;
}

/** the rule as HMP hostfwd_remove wants it: tcp:127.0.0.1:2222 */
export function hostfwdRemoveRule(fwd: HostForward): string {
  validateForward(fwd);
  return `${fwd.proto}:${fwd.hostAddr}:${fwd.hostPort}`;
}

/** a locally administered QEMU MAC (52:54:00 OUI) that stays the same for a task across restarts */
export function macForTask(taskId: string): string {
  return nicMac(validateTaskId(taskId));
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function extraNicArgs(nic: ExtraNic, device: string, ids: Set<string>): string[] {
  if (typeof nic.id !== 'string' || !DEVICE_ID.test(nic.id) || ids.has(nic.id)) throw new Error(`invalid or duplicate nic id: ${JSON.stringify(nic.id)}`);
  ids.add(nic.id);
  if (typeof nic.mac !== 'string' || !MAC.test(nic.mac)) throw new Error(`invalid mac: ${JSON.stringify(nic.mac)}`);
  let netdev: string;
  if (nic.kind === 'tap') {
    if (typeof nic.ifname !== 'string' || !IFNAME.test(nic.ifname) || nic.ifname === '.' || nic.ifname === '..') {
      throw new Error(`invalid tap name: ${JSON.stringify(nic.ifname)}`);
    }
    netdev = `tap,id=${nic.id},ifname=${nic.ifname},script=no,downscript=no`;
  } else if (nic.kind === 'mcast') {
    validateIPv4(nic.group, 'multicast group');
    if (Number(nic.group.split('.')[0]) >> 4 !== 0xe) throw new Error(`not a multicast group: ${nic.group}`);
    validatePort(nic.port, 'multicast port');
    validateIPv4(nic.localAddr, 'multicast local address');
    netdev = `socket,id=${nic.id},mcast=${nic.group}:${nic.port},localaddr=${nic.localAddr}`;
  } else {
    throw new Error(`invalid nic kind: ${JSON.stringify((nic as { kind: unknown }).kind)}`);
  }
  let dev = `${device},netdev=${nic.id},id=nic-${nic.id},mac=${nic.mac},romfile=`;
  if (nic.mtu !== undefined) {
    validateIntRange(nic.mtu, 576, 65535, 'nic mtu');
    if (device === 'virtio-net-pci') dev += `,host_mtu=${nic.mtu}`;
  }
  return ['-netdev', netdev, '-device', dev];
}

export const RUN_FILES = {
  qmp: 'qmp.sock',
  serial: 'serial.sock',
  qga: 'qga.sock',
  pid: 'qemu.pid',
  stderr: 'qemu.stderr.log',
  ovmfVars: 'OVMF_VARS.fd',
} as const;

export function runFile(runDir: string, name: keyof typeof RUN_FILES): string {
  return `${runDir.replace(/\/+$/, '')}/${RUN_FILES[name]}`;
}

export function buildQemuArgs(spec: VmSpec, env: QemuEnv): string[] {
  validateTaskId(spec.taskId);
  validatePath(spec.runDir, 'runDir');
  if (typeof spec.name !== 'string' || !VM_NAME.test(spec.name)) throw new Error(`invalid VM name: ${JSON.stringify(spec.name)}`);
  validateIntRange(spec.cpuCores, 1, 256, 'cpu cores');
  validateIntRange(spec.memMiB, 64, 1048576, 'memory (MiB)');
  if (env.accel !== 'kvm' && env.accel !== 'tcg') throw new Error(`invalid accel: ${JSON.stringify(env.accel)}`);
  if (spec.biosMode !== 'legacy' && spec.biosMode !== 'uefi' && spec.biosMode !== 'pxe') {
    throw new Error(`invalid bios mode: ${JSON.stringify(spec.biosMode)}`);
  }
  if (spec.os !== 'linux' && spec.os !== 'windows') throw new Error(`invalid guest os: ${JSON.stringify(spec.os)}`);
  if (!Object.hasOwn(NIC_DEVICES, spec.nicModel)) throw new Error(`invalid nic model: ${JSON.stringify(spec.nicModel)}`);
  const nicDevice = NIC_DEVICES[spec.nicModel];
  validatePath(spec.serialLog, 'serial log');
  validateIPv4(spec.vnc.listen, 'vnc listen address');
  validateIntRange(spec.vnc.port, 5900, 65535, 'vnc port');

  const qmpSock = validateSocketPath(runFile(spec.runDir, 'qmp'));
  const serialSock = validateSocketPath(runFile(spec.runDir, 'serial'));
  const qgaSock = validateSocketPath(runFile(spec.runDir, 'qga'));
  const pidFile = runFile(spec.runDir, 'pid');

  const args: string[] = ['-name', spec.name, '-machine', spec.os === 'windows' ? 'q35' : 'pc', '-accel', env.accel];
  // TCG: 'max' exposes the newest emulated features, which modern guests (x86-64-v2 and up) need
  args.push('-cpu', env.accel === 'kvm' ? 'host' : 'max');
  args.push('-smp', String(spec.cpuCores), '-m', String(spec.memMiB));
  // -nodefaults: no implicit NIC/cdrom/floppy/monitor, so the device set (and guest-visible ids) is ours alone
  args.push('-nodefaults', '-device', 'VGA,id=video0');
  args.push('-display', 'none', '-vnc', `${spec.vnc.listen}:${spec.vnc.port - 5900},password=on`);
  args.push('-chardev', `socket,id=serial0,path=${serialSock},server=on,wait=off,logfile=${spec.serialLog},logappend=on`, '-serial', 'chardev:serial0');
  args.push('-qmp', `unix:${qmpSock},server=on,wait=off`, '-monitor', 'none');
  args.push('-pidfile', pidFile);
  args.push(
    '-device',
    'virtio-serial-pci,id=virtio-serial0',
    '-chardev',
    `socket,id=qga0,path=${qgaSock},server=on,wait=off`,
    '-device',
    'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
  );

  if (spec.biosMode === 'uefi') {
    validatePath(env.ovmfCode, 'OVMF code');
    validatePath(env.ovmfVars, 'OVMF vars');
    args.push('-drive', `if=pflash,format=raw,readonly=on,file=${env.ovmfCode}`, '-drive', `if=pflash,format=raw,file=${env.ovmfVars}`);
  }

  const disks = spec.disks ?? [];
  if (spec.biosMode !== 'pxe' && disks.length === 0) throw new Error(`boot mode ${spec.biosMode} needs a disk`);
  const ids = new Set<string>(['seed', 'seed-scsi', 'net0', 'video0', 'virtio-serial0']);
  // pxe: the NIC boots first, vda (if any) after it
  const diskBootIndex = spec.biosMode === 'pxe' ? 2 : 1;
  for (const disk of disks) {
    validateDiskName(disk.name);
    if (ids.has(disk.name)) throw new Error(`duplicate or reserved disk name: ${disk.name}`);
    ids.add(disk.name);
    validatePath(disk.path, `disk ${disk.name} path`);
    args.push(
      '-drive',
      `if=none,id=${driveId(disk.name)},file=${disk.path},format=qcow2`,
      '-device',
      // serial=<name>: the guest's /dev/disk/by-id/virtio-<name> (and /sys/block/vdX/serial) names the API's disk
      `virtio-blk-pci,drive=${driveId(disk.name)},id=${disk.name},serial=${disk.name}${disk === disks[0] ? `,bootindex=${diskBootIndex}` : ''}`,
    );
  }
  if (spec.seedIso !== undefined) {
    validatePath(spec.seedIso, 'seed ISO');
    // the NoCloud seed is a CD (/dev/sr0), not a virtio disk: the guest's vdX names are the API's disks only, so a
    // hot-added disk gets the name the API gave it. Linux guests get it on virtio-scsi: an IDE CD is not detected by
    // Linux after OVMF (measured: no ATAPI device, so cloud-init found no seed); Windows keeps the q35 AHCI CD it has
    // in-box drivers for.
    args.push('-drive', `if=none,id=${driveId('seed')},file=${spec.seedIso},format=raw,media=cdrom,readonly=on`);
    if (spec.os === 'windows') args.push('-device', `ide-cd,drive=${driveId('seed')},id=seed`);
    else args.push('-device', 'virtio-scsi-pci,id=seed-scsi', '-device', `scsi-cd,bus=seed-scsi.0,drive=${driveId('seed')},id=seed`);
  }

  let netdev: string;
  if (spec.tap !== undefined) {
    if (typeof spec.tap !== 'string' || !IFNAME.test(spec.tap) || spec.tap === '.' || spec.tap === '..') {
      throw new Error(`invalid tap name: ${JSON.stringify(spec.tap)}`);
    }
    netdev = `tap,id=net0,ifname=${spec.tap},script=no,downscript=no`;
  } else {
    netdev = ['user', 'id=net0', ...spec.forwards.map((f) => `hostfwd=${hostfwdRule(f)}`)].join(',');
  }
  args.push(
    '-netdev',
    netdev,
    // no network-boot option ROM unless the VM boots from the network: iPXE's init costs seconds under TCG
    '-device',
    `${nicDevice},netdev=net0,id=nic0,mac=${macForTask(spec.taskId)}${spec.biosMode === 'pxe' ? ',bootindex=1' : ',romfile='}`,
  );
  // LAN and multicast NICs are always virtio (the original's model for them), whatever the first NIC is
  for (const nic of spec.extraNics ?? []) args.push(...extraNicArgs(nic, 'virtio-net-pci', ids));

  if (spec.biosMode === 'pxe') args.push('-boot', 'n');

  for (const gpu of spec.gpus) {
    if (typeof gpu !== 'string' || !PCI_ADDR.test(gpu)) throw new Error(`invalid PCI address: ${JSON.stringify(gpu)}`);
    args.push('-device', `vfio-pci,host=${gpu}`);
  }

  if (spec.os === 'windows') {
    args.push('-rtc', 'base=localtime', '-device', 'qemu-xhci,id=xhci0', '-device', 'usb-tablet,bus=xhci0.0');
  }
  return args;
}

export interface QmpCommand {
  execute: string;
  arguments: Record<string, unknown>;
}

/** the QMP commands that hot-plug the qcow2 file `file` as guest disk `name` (the same ids as a boot-time disk) */
export function hotplugCommands(name: string, file: string): [QmpCommand, QmpCommand] {
  return [
    {
      execute: 'blockdev-add',
      arguments: { driver: 'qcow2', 'node-name': driveId(name), file: { driver: 'file', filename: file } },
    },
    {
      execute: 'device_add',
      arguments: { driver: 'virtio-blk-pci', drive: driveId(name), id: name, serial: name },
    },
  ];
}

/** one entry of a QMP query-block answer (the fields we read) */
export interface QueryBlockEntry {
  device?: string;
  qdev?: string;
  inserted?: { 'node-name'?: string; file?: string; image?: { 'virtual-size'?: number } };
}

/** the query-block entry of guest disk `name` (boot-time -drive or hot-plugged blockdev), by id, device or file */
export function blockEntryOf(entries: readonly QueryBlockEntry[], name: string, file: string): QueryBlockEntry | undefined {
  return (
    entries.find((e) => e.device === driveId(name)) ??
    entries.find((e) => e.qdev === name || (e.qdev ?? '').startsWith(`/machine/peripheral/${name}/`)) ??
    entries.find((e) => e.inserted?.file === file)
  );
}

/** the block node of guest disk `name` in a query-block answer */
export function blockNodeOf(entries: readonly QueryBlockEntry[], name: string, file: string): string | undefined {
  return blockEntryOf(entries, name, file)?.inserted?.['node-name'];
}

/** OVMF from Debian's `ovmf` package: the 4M build when present, else the 2M one */
export function findOvmf(): { code: string; vars: string } | null {
  const candidates = [
    { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.fd' },
    { code: '/usr/share/OVMF/OVMF_CODE.fd', vars: '/usr/share/OVMF/OVMF_VARS.fd' },
  ];
  return candidates.find((c) => existsSync(c.code) && existsSync(c.vars)) ?? null;
}
