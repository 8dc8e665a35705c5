// The private-LAN operations of the API (original §11): lan/create, lan/delete/<name>, lan, lan/<name>, and the
// idle cleanup the reconciler runs. The registry keeps the records and addresses; the network driver makes the
// mode's devices and DHCP for them. Inputs are typed: handlers parse `additional` with lan-input.ts first.
import { LanErrors } from '../errors/index.js';
import type { NetworkRow } from '../store/networks.js';
import type { Logger } from '../util/logger.js';
import type { NetworkDriver } from './driver.js';
import type { LanCreateInput } from './lan-input.js';

/** a LAN as the original listed it, plus the mode's fields and the members' addresses */
export type LanInfo = Record<string, unknown>;

/** unused LANs go after three days unless configured otherwise */
export const DEFAULT_LAN_IDLE_MS = 3 * 24 * 3600_000;

/** what the service needs of the network driver: the registry and the mode's devices */
export type LanDevices = Pick<NetworkDriver, 'lans' | 'lanCreated' | 'lanDeleted' | 'lanFields'>;

export interface LanServiceOptions {
  /** a LAN without members unused this long is removed by cleanIdle() */
  idleMs?: number;
}

export class LanService {
  constructor(
    private readonly net: LanDevices,
    private readonly log: Pick<Logger, 'info' | 'warn'>,
    private readonly o: LanServiceOptions = {},
  ) {}

  /** lan/create: the record, then the mode's devices and DHCP; the record goes again when those fail */
  async create(account: string, input: LanCreateInput): Promise<LanInfo> {
    const row = this.net.lans.create(account, input.name, input.ipCidr);
    try {
      await this.net.lanCreated(row);
    } catch (err) {
      await this.net.lanDeleted(row).catch(() => undefined);
      this.net.lans.remove(row.name);
      throw err;
    }
    this.log.info({ network_name: row.name, ip_cidr: row.ip_cidr, vni: row.vni }, 'LAN created');
    return this.describe(row);
  }

  /** lan/delete/<name>: the owner's, without member VMs */
  async remove(account: string, name: string): Promise<void> {
    const row = this.net.lans.checkDelete(account, name);
    await this.net.lanDeleted(row);
    this.net.lans.remove(row.name);
    this.log.info({ network_name: row.name }, 'LAN deleted');
  }

  /** lan: the caller's LANs in the original's list shape */
  list(account: string): LanInfo[] {
    return this.net.lans.list(account).map((row) => this.describe(row));
  }

  /** lan/<name>: one of the caller's LANs, or `network name not exist` (also for another renter's) */
  detail(account: string, name: string): LanInfo {
    const row = this.net.lans.get(name);
    if (!row || row.wallet !== account) throw LanErrors.notExist();
    return this.describe(row);
  }

  describe(row: NetworkRow): LanInfo {
    return this.net.lans.describe(row, {
      ...this.net.lanFields(row),
      members_local_address: this.net.lans.leases(row.name).map((a) => ({ task_id: a.task_id, ip: a.ip })),
    });
  }

  /** LANs nobody used for idleMs: their devices and DHCP go, then the record (failures are logged, tried again) */
  async cleanIdle(): Promise<void> {
    for (const row of this.net.lans.idle(this.o.idleMs ?? DEFAULT_LAN_IDLE_MS)) {
      try {
        await this.net.lanDeleted(row);
        this.net.lans.remove(row.name);
        this.log.info({ network_name: row.name }, 'idle LAN removed');
      } catch (err) {
        this.log.warn({ network_name: row.name, err: (err as Error).message }, 'idle LAN cleanup failed');
      }
    }
  }
}
