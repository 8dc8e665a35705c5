// The one in-memory Hypervisor for tests. A state machine per VM (shutoff → running ⇄ paused/suspended → shutoff)
// that follows QemuHypervisor's rules: what it refuses, with the same words, and what it reports (test/contract/
// hypervisor.test.ts runs the same suite against both). The guest is programmable (does it honour ACPI, what does
// its agent answer), faults can be injected (failNext, hang: crash points) and every call is logged.
// VMs live in a FakeWorld, the host's QEMU processes, which outlive a daemon: a second FakeHypervisor over the same
// world is the daemon after a restart, and adopts what the first one started.
// One file (above ~400 lines) on purpose: every test imports the same fake, and its parts share the world's state.
import { existsSync } from 'node:fs';
import { buildQemuArgs, driveId, hostfwdRemoveRule, hostfwdRule, validateDiskName, validatePath, validateTaskId } from '../../src/vm/qemu-args.js';
import type { HostForward, Hypervisor, VmDisk, VmExit, VmRunState, VmSpec } from '../../src/vm/types.js';

/** the driver methods faults can be injected into */
export type HvMethod =
  | 'start'
  | 'adopt'
  | 'state'
  | 'shutdown'
  | 'destroy'
  | 'reset'
  | 'wakeup'
  | 'addForward'
  | 'removeForward'
  | 'setVncPassword'
  | 'agent'
  | 'attachDisk'
  | 'detachDisk'
  | 'growDisk'
  | 'detachAll';

/** what the guest does; a blank disk under SeaBIOS (the integration tests' guest) is { acpi: false } */
export interface GuestBehaviour {
  /** honours the ACPI power button and PCI eject requests (default true) */
  acpi?: boolean;
  /** answers guest agent commands; absent: no agent (calls fail as on a timeout) */
  agent?: (execute: string, args?: Record<string, unknown>) => unknown;
}

export interface FakeDisk {
  path: string;
  /** the size growDisk set last; undefined until then (the fake does not read files) */
  bytes?: number;
  hotplugged: boolean;
}

/** one QEMU process */
export interface FakeVm {
  readonly taskId: string;
  readonly runDir: string;
  readonly pid: number;
  readonly spec: VmSpec;
  state: Exclude<VmRunState, 'shutoff'>;
  forwards: HostForward[];
  vncPassword: string;
  readonly disks: Map<string, FakeDisk>;
  resets: number;
  /** the driver holding its QMP connection; null while no daemon does */
  owner: FakeHypervisor | null;
}

/** the host: QEMU processes survive the daemon that started them */
export class FakeWorld {
  readonly vms = new Map<string, FakeVm>();
  /** guest behaviour by task id, kept across boots and restarts */
  readonly guests = new Map<string, GuestBehaviour>();
  private nextPid = 40000;

  newPid(): number {
    return this.nextPid++;
  }

  guest(taskId: string): GuestBehaviour {
    return this.guests.get(taskId) ?? {};
  }

  /** the process ends; its owner (if a daemon holds it) hears it once */
  exit(vm: FakeVm, reason: string): void {
    if (this.vms.get(vm.taskId) !== vm) return;
    this.vms.delete(vm.taskId);
    const owner = vm.owner;
    vm.owner = null;
    owner?.notifyExit({ taskId: vm.taskId, reason });
  }

  /** the host rebooted: every VM is gone and nobody is told */
  reboot(): void {
    for (const vm of this.vms.values()) vm.owner = null;
    this.vms.clear();
  }
}

export interface FakeCall {
  method: HvMethod;
  taskId?: string;
  args: unknown[];
}

/** a call held by hang(): it waits until released (or for ever, like a daemon killed mid-call) */
export interface Hang {
  /** resolves once a call reached the hang */
  readonly reached: Promise<void>;
  release(): void;
  fail(err: Error): void;
}

interface Fault {
  method: HvMethod;
  taskId?: string;
  /** apply the call's effect first, then fail/hang: the work happened but the caller never heard */
  after: boolean;
  error?: Error;
  hang?: { gate: Promise<void>; arrived: () => void };
}

export interface FaultOptions {
  /** only a call for this task */
  taskId?: string;
  /** the effect happens before the failure or hang (default: nothing happens) */
  after?: boolean;
}

export interface FakeHypervisorOptions {
  world?: FakeWorld;
  accel?: 'kvm' | 'tcg';
  runAs?: { uid: number; gid: number } | null;
  /** guest behaviour for VMs nothing was programmed for */
  guest?: GuestBehaviour;
}

const DETACH_WAIT_MS = 10000;
const AGENT_TIMEOUT_MS = 5000;

function sameBinding(a: HostForward, b: HostForward): boolean {
  return a.proto === b.proto && a.hostPort === b.hostPort && (a.hostAddr === b.hostAddr || a.hostAddr === '0.0.0.0' || b.hostAddr === '0.0.0.0');
}

