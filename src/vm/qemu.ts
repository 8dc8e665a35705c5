// The QEMU driver: one detached QEMU process per VM, controlled over QMP, re-adoptable after a daemon restart.
// Above ~400 lines on purpose: one process lifecycle (spawn, QMP, adopt, exit watching, hot-plug) whose parts all
// share the per-VM VmRun state; the pure parts (command line, QMP argument shapes) live in qemu-args.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants as fsConstants, copyFileSync, existsSync, fstatSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../util/logger.js';
import { quietLogger } from '../util/logger.js';
import { processGone } from '../util/proc.js';
import {
  blockEntryOf,
  buildQemuArgs,
  driveId,
  findOvmf,
  hostfwdRemoveRule,
  hostfwdRule,
  hotplugCommands,
  runFile,
  validateDiskName,
  validatePath,
  validateTaskId,
  type QueryBlockEntry,
} from './qemu-args.js';
import { GuestAgentClient, QmpClient, QmpError, type QmpEvent } from './qmp.js';
import { grantToVm } from './run-as.js';
import type { HostForward, Hypervisor, VmDisk, VmExit, VmRunState, VmSpec } from './types.js';

export interface QemuHypervisorOptions {
  logger?: Logger;
  qemuBinary?: string;
  accel?: 'kvm' | 'tcg' | 'auto';
  /** guest guard (net/guest-guard.ts): QEMU drops to this uid:gid (-runas) right before the guest starts */
  runAs?: { uid: number; gid: number } | null;
}

interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** one QEMU process this driver holds (started here or adopted) */
interface VmRun {
  taskId: string;
  runDir: string;
  pid: number;
  /** set while this process is QEMU's parent: its 'exit' event is the fastest exit signal */
  child: ChildProcess | null;
  qmp: QmpClient | null;
  agent: GuestAgentClient | null;
  /** reason of the QMP SHUTDOWN event, when QEMU announced its exit */
  shutdownReason: string | null;
  killedByUs: boolean;
  gone: boolean;
  /** detachAll(): forget the VM, leave it running */
  detached: boolean;
  /** a start that failed half-way: its caller got the error, listeners hear nothing */
  quiet: boolean;
  watching: boolean;
  goneWaiters: Array<() => void>;
}

const QMP_WAIT_MS = 15000;
const QUIT_WAIT_MS = 3000;
const KILL_WAIT_MS = 10000;
const AGENT_TIMEOUT_MS = 5000;
const STDERR_TAIL_BYTES = 2000;
const DETACH_WAIT_MS = 10000;

/**
 * KVM only when /dev/kvm opens read-write AND the CPU advertises hardware virtualisation: some sandboxes expose a
 * /dev/kvm without vmx/svm, where guests die in SeaBIOS with "KVM internal error ... emulation failure".
 * DBC_ACCEL=kvm|tcg overrides the guess.
 */
