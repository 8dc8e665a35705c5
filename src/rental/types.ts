// Who rents this machine, until when. The GPU node asks a RentalSource on every authenticated request.

export interface Rental {
  /** renter account (SS58; a multisig account for multisig renters) */
  account: string;
  /** GPUs rented (0 = none; the whole machine's count for whole-machine rentals) */
  gpus: number;
  /** end of the rental, unix ms */
  untilMs: number;
  /** chain rent order id when known */
  rentOrder?: string;
}

export interface RentalSource {
  readonly kind: 'local' | 'chain';
  /** the account's rental of this machine that is active at `nowMs`, or null */
  active(account: string, nowMs: number, rentOrder?: string): Promise<Rental | null>;
  /** every rental this source knows (active or ended), for expiry sweeps */
  known(): Promise<Rental[]>;
}
