// The guest guard (user network mode): QEMU's slirp maps 10.0.2.2 (and every 10.0.2.x but the DNS address) to the
// host's 127.0.0.1, and slirp's sockets reach every listener on the host's own addresses. QEMU has no option to turn
// that off, so the node does it in the kernel: QEMU drops privileges to a dedicated uid (`-runas uid:gid`) right
// before the guest starts, so every socket slirp opens for the guest is owned by that uid, and an nftables output
// chain in the node's own table refuses new connections from that uid to any local address (`fib daddr type
// local`: 127.0.0.0/8, ::1 and every address of the host), DNS (port 53) excepted so slirp's 10.0.2.3 keeps working
// with a local resolver. Replies through hostfwd are established connections and pass; outbound traffic to other
// machines is untouched. See docs/networking.md ("Guest guard").
import type { Logger } from '../util/logger.js';
import { run } from './exec.js';

/** the unprivileged uid:gid QEMU runs as under the guard (no passwd entry needed: QEMU 7.2 accepts uid:gid) */
export const GUARD_UID = 64990;
export const GUARD_GID = 64990;
export const GUARD_TABLE = 'dbc_guard';

export type GuestGuardMode = 'auto' | 'on' | 'off';

export interface VmOwner {
  uid: number;
  gid: number;
}

function checkId(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 1 || v > 0xfffffffe) throw new Error(`guest guard: invalid ${what} ${String(v)}`);
  return v;
}

/**
 * The whole table, replaced in one `nft -f` transaction (create-if-missing, delete, create), never touching
 * another table. Only validated integers and a validated name are interpolated; the output is deterministic.
 */
export function renderGuardRuleset(owner: VmOwner, table = GUARD_TABLE): string {
  if (!/^[a-z][a-z0-9_]{0,30}$/.test(table)) throw new Error(`guest guard: invalid table name ${JSON.stringify(table)}`);
  const uid = checkId('uid', owner.uid);
  checkId('gid', owner.gid);
  return [
    `table inet ${table} {}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    `  chain output {`,
    `    type filter hook output priority filter; policy accept;`,
    `    meta skuid ${uid} ct state established,related accept`,
    `    meta skuid ${uid} fib daddr type local meta l4proto { tcp, udp } th dport 53 accept`,
    `    meta skuid ${uid} fib daddr type local meta l4proto tcp counter reject with tcp reset`,
    `    meta skuid ${uid} fib daddr type local counter reject with icmpx type admin-prohibited`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

export interface GuardState {
  active: boolean;
  owner: VmOwner | null;
  reason: string;
}

/**
 * auto: on when the node runs as root and the table can be loaded, else off with one warning;
 * on: the same, but failing is an error; off: nothing is installed and QEMU keeps the node's uid.
 */
export async function setupGuestGuard(mode: GuestGuardMode, log: Logger, opts: { table?: string; owner?: VmOwner } = {}): Promise<GuardState> {
  const table = opts.table ?? GUARD_TABLE;
  const owner = opts.owner ?? { uid: GUARD_UID, gid: GUARD_GID };
  if (mode === 'off') {
    // a table left by a guarded node stays: it only matches the guard uid, which this node's QEMU does not use
    log.warn({ guestGuard: 'off' }, 'guest guard off: VMs in user mode can reach the services on this host');
    return { active: false, owner: null, reason: 'off' };
  }
  if (process.getuid?.() !== 0) {
    if (mode === 'on') throw new Error('--guest-guard on needs root (QEMU -runas and nftables)');
    log.warn({ guestGuard: 'off' }, 'guest guard off (not root): VMs in user mode can reach the services on this host');
    return { active: false, owner: null, reason: 'not root' };
  }
  try {
    await run('nft', ['-f', '-'], { input: renderGuardRuleset(owner, table) });
  } catch (err) {
    if (mode === 'on') throw new Error(`--guest-guard on: cannot load the nftables table: ${(err as Error).message}`);
    log.warn({ guestGuard: 'off', err: (err as Error).message }, 'guest guard off (nftables unusable): VMs in user mode can reach the services on this host');
    return { active: false, owner: null, reason: 'nft unusable' };
  }
  log.info({ guestGuard: 'on', uid: owner.uid, table: `inet ${table}` }, "guest guard on: QEMU runs as an unprivileged uid, kept off the host's own addresses");
  return { active: true, owner, reason: 'on' };
}
