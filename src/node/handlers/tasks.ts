// tasks/*: the VM lifecycle routes of the GPU node.
import { NodeErrors } from '../../errors/index.js';
import type { RouteId } from '../../protocol/types.js';
import type { Task } from '../../domain/task.js';
import { parseCreateParams, parseModifyParams, optString } from '../params.js';
import type { Handler, NodeContext } from '../context.js';

import { owner, ownedTask } from './caller.js';
import { nicMac } from '../../net/mac.js';

/** the VM's NICs as the original listed them (name, type, mac_address), plus the model and the LAN or group */
function interfacesOf(ctx: NodeContext, task: Task): Array<Record<string, unknown>> {
  const types = ctx.net.nicTypes();
  const out: Array<Record<string, unknown>> = [{ name: 'net0', type: types.main, model: task.nic_model, mac_address: nicMac(task.task_id) }];
  if (task.network_name) {
    out.push({ name: 'lan0', type: types.lan, model: 'virtio', mac_address: nicMac(task.task_id, 'lan0'), network_name: task.network_name });
  }
  task.multicast.forEach((group, i) => {
    out.push({ name: `mc${i}`, type: 'mcast', model: 'virtio', mac_address: nicMac(task.task_id, `mc${i}`), multicast: group });
  });
  return out;
}

export function taskDetail(ctx: NodeContext, task: Task): Record<string, unknown> {
  const disks = ctx.tasks.disks(task.task_id);
  const ops = ctx.ops.ofTask(task.task_id);
  const detail: Record<string, unknown> = {
    task_id: task.task_id,
    os: task.os,
    ssh_ip: ctx.publicHost,
  };
  if (task.os === 'windows') detail.rdp_port = String(task.rdp_port);
  else detail.ssh_port = String(task.ssh_port);
  Object.assign(detail, {
    user_name: task.login_user,
    login_password: task.login_password,
    cpu_cores: task.cpu_cores,
    gpu_count: task.gpu_count,
    mem_size: `${task.mem_size_gb}G`,
    disk_data: `${task.disk_size_gb}G`,
    vnc_port: String(task.vnc_port),
    vnc_password: task.vnc_password,
    create_time: task.create_time,
    desc: task.desc,
    status: task.status,
    image_name: task.image_name,
    bios_mode: task.bios_mode,
    custom_port: task.custom_ports,
    disks: disks.map((d) => ({ name: d.name, size: d.kind === 'os' ? '' : `${d.size_gb}G`, source_file: ctx.tasks.shownDiskPath(task.task_id, d.path) })),
    interface: interfacesOf(ctx, task),
    // ours: structured login info and the latest operation
    login: {
      host: ctx.publicHost,
      port: task.os === 'windows' ? task.rdp_port : task.ssh_port,
      user: task.login_user,
      protocol: task.os === 'windows' ? 'rdp' : 'ssh',
    },
    // ours: the guest answered since its last boot (agent, SSH/RDP banner or console marker), and when
    guest_ready: task.guest_ready,
    guest_ready_time: task.guest_ready_time,
  });
  if (task.rent_order) detail.rent_order = task.rent_order;
  if (task.network_name) detail.network_name = task.network_name;
  if (task.multicast.length > 0) detail.multicast = task.multicast;
  const addrs = ctx.net.addresses(task);
  if (addrs.local_ip) detail.local_ip = addrs.local_ip;
  if (addrs.local_address) detail.local_address = addrs.local_address;
  if (task.network_filters.length > 0) detail.network_filters = task.network_filters;
  if (Object.keys(task.pending).length > 0) detail.pending_changes = task.pending;
  if (task.last_error) detail.last_error = task.last_error;
  if (ops[0]) detail.operation = { operation_id: ops[0].id, kind: ops[0].kind, status: ops[0].status, progress: ops[0].progress };
  return detail;
}

const list: Handler = async (ctx, _req, caller) => ({
  message: ctx.tasks.list(owner(caller).identity.account).map((t) => ({
    task_id: t.task_id,
    create_time: t.create_time,
    desc: t.desc,
    status: t.status,
  })),
});

const detail: Handler = async (ctx, req, caller) => ({ message: taskDetail(ctx, ownedTask(ctx, req.params.task_id, caller)) });

