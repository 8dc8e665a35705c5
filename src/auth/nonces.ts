// Single-use wallet nonces, kept in SQLite so a signed request cannot be replayed after a restart
// (the original kept them in memory only). A nonce is stored only once the request is authorised (signature valid,
// rental checked), and forgotten after the replay window (docs/request-flow.md, "Nonces and the replay window").
import type { Db } from '../store/db.js';

/** the original's nonces are base58check UUIDs (~55 characters); we allow 1..128 printable ASCII characters */
export const NONCE_MAX_LENGTH = 128;
const NONCE_RE = new RegExp(`^[\\x20-\\x7e]{1,${NONCE_MAX_LENGTH}}$`);

/** true for 1..128 printable ASCII characters */
export function nonceWellFormed(nonce: string): boolean {
  return nonce.length <= NONCE_MAX_LENGTH && NONCE_RE.test(nonce);
}

/** default replay window: nonces are remembered this long after use */
export const DEFAULT_NONCE_WINDOW_MS = 7 * 24 * 3600_000;

export class NonceStore {
  private readonly insert;
  private readonly select;
  private readonly deleteOlder;

  constructor(db: Db) {
    this.insert = db.prepare('INSERT OR IGNORE INTO used_nonces (wallet, nonce, used_at) VALUES (?, ?, ?)');
    this.select = db.prepare('SELECT 1 FROM used_nonces WHERE wallet = ? AND nonce = ?').pluck();
    this.deleteOlder = db.prepare('DELETE FROM used_nonces WHERE used_at < ?');
  }

  /** marks the nonce used (atomic: of two concurrent callers exactly one gets true); false when already used */
  consume(wallet: string, nonce: string, now: number = Date.now()): boolean {
    return this.insert.run(wallet, nonce, now).changes === 1;
  }

  /** read only: has this wallet used the nonce (within the replay window)? */
  used(wallet: string, nonce: string): boolean {
    return this.select.get(wallet, nonce) !== undefined;
  }

  /** forgets nonces used more than `olderThanMs` ago; returns how many */
  prune(olderThanMs: number, now: number = Date.now()): number {
    return this.deleteOlder.run(now - olderThanMs).changes;
  }
}
