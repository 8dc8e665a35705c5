// What a caller of the GPU node notices about authentication: valid credentials pass, replays and forged or
// ended credentials are refused with the original's texts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authenticator } from '../../src/auth/authenticator.js';
import { base58CheckDecode, createBase58Id } from '../../src/auth/base58.js';
import { identityFromSeed } from '../../src/auth/identity.js';
import { multisigAccount } from '../../src/auth/multisig.js';
import { cryptoReady } from '../../src/auth/verify.js';
import { DbcError } from '../../src/protocol/errors.js';
import type { DbcBody } from '../../src/protocol/types.js';
import { openDb } from '../../src/store/db.js';

await cryptoReady();

const alice = identityFromSeed('11'.repeat(32));
const bob = identityFromSeed('22'.repeat(32));
const carol = identityFromSeed('33'.repeat(32));
const mallory = identityFromSeed('44'.repeat(32));
const members = [alice.address, bob.address, carol.address];

function signed(key: typeof alice, nonce = createBase58Id()) {
  return { wallet: key.address, nonce, sign: `0x${key.sign(nonce)}` };
}
const body = (extra: Partial<DbcBody>): DbcBody => ({ peer_nodes_list: [], additional: {}, ...extra });

function withAuth(run: (auth: Authenticator, dbFile: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'dbc-auth-'));
  const dbFile = join(dir, 'node.db');
  const db = openDb(dbFile);
  try {
    run(new Authenticator(db), dbFile);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function refused(fn: () => unknown, text: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DbcError);
    assert.equal(err.errcode, -3);
    assert.equal(err.message, `check authority failed: ${text}`);
    return true;
  });
}

test('a wallet signature over a fresh nonce authenticates the wallet', () => {
  withAuth((auth) => {
    const id = auth.authenticate(body(signed(alice)), { allowSession: true });
    assert.deepEqual(id, { kind: 'wallet', account: alice.address, signers: [alice.address] });
    // sign_tool style: no 0x on the signature
    const nonce = createBase58Id();
    const plain = body({ wallet: alice.address, nonce, sign: alice.sign(nonce) });
    assert.equal(auth.authenticate(plain, { allowSession: false })?.account, alice.address);
  });
});

test('a node id (hex public key) authenticates as a wallet', () => {
  withAuth((auth) => {
    const nonce = createBase58Id();
    const id = auth.authenticate(body({ wallet: alice.nodeId, nonce, sign: alice.sign(nonce) }), { allowSession: false });
    assert.equal(id?.account, alice.nodeId);
  });
});

test('a replayed nonce is refused, also with the wallet spelled as its public key', () => {
  withAuth((auth) => {
    const cred = signed(alice);
    auth.authenticate(body(cred), { allowSession: false });
    refused(() => auth.authenticate(body(cred), { allowSession: false }), 'nonce check failed');
    refused(() => auth.authenticate(body({ ...cred, wallet: alice.nodeId }), { allowSession: false }), 'nonce check failed');
  });
});

test('a replayed nonce is refused after the node restarts', () => {
  withAuth((auth, dbFile) => {
    const cred = signed(alice);
    auth.authenticate(body(cred), { allowSession: false });
    const reopened = openDb(dbFile);
    try {
      refused(() => new Authenticator(reopened).authenticate(body(cred), { allowSession: false }), 'nonce check failed');
    } finally {
      reopened.close();
    }
  });
});

test('a forged signature is refused without burning the nonce', () => {
  withAuth((auth) => {
    const cred = signed(alice);
    const forged = { ...cred, sign: `0x${mallory.sign(cred.nonce)}` };
    refused(() => auth.authenticate(body(forged), { allowSession: false }), 'nonce check failed');
    refused(() => auth.authenticate(body({ ...cred, wallet: bob.address }), { allowSession: false }), 'nonce check failed');
    assert.equal(auth.authenticate(body(cred), { allowSession: false })?.account, alice.address);
    refused(() => auth.authenticate(body({ wallet: alice.address, nonce: cred.nonce }), { allowSession: false }), 'nonce check failed');
  });
});

