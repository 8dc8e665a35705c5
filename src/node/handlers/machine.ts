// mining_nodes/*: machine info (open), the renter's session id, dropping caches.
import { NodeErrors } from '../../errors/index.js';
import type { RouteId } from '../../protocol/types.js';
import { listLocalImages } from '../../images/local.js';
import { miningNodeMessage } from '../../host/mining-node-info.js';
import type { Handler } from '../context.js';

const info: Handler = async (ctx) => {
  const host = await ctx.inventory.snapshot();
  return {
    message: miningNodeMessage(host, {
      version: ctx.version,
      ip: ctx.publicHost,
      images: listLocalImages(ctx.imageDir).map(({ image_name, image_size }) => ({ image_name, image_size })),
      gpuUsed: ctx.tasks.gpusInUse(),
      networkMode: ctx.net.mode,
    }),
  };
};

const sessionId: Handler = async (ctx, _req, caller) => {
  if (!caller) throw NodeErrors.noSessionId();
  return { message: { session_id: ctx.auth.sessions.getOrCreate(caller.identity.account, caller.identity.signers) } };
};

const freeMemory: Handler = async (ctx) => {
  await ctx.dropCaches();
  return { message: 'ok' };
};

export const machineHandlers: Partial<Record<RouteId, Handler>> = {
  'mining_nodes.info': info,
  'mining_nodes.session_id': sessionId,
  'mining_nodes.free_memory': freeMemory,
};
