// Runs one src/net/links.ts or src/net/dnsmasq.ts call in the network namespace this process was started in
// (Node cannot setns, so tests run `ip netns exec NS node dist/test/helpers/netns-run.js '<json>'`).
// Prints one JSON line: {"ok":true,"result":...} or {"ok":false,"error":"..."} (exit 1).
import { linkExists, ensureBridge, ensureTap, ensureVxlan, deleteLink, listLinks, setSysctl, defaultRouteSource } from '../../src/net/links.js';
import { Dnsmasq, type DnsmasqConfig, type DhcpHost } from '../../src/net/dnsmasq.js';

export type NetnsOp =
  | { op: 'linkExists'; name: string }
  | { op: 'ensureBridge'; name: string; address?: string; mtu?: number }
  | { op: 'ensureTap'; name: string; bridge: string; mtu?: number; isolated?: boolean }
  | { op: 'ensureVxlan'; name: string; vni: number; local: string; port?: number; bridge: string; peers: string[]; mtu?: number }
  | { op: 'deleteLink'; name: string }
  | { op: 'listLinks'; prefix: string }
  | { op: 'setSysctl'; key: string; value: string }
  | { op: 'defaultRouteSource' }
  | { op: 'dnsmasqStart'; cfg: DnsmasqConfig }
  | { op: 'dnsmasqSetHosts'; cfg: DnsmasqConfig; hosts: DhcpHost[] }
  | { op: 'dnsmasqLeases'; cfg: DnsmasqConfig }
  | { op: 'dnsmasqPid'; cfg: DnsmasqConfig }
  | { op: 'dnsmasqStop'; cfg: DnsmasqConfig };

async function dispatch(c: NetnsOp): Promise<unknown> {
  switch (c.op) {
    case 'linkExists':
      return linkExists(c.name);
    case 'ensureBridge':
      return ensureBridge(c.name, { address: c.address, mtu: c.mtu });
    case 'ensureTap':
      return ensureTap(c.name, c.bridge, { mtu: c.mtu, isolated: c.isolated });
    case 'ensureVxlan':
      return ensureVxlan(c.name, { vni: c.vni, local: c.local, port: c.port, bridge: c.bridge, peers: c.peers, mtu: c.mtu });
    case 'deleteLink':
      return deleteLink(c.name);
    case 'listLinks':
      return listLinks(c.prefix);
    case 'setSysctl':
      return setSysctl(c.key, c.value);
    case 'defaultRouteSource':
      return defaultRouteSource();
    case 'dnsmasqStart':
      return new Dnsmasq(c.cfg).start();
    case 'dnsmasqSetHosts': {
      const d = new Dnsmasq(c.cfg);
      await d.setHosts(c.hosts);
      return { pid: d.pid() };
    }
    case 'dnsmasqLeases':
      return new Dnsmasq(c.cfg).leases();
    case 'dnsmasqPid':
      return new Dnsmasq(c.cfg).pid();
    case 'dnsmasqStop':
      return new Dnsmasq(c.cfg).stop();
  }
}

try {
  const result = await dispatch(JSON.parse(process.argv[2] ?? '{}') as NetnsOp);
  process.stdout.write(JSON.stringify({ ok: true, result: result ?? null }) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ ok: false, error: err instanceof Error ? err.message : String(err) }) + '\n');
  process.exitCode = 1;
}
