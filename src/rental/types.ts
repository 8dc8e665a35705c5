// Who rents this machine, until when. The GPU node asks a RentalSource on every authenticated request.
// Two sources: `local` (a registry in the node's database, always "rented" to whoever it lists) and `chain` (the DBC
// chain decides: machine status, rent orders, committee verify windows; see rental/chain.ts). Both answer every
// method, so the node has one authorisation path (node/gpu-node.ts) and one expiry sweep (rental/sweep.ts);
// test/contract/rental-source.test.ts runs the same behavioural tests against both.

export interface Rental {
  /** renter account (SS58; a multisig account for multisig renters; the committee member for a verifier) */
  account: string;
  /** GPUs rented (0 = none; the whole machine's count for whole-machine rentals) */
  gpus: number;
  /** end of the rental, unix ms (for chain orders estimated from the end block and the chain's block time) */
  untilMs: number;
  /** chain rent order id when known (several live orders of one renter: the ids joined by ",") */
  rentOrder?: string;
  /** chain: GPU slots of the order(s), from the chain's gpuIndex */
  gpuIndex?: number[];
  /** chain: the last block of the rental (the order ends when the chain reaches rentEnd) */
  rentEnd?: number;
  /**
   * 'renter' (default): a renter or a session handed out by one.
   * 'verifier': a committee member inside its verify window while the machine is being verified; it may create only
   * the full-machine `vm_check_<unix seconds>` VM and may not use renter-only routes.
   */
  role?: 'renter' | 'verifier';
}

/** the machine's status as the chain reports it, mapped as the original did (original-dbc-node.md §4.3) */
export type MachineStatus = 'verify' | 'online' | 'rented' | 'unknown';

/** the source cannot answer now (e.g. the chain unreachable for longer than the outage grace); never an "expired" */
export class RentalUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RentalUnavailableError';
  }
}

export interface RentalSource {
  readonly kind: 'local' | 'chain';
  /** the account's rental of this machine that is active at `nowMs`, or null. May throw RentalUnavailableError */
  active(account: string, nowMs: number, rentOrder?: string): Promise<Rental | null>;
  /**
   * every rental this source knows (active or ended), for expiry sweeps. A source that cannot answer from fresh
   * data throws RentalUnavailableError, and the sweep then does nothing (VMs are never stopped for lack of an answer).
   */
  known(nowMs?: number): Promise<Rental[]>;
  /**
   * the machine's status: Verify / Online / Rented / unknown (chain). The local registry always answers 'rented':
   * the machine counts as rented to whoever it lists. May throw RentalUnavailableError.
   */
  machineStatus(nowMs: number): Promise<MachineStatus>;
  /**
   * the account's verify window now, as a Rental with role 'verifier', or null (a source without committees, such
   * as the local registry, always answers null). May throw RentalUnavailableError.
   */
  verifier(account: string, nowMs: number): Promise<Rental | null>;
  /** machineStatus for sweeps: from fresh data only; throws RentalUnavailableError otherwise */
  freshMachineStatus(nowMs: number): Promise<MachineStatus>;
}
