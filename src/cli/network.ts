// The network-mode flags shared by `dbc up` and `dbc node` (net/driver.ts): --network user|bridge and the bridge
// mode's bridge, subnet, forwarded addresses, LAN underlay and peers.
import { Option, type Command } from 'commander';
import type { NetworkConfig } from '../node/bootstrap.js';
import { parseCidr, parseIp } from '../net/ipv4.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function addNetworkOptions(cmd: Command, defaultMode: 'user' | 'bridge' = 'user'): Command {
  return cmd
    .addOption(
      new Option('--network <mode>', 'VM networking: user (QEMU user networking, unprivileged) or bridge (bridge + tap + dnsmasq + nftables, root)')
        .choices(['user', 'bridge'])
        .default(defaultMode),
    )
    .option('--bridge <name>', 'bridge mode: the node bridge', 'dbcbr0')
    .option('--bridge-cidr <cidr>', "bridge mode: the VMs' subnet (the first address is the gateway)", '10.200.0.0/24')
    .option('--forward-ip <addr>', 'bridge mode: an address forwarded ports answer on (repeatable; default any address of the host)', collect, [])
    .option('--lan-local <addr>', "bridge mode: this host's VXLAN underlay address (default the default route's source)")
    .option('--lan-peer <addr>', 'bridge mode: another GPU host sharing LANs by unicast VXLAN (repeatable)', collect, [])
    .addOption(
      new Option('--guest-guard <mode>', "user mode: keep VMs off this host's own services (QEMU -runas + nftables); auto = on when root and nft works")
        .choices(['auto', 'on', 'off'])
        .default('auto'),
    )
    .option('--lan-idle <seconds>', 'LANs without VMs are removed after this long (original: 3 days)', String(3 * 24 * 3600));
}

export interface NetworkFlags {
  network?: string;
  bridge?: string;
  bridgeCidr?: string;
  forwardIp?: string[];
  lanLocal?: string;
  lanPeer?: string[];
  lanIdle?: string;
  guestGuard?: string;
}

export function networkFromFlags(o: NetworkFlags): { network: NetworkConfig; lanIdleMs: number } {
  const idle = Number(o.lanIdle ?? 3 * 24 * 3600);
  if (!Number.isFinite(idle) || idle < 1 || idle > 365 * 86400) throw new Error('--lan-idle must be in [1, 31536000] seconds');
  const lanIdleMs = idle * 1000;
  if ((o.network ?? 'user') === 'user') return { network: { mode: 'user', guestGuard: (o.guestGuard ?? 'auto') as 'auto' | 'on' | 'off' }, lanIdleMs };
  const ip = (flag: string, v: string) => {
    if (parseIp(v) === null) throw new Error(`${flag} ${v}: not an IPv4 address`);
    return v;
  };
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(o.bridge ?? 'dbcbr0')) throw new Error(`--bridge ${o.bridge}: invalid interface name`);
  if (!parseCidr(o.bridgeCidr ?? '10.200.0.0/24', { strict: true })) throw new Error(`--bridge-cidr ${o.bridgeCidr}: use a.b.c.0/n`);
  return {
    network: {
      mode: 'bridge',
      bridge: o.bridge,
      cidr: o.bridgeCidr,
      hostIps: (o.forwardIp ?? []).map((v) => ip('--forward-ip', v)),
      underlay: o.lanLocal === undefined ? undefined : ip('--lan-local', o.lanLocal),
      peers: (o.lanPeer ?? []).map((v) => ip('--lan-peer', v)),
    },
    lanIdleMs,
  };
}