const multisigBody = (signs: Array<ReturnType<typeof signed>>, threshold = '2', wallets = members) =>
  body({ multisig_accounts: { wallets, threshold, signs } });

test('a 2-of-3 multisig authenticates as the multisig account', () => {
  withAuth((auth) => {
    const id = auth.authenticate(multisigBody([signed(alice), signed(carol)]), { allowSession: false });
    assert.equal(id?.kind, 'multisig');
    assert.equal(id?.account, '5DPWKpkanfAkrYb2HXnbTzrZY5mDmrsJR12LNHcJoiDs5nLV');
    assert.deepEqual(id?.signers, [alice.address, carol.address]);
    // 3 valid signs for threshold 2 pass too; the account follows the threshold
    const all = auth.authenticate(multisigBody([signed(alice), signed(bob), signed(carol)]), { allowSession: false });
    assert.equal(all?.account, multisigAccount(members, 2));
  });
});

test('a multisig with too few or bad signers is refused', () => {
  withAuth((auth) => {
    refused(() => auth.authenticate(multisigBody([signed(alice)]), { allowSession: false }), 'multisig threshold is invalid');
    refused(() => auth.authenticate(multisigBody([signed(alice)], '0'), { allowSession: false }), 'multisig threshold is invalid');
    refused(() => auth.authenticate(multisigBody([signed(alice), signed(bob)], 'two'), { allowSession: false }), 'multisig threshold is invalid');
    refused(
      () => auth.authenticate(multisigBody([signed(alice), signed(mallory)]), { allowSession: false }),
      `multisig sign_wallet ${mallory.address} not found in wallets`,
    );
    const badSign = { ...signed(bob), sign: `0x${mallory.sign('x')}` };
    refused(() => auth.authenticate(multisigBody([signed(alice), badSign]), { allowSession: false }), 'nonce check failed');
  });
});

test('the same multisig signer twice counts once', () => {
  withAuth((auth) => {
    refused(() => auth.authenticate(multisigBody([signed(alice), signed(alice)]), { allowSession: false }), 'multisig distinct signers fewer than threshold');
  });
});

test('a replayed multisig item is refused and does not burn the other nonces', () => {
  withAuth((auth) => {
    const a = signed(alice);
    auth.authenticate(multisigBody([a, signed(bob)]), { allowSession: false });
    const c = signed(carol);
    refused(() => auth.authenticate(multisigBody([a, c]), { allowSession: false }), 'nonce check failed');
    assert.equal(auth.authenticate(multisigBody([signed(bob), c]), { allowSession: false })?.kind, 'multisig');
  });
});

test('a session id signed by the renter authenticates as the renter', () => {
  withAuth((auth) => {
    const sessionId = auth.sessions.getOrCreate(alice.address);
    assert.equal(sessionId.length, 55);
    assert.ok(base58CheckDecode(sessionId));
    assert.equal(auth.sessions.getOrCreate(alice.address), sessionId, 'one session per renter');
    const cred = { session_id: sessionId, session_id_sign: `0x${alice.sign(sessionId)}` };
    for (let i = 0; i < 3; i++) {
      // replayable: the same pair is used for the whole rental
      assert.deepEqual(auth.authenticate(body(cred), { allowSession: true }), {
        kind: 'session',
        account: alice.address,
        signers: [alice.address],
      });
    }
  });
});

test('a multisig member may sign the multisig account session id', () => {
  withAuth((auth) => {
    const account = multisigAccount(members, 2);
    const sessionId = auth.sessions.getOrCreate(account, [alice.address, bob.address]);
    const id = auth.authenticate(body({ session_id: sessionId, session_id_sign: bob.sign(sessionId) }), { allowSession: true });
    assert.deepEqual(id, { kind: 'session', account, signers: [bob.address] });
    refused(() => auth.authenticate(body({ session_id: sessionId, session_id_sign: carol.sign(sessionId) }), { allowSession: true }), 'session_id is invalid');
  });
});

