// The embedded default rental source: a registry in the node's own SQLite database, managed with
// `dbc rental grant|revoke|list`. Another process may write it while the node runs (WAL), so every
// query reads the table afresh.
import type { Db } from '../store/db.js';
import type { MachineStatus, Rental, RentalSource } from './types.js';

interface RentalRow {
  wallet: string;
  gpus: number;
  until_ms: number;
  granted_at: number;
  revoked_at: number | null;
}

export class LocalRentals implements RentalSource {
  readonly kind = 'local' as const;
  /** prepared once: the lookup runs on every authorised request */
  private readonly byWallet;
  constructor(private readonly db: Db) {
    this.byWallet = db.prepare('SELECT * FROM rentals WHERE wallet = ?');
  }

  async active(account: string, nowMs: number): Promise<Rental | null> {
    const row = this.byWallet.get(account) as RentalRow | undefined;
    if (!row || row.revoked_at !== null || row.until_ms <= nowMs) return null;
    return { account: row.wallet, gpus: row.gpus, untilMs: row.until_ms };
  }

  async known(): Promise<Rental[]> {
    const rows = this.db.prepare('SELECT * FROM rentals').all() as RentalRow[];
    // a revoked rental ended when it was revoked
    return rows.map((r) => ({ account: r.wallet, gpus: r.gpus, untilMs: r.revoked_at ?? r.until_ms }));
  }

  /** no machine status here: the machine counts as rented to whoever the registry lists */
  async machineStatus(): Promise<MachineStatus> {
    return 'rented';
  }

  /** the registry is always read afresh */
  async freshMachineStatus(): Promise<MachineStatus> {
    return 'rented';
  }

  /** no committees verify a locally registered machine */
  async verifier(): Promise<Rental | null> {
    return null;
  }

  grant(account: string, gpus: number, untilMs: number): Rental {
    this.db
      .prepare(
        `INSERT INTO rentals (wallet, gpus, until_ms, granted_at, revoked_at) VALUES (?, ?, ?, ?, NULL)
         ON CONFLICT(wallet) DO UPDATE SET gpus = excluded.gpus, until_ms = excluded.until_ms,
           granted_at = excluded.granted_at, revoked_at = NULL`,
      )
      .run(account, gpus, untilMs, Date.now());
    return { account, gpus, untilMs };
  }

  revoke(account: string): boolean {
    return this.db.prepare('UPDATE rentals SET revoked_at = ? WHERE wallet = ? AND revoked_at IS NULL').run(Date.now(), account).changes > 0;
  }

  list(): Array<{ wallet: string; gpus: number; until: string; active: boolean; revoked: boolean }> {
    const now = Date.now();
    return (this.db.prepare('SELECT * FROM rentals ORDER BY granted_at').all() as RentalRow[]).map((r) => ({
      wallet: r.wallet,
      gpus: r.gpus,
      until: new Date(r.until_ms).toISOString(),
      active: r.revoked_at === null && r.until_ms > now,
      revoked: r.revoked_at !== null,
    }));
  }
}
