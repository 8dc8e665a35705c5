// Validation of every name and directory a storage request may carry. Names reach rsync, qemu-img and QEMU as
// argv items and path components, so they are whitelisted: a letter or digit first (never an option), then
// letters, digits, '.', '_', '-' (no '/', no '..', no spaces, no commas for QEMU's option syntax).
import { realpathSync, statfsSync } from 'node:fs';
import { isAbsolute, normalize, relative } from 'node:path';

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const SNAPSHOT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** data disks: vdb .. vdz (vda is the system disk) */
export const DISK_NAME_RE = /^vd[a-z]$/;

/** a plain file name (no directory part, no '..') */
export function isSafeName(name: unknown): name is string {
  return typeof name === 'string' && NAME_RE.test(name) && !name.includes('..');
}

/** an image file name: a safe name ending in .qcow2 */
export function isImageFilename(name: unknown): name is string {
  return isSafeName(name) && name.endsWith('.qcow2') && name.length > '.qcow2'.length;
}

export function isSnapshotName(name: unknown): name is string {
  return typeof name === 'string' && SNAPSHOT_NAME_RE.test(name) && !name.includes('..');
}

export function isDiskName(name: unknown): name is string {
  return typeof name === 'string' && DISK_NAME_RE.test(name);
}

/**
 * `image_filename` as clients send it: `x.qcow2` or `/data/x.qcow2` (the original's fixed image dir). Anything else
 * with a directory part, or a name that is not a safe .qcow2 name, is refused (undefined).
 */
export function imageFilenameOf(raw: string): string | undefined {
  const name = raw.startsWith('/data/') ? raw.slice('/data/'.length) : raw;
  return isImageFilename(name) ? name : undefined;
}

/** absolute, normalised, printable, no '..' and no ',' (QEMU option syntax) */
export function isCleanAbsoluteDir(dir: unknown): dir is string {
  return (
    typeof dir === 'string' &&
    dir.length > 0 &&
    dir.length <= 1024 &&
    isAbsolute(dir) &&
    /^[A-Za-z0-9._/-]+$/.test(dir) &&
    !dir.split('/').includes('..') &&
    normalize(dir).replace(/\/+$/, '') === dir.replace(/\/+$/, '')
  );
}

/** true when child (a real path) is root itself or inside it */
export function isInside(root: string, child: string): boolean {
  const rel = relative(root, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

export type DirCheck = { ok: true; dir: string } | { ok: false; reason: 'invalid' | 'not_allowed' | 'not_exist' };

/**
 * Maps a requested directory to a real one: `/data` (the original's hard-coded directory) is `home`; any other
 * value must be a clean absolute path whose real path lies inside one of `allowed` (symlinks resolved, so a link
 * cannot lead outside).
 */
export function resolveRequestedDir(requested: string, home: string, allowed: readonly string[]): DirCheck {
  const req = requested.replace(/\/+$/, '') || '/';
  if (req === '/data') return { ok: true, dir: home };
  if (!isCleanAbsoluteDir(req)) return { ok: false, reason: 'invalid' };
  const roots: string[] = [];
  for (const a of allowed) {
    try {
      roots.push(realpathSync(a));
    } catch {
      // an allowed directory that does not exist (yet) allows nothing
    }
  }
  let real: string;
  try {
    real = realpathSync(req);
  } catch {
    // refuse to say whether a path outside the allowed roots exists
    return { ok: false, reason: roots.some((r) => isInside(r, req)) ? 'not_exist' : 'not_allowed' };
  }
  if (!roots.some((r) => isInside(r, real))) return { ok: false, reason: 'not_allowed' };
  return { ok: true, dir: real };
}

/** bytes an unprivileged writer may still use on the filesystem of path */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return Number(s.bavail) * Number(s.bsize);
}

/**
 * How a host file is shown to a renter: a file of the image directory as the original's `/data/<name>`, a file of
 * a VM's own folder as `/data/vm/<task_id>/<name>`; anything else (a directory the renter named in mount_dir) as is.
 * Replies never carry the node's data directory.
 */
export function shownPath(path: string, imageDir: string, taskDir?: { taskId: string; dir: string }): string {
  const under = (root: string, shown: string) => (path === root ? shown : `${shown}/${relative(root, path)}`);
  if (isInside(imageDir, path)) return under(imageDir, '/data');
  if (taskDir && isInside(taskDir.dir, path)) return under(taskDir.dir, `/data/vm/${taskDir.taskId}`);
  return path;
}
