// images/*: the node's image directory and its transfers with image centres (original §10).
import { StorageErrors } from '../../errors/index.js';
import type { NodeRequest, RouteId } from '../../protocol/types.js';
import { validImageServer, type ImageServer } from '../../images/servers.js';
import { imageDownloadArgs, imageFilenameArg, imageUploadArgs } from '../commands/storage.js';
import type { Handler } from '../context.js';
import { callerAccount } from './caller.js';

/** the image centre the client shipped (resolved from its own configuration); shape-checked, never trusted */
export function imageServerOf(req: NodeRequest): ImageServer | undefined {
  if (req.image_server === undefined) return undefined;
  const s = validImageServer(req.image_server);
  if (!s) throw StorageErrors.imageServerInvalid();
  return s;
}

// open, as the original; a caller who also authenticates (session or signature) gets their snapshots listed too
const list: Handler = async (ctx, req) => {
  imageServerOf(req);
  const anonymous = ctx.storage.images.list(undefined);
  try {
    // the nonce is consumed only when the signature shows something of the caller's own: anyone else's valid
    // signature writes nothing (issue 10, finding 6); a replayed nonce is refused by verify() and lists anonymously
    const pending = ctx.auth.verify(req.body, { allowSession: true });
    if (!pending) return { message: anonymous };
    const mine = ctx.storage.images.list(pending.identity.account);
    if (mine.length === anonymous.length) return { message: anonymous };
    pending.commit();
    return { message: mine };
  } catch {
    return { message: anonymous };
  }
};

const download: Handler = async (ctx, req, caller) => {
  const wallet = callerAccount(caller);
  const a = imageDownloadArgs(imageServerOf(req), req.body.additional);
  const row = await ctx.storage.images.download(wallet, a.server, a.file, a.localDir);
  return { message: 'ok', operationId: row.operation_id };
};

// progress and stop: the caller's own transfers only (another wallet's answer as if there were none)
const downloadProgress: Handler = async (ctx, req, caller) => ({
  message: ctx.storage.images.downloadProgress(callerAccount(caller), imageFilenameArg(req.body.additional.image_filename)),
});

const downloadStop: Handler = async (ctx, req, caller) => {
  await ctx.storage.images.downloadStop(callerAccount(caller), imageFilenameArg(req.body.additional.image_filename));
  return { message: 'ok' };
};

const upload: Handler = async (ctx, req, caller) => {
  const wallet = callerAccount(caller);
  const a = imageUploadArgs(imageServerOf(req), req.body.additional);
  const row = await ctx.storage.images.upload(wallet, a.server, a.file);
  return { message: 'ok', operationId: row.operation_id };
};

const uploadProgress: Handler = async (ctx, req, caller) => ({
  message: ctx.storage.images.uploadProgress(callerAccount(caller), imageFilenameArg(req.body.additional.image_filename)),
});

const uploadStop: Handler = async (ctx, req, caller) => {
  await ctx.storage.images.uploadStop(callerAccount(caller), imageFilenameArg(req.body.additional.image_filename));
  return { message: 'ok' };
};

const remove: Handler = async (ctx, req, caller) => {
  await ctx.storage.images.remove(callerAccount(caller), imageFilenameArg(req.body.additional.image_filename));
  return { message: 'ok' };
};

export const imageHandlers: Partial<Record<RouteId, Handler>> = {
  'images.list': list,
  'images.download': download,
  'images.download_progress': downloadProgress,
  'images.download_stop': downloadStop,
  'images.upload': upload,
  'images.upload_progress': uploadProgress,
  'images.upload_stop': uploadStop,
  'images.delete': remove,
};
