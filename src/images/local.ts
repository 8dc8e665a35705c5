// The node's own image directory (the original's /data): base images VMs are created from.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { formatBytes } from '../util/format.js';

export interface LocalImage {
  image_name: string;
  image_size: string;
  bytes: number;
}

/** a name the image list shows: a qcow2 that is not a data disk (the original skipped names containing `data`) */
export function isListedImageName(name: string): boolean {
  return name.endsWith('.qcow2') && !name.includes('data') && !name.startsWith('.');
}

/** qcow2 files in dir, without data disks */
export function listLocalImages(dir: string): LocalImage[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: LocalImage[] = [];
  for (const name of names.sort()) {
    if (!isListedImageName(name)) continue;
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) out.push({ image_name: name, image_size: formatBytes(st.size), bytes: st.size });
    } catch {
      // vanished between readdir and stat
    }
  }
  return out;
}
