// Putting a file into a directory without ever exposing a half-written name.
import { copyFileSync, existsSync, linkSync, mkdirSync, renameSync } from 'node:fs';
import { basename, join } from 'node:path';

/**
 * Place `source` into `dir` under its own name, unless a file of that name is already there: a hard link when both
 * are on one filesystem (instant; base images are never written, VMs use overlays), else a copy, through a temporary
 * name and a rename. Returns the name.
 */
export function placeFile(source: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const name = basename(source);
  const target = join(dir, name);
  if (existsSync(target)) return name;
  const tmp = `${target}.${process.pid}.part`;
  try {
    linkSync(source, tmp);
  } catch {
    copyFileSync(source, tmp);
  }
  renameSync(tmp, target);
  return name;
}
