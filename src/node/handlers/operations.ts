// operations (ours): one operation by id, or the caller's long operations, newest first (additional.task_id
// narrows to one task).
import { NodeErrors } from '../../errors/index.js';
import type { RouteId } from '../../protocol/types.js';
import type { Operation } from '../../ops/index.js';
import type { Handler } from '../context.js';
import { callerAccount } from './caller.js';

function operationView(op: Operation): Record<string, unknown> {
  return {
    operation_id: op.id,
    task_id: op.task_id,
    kind: op.kind,
    status: op.status,
    progress: op.progress,
    stage: op.stage,
    error: op.error,
    ...(op.bytes_total > 0 ? { bytes_done: op.bytes_done, bytes_total: op.bytes_total } : {}),
    created_at: new Date(op.created_at).toISOString(),
    updated_at: new Date(op.updated_at).toISOString(),
  };
}

const get: Handler = async (ctx, req, caller) => {
  const op = ctx.ops.get(req.params.operation_id ?? '');
  // another renter's operation does not exist for the caller
  if (!op || op.wallet !== callerAccount(caller)) throw NodeErrors.operationNotExist();
  return { message: operationView(op) };
};

const list: Handler = async (ctx, req, caller) => {
  const account = callerAccount(caller);
  const raw = req.body.additional.task_id;
  let taskId: string | undefined;
  if (raw !== undefined && raw !== '' && raw !== 'undefined') {
    if (typeof raw !== 'string') throw NodeErrors.paramInvalid('task_id');
    taskId = ctx.tasks.owned(raw, account).task_id;
  }
  const ops = ctx.ops.ofWallet(account, taskId);
  return { message: ops.map(operationView) };
};

/** the longest wait one request may ask: below the gateway's 30 s request deadline */
export const MAX_WAIT_S = 25;

const wait: Handler = async (ctx, req, caller) => {
  const account = callerAccount(caller);
  const op = ctx.ops.get(req.params.operation_id ?? '');
  if (!op || op.wallet !== account) throw NodeErrors.operationNotExist();
  const raw = req.body.additional.timeout;
  let seconds = MAX_WAIT_S;
  if (raw !== undefined && raw !== '') {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isFinite(n) || n < 0 || n > MAX_WAIT_S) throw NodeErrors.paramInvalid('timeout');
    seconds = n;
  }
  const now = await ctx.ops.waitEnded(op.id, seconds * 1000);
  return { message: operationView(now ?? op) };
};

export const operationHandlers: Partial<Record<RouteId, Handler>> = {
  'operations.get': get,
  'operations.wait': wait,
  'operations.list': list,
};
