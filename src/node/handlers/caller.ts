// Who is asking, for handlers: every node-routed handler behind renter auth has a caller.
import { NodeErrors } from '../../protocol/errors.js';
import type { TaskRow } from '../../store/tasks.js';
import type { Caller, NodeContext } from '../context.js';

export function owner(caller: Caller | null): Caller {
  if (!caller) throw NodeErrors.checkAuthority('no credential given');
  return caller;
}

export function callerAccount(caller: Caller | null): string {
  return owner(caller).identity.account;
}

/** the caller's task, or `task_id not exist` */
export function ownedTask(ctx: NodeContext, taskId: string | undefined, caller: Caller | null): TaskRow {
  return ctx.engine.owned(taskId ?? '', callerAccount(caller));
}
