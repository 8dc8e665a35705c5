// lan/*: private LANs (original §11). `additional` becomes typed input here (net/lan-input.ts, the original's
// texts); the LanService does the work (registry, devices, DHCP); handlers shape replies.
// Via a GPU node the original answered the list as a bare array (at most 31) and one network as the object.
import { parseLanCreate } from '../../net/lan-input.js';
import type { RouteId } from '../../protocol/types.js';
import type { Handler } from '../context.js';

import { callerAccount } from './caller.js';

const MAX_LIST = 31;

const list: Handler = async (ctx, _req, caller) => ({
  message: ctx.lans.list(callerAccount(caller)).slice(0, MAX_LIST),
});

const detail: Handler = async (ctx, req, caller) => ({
  message: ctx.lans.detail(callerAccount(caller), req.params.network_name ?? ''),
});

const create: Handler = async (ctx, req, caller) => {
  const account = callerAccount(caller);
  return { message: await ctx.lans.create(account, parseLanCreate(req.body.additional)) };
};

const remove: Handler = async (ctx, req, caller) => {
  await ctx.lans.remove(callerAccount(caller), req.params.network_name ?? '');
  return { message: 'ok' };
};

export const lanHandlers: Partial<Record<RouteId, Handler>> = {
  'lan.list': list,
  'lan.detail': detail,
  'lan.create': create,
  'lan.delete': remove,
};
