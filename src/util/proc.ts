// Process state from /proc. Detached QEMU and daemonized dnsmasq are re-parented to PID 1, which here reaps
// orphans about 2 s late: a zombie counts as gone.
import { readdirSync, readFileSync } from 'node:fs';

/** the state letter from /proc/<pid>/stat, or null when there is no such process */
export function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may contain spaces and parentheses: the state follows the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || null;
  } catch {
    return null;
  }
}

/** no such process, or only its zombie is left */
export function processGone(pid: number): boolean {
  const s = procState(pid);
  return s === null || s === 'Z' || s === 'X';
}

/** pids of live processes whose argv[0] ends with `name` and whose command line mentions `mention` */
export function processesMentioning(name: string, mention: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      const bin = argv[0] ?? '';
      if ((bin === name || bin.endsWith(`/${name}`)) && argv.some((a) => a.includes(mention)) && !processGone(Number(e))) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