export class FakeHypervisor implements Hypervisor {
  readonly accel: 'kvm' | 'tcg';
  readonly runAs: { uid: number; gid: number } | null;
  readonly world: FakeWorld;
  readonly calls: FakeCall[] = [];
  private readonly listeners: Array<(exit: VmExit) => void> = [];
  private readonly faults: Fault[] = [];
  private readonly defaultGuest: GuestBehaviour;

  constructor(opts: FakeHypervisorOptions = {}) {
    this.world = opts.world ?? new FakeWorld();
    this.accel = opts.accel ?? 'tcg';
    this.runAs = opts.runAs ?? null;
    this.defaultGuest = opts.guest ?? {};
  }

  // --- test controls ---

  /** program the guest of taskId (merged into what was set before) */
  guest(taskId: string, behaviour: GuestBehaviour): void {
    this.world.guests.set(taskId, { ...this.world.guest(taskId), ...behaviour });
  }

  /** the next call of method rejects with error */
  failNext(method: HvMethod, error: Error = new Error(`injected failure of ${method}`), opts: FaultOptions = {}): void {
    this.faults.push({ method, taskId: opts.taskId, after: opts.after ?? false, error });
  }

  /** the next call of method waits until the returned Hang is released */
  hang(method: HvMethod, opts: FaultOptions = {}): Hang {
    let release!: () => void;
    let fail!: (err: Error) => void;
    let arrived!: () => void;
    const gate = new Promise<void>((resolve, reject) => {
      release = resolve;
      fail = reject;
    });
    gate.catch(() => undefined);
    const reached = new Promise<void>((resolve) => (arrived = resolve));
    this.faults.push({ method, taskId: opts.taskId, after: opts.after ?? false, hang: { gate, arrived } });
    return { reached, release, fail };
  }

  /**
   * a running VM for taskId at once, held by this driver, without a start call or spec validation: for tests of
   * services that only ask whether the VM runs (disks, snapshots). Shut it off again with destroy() or crash().
   */
  boot(taskId: string, over: Partial<VmSpec> = {}): FakeVm {
    if (this.world.vms.has(taskId)) throw new Error(`VM ${taskId} is already running`);
    const spec: VmSpec = {
      taskId,
      runDir: `/run/fake/${taskId}`,
      name: taskId,
      cpuCores: 1,
      memMiB: 1024,
      disks: [],
      biosMode: 'legacy',
      os: 'linux',
      nicModel: 'virtio',
      forwards: [],
      vnc: { listen: '127.0.0.1', port: 5900, password: '' },
      gpus: [],
      serialLog: `/run/fake/${taskId}/serial.log`,
      ...over,
    };
    const vm: FakeVm = {
      taskId,
      runDir: spec.runDir,
      pid: this.world.newPid(),
      spec,
      state: 'running',
      forwards: [...spec.forwards],
      vncPassword: spec.vnc.password,
      disks: new Map(spec.disks.map((d) => [d.name, { path: d.path, hotplugged: false }])),
      resets: 0,
      owner: this,
    };
    this.world.vms.set(taskId, vm);
    return vm;
  }

  /** the VM of taskId in the world, held by this driver or not */
  vm(taskId: string): FakeVm | undefined {
    return this.world.vms.get(taskId);
  }

  /** the specs of the VMs this driver holds, by task id */
  get vms(): ReadonlyMap<string, VmSpec> {
    return new Map([...this.world.vms.values()].filter((v) => v.owner === this).map((v) => [v.taskId, v.spec]));
  }

  /** the process dies (QEMU crashed, or was killed: reason 'killed') */
  crash(taskId: string, reason = 'crashed'): void {
    const vm = this.world.vms.get(taskId);
    if (!vm) throw new Error(`no VM ${taskId} to crash`);
    this.world.exit(vm, reason);
  }

  /** the guest powers itself off (poweroff inside the VM) */
  guestPowerOff(taskId: string): void {
    const vm = this.world.vms.get(taskId);
    if (!vm) throw new Error(`no VM ${taskId} to power off`);
    this.world.exit(vm, 'guest-shutdown');
  }

  /** the guest suspends to RAM */
  guestSuspend(taskId: string): void {
    this.living(taskId).state = 'suspended';
  }

  /** the host pauses the VM (QMP stop) */
  pause(taskId: string): void {
    this.living(taskId).state = 'paused';
  }

  /** FakeWorld calls this when a VM this driver holds exits */
  notifyExit(exit: VmExit): void {
    for (const listener of this.listeners) {
      try {
        listener(exit);
      } catch {
        /* as the QEMU driver: a throwing listener does not stop the others */
      }
    }
  }

  // --- Hypervisor ---

