// The storage flags shared by `dbc up` and `dbc node`: how far the node may promise disk space (storage/quota.ts).
import type { Command } from 'commander';

export function addStorageOptions(cmd: Command): Command {
  return cmd.option(
    '--disk-overcommit <factor>',
    'provisioned disk sizes (data disks, system overlays) may reach the file system capacity times this; 1.0 = no overcommit',
    '1.0',
  );
}

export function storageFromFlags(o: { diskOvercommit?: string }): { diskOvercommit: number } {
  const f = Number(o.diskOvercommit ?? '1.0');
  if (!Number.isFinite(f) || f < 0.01 || f > 100) throw new Error('--disk-overcommit must be a number in [0.01, 100]');
  return { diskOvercommit: f };
}
