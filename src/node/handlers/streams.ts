// Tickets for the long-lived channels (ours, docs/events.md, docs/console.md): a signed POST gets a single-use
// ticket bound to the caller's account (and task) that the GET / websocket route then presents.
import { NodeErrors } from '../../errors/index.js';
import type { RouteId } from '../../protocol/types.js';
import type { Handler } from '../context.js';
import { callerAccount, ownedTask } from './caller.js';

const eventsTicket: Handler = async (ctx, _req, caller) => {
  const t = ctx.tickets.issue({ kind: 'events', account: callerAccount(caller) });
  return { message: { ...t, url: `/api/v1/events?ticket=${t.ticket}`, ws_url: `/api/v1/events/ws?ticket=${t.ticket}` } };
};

const consoleTicket: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  if (!ctx.tasks.consoleOf(task.task_id)) throw NodeErrors.consoleNotRunning();
  const t = ctx.tickets.issue({ kind: 'console', account: callerAccount(caller), taskId: task.task_id });
  return { message: { ...t, task_id: task.task_id, url: `/api/v1/console?ticket=${t.ticket}` } };
};

const vncTicket: Handler = async (ctx, req, caller) => {
  const task = ownedTask(ctx, req.params.task_id, caller);
  if (!ctx.tasks.consoleOf(task.task_id)) throw NodeErrors.consoleNotRunning();
  const t = ctx.tickets.issue({ kind: 'vnc', account: callerAccount(caller), taskId: task.task_id });
  // no password: the node answers QEMU's VNC challenge and offers the viewer no authentication (vm/vnc-proxy.ts)
  return { message: { ...t, task_id: task.task_id, url: `/api/v1/vnc?ticket=${t.ticket}` } };
};

export const streamHandlers: Partial<Record<RouteId, Handler>> = {
  'events.ticket': eventsTicket,
  'tasks.console': consoleTicket,
  'tasks.vnc': vncTicket,
};
