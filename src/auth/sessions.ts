// Session ids a renter hands to third parties (the original's WalletSessionIDManager): one per renter account,
// created on the first wallet/multisig authentication, reused afterwards, ended with the rental.
import type { Db } from '../store/db.js';
import { createBase58Id } from './base58.js';

export interface Session {
  account: string;
  /** multisig members allowed to sign the session id besides the account itself */
  signers: string[];
}

interface SessionRow {
  wallet: string;
  session_id: string;
  signers: string;
}

export class SessionStore {
  private readonly selectByAccount;
  private readonly selectById;
  private readonly insert;
  private readonly updateSigners;
  private readonly remove;

  constructor(private readonly db: Db) {
    this.selectByAccount = db.prepare('SELECT wallet, session_id, signers FROM sessions WHERE wallet = ?');
    this.selectById = db.prepare('SELECT wallet, session_id, signers FROM sessions WHERE session_id = ?');
    this.insert = db.prepare('INSERT INTO sessions (wallet, session_id, signers, created_at) VALUES (?, ?, ?, ?)');
    this.updateSigners = db.prepare('UPDATE sessions SET signers = ? WHERE wallet = ?');
    this.remove = db.prepare('DELETE FROM sessions WHERE wallet = ?');
  }

  /** the account's session id, created if it has none; new multisig signers are added to the stored ones */
  getOrCreate(account: string, signers: string[] = []): string {
    return this.db.transaction(() => {
      const row = this.selectByAccount.get(account) as SessionRow | undefined;
      if (row) {
        const known = parseSigners(row.signers);
        const merged = [...new Set([...known, ...signers])];
        if (merged.length !== known.length) this.updateSigners.run(JSON.stringify(merged), account);
        return row.session_id;
      }
      const sessionId = createBase58Id();
      this.insert.run(account, sessionId, JSON.stringify([...new Set(signers)]), Date.now());
      return sessionId;
    })();
  }

  byId(sessionId: string): Session | undefined {
    const row = this.selectById.get(sessionId) as SessionRow | undefined;
    return row ? { account: row.wallet, signers: parseSigners(row.signers) } : undefined;
  }

  /** the account's session id, if it has one */
  forAccount(account: string): string | undefined {
    return (this.selectByAccount.get(account) as SessionRow | undefined)?.session_id;
  }

  /** ends the account's session (rental over); its session id stops working at once. false if it had none */
  end(account: string): boolean {
    return this.remove.run(account).changes > 0;
  }
}

function parseSigners(text: string): string[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((s): s is string => typeof s === 'string') : [];
  } catch {
    return [];
  }
}
