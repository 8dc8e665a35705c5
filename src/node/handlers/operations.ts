// operations (ours): the caller's long operations, newest first; additional.task_id narrows to one task.
// (operations/<id> for one operation is in handlers/tasks.ts.)
import { NodeErrors } from '../../protocol/errors.js';
import type { RouteId } from '../../protocol/types.js';
import type { Handler } from '../context.js';
import { callerAccount } from './disk.js';

const list: Handler = async (ctx, req, caller) => {
  const account = callerAccount(caller);
  const raw = req.body.additional.task_id;
  let taskId: string | undefined;
  if (raw !== undefined && raw !== '' && raw !== 'undefined') {
    if (typeof raw !== 'string') throw NodeErrors.invalidParam('task_id is invalid');
    taskId = ctx.engine.owned(raw, account).task_id;
  }
  const ops = ctx.engine.storage.operationsOf(account, taskId);
  return {
    message: ops.map((op) => ({
      operation_id: op.id,
      task_id: op.task_id,
      kind: op.kind,
      status: op.status,
      progress: op.progress,
      stage: op.stage,
      error: op.error,
      created_at: new Date(op.created_at).toISOString(),
      updated_at: new Date(op.updated_at).toISOString(),
    })),
  };
};

export const operationHandlers: Partial<Record<RouteId, Handler>> = {
  'operations.list': list,
};
