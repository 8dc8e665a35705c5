// snapshot/*: snapshots of a VM's system disk (original §9). create answers at once; the work is an operation.
import type { RouteId } from '../../protocol/types.js';
import { snapshotCreateArgs } from '../commands/storage.js';
import type { Handler } from '../context.js';
import { ownedTask } from './caller.js';
import { imageServerOf } from './images.js';

const list: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const snaps = ctx.storage.snapshots;
  if (req.params.snapshot_name !== undefined) return { message: snaps.entry(snaps.get(task, req.params.snapshot_name)) };
  return { message: snaps.list(task).map((s) => snaps.entry(s)) };
};

const create: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  const a = snapshotCreateArgs(task, req.body.additional, imageServerOf(req));
  const { operationId } = await ctx.storage.snapshots.create(task, a.name, a.desc, a.server);
  return { message: 'ok', operationId };
};

const remove: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  await ctx.storage.snapshots.remove(task, req.params.snapshot_name ?? '');
  return { message: 'ok' };
};

export const snapshotHandlers: Partial<Record<RouteId, Handler>> = {
  'snapshot.list': list,
  'snapshot.create': create,
  'snapshot.delete': remove,
};
