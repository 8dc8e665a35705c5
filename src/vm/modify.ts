// tasks/modify: ports change at once (the network mode's PortForwarder applies them to a running VM), cpu, memory,
// GPUs and the VNC port at the next boot (kept in the task's `pending` changes).
import type { ModifyParams } from '../domain/commands.js';
import type { PendingChanges, Task } from '../domain/task.js';
import { NodeErrors } from '../errors/index.js';
import type { LifecycleDeps } from './lifecycle.js';

export async function modifyTask(d: LifecycleDeps, task: Task, m: ModifyParams): Promise<string> {
  if (d.ops.isLocked(task.task_id)) throw NodeErrors.taskBusy(task.status);
  const ssh = m.sshPort ?? task.ssh_port;
  const rdp = m.rdpPort ?? task.rdp_port;
  const vnc = m.vncPort ?? task.vnc_port;
  const custom = m.customPorts ?? task.custom_ports;
  if (ssh && rdp && ssh === rdp) throw NodeErrors.samePorts();
  await d.placement.checkPorts(
    task.task_id,
    { ssh, rdp, vnc, custom },
    { ssh: task.ssh_port, rdp: task.rdp_port, vnc: task.vnc_port, custom: task.custom_ports },
  );
  const pending: PendingChanges = { ...task.pending };
  let nextBoot = false;
  if (m.vncPort !== undefined && m.vncPort !== task.vnc_port) {
    pending.vnc_port = m.vncPort;
    nextBoot = true;
  }
  if (m.gpuCount !== undefined && m.gpuCount !== task.gpu_count) {
    const available = (await d.placement.passthroughGpus()).length;
    if (m.gpuCount > available) throw NodeErrors.gpuNotAvailable(m.gpuCount, available);
    pending.gpu_count = m.gpuCount;
    nextBoot = true;
  }
  if (m.cpuCores !== undefined && m.cpuCores !== task.cpu_cores) {
    if (m.cpuCores > d.config.hostCores) throw NodeErrors.cpuAllocate();
    pending.cpu_cores = m.cpuCores;
    nextBoot = true;
  }
  if (m.memGb !== undefined && m.memGb !== task.mem_size_gb) {
    if (m.memGb > d.config.hostMemGiB()) throw NodeErrors.memAllocate();
    pending.mem_size_gb = m.memGb;
    nextBoot = true;
  }
  if (m.publicIp !== undefined && m.publicIp !== '') {
    throw NodeErrors.publicIpNotSupported();
  }
  if (m.networkFilters) d.net.filters(m.networkFilters);

  const after: Task = { ...task, ssh_port: ssh, rdp_port: rdp, custom_ports: custom, network_filters: m.networkFilters ?? task.network_filters, pending };
  await d.net.forwarder.apply(task, after, {
    running: d.hv.running().includes(task.task_id),
    commit: () =>
      d.store.update(task.task_id, {
        ssh_port: ssh,
        rdp_port: rdp,
        custom_ports: custom,
        network_filters: after.network_filters,
        pending,
      }),
    resync: () => d.netSync.sync(true),
  });
  return nextBoot ? 'some changes will take effect on the next boot' : 'ok';
}
