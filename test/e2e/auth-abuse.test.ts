// Issue 10, finding 6: a stranger with a key pair must not grow the node's database, nonces are bounded and pruned,
// and a wallet that keeps failing authentication is refused before any signature work. Through `dbc up`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cliPath, post, signedBody, startDevnet, type Devnet } from '../helpers/devnet.js';

const newSeed = () => `0x${randomBytes(32).toString('hex')}`;
/** a printable ASCII nonce of exactly n characters */
const nonceOf = (n: number) =>
  randomBytes(Math.ceil(n / 2) + 1)
    .toString('hex')
    .slice(0, n)
    .padEnd(n, 'x');
const DAY = 24 * 3600_000;

describe('auth abuse through dbc up (issue 10, finding 6)', { timeout: 300_000 }, () => {
  let d: Devnet;
  const dbFile = () => join(d.dataDir, 'node.db');
  /** a body signed by `seed` over `nonce` (any nonce, unlike signedBody) */
  const bodyWith = (seed: string, nonce: string, signer = seed) => ({
    peer_nodes_list: [d.node_id],
    additional: {},
    wallet: identityFromSeed(seed).address,
    nonce,
    sign: `0x${identityFromSeed(signer).sign(nonce)}`,
  });
  const grant = (wallet: string) =>
    execFileSync(process.execPath, [cliPath, 'rental', 'grant', '--data-dir', d.dataDir, '--wallet', wallet, '--days', '1'], { encoding: 'utf8' });
  /** node.db + WAL after a checkpoint (the daemon keeps writing its own rows; the bound allows for that) */
  const dbBytes = () => {
    const db = new Database(dbFile());
    try {
      db.pragma('busy_timeout = 5000');
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    const wal = `${dbFile()}-wal`;
    return statSync(dbFile()).size + (existsSync(wal) ? statSync(wal).size : 0);
  };
  const nonceRows = () => {
    const db = new Database(dbFile(), { readonly: true });
    try {
      return (db.prepare('SELECT COUNT(*) AS n FROM used_nonces').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

  before(async () => {
    // the gateway's per-address budget (another layer) is switched off: this file tests the node's own defences
    d = await startDevnet({ extraArgs: ['--http-auth-fail-limit', '0'] });
  });
  after(async () => {
    await d?.destroy();
  });

  test('20 requests from an unrented wallet with 1 MiB nonces do not grow node.db', async (t) => {
    const stranger = newSeed();
    const rows = nonceRows();
    const bytes = dbBytes();
    for (let i = 0; i < 20; i++) {
      const r = await post(d.api, 'tasks', bodyWith(stranger, nonceOf(1024 * 1024)));
      assert.notEqual(r.body.errcode, 0, r.text);
      assert.match(r.body.message, /^check authority failed: /);
    }
    const grown = dbBytes() - bytes;
    t.diagnostic(`node.db + WAL grew by ${grown} bytes`);
    assert.ok(grown <= 64 * 1024, `node.db + WAL grew by ${grown} bytes`);
    assert.equal(nonceRows(), rows, 'no nonce stored for an unrented wallet');
  });

  test('20 requests from an unrented wallet with 128-char nonces store nothing', async (t) => {
    const stranger = newSeed();
    const rows = nonceRows();
    const bytes = dbBytes();
    for (let i = 0; i < 20; i++) {
      const r = await post(d.api, 'tasks', bodyWith(stranger, nonceOf(128)));
      // a well-formed nonce with a valid signature: refused only because the wallet rents nothing
      assert.equal(r.body.message, 'check authority failed: wallet not rented', r.text);
    }
    const grown = dbBytes() - bytes;
    t.diagnostic(`node.db + WAL grew by ${grown} bytes`);
    assert.ok(grown <= 64 * 1024, `node.db + WAL grew by ${grown} bytes`);
    assert.equal(nonceRows(), rows, 'no nonce stored for an unrented wallet');
  });

  test('a 129-char or non-printable nonce is refused with a clear text, even from the renter', async () => {
    const rows = nonceRows();
    for (const nonce of [nonceOf(129), 'abc\ndef', 'nonce-é', 'tab\there']) {
      const r = await post(d.api, 'tasks', bodyWith(d.renter.seed, nonce));
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { errcode: -3, message: 'check authority failed: nonce must be 1 to 128 printable ASCII characters' }, JSON.stringify(nonce));
    }
    assert.equal(nonceRows(), rows);
    // 128 characters is fine
    const ok = await post(d.api, 'tasks', bodyWith(d.renter.seed, nonceOf(128)));
    assert.equal(ok.body.errcode, 0, ok.text);
    assert.equal(nonceRows(), rows + 1);
  });

  test('a replayed nonce is still refused with the original text', async () => {
    const body = signedBody(d.node_id, d.renter.seed);
    const first = await post(d.api, 'tasks', body);
    assert.equal(first.body.errcode, 0, first.text);
    const again = await post(d.api, 'tasks', body);
    assert.deepEqual(again.body, { errcode: -3, message: 'check authority failed: nonce check failed' });
    // a nonce refused for "not rented" was not consumed, and a later grant does not make a replay of it pass twice
    const late = newSeed();
    const lateBody = signedBody(d.node_id, late);
    assert.equal((await post(d.api, 'tasks', lateBody)).body.message, 'check authority failed: wallet not rented');
    grant(identityFromSeed(late).address);
    assert.equal((await post(d.api, 'tasks', lateBody)).body.errcode, 0);
    assert.equal((await post(d.api, 'tasks', lateBody)).body.message, 'check authority failed: nonce check failed');
  });

  test('after 10 bad signatures for wallet X, X is refused unverified while wallet Y and the renter still work', async () => {
    const x = newSeed();
    grant(identityFromSeed(x).address);
    assert.equal((await post(d.api, 'tasks', signedBody(d.node_id, x))).body.errcode, 0, 'X works before');
    const forger = newSeed();
    for (let i = 0; i < 10; i++) {
      const r = await post(d.api, 'tasks', bodyWith(x, nonceOf(40), forger));
      assert.equal(r.body.message, 'check authority failed: nonce check failed', `attempt ${i + 1}`);
    }
    const rows = nonceRows();
    // now even X's own valid signature is refused, before any signature check and without storing its nonce
    const locked = await post(d.api, 'tasks', signedBody(d.node_id, x));
    assert.deepEqual(locked.body, { errcode: -3, message: 'check authority failed: too many failed attempts, try again later' });
    assert.equal(nonceRows(), rows);
    // wallet Y (another renter) and the demo renter are not affected
    const y = newSeed();
    grant(identityFromSeed(y).address);
    assert.equal((await post(d.api, 'tasks', signedBody(d.node_id, y))).body.errcode, 0);
    for (let i = 0; i < 5; i++) {
      const r = await post(d.api, 'tasks', signedBody(d.node_id, d.renter.seed));
      assert.equal(r.body.errcode, 0, r.text);
    }
    assert.equal(nonceRows(), rows + 6, "the renters' nonces are stored");
  });

  test('nonces older than the replay window are pruned at start, newer ones kept', async () => {
    await d.stop();
    const db = new Database(dbFile());
    const insert = db.prepare('INSERT INTO used_nonces (wallet, nonce, used_at) VALUES (?, ?, ?)');
    insert.run('aa'.repeat(32), 'old-nonce', Date.now() - 8 * DAY);
    insert.run('aa'.repeat(32), 'recent-nonce', Date.now() - 6 * DAY);
    db.close();
    await d.restart();
    const check = new Database(dbFile(), { readonly: true });
    const left = (check.prepare('SELECT nonce FROM used_nonces WHERE wallet = ? ORDER BY nonce').all('aa'.repeat(32)) as Array<{ nonce: string }>).map(
      (r) => r.nonce,
    );
    check.close();
    assert.deepEqual(left, ['recent-nonce']);
    // the renter still works after the restart, and a nonce used before it is still refused
    assert.equal((await post(d.api, 'tasks', signedBody(d.node_id, d.renter.seed))).body.errcode, 0);
  });
});
