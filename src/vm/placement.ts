// Where a VM's resources come from: host ports (unique across the node's VMs and free on the host) and GPUs for
// vfio passthrough (not used by another live task).
import type { Task } from '../domain/task.js';
import { hostPorts, parseCustomPorts } from '../net/ports.js';
import { isHostPortFree } from '../net/port-probe.js';
import { NodeErrors } from '../errors/index.js';

export interface PortSet {
  ssh: number;
  rdp: number;
  vnc: number;
  /** custom_port entries in the original's syntax */
  custom: string[];
}

export interface PlacementOptions {
  /** every task the node holds */
  tasks: () => Task[];
  /** host address the forwards bind to */
  forwardHost: string;
  /** address VNC listens on */
  vncListen: string;
  /** GPUs (PCI addresses) ready for vfio passthrough */
  passthroughGpus: () => Promise<string[]>;
}

type PortKind = 'ssh_port' | 'rdp_port' | 'vnc_port';

export class Placement {
  constructor(private readonly o: PlacementOptions) {}

  passthroughGpus(): Promise<string[]> {
    return this.o.passthroughGpus();
  }

  /** GPUs in use by tasks that are not shut off */
  gpusInUse(): number {
    return this.o
      .tasks()
      .filter((t) => t.status !== 'closed')
      .reduce((n, t) => n + t.gpu_count, 0);
  }

  /** `count` free GPUs; `exceptTask`'s own GPUs count as free */
  async allocateGpus(count: number, exceptTask?: string): Promise<string[]> {
    if (count === 0) return [];
    const available = await this.o.passthroughGpus();
    const used = new Set(
      this.o
        .tasks()
        .filter((t) => t.task_id !== exceptTask && t.status !== 'closed')
        .flatMap((t) => t.gpus),
    );
    const free = available.filter((g) => !used.has(g));
    if (free.length < count) throw NodeErrors.gpuNotAvailable(count, free.length);
    return free.slice(0, count);
  }

  /**
   * Host ports must be unique across the node's VMs (running or not: a stopped VM takes its ports back when it
   * starts) and free on the host. `before` holds the task's current ports (tasks/modify), which it may keep; the
   * errors are then the modify texts (`new_ssh_port 2222 has been used!`).
   */
  async checkPorts(taskId: string, want: PortSet, before?: PortSet): Promise<void> {
    const taken = new Map<string, { kind: PortKind | 'custom_port'; port: number }>();
    for (const t of this.o.tasks()) {
      if (t.task_id === taskId) continue;
      if (t.ssh_port) taken.set(`tcp:${t.ssh_port}`, { kind: 'ssh_port', port: t.ssh_port });
      if (t.rdp_port) taken.set(`tcp:${t.rdp_port}`, { kind: 'rdp_port', port: t.rdp_port });
      taken.set(`vnc:${t.vnc_port}`, { kind: 'vnc_port', port: t.vnc_port });
      taken.set(`tcp:${t.vnc_port}`, { kind: 'vnc_port', port: t.vnc_port });
      if (t.pending.vnc_port) taken.set(`tcp:${t.pending.vnc_port}`, { kind: 'vnc_port', port: t.pending.vnc_port });
      for (const hp of hostPorts(parseCustomPorts(t.custom_ports))) {
        taken.set(`${hp.proto}:${hp.port}`, { kind: 'custom_port', port: hp.port });
      }
    }
    const modify = before !== undefined;
    const check = async (kind: PortKind, port: number, current: number | undefined) => {
      if (!port) return;
      if (taken.has(`tcp:${port}`)) throw modify ? NodeErrors.newPortUsed(`new_${kind}`, port) : NodeErrors.portConflict(kind, port);
      if (port !== current && !(await isHostPortFree(port, kind === 'vnc_port' ? this.o.vncListen : this.o.forwardHost, 'tcp'))) {
        throw modify ? NodeErrors.newPortUsed(`new_${kind}`, port) : NodeErrors.portOccupied(kind);
      }
    };
    await check('ssh_port', want.ssh, before?.ssh);
    await check('rdp_port', want.rdp, before?.rdp);
    await check('vnc_port', want.vnc, before?.vnc);
    const own = new Set([want.ssh, want.rdp, want.vnc].filter((p) => p > 0).map((p) => `tcp:${p}`));
    const beforeCustom = new Set(before ? hostPorts(parseCustomPorts(before.custom)).map((h) => `${h.proto}:${h.port}`) : []);
    for (const hp of hostPorts(parseCustomPorts(want.custom))) {
      const k = `${hp.proto}:${hp.port}`;
      if (taken.has(k) || own.has(k)) throw NodeErrors.customPortConflict(hp.port);
      if (!beforeCustom.has(k) && !(await isHostPortFree(hp.port, this.o.forwardHost, hp.proto))) {
        throw NodeErrors.customPortConflict(hp.port);
      }
    }
  }
}