test('a session pair with a wrong sign or an unknown id is refused', () => {
  withAuth((auth) => {
    const sessionId = auth.sessions.getOrCreate(alice.address);
    refused(
      () => auth.authenticate(body({ session_id: sessionId, session_id_sign: mallory.sign(sessionId) }), { allowSession: true }),
      'session_id is invalid',
    );
    const other = createBase58Id();
    refused(() => auth.authenticate(body({ session_id: other, session_id_sign: alice.sign(other) }), { allowSession: true }), 'session_id is invalid');
    refused(() => auth.authenticate(body({ session_id: sessionId }), { allowSession: true }), 'session_id is invalid');
  });
});

test('an ended session stops working at once, even after it was cached', () => {
  withAuth((auth) => {
    const sessionId = auth.sessions.getOrCreate(alice.address);
    const cred = body({ session_id: sessionId, session_id_sign: alice.sign(sessionId) });
    assert.equal(auth.authenticate(cred, { allowSession: true })?.kind, 'session');
    assert.equal(auth.sessions.end(alice.address), true);
    refused(() => auth.authenticate(cred, { allowSession: true }), 'session_id is invalid');
    const renewed = auth.sessions.getOrCreate(alice.address);
    assert.notEqual(renewed, sessionId, 'a new rental gets a new session id');
    refused(() => auth.authenticate(cred, { allowSession: true }), 'session_id is invalid');
  });
});

test('"undefined" and empty values count as absent', () => {
  withAuth((auth) => {
    const sessionId = auth.sessions.getOrCreate(alice.address);
    const absent = { wallet: 'undefined', nonce: 'undefined', sign: '', session_id: 'undefined', session_id_sign: 'undefined' };
    assert.equal(auth.authenticate(body(absent), { allowSession: true }), null);
    assert.equal(auth.authenticate(body({}), { allowSession: true }), null);
    const session = { session_id: sessionId, session_id_sign: alice.sign(sessionId) };
    assert.equal(auth.authenticate(body({ ...absent, ...session }), { allowSession: true })?.kind, 'session');
    assert.equal(auth.authenticate(body({ ...signed(bob), session_id: 'undefined', session_id_sign: '' }), { allowSession: true })?.kind, 'wallet');
    refused(
      () => auth.authenticate(body({ ...absent, session_id: sessionId, session_id_sign: mallory.sign(sessionId) }), { allowSession: true }),
      'session_id is invalid',
    );
    // an empty multisig object is not a credential either
    assert.equal(auth.authenticate(body({ multisig_accounts: { wallets: [], threshold: '', signs: [] } }), { allowSession: false }), null);
  });
});

test('a bad session pair falls back to a valid wallet credential; session fields are ignored where not allowed', () => {
  withAuth((auth) => {
    const sessionId = auth.sessions.getOrCreate(alice.address);
    const badSession = { session_id: sessionId, session_id_sign: mallory.sign(sessionId) };
    assert.equal(auth.authenticate(body({ ...badSession, ...signed(bob) }), { allowSession: true })?.account, bob.address);
    const goodSession = { session_id: sessionId, session_id_sign: alice.sign(sessionId) };
    assert.equal(auth.authenticate(body(goodSession), { allowSession: false }), null);
    assert.equal(auth.authenticate(body({ ...goodSession, ...signed(bob) }), { allowSession: false })?.account, bob.address);
  });
});

test('old nonces can be pruned', () => {
  withAuth((auth) => {
    assert.equal(auth.nonces.consume('k', 'n1', Date.now() - 10_000), true);
    assert.equal(auth.nonces.consume('k', 'n2'), true);
    assert.equal(auth.nonces.consume('k', 'n1'), false);
    assert.equal(auth.nonces.prune(5_000), 1);
    assert.equal(auth.nonces.consume('k', 'n2'), false);
  });
});
