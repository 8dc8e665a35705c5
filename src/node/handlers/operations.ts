// operations (ours): one operation by id, or the caller's long operations, newest first (additional.task_id
// narrows to one task).
import { NodeErrors } from '../../protocol/errors.js';
import type { RouteId } from '../../protocol/types.js';
import type { OperationRow } from '../../store/tasks.js';
import type { Handler } from '../context.js';
import { callerAccount } from './caller.js';

function operationView(op: OperationRow): Record<string, unknown> {
  return {
    operation_id: op.id,
    task_id: op.task_id,
    kind: op.kind,
    status: op.status,
    progress: op.progress,
    stage: op.stage,
    error: op.error,
    created_at: new Date(op.created_at).toISOString(),
    updated_at: new Date(op.updated_at).toISOString(),
  };
}

const get: Handler = async (ctx, req, caller) => ({
  message: operationView(ctx.engine.operation(req.params.operation_id ?? '', callerAccount(caller))),
});

const list: Handler = async (ctx, req, caller) => {
  const account = callerAccount(caller);
  const raw = req.body.additional.task_id;
  let taskId: string | undefined;
  if (raw !== undefined && raw !== '' && raw !== 'undefined') {
    if (typeof raw !== 'string') throw NodeErrors.invalidParam('task_id is invalid');
    taskId = ctx.engine.owned(raw, account).task_id;
  }
  const ops = ctx.engine.storage.operationsOf(account, taskId);
  return { message: ops.map(operationView) };
};

export const operationHandlers: Partial<Record<RouteId, Handler>> = {
  'operations.get': get,
  'operations.list': list,
};
