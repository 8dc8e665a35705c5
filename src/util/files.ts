// Putting a file into a directory without ever exposing a half-written name.
import { chmodSync, constants, copyFileSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

/**
 * Place `source` into `dir` under its own name, unless a file of that name is already there: a copy of its own
 * (a reflink where the filesystem can, COPYFILE_FICLONE, else a plain copy), through a temporary name and a rename.
 * Never a hard link: a base image shares its inode with nothing another party can write (an image centre's
 * module, the operator's --image source; issue 10, finding 2). `mode` (default 0444) is set before the rename.
 * Returns the name.
 */
export function placeFile(source: string, dir: string, mode = 0o444): string {
  mkdirSync(dir, { recursive: true });
  const name = basename(source);
  const target = join(dir, name);
  const existing = statOrUndefined(target);
  // a file of that name stays, unless it is a hard link to the source (left by an older version): then it is
  // replaced by a copy of its own
  if (existing) {
    const src = statSync(source);
    if (existing.ino !== src.ino || existing.dev !== src.dev) return name;
  }
  const tmp = `${target}.${process.pid}.part`;
  try {
    copyFileSync(source, tmp, constants.COPYFILE_FICLONE);
    chmodSync(tmp, mode);
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return name;
}

function statOrUndefined(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
