// Single-use wallet nonces, kept in SQLite so a signed request cannot be replayed after a restart
// (the original kept them in memory only).
import type { Db } from '../store/db.js';

export class NonceStore {
  private readonly insert;
  private readonly deleteOlder;

  constructor(db: Db) {
    this.insert = db.prepare('INSERT OR IGNORE INTO used_nonces (wallet, nonce, used_at) VALUES (?, ?, ?)');
    this.deleteOlder = db.prepare('DELETE FROM used_nonces WHERE used_at < ?');
  }

  /** marks the nonce used; false when this wallet already used it */
  consume(wallet: string, nonce: string, now: number = Date.now()): boolean {
    return this.insert.run(wallet, nonce, now).changes === 1;
  }

  /** forgets nonces used more than `olderThanMs` ago; returns how many */
  prune(olderThanMs: number, now: number = Date.now()): number {
    return this.deleteOlder.run(now - olderThanMs).changes;
  }
}
