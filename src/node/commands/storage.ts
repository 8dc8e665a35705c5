// The edge of disk/*, snapshot/* and images/*: `additional` (strings or numbers, as clients send them) becomes
// typed arguments of the storage services, checked once, here, with the original's error texts in the original
// order (the pxe refusal first, then each field as the original read it). Services below take no `unknown`.
import type { Task } from '../../domain/task.js';
import { imageFilenameOf, isDiskName, isSnapshotName } from '../../images/names.js';
import type { ImageServer } from '../../images/servers.js';
import { StorageErrors } from '../../errors/index.js';
import { MAX_DISK_GB } from '../../storage/disks.js';

type Additional = Record<string, unknown>;

/** a field the original treated as absent: missing, empty, or the text `undefined` (what some websites send) */
function absent(v: unknown): boolean {
  return v === undefined || v === '' || v === 'undefined';
}

/** `size` as the original (a JSON integer) or as websites send it (a digit string); undefined when invalid */
export function parseSizeGb(v: unknown): number | undefined {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^\s*-?\d{1,9}\s*$/.test(v)) n = Number(v.trim());
  else return undefined;
  return Number.isInteger(n) ? n : undefined;
}

// --- disk/* -------------------------------------------------------------------------------------------------

export interface DiskAddArgs {
  sizeGb: number;
  /** `/data` (the image directory) when not given */
  mountDir: string;
}

/** disk/add: `size` (GB), `mount_dir` */
export function diskAddArgs(task: Pick<Task, 'bios_mode'>, a: Additional): DiskAddArgs {
  if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoDisk();
  const sizeGb = parseSizeGb(a.size);
  if (sizeGb === undefined || sizeGb <= 0 || sizeGb > MAX_DISK_GB) throw StorageErrors.sizeInvalid();
  const mountDir = absent(a.mount_dir) ? '/data' : a.mount_dir;
  if (typeof mountDir !== 'string') throw StorageErrors.mountDirInvalid(String(mountDir));
  return { sizeGb, mountDir };
}

/** disk/resize: `disk` (vdb, ...), `size` (the increment, GB) */
export function diskResizeArgs(task: Pick<Task, 'bios_mode'>, a: Additional): { disk: string; incGb: number } {
  if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoDisk();
  if (absent(a.disk)) throw StorageErrors.diskEmpty();
  if (!isDiskName(a.disk)) throw StorageErrors.diskInvalid();
  const incGb = parseSizeGb(a.size);
  if (incGb === undefined) throw StorageErrors.sizeInvalid();
  if (incGb <= 0) throw StorageErrors.noShrink();
  if (incGb > MAX_DISK_GB) throw StorageErrors.sizeInvalid();
  return { disk: a.disk, incGb };
}

/** disk/delete: `disk` (never vda) */
export function diskRemoveArgs(task: Pick<Task, 'bios_mode'>, a: Additional): { disk: string } {
  if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoDisk();
  if (absent(a.disk)) throw StorageErrors.diskEmpty();
  if (a.disk === 'vda') throw StorageErrors.deleteVda();
  if (!isDiskName(a.disk)) throw StorageErrors.diskInvalid();
  return { disk: a.disk };
}

// --- snapshot/* ---------------------------------------------------------------------------------------------

export interface SnapshotCreateArgs {
  name: string;
  /** at most 1024 characters; '' when not a string */
  desc: string;
  server: ImageServer;
}

/** snapshot/create: `snapshot_name`, `desc`, and the image centre the client resolved from `image_server` */
export function snapshotCreateArgs(task: Pick<Task, 'bios_mode'>, a: Additional, server: ImageServer | undefined): SnapshotCreateArgs {
  if (task.bios_mode === 'pxe') throw StorageErrors.pxeNoSnapshot();
  if (absent(a.snapshot_name)) throw StorageErrors.snapshotNameEmpty();
  if (!isSnapshotName(a.snapshot_name)) throw StorageErrors.snapshotNameInvalid();
  const desc = typeof a.desc === 'string' ? a.desc.slice(0, 1024) : '';
  if (!server) throw StorageErrors.noImageServer();
  return { name: a.snapshot_name, desc, server };
}

// --- images/* -----------------------------------------------------------------------------------------------

/** `image_filename`: a bare image file name, or `/data/<name>` */
export function imageFilenameArg(raw: unknown): string {
  if (absent(raw)) throw StorageErrors.imageFilenameEmpty();
  const name = typeof raw === 'string' ? imageFilenameOf(raw) : undefined;
  if (!name) throw StorageErrors.imageFilenameInvalid();
  return name;
}

/** images/download: the centre, `image_filename`, `local_dir` (resolved against the allowed directories later) */
export function imageDownloadArgs(server: ImageServer | undefined, a: Additional): { server: ImageServer; file: string; localDir: string } {
  if (!server) throw StorageErrors.noImageServer();
  const file = imageFilenameArg(a.image_filename);
  if (absent(a.local_dir)) throw StorageErrors.localDirEmpty();
  if (typeof a.local_dir !== 'string') throw StorageErrors.localDirInvalid(String(a.local_dir));
  return { server, file, localDir: a.local_dir };
}

/** images/upload: the centre and `image_filename` */
export function imageUploadArgs(server: ImageServer | undefined, a: Additional): { server: ImageServer; file: string } {
  if (!server) throw StorageErrors.noImageServer();
  return { server, file: imageFilenameArg(a.image_filename) };
}
