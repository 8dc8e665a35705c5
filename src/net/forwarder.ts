// The port-forwarding seam: how a task's ssh/rdp/custom ports reach its VM, one implementation per network mode.
//   user   - QEMU hostfwd: the forwards the VM boots with, swapped on the running VM over the monitor.
//   bridge - nftables DNAT written by the driver's sync(): nothing at boot, a strict resync after a change.
// The engine asks the driver's forwarder and never branches on the mode.
import type { Task } from '../domain/task.js';
import type { HostForward, Hypervisor } from '../vm/types.js';
import { expandForwards, parseCustomPorts, type PortMapping } from './ports.js';

/** what tasks/modify hands a forwarder */
export interface ForwardChange {
  /** the VM runs now (its forwards are live) */
  running: boolean;
  /** record the new ports in the store; called exactly once when the change succeeds */
  commit(): void;
  /** the node's strict network sync: rules for the running VMs, throws when they cannot be applied */
  resync(): Promise<void>;
}

export interface PortForwarder {
  /** the QEMU hostfwd list a VM boots with ([] when the kernel forwards) */
  bootForwards(task: Task): HostForward[];
  /** tasks/modify changed ports (or filters) on a VM that may be running: make them live, then or after commit() */
  apply(before: Task, after: Task, change: ForwardChange): Promise<void>;
  /** where this host reaches the guest's SSH (RDP for windows) port, for the readiness probe; none: not probed */
  probeTarget?(task: Task): { host: string; port: number; protocol: 'ssh' | 'rdp' } | undefined;
}

/** the ports of a task: ssh -> 22, rdp -> 3389, then custom_port entries (net/ports.ts syntax) */
export function portMappingsOf(task: Pick<Task, 'ssh_port' | 'rdp_port' | 'custom_ports'>): PortMapping[] {
  const out: PortMapping[] = [];
  if (task.ssh_port) out.push({ proto: 'tcp', hostFrom: task.ssh_port, hostTo: task.ssh_port, guestFrom: 22, guestTo: 22 });
  if (task.rdp_port) out.push({ proto: 'tcp', hostFrom: task.rdp_port, hostTo: task.rdp_port, guestFrom: 3389, guestTo: 3389 });
  out.push(...parseCustomPorts(task.custom_ports));
  return out;
}

/** user mode: one QEMU hostfwd per host port, bound to forwardHost */
export class HostfwdForwarder implements PortForwarder {
  constructor(
    private readonly hv: Pick<Hypervisor, 'addForward' | 'removeForward'>,
    private readonly forwardHost: string,
  ) {}

  bootForwards(task: Task): HostForward[] {
    return expandForwards(portMappingsOf(task), this.forwardHost);
  }

  probeTarget(task: Task): { host: string; port: number; protocol: 'ssh' | 'rdp' } | undefined {
    const windows = task.os === 'windows';
    const port = windows ? task.rdp_port : task.ssh_port;
    if (!port) return undefined;
    const host = this.forwardHost === '0.0.0.0' ? '127.0.0.1' : this.forwardHost === '::' ? '::1' : this.forwardHost;
    return { host, port, protocol: windows ? 'rdp' : 'ssh' };
  }

  /** running: the forwards that go are removed and the new ones added before the change is recorded */
  async apply(before: Task, after: Task, change: ForwardChange): Promise<void> {
    if (change.running) {
      const oldFwd = this.bootForwards(before);
      const newFwd = this.bootForwards(after);
      const key = (f: HostForward) => `${f.proto}:${f.hostAddr}:${f.hostPort}:${f.guestPort}`;
      const keep = new Set(newFwd.map(key));
      const had = new Set(oldFwd.map(key));
      for (const f of oldFwd) if (!keep.has(key(f))) await this.hv.removeForward(before.task_id, f);
      for (const f of newFwd) if (!had.has(key(f))) await this.hv.addForward(before.task_id, f);
    }
    change.commit();
  }
}

/** bridge mode: DNAT rules follow the stored tasks, so the change is recorded first and the rules rebuilt from it */
export class KernelForwarder implements PortForwarder {
  bootForwards(_task: Task): HostForward[] {
    return [];
  }

  async apply(_before: Task, _after: Task, change: ForwardChange): Promise<void> {
    change.commit();
    await change.resync();
  }
}
