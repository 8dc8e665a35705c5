// rsync processes a killed daemon left behind: they are ended before a new run writes the same file, or before
// the image centre is asked whether an upload completed.
import { readFileSync } from 'node:fs';
import { processesMentioning } from '../util/proc.js';

/** an rsync left running by a daemon that was killed: stop it (SIGTERM, then SIGKILL after 5 s) */
export async function killOrphan(pid: number, mustMention: string): Promise<void> {
  let cmd: string;
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmd.startsWith('rsync') || !cmd.includes(mustMention)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 50; i++) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/\) Z /.test(stat)) return;
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** SIGTERM every rsync whose command line names `path` (no record of its pid survived) */
export function terminateRsyncsOf(path: string): void {
  for (const pid of processesMentioning('rsync', path)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
  }
}
