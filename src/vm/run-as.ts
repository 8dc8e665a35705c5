// Files QEMU opens after it dropped privileges (guest guard, `-runas`): today only hot-added disks (blockdev-add).
// The file is given to the VM's uid, and every directory above it must let that uid search it (x, never r: names
// stay unlistable). Directories lacking it get o+x; nothing else about them changes.
import { chownSync, chmodSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export function grantToVm(file: string, owner: { uid: number; gid: number } | null | undefined): void {
  if (!owner) return;
  const path = resolve(file);
  chownSync(path, owner.uid, owner.gid);
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const st = statSync(dir);
    const searchable = (st.mode & 0o001) !== 0 || (st.uid === owner.uid && (st.mode & 0o100) !== 0) || (st.gid === owner.gid && (st.mode & 0o010) !== 0);
    if (!searchable) chmodSync(dir, (st.mode & 0o7777) | 0o001);
    if (dir === dirname(dir)) break;
  }
}
