// Issue 10, finding 6 at the unit level: verify() writes nothing, nonces are bounded and pruned by age only,
// and the failed-authentication budget refills over its window and forgets the oldest account first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authenticator, type AuthenticatorOptions } from '../../src/auth/authenticator.js';
import { createBase58Id } from '../../src/auth/base58.js';
import { FailureBudget } from '../../src/auth/budget.js';
import { identityFromSeed } from '../../src/auth/identity.js';
import { multisigAccount } from '../../src/auth/multisig.js';
import { NonceStore, nonceWellFormed } from '../../src/auth/nonces.js';
import { accountKeyHex, cryptoReady } from '../../src/auth/verify.js';
import { DbcError } from '../../src/protocol/errors.js';
import type { DbcBody } from '../../src/protocol/types.js';
import { openDb, type Db } from '../../src/store/db.js';
import { startGpuNode } from '../../src/node/bootstrap.js';
import type { LocalRentals } from '../../src/rental/local.js';
import type { Hypervisor } from '../../src/vm/types.js';

await cryptoReady();

const alice = identityFromSeed('11'.repeat(32));
const bob = identityFromSeed('22'.repeat(32));
const mallory = identityFromSeed('44'.repeat(32));
const DAY = 24 * 3600_000;

function signed(key: typeof alice, nonce = createBase58Id(), signer = key) {
  return { wallet: key.address, nonce, sign: `0x${signer.sign(nonce)}` };
}
const body = (extra: Partial<DbcBody>): DbcBody => ({ peer_nodes_list: [], additional: {}, ...extra });
const rows = (db: Db) => (db.prepare('SELECT COUNT(*) AS n FROM used_nonces').get() as { n: number }).n;

function withDb(run: (db: Db) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'dbc-auth-abuse-'));
  const db = openDb(join(dir, 'node.db'));
  try {
    run(db);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
const withAuth = (opts: AuthenticatorOptions, run: (auth: Authenticator, db: Db) => void) => withDb((db) => run(new Authenticator(db, opts), db));

function refused(fn: () => unknown, text: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DbcError);
    assert.equal(err.message, `check authority failed: ${text}`);
    return true;
  });
}

test('nonce shape: 1..128 printable ASCII characters', () => {
  assert.ok(nonceWellFormed('a'));
  assert.ok(nonceWellFormed(createBase58Id()));
  assert.ok(nonceWellFormed('x'.repeat(128)));
  assert.ok(nonceWellFormed(' ~!'));
  for (const bad of ['', 'x'.repeat(129), 'a\nb', 'tab\t', 'é', '\u0000', 'x'.repeat(1024 * 1024)]) {
    assert.equal(nonceWellFormed(bad), false, JSON.stringify(bad.slice(0, 10)));
  }
});

test('verify() writes nothing; commit() consumes once; a replay is refused with the original text', () => {
  withAuth({}, (auth, db) => {
    const cred = signed(alice);
    const pending = auth.verify(body(cred), { allowSession: false })!;
    assert.equal(pending.identity.account, alice.address);
    assert.equal(rows(db), 0, 'nothing stored before commit');
    // two verifications of the same nonce may race; only one commit wins
    const racing = auth.verify(body(cred), { allowSession: false })!;
    pending.commit();
    assert.equal(rows(db), 1);
    refused(() => racing.commit(), 'nonce check failed');
    refused(() => auth.verify(body(cred), { allowSession: false }), 'nonce check failed');
    assert.equal(rows(db), 1);
  });
});

test('over-long and non-printable nonces are refused before signature work', () => {
  withAuth({}, (auth, db) => {
    refused(() => auth.verify(body(signed(alice, 'x'.repeat(129))), { allowSession: false }), 'nonce must be 1 to 128 printable ASCII characters');
    refused(() => auth.verify(body(signed(alice, 'x'.repeat(1 << 20))), { allowSession: false }), 'nonce must be 1 to 128 printable ASCII characters');
    refused(
      () => auth.verify(body({ ...signed(alice, 'a\u0001b'), sign: '00' }), { allowSession: false }),
      'nonce must be 1 to 128 printable ASCII characters',
    );
    // multisig items too
    const wallets = [alice.address, bob.address];
    refused(
      () =>
        auth.verify(body({ multisig_accounts: { wallets, threshold: '2', signs: [signed(alice, 'y'.repeat(200)), signed(bob)] } }), { allowSession: false }),
      'nonce must be 1 to 128 printable ASCII characters',
    );
    assert.equal(rows(db), 0);
    assert.equal(auth.authenticate(body(signed(alice, 'x'.repeat(128))), { allowSession: false })?.account, alice.address);
  });
});

