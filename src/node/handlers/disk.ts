// disk/*: a VM's disks (original §8). Work is done before the reply (qemu-img and a hot-plug take milliseconds), so
// every failure is the reply's envelope; the operation id is in the reply for the record.
import type { RouteId } from '../../protocol/types.js';
import { diskAddArgs, diskRemoveArgs, diskResizeArgs } from '../commands/storage.js';
import type { Handler } from '../context.js';

import { ownedTask } from './caller.js';

const list: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const disks = await ctx.storage.disks.list(task);
  return { message: disks.map(({ name, file, size }) => ({ name, file, size })) };
};

const add: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const a = diskAddArgs(task, req.body.additional);
  const { operationId } = await ctx.storage.disks.add(task, a.sizeGb, a.mountDir);
  return { message: 'ok', operationId };
};

const resize: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const a = diskResizeArgs(task, req.body.additional);
  const { operationId } = await ctx.storage.disks.resize(task, a.disk, a.incGb);
  return { message: 'ok', operationId };
};

const remove: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const { operationId } = await ctx.storage.disks.remove(task, diskRemoveArgs(task, req.body.additional).disk);
  return { message: 'ok', operationId };
};

export const diskHandlers: Partial<Record<RouteId, Handler>> = {
  'disk.list': list,
  'disk.add': add,
  'disk.resize': resize,
  'disk.delete': remove,
};
