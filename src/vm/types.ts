// The contract between the task engine (vm/engine.ts) and a hypervisor driver (vm/qemu.ts).
// Drivers know nothing of HTTP, wallets or the database: they get a VmSpec and run it.

import type { BiosMode, GuestOs, NicModel } from '../domain/vm-kinds.js';
import type { ExtraNic } from '../net/nic.js';
export type { BiosMode, GuestOs, NicModel } from '../domain/vm-kinds.js';
export type { ExtraNic } from '../net/nic.js';

export interface HostForward {
  proto: 'tcp' | 'udp';
  /** host address to bind, e.g. 127.0.0.1 or 0.0.0.0 */
  hostAddr: string;
  hostPort: number;
  guestPort: number;
}

export interface VmDisk {
  /** guest name: vda, vdb, ... */
  name: string;
  /** absolute path to a qcow2 file */
  path: string;
}

export interface VmSpec {
  taskId: string;
  /** per-VM runtime directory: QMP socket, serial socket/log, pid file, OVMF vars. Created by the caller. */
  runDir: string;
  /** QEMU -name */
  name: string;
  cpuCores: number;
  memMiB: number;
  /** vda (the overlay) then data disks; absent for pxe */
  disks: VmDisk[];
  /** NoCloud seed (iso9660, label cidata) attached read-only, if any */
  seedIso?: string;
  biosMode: BiosMode;
  os: GuestOs;
  nicModel: NicModel;
  /** user-mode networking host forwards (ignored when `tap` is set) */
  forwards: HostForward[];
  /** bridge mode: the main NIC is this existing tap (created by net/) instead of QEMU user networking */
  tap?: string;
  /** more NICs: a LAN (tap on a LAN bridge, or a multicast segment in user mode) and multicast groups */
  extraNics?: ExtraNic[];
  vnc: { listen: string; port: number; password: string };
  /** host PCI addresses (0000:3b:00.0) passed through with vfio-pci */
  gpus: string[];
  /** serial console log file (appended across boots) */
  serialLog: string;
}

export type VmRunState = 'running' | 'paused' | 'suspended' | 'shutoff';

export interface VmExit {
  taskId: string;
  /** 'guest-shutdown' | 'host-qmp-quit' | 'killed' | 'crashed' | ... */
  reason: string;
}

/** One QEMU process per VM, detached so it survives a daemon restart, controlled over QMP. */
export interface Hypervisor {
  /** accel in use: 'kvm' when /dev/kvm is usable, else 'tcg' */
  readonly accel: 'kvm' | 'tcg';
  /** the uid:gid QEMU runs as after start (guest guard); files it opens later must be accessible to it */
  readonly runAs?: { uid: number; gid: number } | null;
  /** spawn QEMU for spec, wait until QMP answers, set the VNC password, leave the guest running */
  start(spec: VmSpec): Promise<{ pid: number }>;
  /** reconnect to a VM started by an earlier daemon; false when it is not running */
  adopt(taskId: string, runDir: string): Promise<boolean>;
  /** state of a VM this driver knows (started or adopted); 'shutoff' when none */
  state(taskId: string): Promise<VmRunState>;
  /** ACPI power button; wait up to timeoutMs for the guest to power off, then kill. */
  shutdown(taskId: string, timeoutMs: number): Promise<'acpi' | 'forced'>;
  /** hard stop (QMP quit, then SIGKILL) */
  destroy(taskId: string): Promise<void>;
  /** hardware reset (system_reset), the process stays */
  reset(taskId: string): Promise<void>;
  /** wake a suspended guest / resume a paused one */
  wakeup(taskId: string): Promise<void>;
  /** add / remove a user-mode host forward on a running VM */
  addForward(taskId: string, fwd: HostForward): Promise<void>;
  removeForward(taskId: string, fwd: HostForward): Promise<void>;
  /** change the VNC password of a running VM */
  setVncPassword(taskId: string, password: string): Promise<void>;
  /**
   * QEMU guest agent command over the VM's virtio-serial port `org.qemu.guest_agent.0`
   * (socket `${runDir}/qga.sock`), e.g. guest-set-user-password. Rejects on timeout or agent error.
   */
  agent(taskId: string, execute: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<unknown>;
  /**
   * hot-plug the qcow2 file disk.path as guest disk disk.name on a running VM. The file is first made accessible
   * to `runAs` (QEMU opens it itself, after it dropped privileges). Rejects (nothing left attached) when the
   * machine has no hot-pluggable bus (q35), the name is taken or the file cannot be opened.
   */
  attachDisk(taskId: string, disk: VmDisk): Promise<void>;
  /**
   * unplug guest disk `name` from a running VM. The guest must release the device (ACPI eject); rejects when it has
   * not done so within timeoutMs (default 10 s): the disk then stays attached, a later call may finish the job.
   */
  detachDisk(taskId: string, name: string, timeoutMs?: number): Promise<void>;
  /** grow guest disk `name` (the file `path`) of a running VM to `bytes` online; the guest sees the new size at once */
  growDisk(taskId: string, name: string, path: string, bytes: number): Promise<void>;
  /** the task ids of VMs this driver currently holds */
  running(): string[];
  /** called once per VM exit (guest power off, crash, kill) */
  onExit(listener: (exit: VmExit) => void): void;
  /** drop QMP connections without stopping VMs (daemon shutdown) */
  detachAll(): Promise<void>;
}
