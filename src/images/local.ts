// The node's own image directory (the original's /data): base images VMs are created from.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { formatBytes } from '../util/format.js';

export interface LocalImage {
  image_name: string;
  image_size: string;
  bytes: number;
}

/** qcow2 files in dir, without data disks (the original skipped names containing `data`) */
export function listLocalImages(dir: string): LocalImage[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: LocalImage[] = [];
  for (const name of names.sort()) {
    if (!name.endsWith('.qcow2') || name.includes('data') || name.startsWith('.')) continue;
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) out.push({ image_name: name, image_size: formatBytes(st.size), bytes: st.size });
    } catch {
      // vanished between readdir and stat
    }
  }
  return out;
}
