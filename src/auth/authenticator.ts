// Who sent this request: a renter wallet signature, a multisig, or a session pair handed out by the renter.
// Authorisation (is this account renting the machine?) is the caller's business: verify() checks the credential
// without writing anything, the caller checks the rental, and only then commit() consumes the nonce(s), so a wallet
// that rents nothing cannot store anything (docs/request-flow.md, "Nonces and the replay window").
import { AuthErrors, type DbcError } from '../errors/index.js';
import type { DbcBody, MultisigAccounts } from '../protocol/types.js';
import type { Db } from '../store/db.js';
import { FailureBudget, type FailureBudgetOptions } from './budget.js';
import { multisigAccount } from './multisig.js';
import { DEFAULT_NONCE_WINDOW_MS, NonceStore, nonceWellFormed } from './nonces.js';
import { SessionStore } from './sessions.js';
import { accountKeyHex, verifySr25519 } from './verify.js';

export interface Identity {
  kind: 'wallet' | 'multisig' | 'session';
  /** the wallet, the multisig account, or the account the session belongs to */
  account: string;
  /** who signed: [wallet]; the distinct valid multisig signers; for a session the key that signed the session id */
  signers: string[];
}

/** a verified credential whose nonces are not consumed yet */
export interface PendingIdentity {
  identity: Identity;
  /** consumes the nonce(s), atomically; throws `nonce check failed` when one was used meanwhile. Sessions: no-op */
  commit(): void;
}

export interface AuthenticatorOptions {
  sessionCacheSize?: number;
  /** replay window: used nonces are remembered this long (default 7 days) */
  nonceWindowMs?: number;
  /** per-account budget for failed authentication (budget.ts); false disables it */
  failureBudget?: Partial<FailureBudgetOptions> | false;
}

interface CachedSession {
  account: string;
  signer: string;
}

/** real clients send "undefined" or "" for fields they do not have */
function given(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' && value !== 'undefined' ? value : undefined;
}

export class Authenticator {
  readonly sessions: SessionStore;
  readonly nonces: NonceStore;
  readonly budget: FailureBudget;
  /** how long a used nonce is remembered (the replay window) */
  readonly nonceWindowMs: number;
  private readonly db: Db;
  private readonly sessionCache = new Map<string, CachedSession>();
  private readonly sessionCacheSize: number;

  constructor(db: Db, opts: AuthenticatorOptions = {}) {
    this.db = db;
    this.sessions = new SessionStore(db);
    this.nonces = new NonceStore(db);
    this.sessionCacheSize = Math.max(0, opts.sessionCacheSize ?? 10_000);
    this.nonceWindowMs = opts.nonceWindowMs ?? DEFAULT_NONCE_WINDOW_MS;
    if (!(this.nonceWindowMs > 0)) throw new Error(`nonce window must be > 0 ms, got ${this.nonceWindowMs}`);
    this.budget = new FailureBudget(opts.failureBudget === false ? { failures: 0 } : (opts.failureBudget ?? {}));
  }

  /** verify() and commit() at once: for callers with nothing to check in between */
  authenticate(body: DbcBody, opts: { allowSession: boolean }): Identity | null {
    const pending = this.verify(body, opts);
    pending?.commit();
    return pending?.identity ?? null;
  }

  /** forgets nonces older than the replay window; returns how many */
  pruneNonces(now: number = Date.now()): number {
    return this.nonces.prune(this.nonceWindowMs, now);
  }

  /** Session pair if given and allowed, else wallet, else multisig; null when the body carries no usable
   *  credential (session fields are ignored when allowSession is false). Throws check authority failures.
   *  Writes nothing: a replayed nonce is refused here (read only), and commit() consumes it. */
  verify(body: DbcBody, opts: { allowSession: boolean }): PendingIdentity | null {
    const wallet = given(body.wallet);
    const nonce = given(body.nonce);
    const sign = given(body.sign);
    const anyWallet = wallet !== undefined || nonce !== undefined || sign !== undefined;
    const multisig = hasMultisig(body.multisig_accounts) ? body.multisig_accounts : undefined;

    if (opts.allowSession) {
      const sessionId = given(body.session_id);
      const sessionSign = given(body.session_id_sign);
      if (sessionId !== undefined || sessionSign !== undefined) {
        const identity = sessionId && sessionSign ? this.checkSession(sessionId, sessionSign) : null;
        if (identity) return { identity, commit: () => {} };
        // as the original: a bad session pair falls back to a wallet/multisig credential if there is one
        if (!anyWallet && !multisig) throw AuthErrors.sessionInvalid();
      }
    }
    if (anyWallet) {
      if (!wallet || !nonce || !sign) throw AuthErrors.nonceCheckFailed();
      return this.checkWallet(wallet, nonce, sign);
    }
    if (multisig) return this.checkMultisig(multisig);
    return null;
  }

