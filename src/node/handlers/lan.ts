// lan/*: private LANs (original §11). The engine does the work (registry, devices, DHCP); handlers shape replies.
// Via a GPU node the original answered the list as a bare array (at most 31) and one network as the object.
import type { RouteId } from '../../protocol/types.js';
import type { Handler } from '../context.js';

import { callerAccount } from './caller.js';

const MAX_LIST = 31;

const list: Handler = async (ctx, _req, caller) => ({
  message: ctx.engine.listLans(callerAccount(caller)).slice(0, MAX_LIST),
});

const detail: Handler = async (ctx, req, caller) => ({
  message: ctx.engine.lanDetail(callerAccount(caller), req.params.network_name ?? ''),
});

const create: Handler = async (ctx, req, caller) => {
  const a = req.body.additional;
  return { message: await ctx.engine.createLan(callerAccount(caller), a.network_name, a.ip_cidr) };
};

const remove: Handler = async (ctx, req, caller) => {
  await ctx.engine.deleteLan(callerAccount(caller), req.params.network_name ?? '');
  return { message: 'ok' };
};

export const lanHandlers: Partial<Record<RouteId, Handler>> = {
  'lan.list': list,
  'lan.detail': detail,
  'lan.create': create,
  'lan.delete': remove,
};