test('multisig: verify() stores nothing, commit() stores every item nonce or none', () => {
  withAuth({}, (auth, db) => {
    const wallets = [alice.address, bob.address];
    const a = signed(alice);
    const ms = body({ multisig_accounts: { wallets, threshold: '2', signs: [a, signed(bob)] } });
    const p = auth.verify(ms, { allowSession: false })!;
    assert.equal(p.identity.account, multisigAccount(wallets, 2));
    assert.equal(rows(db), 0);
    p.commit();
    assert.equal(rows(db), 2);
    refused(
      () => auth.verify(body({ multisig_accounts: { wallets, threshold: '2', signs: [a, signed(bob)] } }), { allowSession: false }),
      'nonce check failed',
    );
    assert.equal(rows(db), 2);
  });
});

test('prune by age removes nonces older than the window only', () => {
  withDb((db) => {
    const store = new NonceStore(db);
    const now = Date.UTC(2026, 0, 10);
    store.consume('k1', 'old', now - 8 * DAY);
    store.consume('k1', 'edge', now - 7 * DAY);
    store.consume('k2', 'recent', now - 6 * DAY);
    store.consume('k2', 'fresh', now);
    assert.equal(store.prune(7 * DAY, now), 1);
    assert.equal(store.used('k1', 'old'), false);
    assert.ok(store.used('k1', 'edge'));
    assert.ok(store.used('k2', 'recent'));
    assert.ok(store.used('k2', 'fresh'));
    assert.equal(store.prune(7 * DAY, now), 0);
    // the authenticator prunes with its configured window
    const auth = new Authenticator(db, { nonceWindowMs: 2 * DAY });
    assert.equal(auth.nonceWindowMs, 2 * DAY);
    assert.equal(auth.pruneNonces(now), 2);
    assert.ok(store.used('k2', 'fresh'));
    // a pruned nonce could be used again: the documented replay window
    assert.ok(store.consume('k1', 'old', now));
  });
});

test('budget: N failures in a burst block the key; it refills over the window', () => {
  const b = new FailureBudget({ failures: 3, windowMs: 60_000, maxTracked: 100 });
  const t = 1_000_000;
  assert.equal(b.blocked('x', t), false);
  b.fail('x', t);
  b.fail('x', t);
  assert.equal(b.blocked('x', t), false);
  b.fail('x', t);
  assert.equal(b.blocked('x', t), true);
  assert.equal(b.blocked('y', t), false, 'other keys unaffected');
  // one token back after window / N
  assert.equal(b.blocked('x', t + 19_999), true);
  assert.equal(b.blocked('x', t + 20_000), false);
  b.fail('x', t + 20_000);
  assert.equal(b.blocked('x', t + 20_000), true);
  // the whole budget back after the window: the key is forgotten
  assert.equal(b.blocked('x', t + 20_000 + 60_000), false);
  assert.equal(b.size, 0);
  // slow failures (one per window / N) never block
  for (let i = 0; i < 20; i++) {
    assert.equal(b.blocked('slow', t + i * 20_000), false, `slow ${i}`);
    b.fail('slow', t + i * 20_000);
  }
});

test('budget: bounded memory, the key that failed least recently is forgotten first', () => {
  const b = new FailureBudget({ failures: 1, windowMs: 60_000, maxTracked: 3 });
  const t = 5_000;
  b.fail('a', t);
  b.fail('b', t + 1);
  b.fail('c', t + 2);
  b.fail('a', t + 3); // a failed again: now the most recent
  assert.equal(b.size, 3);
  b.fail('d', t + 4); // evicts b
  assert.equal(b.size, 3);
  assert.equal(b.blocked('b', t + 5), false, 'b was evicted');
  for (const k of ['a', 'c', 'd']) assert.equal(b.blocked(k, t + 5), true, k);
  for (let i = 0; i < 10_000; i++) b.fail(`k${i}`, t + 10);
  assert.equal(b.size, 3);
  assert.equal(new FailureBudget({ failures: 0 }).enabled, false);
});

