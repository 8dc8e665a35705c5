// Who is asking, for handlers: every node-routed handler behind renter auth has a caller.
import { AuthErrors } from '../../errors/index.js';
import type { Task } from '../../domain/task.js';
import type { Caller, NodeContext } from '../context.js';

export function owner(caller: Caller | null): Caller {
  if (!caller) throw AuthErrors.noCredential();
  return caller;
}

export function callerAccount(caller: Caller | null): string {
  return owner(caller).identity.account;
}

/** the caller's task, or `task_id not exist` */
export function ownedTask(ctx: NodeContext, taskId: string | undefined, caller: Caller | null): Task {
  return ctx.tasks.owned(taskId ?? '', callerAccount(caller));
}