const create: Handler = async (ctx, req, caller) => {
  const who = owner(caller);
  const params = parseCreateParams(req.body.additional);
  let rentedGpus = who.rental.gpus;
  let rentOrder = optString(req.body as unknown as Record<string, unknown>, 'rent_order') ?? '';
  if (who.rental.role === 'verifier') {
    // a committee member checks the whole machine: the original forced vm_check_<unix seconds>, every GPU, every
    // core and the free memory, whatever was asked (TM:783-832, 1353-1435)
    const host = await ctx.inventory.snapshot();
    const gib = 1024 * 1024;
    params.taskId = `vm_check_${Math.floor(ctx.now() / 1000)}`;
    params.gpuCount = host.gpuPassthrough.filter((g) => g.vfioReady).length;
    params.cpuCores = Math.max(1, host.cpu.cores);
    params.memGb = Math.max(1, Math.min(Math.floor(host.mem.totalKiB / gib), Math.floor(host.mem.availableKiB / gib)));
    rentedGpus = params.gpuCount;
    rentOrder = '';
  } else if (who.rental.gpuIndex !== undefined) {
    // a chain order: record the order the VM belongs to; a per-GPU order on a bigger machine must use exactly its GPUs
    if (who.rental.rentOrder) rentOrder = who.rental.rentOrder;
    const hostGpus = (await ctx.inventory.snapshot()).gpuPassthrough.length;
    if (who.rental.gpus > 0 && who.rental.gpus < hostGpus && params.gpuCount !== who.rental.gpus) throw NodeErrors.gpuExactLease();
  }
  const { task, operationId } = await ctx.tasks.create({ account: who.identity.account, rentOrder, rentedGpus }, params);
  return {
    message: { task_id: task.task_id, create_time: task.create_time, desc: task.desc, status: 'creating', operation_id: operationId },
    operationId,
  };
};

const power =
  (action: (ctx: NodeContext, task: Task, force: boolean) => string): Handler =>
  async (ctx, req, caller) => {
    const task = ownedTask(ctx, req.params.task_id, caller);
    const force = req.query.force_reboot === 'true' || (/^-?\d+$/.test(req.query.force_reboot ?? '') && Number(req.query.force_reboot) !== 0);
    const operationId = action(ctx, task, force);
    return { message: 'ok', operationId };
  };

const logs: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const flag = req.query.flag ?? 'tail';
  if (flag !== 'head' && flag !== 'tail') throw NodeErrors.headOrTailInvalid();
  const raw = req.query.line_num ?? '100';
  const lines = /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(lines >= 1 && lines <= 100)) throw NodeErrors.logLinesInvalid();
  return { message: { task_id: task.task_id, log_content: ctx.tasks.logs(task, flag, lines) } };
};

const modify: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  return { message: await ctx.tasks.modify(task, parseModifyParams(req.body.additional)) };
};

const USER_RE = /^[A-Za-z_][A-Za-z0-9_-]{0,31}$/;

const passwd: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const username = optString(req.body.additional, 'username');
  const password = optString(req.body.additional, 'password');
  if (password === undefined) throw NodeErrors.passwordEmpty();
  if (username === undefined) throw NodeErrors.userNameEmpty();
  if (!USER_RE.test(username)) throw NodeErrors.paramInvalid('user name');
  // eslint-disable-next-line no-control-regex -- refuses control characters in a password
  if (password.length > 128 || /[\x00-\x1f\x7f]/.test(password)) throw NodeErrors.paramInvalid('password');
  await ctx.tasks.passwd(task, username, password);
  return { message: 'ok' };
};

export const taskHandlers: Partial<Record<RouteId, Handler>> = {
  'tasks.list': list,
  'tasks.detail': detail,
  'tasks.create': create,
  'tasks.start': power((ctx, t) => ctx.tasks.start(t)),
  'tasks.shutdown': power((ctx, t) => ctx.tasks.shutdown(t)),
  'tasks.poweroff': power((ctx, t) => ctx.tasks.poweroff(t)),
  'tasks.stop': power((ctx, t) => ctx.tasks.poweroff(t)),
  'tasks.restart': power((ctx, t, force) => ctx.tasks.restart(t, force)),
  'tasks.reset': power((ctx, t) => ctx.tasks.reset(t)),
  'tasks.delete': power((ctx, t) => ctx.tasks.remove(t)),
  'tasks.logs': logs,
  'tasks.modify': modify,
  'tasks.passwd': passwd,
};