test('authenticator budget: bad signatures for X block X unverified, Y keeps working, sessions are not blocked', () => {
  withAuth({ failureBudget: { failures: 4, windowMs: 60_000 } }, (auth, db) => {
    const sessionId = auth.sessions.getOrCreate(alice.address);
    const sessionPair = { session_id: sessionId, session_id_sign: `0x${alice.sign(sessionId)}` };
    // the session pair verified once before the attack is cached
    assert.equal(auth.verify(body(sessionPair), { allowSession: true })?.identity.kind, 'session');
    for (let i = 0; i < 4; i++) refused(() => auth.verify(body(signed(alice, undefined, mallory)), { allowSession: false }), 'nonce check failed');
    refused(() => auth.verify(body(signed(alice)), { allowSession: false }), 'too many failed attempts, try again later');
    // the same key in another spelling (node id hex) is the same account
    refused(() => auth.verify(body(signed({ ...alice, address: alice.nodeId })), { allowSession: false }), 'too many failed attempts, try again later');
    // a multisig with alice as a signer is blocked too
    refused(
      () =>
        auth.verify(body({ multisig_accounts: { wallets: [alice.address, bob.address], threshold: '2', signs: [signed(alice), signed(bob)] } }), {
          allowSession: false,
        }),
      'too many failed attempts, try again later',
    );
    assert.equal(auth.authenticate(body(signed(bob)), { allowSession: false })?.account, bob.address);
    assert.equal(auth.verify(body(sessionPair), { allowSession: true })?.identity.account, alice.address);
    assert.equal(rows(db), 1);
    assert.equal(auth.budget.size, 1);
    assert.ok(accountKeyHex(alice.address));
  });
  // replays and malformed nonces count too; failureBudget: false switches it off
  withAuth({ failureBudget: { failures: 2, windowMs: 60_000 } }, (auth) => {
    const cred = signed(bob);
    auth.authenticate(body(cred), { allowSession: false });
    refused(() => auth.verify(body(cred), { allowSession: false }), 'nonce check failed');
    refused(() => auth.verify(body(signed(bob, 'z'.repeat(300))), { allowSession: false }), 'nonce must be 1 to 128 printable ASCII characters');
    refused(() => auth.verify(body(signed(bob)), { allowSession: false }), 'too many failed attempts, try again later');
  });
  withAuth({ failureBudget: false }, (auth) => {
    for (let i = 0; i < 50; i++) refused(() => auth.verify(body(signed(alice, undefined, mallory)), { allowSession: false }), 'nonce check failed');
    assert.equal(auth.authenticate(body(signed(alice)), { allowSession: false })?.account, alice.address);
  });
});

test('GPU node: an unrented wallet stores nothing, a renter does; old nonces are pruned at start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dbc-auth-node-'));
  // nonces used before the start: one older than the window, one inside it
  const pre = openDb(join(dir, 'node.db'));
  pre.prepare('INSERT INTO used_nonces (wallet, nonce, used_at) VALUES (?, ?, ?)').run('aa'.repeat(32), 'old', Date.now() - 3 * DAY);
  pre.prepare('INSERT INTO used_nonces (wallet, nonce, used_at) VALUES (?, ?, ?)').run('aa'.repeat(32), 'new', Date.now() - 1 * DAY);
  pre.close();
  const hv = { accel: 'tcg', running: () => [], onExit: () => {}, adopt: async () => false, detachAll: async () => {} } as unknown as Hypervisor;
  const quiet = { info() {}, warn() {}, error() {}, debug() {} } as never;
  const running = await startGpuNode({
    dataDir: dir,
    publicHost: '127.0.0.1',
    forwardHost: '127.0.0.1',
    vncListen: '127.0.0.1',
    logger: quiet,
    hypervisor: hv,
    expiry: { sweepIntervalMs: 3600_000 },
    auth: { nonceWindowMs: 2 * DAY },
  });
  try {
    const db = running.db;
    assert.deepEqual(db.prepare('SELECT nonce FROM used_nonces').pluck().all(), ['new'], 'pruned at start');
    const call = (b: Partial<DbcBody>) => running.node.handle({ route: 'tasks.list', params: {}, query: {}, body: body(b) });
    const before = rows(db);
    for (let i = 0; i < 5; i++) {
      assert.equal((await call(signed(mallory, 'm'.repeat(128)))).message, 'check authority failed: wallet not rented');
      await assert.rejects(running.node.authorizeFor('images.upload', body(signed(mallory))), /wallet not rented/);
    }
    assert.equal(rows(db), before, 'nothing stored for an unrented wallet');
    (running.rentals as LocalRentals).grant(alice.address, 0, Date.now() + DAY);
    assert.equal((await call(signed(alice))).errcode, 0);
    assert.equal((await running.node.authorizeFor('images.upload', body(signed(alice))))?.identity.account, alice.address);
    assert.equal(rows(db), before + 2);
    const cred = signed(alice);
    assert.equal((await call(cred)).errcode, 0);
    assert.equal((await call(cred)).message, 'check authority failed: nonce check failed');
  } finally {
    await running.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