  start(spec: VmSpec): Promise<{ pid: number }> {
    return this.call('start', spec.taskId, [spec], () => {
      validateTaskId(spec.taskId);
      validatePath(spec.runDir, 'runDir');
      const other = this.world.vms.get(spec.taskId);
      if (other?.owner === this) throw new Error(`VM ${spec.taskId} is already running (pid ${other.pid})`);
      if (other) throw new Error(`a QEMU for VM ${spec.taskId} is already running (pid ${other.pid}); adopt it instead`);
      // the same validation as the real command line
      buildQemuArgs(spec, { accel: this.accel, ovmfCode: '/usr/share/OVMF/OVMF_CODE_4M.fd', ovmfVars: `${spec.runDir}/OVMF_VARS.fd` });
      const forwards = spec.tap === undefined ? spec.forwards.map((f) => ({ ...f })) : [];
      for (const f of forwards) {
        if (this.bound(f)) throw this.startFailure(spec.taskId, `Could not set up host forwarding rule '${hostfwdRule(f)}'`);
      }
      for (const v of this.world.vms.values()) {
        if (v.spec.vnc.port === spec.vnc.port) throw this.startFailure(spec.taskId, 'Failed to find an available port: Address already in use');
      }
      const vm: FakeVm = {
        taskId: spec.taskId,
        runDir: spec.runDir,
        pid: this.world.newPid(),
        spec,
        state: 'running',
        forwards,
        vncPassword: spec.vnc.password,
        disks: new Map(spec.disks.map((d) => [d.name, { path: d.path, hotplugged: false }])),
        resets: 0,
        owner: this,
      };
      this.world.vms.set(spec.taskId, vm);
      return { pid: vm.pid };
    });
  }

  adopt(taskId: string, runDir: string): Promise<boolean> {
    return this.call('adopt', taskId, [runDir], () => {
      validateTaskId(taskId);
      validatePath(runDir, 'runDir');
      const vm = this.world.vms.get(taskId);
      if (!vm || vm.runDir.replace(/\/+$/, '') !== runDir.replace(/\/+$/, '')) return false;
      // an earlier daemon that died without detaching loses the VM to this one
      vm.owner = this;
      return true;
    });
  }

  state(taskId: string): Promise<VmRunState> {
    return this.call('state', taskId, [], () => {
      const vm = this.world.vms.get(taskId);
      return vm && vm.owner === this ? vm.state : 'shutoff';
    });
  }

  shutdown(taskId: string, timeoutMs: number): Promise<'acpi' | 'forced'> {
    return this.call('shutdown', taskId, [timeoutMs], () => {
      const vm = this.world.vms.get(taskId);
      if (!vm || vm.owner !== this) return 'acpi';
      // a paused or suspended guest cannot act on the power button
      if (vm.state === 'running' && this.guestOf(taskId).acpi !== false) {
        this.world.exit(vm, 'guest-shutdown');
        return 'acpi';
      }
      this.world.exit(vm, 'host-qmp-quit');
      return 'forced';
    });
  }

  destroy(taskId: string): Promise<void> {
    return this.call('destroy', taskId, [], () => {
      const vm = this.world.vms.get(taskId);
      if (vm && vm.owner === this) this.world.exit(vm, 'host-qmp-quit');
    });
  }

  reset(taskId: string): Promise<void> {
    return this.call('reset', taskId, [], () => {
      const vm = this.held(taskId);
      vm.resets++;
      // a reset wakes a suspended guest; a paused VM stays paused
      if (vm.state === 'suspended') vm.state = 'running';
    });
  }

  wakeup(taskId: string): Promise<void> {
    return this.call('wakeup', taskId, [], () => {
      this.held(taskId).state = 'running';
    });
  }

  addForward(taskId: string, fwd: HostForward): Promise<void> {
    return this.call('addForward', taskId, [fwd], () => {
      const rule = hostfwdRule(fwd);
      const vm = this.held(taskId);
      if (vm.spec.tap !== undefined) throw new Error(`hostfwd_add ${rule}: net0 is not a user-mode network`);
      if (this.bound(fwd)) throw new Error(`hostfwd_add ${rule}: Could not set up host forwarding rule '${rule}'`);
      vm.forwards.push({ ...fwd });
    });
  }

  removeForward(taskId: string, fwd: HostForward): Promise<void> {
    return this.call('removeForward', taskId, [fwd], () => {
      const rule = hostfwdRemoveRule(fwd);
      const vm = this.held(taskId);
      const i = vm.forwards.findIndex((f) => f.proto === fwd.proto && f.hostAddr === fwd.hostAddr && f.hostPort === fwd.hostPort);
      if (i < 0) throw new Error(`hostfwd_remove ${rule}: host forwarding rule for ${rule} not found`);
      vm.forwards.splice(i, 1);
    });
  }

