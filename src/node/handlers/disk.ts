// disk/*: a VM's disks (original §8). Work is done before the reply (qemu-img and QMP take milliseconds), so every
// failure is the reply's envelope; the operation id is in the reply for the record.
import type { RouteId } from '../../protocol/types.js';
import type { Handler } from '../context.js';

import { ownedTask } from './caller.js';

const list: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const disks = await ctx.engine.storage.disks.list(task);
  return { message: disks.map(({ name, file, size }) => ({ name, file, size })) };
};

const add: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const a = req.body.additional;
  const { operationId } = await ctx.engine.storage.disks.add(task, a.size, a.mount_dir);
  return { message: 'ok', operationId };
};

const resize: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const a = req.body.additional;
  const { operationId } = await ctx.engine.storage.disks.resize(task, a.disk, a.size);
  return { message: 'ok', operationId };
};

const remove: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const { operationId } = await ctx.engine.storage.disks.remove(task, req.body.additional.disk);
  return { message: 'ok', operationId };
};

export const diskHandlers: Partial<Record<RouteId, Handler>> = {
  'disk.list': list,
  'disk.add': add,
  'disk.resize': resize,
  'disk.delete': remove,
};