export function kvmUsable(): boolean {
  const forced = process.env.DBC_ACCEL;
  if (forced === 'kvm') return true;
  if (forced === 'tcg') return false;
  try {
    closeSync(openSync('/dev/kvm', fsConstants.O_RDWR));
  } catch {
    return false;
  }
  try {
    return /^flags\s*:.*\b(vmx|svm)\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

function readTail(path: string, from: number): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const start = Math.max(from, size - STDERR_TAIL_BYTES);
      const buf = Buffer.alloc(Math.max(0, size - start));
      readSync(fd, buf, 0, buf.length, start);
      return buf.toString('utf8').trim();
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function newRun(taskId: string, runDir: string, pid: number, child: ChildProcess | null): VmRun {
  return {
    taskId,
    runDir,
    pid,
    child,
    qmp: null,
    agent: null,
    shutdownReason: null,
    killedByUs: false,
    gone: false,
    detached: false,
    quiet: false,
    watching: false,
    goneWaiters: [],
  };
}

export class QemuHypervisor implements Hypervisor {
  readonly accel: 'kvm' | 'tcg';
  readonly runAs: { uid: number; gid: number } | null;
  private readonly log: Logger;
  private readonly qemuBinary: string;
  private readonly vms = new Map<string, VmRun>();
  private readonly exitListeners: Array<(exit: VmExit) => void> = [];

  constructor(opts: QemuHypervisorOptions = {}) {
    this.log = opts.logger ?? quietLogger;
    this.qemuBinary = opts.qemuBinary ?? 'qemu-system-x86_64';
    const accel = opts.accel ?? 'auto';
    this.accel = accel === 'auto' ? (kvmUsable() ? 'kvm' : 'tcg') : accel;
    this.runAs = opts.runAs ?? null;
  }

  async start(spec: VmSpec): Promise<{ pid: number }> {
    validateTaskId(spec.taskId);
    validatePath(spec.runDir, 'runDir');
    const held = this.vms.get(spec.taskId);
    if (held && !held.gone) throw new Error(`VM ${spec.taskId} is already running (pid ${held.pid})`);
    const orphan = livePid(spec.runDir);
    if (orphan !== null) throw new Error(`a QEMU for VM ${spec.taskId} is already running (pid ${orphan}); adopt it instead`);

    let ovmfCode = '';
    let ovmfVars = '';
    if (spec.biosMode === 'uefi') {
      const ovmf = findOvmf();
      if (!ovmf) throw new Error('UEFI boot needs OVMF firmware (Debian package ovmf) and none was found in /usr/share/OVMF');
      ovmfCode = ovmf.code;
      ovmfVars = runFile(spec.runDir, 'ovmfVars');
      // the vars store holds the guest's boot entries: keep it across restarts
      if (!existsSync(ovmfVars)) copyFileSync(ovmf.vars, ovmfVars);
    }
    const args = buildQemuArgs(spec, { accel: this.accel, ovmfCode, ovmfVars });
    // files and sockets given on the command line are opened as root first; the guest's sockets belong to runAs
    if (this.runAs) args.push('-runas', `${Math.trunc(this.runAs.uid)}:${Math.trunc(this.runAs.gid)}`);

    for (const f of ['qmp', 'serial', 'qga', 'pid'] as const) rmSync(runFile(spec.runDir, f), { force: true });
    const stderrPath = runFile(spec.runDir, 'stderr');
    const logFd = openSync(stderrPath, 'a');
    let logStart: number;
    let child: ChildProcess;
    try {
      writeSync(logFd, `--- ${new Date().toISOString()} start ${spec.taskId}\n`);
      logStart = fstatSync(logFd).size;
      // detached: own session, so QEMU outlives the daemon (even a SIGKILLed one)
      child = spawn(this.qemuBinary, args, { detached: true, stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    child.unref();

    let exitStatus: ExitStatus | null = null;
    let run: VmRun | null = null;
    let spawnError: Error | null = null;
    child.on('error', (err) => {
      spawnError = err;
    });
    child.on('exit', (code, signal) => {
      exitStatus = { code, signal };
      if (run) this.markGone(run, exitStatus);
    });

    const startFailure = (what: string): Error => {
      const tail = readTail(stderrPath, logStart);
      return new Error(`QEMU for VM ${spec.taskId} ${what}${tail ? `: ${tail}` : ''}`);
    };
    const killChild = async (): Promise<void> => {
      if (exitStatus || child.pid === undefined) return;
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      const deadline = Date.now() + KILL_WAIT_MS;
      while (!exitStatus && Date.now() < deadline) await sleep(20);
    };

    const qmpPath = runFile(spec.runDir, 'qmp');
    const deadline = Date.now() + QMP_WAIT_MS;
    let qmp: QmpClient | null = null;
    while (!qmp) {
      if (spawnError) throw new Error(`cannot run ${this.qemuBinary}: ${errMessage(spawnError)}`);
      if (exitStatus) {
        const st: ExitStatus = exitStatus;
        throw startFailure(`exited during start (${st.signal ?? `exit code ${st.code}`})`);
      }
      if (Date.now() > deadline) {
        await killChild();
        throw startFailure(`did not open its QMP socket within ${QMP_WAIT_MS} ms`);
      }
      if (existsSync(qmpPath)) {
        try {
          qmp = await QmpClient.connect(qmpPath, Math.max(1000, deadline - Date.now()));
          break;
        } catch {
          /* not listening yet, or QEMU is exiting: the checks above tell */
        }
      }
      await sleep(50);
    }
    const pid = child.pid!;
    if (exitStatus) {
      qmp.close();
      throw startFailure('exited during start');
    }

    run = newRun(spec.taskId, spec.runDir, pid, child);
    this.attachQmp(run, qmp);
    this.vms.set(spec.taskId, run);
    try {
      await this.setPassword(run, spec.vnc.password);
    } catch (err) {
      run.quiet = true;
      await this.destroyRun(run).catch(() => undefined);
      if (exitStatus) throw startFailure('exited during start');
      throw new Error(`VM ${spec.taskId}: cannot set the VNC password: ${errMessage(err)}`);
    }
    this.log.info({ taskId: spec.taskId, pid, accel: this.accel }, 'qemu started');
    return { pid };
  }

  async adopt(taskId: string, runDir: string): Promise<boolean> {
    validateTaskId(taskId);
    validatePath(runDir, 'runDir');
    const held = this.vms.get(taskId);
    if (held && !held.gone) return true;
    const pid = livePid(runDir);
    if (pid === null) return false;
    let qmp: QmpClient | null = null;
    try {
      qmp = await QmpClient.connect(runFile(runDir, 'qmp'), 5000);
      await qmp.execute('query-status', undefined, 5000);
    } catch (err) {
      qmp?.close();
      this.log.warn({ taskId, pid, err: errMessage(err) }, 'qemu process alive but QMP does not answer; not adopted');
      return false;
    }
    const run = newRun(taskId, runDir, pid, null);
    this.attachQmp(run, qmp);
    this.vms.set(taskId, run);
    this.log.info({ taskId, pid }, 'qemu adopted');
    return true;
  }

  async state(taskId: string): Promise<VmRunState> {
    const run = this.vms.get(taskId);
    if (!run || run.gone) return 'shutoff';
    try {
      const st = (await this.exec(run, 'query-status')) as { status?: string };
      if (st.status === 'running') return 'running';
      if (st.status === 'suspended') return 'suspended';
      return 'paused';
    } catch (err) {
      if (run.gone || processGone(run.pid)) return 'shutoff';
      throw err;
    }
  }

  async shutdown(taskId: string, timeoutMs: number): Promise<'acpi' | 'forced'> {
    const run = this.vms.get(taskId);
    if (!run || run.gone) return 'acpi';
    try {
      await this.exec(run, 'system_powerdown');
    } catch (err) {
      if (run.gone) return 'acpi';
      this.log.warn({ taskId, err: errMessage(err) }, 'system_powerdown failed; forcing');
    }
    if (await this.waitGone(run, timeoutMs)) return 'acpi';
    this.log.info({ taskId, timeoutMs }, 'guest ignored the ACPI power button; forcing');
    await this.destroyRun(run);
    return 'forced';
  }

  async destroy(taskId: string): Promise<void> {
    const run = this.vms.get(taskId);
    if (!run || run.gone) return;
    await this.destroyRun(run);
  }

  async reset(taskId: string): Promise<void> {
    await this.exec(this.held(taskId), 'system_reset');
  }

  async wakeup(taskId: string): Promise<void> {
    const run = this.held(taskId);
    const st = (await this.exec(run, 'query-status')) as { status?: string };
    if (st.status === 'suspended') await this.exec(run, 'system_wakeup');
    else if (st.status !== 'running') await this.exec(run, 'cont');
  }

  async addForward(taskId: string, fwd: HostForward): Promise<void> {
    const rule = hostfwdRule(fwd);
    const out = await this.hmp(this.held(taskId), `hostfwd_add net0 ${rule}`);
    if (out) throw new Error(`hostfwd_add ${rule}: ${out}`);
  }

  async removeForward(taskId: string, fwd: HostForward): Promise<void> {
    const rule = hostfwdRemoveRule(fwd);
    const out = await this.hmp(this.held(taskId), `hostfwd_remove net0 ${rule}`);
    // slirp reports success in words too: "host forwarding rule for tcp:... removed"
    if (out && !/ removed$/.test(out)) throw new Error(`hostfwd_remove ${rule}: ${out}`);
  }

  async setVncPassword(taskId: string, password: string): Promise<void> {
    await this.setPassword(this.held(taskId), password);
  }

  async agent(taskId: string, execute: string, args?: Record<string, unknown>, timeoutMs = AGENT_TIMEOUT_MS): Promise<unknown> {
    const run = this.held(taskId);
    run.agent ??= new GuestAgentClient(runFile(run.runDir, 'qga'), AGENT_TIMEOUT_MS);
    return run.agent.execute(execute, args, timeoutMs);
  }

  async attachDisk(taskId: string, disk: VmDisk): Promise<void> {
    validateDiskName(disk.name);
    validatePath(disk.path, `disk ${disk.name} path`);
    const run = this.held(taskId);
    const [add, dev] = hotplugCommands(disk.name, disk.path);
    // guest guard: QEMU runs as an unprivileged uid by now and opens the new file itself
    grantToVm(disk.path, this.runAs);
    await this.exec(run, add.execute, add.arguments);
    try {
      await this.exec(run, dev.execute, dev.arguments);
    } catch (err) {
      await this.exec(run, 'blockdev-del', { 'node-name': driveId(disk.name) }).catch(() => undefined);
      throw err;
    }
    this.log.info({ taskId, disk: disk.name }, 'disk hot-plugged');
  }

  async detachDisk(taskId: string, name: string, timeoutMs = DETACH_WAIT_MS): Promise<void> {
    validateDiskName(name);
    const run = this.held(taskId);
    let deleted = false;
    let wake: (() => void) | null = null;
    const onEvent = (ev: QmpEvent): void => {
      if (ev.event === 'DEVICE_DELETED' && ev.data?.device === name) {
        deleted = true;
        wake?.();
      }
    };
    const qmp = run.qmp;
    qmp?.on('event', onEvent);
    try {
      try {
        await this.exec(run, 'device_del', { id: name });
      } catch (err) {
        if (!(err instanceof QmpError)) throw err;
        // gone already (an earlier detach the guest finished late): only the block node may be left
        if (err.errorClass === 'DeviceNotFound') deleted = true;
        // an earlier detach timed out and the guest has not answered yet: wait again
        else if (!/in the process of unplug/.test(err.message)) throw err;
      }
      // the guest ejects the device (ACPI); the event is the fast signal, the peripheral list the sure one
      const deadline = Date.now() + timeoutMs;
      while (!deleted) {
        if (!(await this.hasPeripheral(run, name))) break;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`VM ${taskId}: the guest did not release disk ${name} within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(left, 250));
          function done(): void {
            clearTimeout(timer);
            wake = null;
            resolve();
          }
          wake = done;
        });
      }
    } finally {
      qmp?.off('event', onEvent);
    }
    // a hot-plugged node stays until deleted; a boot-time -drive went away with its device
    await this.exec(run, 'blockdev-del', { 'node-name': driveId(name) }).catch(() => undefined);
    this.log.info({ taskId, disk: name }, 'disk unplugged');
  }

  async growDisk(taskId: string, name: string, path: string, bytes: number): Promise<void> {
    validateDiskName(name);
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`invalid disk size: ${bytes}`);
    const run = this.held(taskId);
    const entries = (await this.exec(run, 'query-block')) as QueryBlockEntry[];
    const entry = blockEntryOf(Array.isArray(entries) ? entries : [], name, path);
    const node = entry?.inserted?.['node-name'];
    if (!node) throw new Error(`disk ${name} is not attached to the running VM`);
    // block_resize would shrink a qcow2 too: this seam only grows
    const current = entry.inserted?.image?.['virtual-size'];
    if (typeof current === 'number' && bytes < current) throw new Error(`disk ${name} is ${current} bytes and cannot shrink to ${bytes}`);
    if (bytes === current) return;
    await this.exec(run, 'block_resize', { 'node-name': node, size: bytes });
  }

  /** raw QMP command to a VM this driver holds; not part of the Hypervisor contract (tests, diagnostics) */
  async qmp(taskId: string, execute: string, args?: Record<string, unknown>): Promise<unknown> {
    return this.exec(this.held(taskId), execute, args);
  }

  running(): string[] {
    return [...this.vms.values()].filter((r) => !r.gone).map((r) => r.taskId);
  }

  onExit(listener: (exit: VmExit) => void): void {
    this.exitListeners.push(listener);
  }

  async detachAll(): Promise<void> {
    for (const run of this.vms.values()) {
      run.detached = true;
      run.child?.removeAllListeners('exit');
      run.qmp?.close();
      run.qmp = null;
      for (const wake of run.goneWaiters.splice(0)) wake();
    }
    this.vms.clear();
  }

  // --- internals ---

  private held(taskId: string): VmRun {
    const run = this.vms.get(taskId);
    if (!run || run.gone) throw new Error(`VM ${taskId} is not running`);
    return run;
  }

  private exec(run: VmRun, command: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<unknown> {
    if (!run.qmp) return Promise.reject(new Error(`VM ${run.taskId}: QMP is not connected`));
    return run.qmp.execute(command, args, timeoutMs);
  }

  private async hasPeripheral(run: VmRun, id: string): Promise<boolean> {
    const list = (await this.exec(run, 'qom-list', { path: '/machine/peripheral' })) as Array<{ name?: string }>;
    return Array.isArray(list) && list.some((p) => p.name === id);
  }

  private async hmp(run: VmRun, commandLine: string): Promise<string> {
    const out = await this.exec(run, 'human-monitor-command', { 'command-line': commandLine });
    return typeof out === 'string' ? out.trim() : '';
  }

  private async setPassword(run: VmRun, password: string): Promise<void> {
    // VNC authentication (DES) uses at most 8 characters
    await this.exec(run, 'set_password', { protocol: 'vnc', password: password.slice(0, 8) });
  }

  private attachQmp(run: VmRun, qmp: QmpClient): void {
    run.qmp = qmp;
    qmp.on('event', (ev: QmpEvent) => {
      if (ev.event === 'SHUTDOWN') {
        const reason = ev.data?.reason;
        run.shutdownReason = typeof reason === 'string' ? reason : 'shutdown';
      }
      this.log.debug({ taskId: run.taskId, event: ev.event, data: ev.data }, 'qmp event');
    });
    qmp.on('close', () => {
      if (run.qmp === qmp) run.qmp = null;
      if (!run.gone && !run.detached) void this.watch(run);
    });
  }

  /**
   * QMP went away: for an adopted VM that is how its exit shows (confirmed in /proc); if the process lives on,
   * reconnect. A child's exit is reported by its 'exit' event instead.
   */
  private async watch(run: VmRun): Promise<void> {
    if (run.watching) return;
    run.watching = true;
    const since = Date.now();
    let lastConnect = Date.now();
    try {
      while (!run.gone && !run.detached && !run.qmp) {
        if (!run.child && processGone(run.pid)) {
          this.markGone(run, null);
          return;
        }
        if (Date.now() - lastConnect >= 1000) {
          lastConnect = Date.now();
          try {
            const qmp = await QmpClient.connect(runFile(run.runDir, 'qmp'), 2000);
            if (run.gone || run.detached) qmp.close();
            else {
              this.attachQmp(run, qmp);
              this.log.info({ taskId: run.taskId }, 'qmp reconnected');
            }
            return;
          } catch {
            /* still exiting, or not listening */
          }
        }
        await sleep(Date.now() - since < 5000 ? 50 : 500);
      }
    } finally {
      run.watching = false;
    }
  }

  private markGone(run: VmRun, exit: ExitStatus | null): void {
    if (run.gone || run.detached) return;
    run.gone = true;
    run.qmp?.close();
    run.qmp = null;
    if (this.vms.get(run.taskId) === run) this.vms.delete(run.taskId);
    const reason = run.shutdownReason ?? (run.killedByUs || exit?.signal === 'SIGKILL' ? 'killed' : 'crashed');
    this.log.info({ taskId: run.taskId, pid: run.pid, reason, code: exit?.code, signal: exit?.signal }, 'qemu exited');
    for (const wake of run.goneWaiters.splice(0)) wake();
    if (run.quiet) return;
    for (const listener of this.exitListeners) {
      try {
        listener({ taskId: run.taskId, reason });
      } catch (err) {
        this.log.error({ taskId: run.taskId, err: errMessage(err) }, 'onExit listener threw');
      }
    }
  }

  /** true once the process is gone, false after timeoutMs */
  private async waitGone(run: VmRun, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!run.gone && !run.detached) {
      if (!run.child && processGone(run.pid)) {
        this.markGone(run, null);
        break;
      }
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          const i = run.goneWaiters.indexOf(done);
          if (i >= 0) run.goneWaiters.splice(i, 1);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 50));
        run.goneWaiters.push(done);
      });
    }
    return run.gone;
  }

  private async destroyRun(run: VmRun): Promise<void> {
    if (run.qmp) {
      // QEMU may close the socket before it answers 'quit'
      await run.qmp.execute('quit', undefined, QUIT_WAIT_MS).catch(() => undefined);
    }
    if (await this.waitGone(run, QUIT_WAIT_MS)) return;
    run.killedByUs = true;
    try {
      process.kill(run.pid, 'SIGKILL');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
    if (!(await this.waitGone(run, KILL_WAIT_MS))) throw new Error(`QEMU of VM ${run.taskId} (pid ${run.pid}) survived SIGKILL`);
  }
}

/** the pid in runDir/qemu.pid when that process is alive and is the QEMU of this runDir (guards against pid reuse) */
function livePid(runDir: string): number | null {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(runFile(runDir, 'pid'), 'utf8').trim(), 10);
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 1 || processGone(pid)) return null;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const qmpArg = `unix:${runFile(runDir, 'qmp')},`;
    return argv.some((a) => a.startsWith(qmpArg)) ? pid : null;
  } catch {
    return null;
  }
}