  setVncPassword(taskId: string, password: string): Promise<void> {
    return this.call('setVncPassword', taskId, [password], () => {
      this.held(taskId).vncPassword = password;
    });
  }

  agent(taskId: string, execute: string, args?: Record<string, unknown>, timeoutMs = AGENT_TIMEOUT_MS): Promise<unknown> {
    return this.call('agent', taskId, [execute, args, timeoutMs], () => {
      const vm = this.held(taskId);
      const answer = this.guestOf(taskId).agent;
      if (!answer || vm.state !== 'running') {
        throw new Error(`guest agent ${execute}: no answer within ${timeoutMs} ms (agent not responding)`);
      }
      return answer(execute, args);
    });
  }

  attachDisk(taskId: string, disk: VmDisk): Promise<void> {
    return this.call('attachDisk', taskId, [disk], () => {
      validateDiskName(disk.name);
      validatePath(disk.path, `disk ${disk.name} path`);
      const vm = this.held(taskId);
      if (vm.disks.has(disk.name)) throw new Error(`QMP blockdev-add: Duplicate nodes with node-name='${driveId(disk.name)}'`);
      if (!existsSync(disk.path)) throw new Error(`QMP blockdev-add: Could not open '${disk.path}': No such file or directory`);
      // q35 (windows guests) has no hot-pluggable slot on its root bus
      if (vm.spec.os === 'windows') throw new Error(`QMP device_add: Bus 'pcie.0' does not support hotplugging`);
      vm.disks.set(disk.name, { path: disk.path, hotplugged: true });
    });
  }

  detachDisk(taskId: string, name: string, timeoutMs = DETACH_WAIT_MS): Promise<void> {
    return this.call('detachDisk', taskId, [name, timeoutMs], () => {
      validateDiskName(name);
      const vm = this.held(taskId);
      if (!vm.disks.has(name)) return;
      if (vm.state !== 'running' || this.guestOf(taskId).acpi === false) {
        throw new Error(`VM ${taskId}: the guest did not release disk ${name} within ${timeoutMs} ms`);
      }
      vm.disks.delete(name);
    });
  }

  growDisk(taskId: string, name: string, path: string, bytes: number): Promise<void> {
    return this.call('growDisk', taskId, [name, path, bytes], () => {
      validateDiskName(name);
      if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`invalid disk size: ${bytes}`);
      const vm = this.held(taskId);
      const disk = vm.disks.get(name) ?? [...vm.disks.values()].find((d) => d.path === path);
      if (!disk) throw new Error(`disk ${name} is not attached to the running VM`);
      if (disk.bytes !== undefined && bytes < disk.bytes) throw new Error(`disk ${name} is ${disk.bytes} bytes and cannot shrink to ${bytes}`);
      disk.bytes = bytes;
    });
  }

  running(): string[] {
    return [...this.world.vms.values()].filter((v) => v.owner === this).map((v) => v.taskId);
  }

  onExit(listener: (exit: VmExit) => void): void {
    this.listeners.push(listener);
  }

  detachAll(): Promise<void> {
    return this.call('detachAll', undefined, [], () => {
      for (const vm of this.world.vms.values()) if (vm.owner === this) vm.owner = null;
    });
  }

  // --- internals ---

  private guestOf(taskId: string): GuestBehaviour {
    return { ...this.defaultGuest, ...this.world.guest(taskId) };
  }

  private held(taskId: string): FakeVm {
    const vm = this.world.vms.get(taskId);
    if (!vm || vm.owner !== this) throw new Error(`VM ${taskId} is not running`);
    return vm;
  }

  private living(taskId: string): FakeVm {
    const vm = this.world.vms.get(taskId);
    if (!vm) throw new Error(`no VM ${taskId}`);
    return vm;
  }

  /** a host port some VM in the world already forwards */
  private bound(fwd: HostForward): boolean {
    return [...this.world.vms.values()].some((v) => v.forwards.some((f) => sameBinding(f, fwd)));
  }

  private startFailure(taskId: string, why: string): Error {
    return new Error(`QEMU for VM ${taskId} exited during start (exit code 1): qemu-system-x86_64: ${why}`);
  }

  private async call<T>(method: HvMethod, taskId: string | undefined, args: unknown[], effect: () => T): Promise<T> {
    this.calls.push({ method, taskId, args });
    const i = this.faults.findIndex((f) => f.method === method && (f.taskId === undefined || f.taskId === taskId));
    const fault = i >= 0 ? this.faults.splice(i, 1)[0] : undefined;
    // every answer comes asynchronously, as over a socket
    await Promise.resolve();
    if (!fault) return effect();
    let result: T | undefined;
    if (fault.after) result = effect();
    if (fault.hang) {
      fault.hang.arrived();
      await fault.hang.gate;
    } else {
      throw fault.error ?? new Error(`injected failure of ${method}`);
    }
    return fault.after ? (result as T) : effect();
  }
}