  private checkWallet(wallet: string, nonce: string, sign: string): PendingIdentity {
    // keyed by public key, so re-spelling the wallet (hex vs SS58, another prefix) cannot replay a nonce or
    // escape the budget; a string that is no key cannot verify anything
    const key = accountKeyHex(wallet);
    if (!key) throw AuthErrors.nonceCheckFailed();
    if (this.budget.blocked(key)) throw AuthErrors.tooManyFailures();
    if (!nonceWellFormed(nonce)) throw this.failed(key, AuthErrors.nonceInvalid());
    if (!verifySr25519(nonce, sign, wallet)) throw this.failed(key, AuthErrors.nonceCheckFailed());
    if (this.nonces.used(key, nonce)) throw this.failed(key, AuthErrors.nonceCheckFailed());
    return {
      identity: { kind: 'wallet', account: wallet, signers: [wallet] },
      commit: () => {
        if (!this.nonces.consume(key, nonce)) throw this.failed(key, AuthErrors.nonceCheckFailed());
      },
    };
  }

  /** counts a failed attempt against the account and gives the refusal to throw */
  /** counts a failure against the account's budget and returns the error to throw */
  private failed(key: string, err: DbcError): DbcError {
    this.budget.fail(key);
    return err;
  }

  private checkMultisig(m: MultisigAccounts): PendingIdentity {
    const wallets = Array.isArray(m.wallets) ? m.wallets.filter((w): w is string => typeof w === 'string') : [];
    const signs = Array.isArray(m.signs) ? m.signs : [];
    if (wallets.length === 0) throw AuthErrors.multisigWalletsEmpty();
    if (signs.length === 0) throw AuthErrors.multisigSignsEmpty();
    const threshold = atoi(m.threshold);
    if (threshold <= 0 || threshold > wallets.length || threshold > signs.length) {
      throw AuthErrors.multisigThresholdInvalid();
    }
    const members = new Set(wallets);
    for (const item of signs) {
      const w = given(item?.wallet);
      if (!w || !given(item.nonce) || !given(item.sign)) throw AuthErrors.multisigSignItemEmpty();
      if (!members.has(w)) throw AuthErrors.multisigSignWalletNotFound(w);
    }
    let account: string;
    try {
      account = multisigAccount(wallets, threshold);
    } catch {
      throw AuthErrors.multisigWalletInvalid();
    }
    // every item's key, budget and nonce shape before any signature work
    const items = signs.map((item) => ({ item, key: accountKeyHex(item.wallet) }));
    for (const { key } of items) {
      if (!key) throw AuthErrors.nonceCheckFailed();
      if (this.budget.blocked(key)) throw AuthErrors.tooManyFailures();
    }
    for (const { item, key } of items) if (!nonceWellFormed(item.nonce)) throw this.failed(key!, AuthErrors.nonceInvalid());
    const byKey = new Map<string, string>();
    for (const { item, key } of items) {
      if (!verifySr25519(item.nonce, item.sign, item.wallet)) throw this.failed(key!, AuthErrors.nonceCheckFailed());
      byKey.set(key!, item.wallet);
    }
    if (byKey.size < threshold) throw AuthErrors.multisigTooFewSigners();
    for (const { item, key } of items) {
      if (this.nonces.used(key!, item.nonce)) throw this.failed(key!, AuthErrors.nonceCheckFailed());
    }
    // all nonces or none: a replayed item must not burn the others
    const consume = this.db.transaction(() => {
      const now = Date.now();
      for (const { item, key } of items) {
        if (!this.nonces.consume(key!, item.nonce, now)) throw this.failed(key!, AuthErrors.nonceCheckFailed());
      }
    });
    return { identity: { kind: 'multisig', account, signers: [...byKey.values()] }, commit: () => consume() };
  }

  private checkSession(sessionId: string, sessionSign: string): Identity | null {
    // looked up every time, so an ended session stops working at once; the cache only skips the sr25519 check
    const session = this.sessions.byId(sessionId);
    if (!session) return null;
    const key = `${sessionId}\n${normalizeSig(sessionSign)}`;
    const cached = this.sessionCache.get(key);
    if (cached && cached.account === session.account) {
      this.sessionCache.delete(key);
      this.sessionCache.set(key, cached);
      return { kind: 'session', account: session.account, signers: [cached.signer] };
    }
    const signer = [session.account, ...session.signers].find((s) => verifySr25519(sessionId, sessionSign, s));
    if (!signer) return null;
    this.remember(key, { account: session.account, signer });
    return { kind: 'session', account: session.account, signers: [signer] };
  }

  private remember(key: string, value: CachedSession): void {
    if (this.sessionCacheSize === 0) return;
    this.sessionCache.delete(key);
    this.sessionCache.set(key, value);
    while (this.sessionCache.size > this.sessionCacheSize) {
      this.sessionCache.delete(this.sessionCache.keys().next().value!);
    }
  }
}

function hasMultisig(m: unknown): m is MultisigAccounts {
  if (typeof m !== 'object' || m === null) return false;
  const { wallets, signs, threshold } = m as Partial<MultisigAccounts>;
  const empty = (v: unknown) => v === undefined || (Array.isArray(v) && v.length === 0);
  // an empty object is what some clients send for "no multisig"
  return !(empty(wallets) && empty(signs) && given(threshold) === undefined);
}

/** C atoi: leading blanks, optional sign, digits; anything else ends the number; no digits = 0 */
function atoi(value: unknown): number {
  if (typeof value === 'number') return Number.isInteger(value) ? value : 0;
  if (typeof value !== 'string') return 0;
  const match = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(value);
  return match ? Number.parseInt(match[1]!, 10) : 0;
}

function normalizeSig(sign: string): string {
  return (sign.startsWith('0x') ? sign.slice(2) : sign).toLowerCase();
}
