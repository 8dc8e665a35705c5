// Tearing down a test topology: the veth from the root namespace, then each namespace with every process still in
// it (dnsmasq daemons, servers) killed first.
import { execFileSync } from 'node:child_process';

function sh(args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 30_000 });
}

export function removeTopology(rootIf: string, namespaces: readonly string[]): void {
  try {
    sh(['ip', 'link', 'del', rootIf]);
  } catch {
    // gone with the namespace
  }
  for (const ns of namespaces) {
    try {
      for (const pid of sh(['ip', 'netns', 'pids', ns]).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // none
    }
    try {
      sh(['ip', 'netns', 'del', ns]);
    } catch {
      // not created
    }
  }
}
