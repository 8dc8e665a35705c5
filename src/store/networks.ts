// Repository for the networks (private LANs) and addresses (static DHCP leases) tables.
import type { Db } from './db.js';

export interface NetworkRow {
  name: string;
  wallet: string;
  ip_cidr: string;
  vni: number;
  created_at: number;
  last_used_at: number;
  updated_at: number;
}

export interface AddressRow {
  task_id: string;
  /** '' = the node bridge, else a network name */
  net: string;
  ip: string;
  mac: string;
}

export class NetworkStore {
  constructor(private readonly db: Db) {}

  get(name: string): NetworkRow | undefined {
    return this.db.prepare('SELECT * FROM networks WHERE name = ?').get(name) as NetworkRow | undefined;
  }

  all(): NetworkRow[] {
    return this.db.prepare('SELECT * FROM networks ORDER BY created_at, name').all() as NetworkRow[];
  }

  insert(row: NetworkRow): void {
    this.db
      .prepare(
        'INSERT INTO networks (name, wallet, ip_cidr, vni, created_at, last_used_at, updated_at) VALUES (@name, @wallet, @ip_cidr, @vni, @created_at, @last_used_at, @updated_at)',
      )
      .run(row);
  }

  touch(name: string, now: number): void {
    this.db.prepare('UPDATE networks SET last_used_at = ?, updated_at = ? WHERE name = ?').run(now, now, name);
  }

  remove(name: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM addresses WHERE net = ?').run(name);
      this.db.prepare('DELETE FROM networks WHERE name = ?').run(name);
    })();
  }

  /** task ids whose network_name is `name` */
  members(name: string): string[] {
    return (this.db.prepare('SELECT task_id FROM tasks WHERE network_name = ? ORDER BY created_at').all(name) as Array<{ task_id: string }>).map(
      (r) => r.task_id,
    );
  }

  address(taskId: string, net: string): AddressRow | undefined {
    return this.db.prepare('SELECT * FROM addresses WHERE task_id = ? AND net = ?').get(taskId, net) as AddressRow | undefined;
  }

  addressesOf(net: string): AddressRow[] {
    return this.db.prepare('SELECT * FROM addresses WHERE net = ? ORDER BY ip').all(net) as AddressRow[];
  }

  addressesOfTask(taskId: string): AddressRow[] {
    return this.db.prepare('SELECT * FROM addresses WHERE task_id = ?').all(taskId) as AddressRow[];
  }

  /** insert or fail on a taken ip (UNIQUE(net, ip)) */
  insertAddress(row: AddressRow): void {
    this.db.prepare('INSERT INTO addresses (task_id, net, ip, mac) VALUES (@task_id, @net, @ip, @mac)').run(row);
  }

  removeAddresses(taskId: string, net?: string): void {
    if (net === undefined) this.db.prepare('DELETE FROM addresses WHERE task_id = ?').run(taskId);
    else this.db.prepare('DELETE FROM addresses WHERE task_id = ? AND net = ?').run(taskId, net);
  }
}
