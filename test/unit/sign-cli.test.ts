// `dbc sign` makes credentials the node accepts, and its positional form prints what the original sign_tool did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { base58CheckDecode } from '../../src/auth/base58.js';
import { loadOrCreateNodeIdentity } from '../../src/auth/identity.js';
import { cryptoReady, verifySr25519 } from '../../src/auth/verify.js';
import { formatSignToolLines, signNonce } from '../../src/cli/sign.js';

await cryptoReady();

const SEED = 'b0afb3faa47534b5348b4ea731b75deae179b0e6f13a80bf2fe9c4307bf97fe9';
const WALLET = '5Dy8ULx1De6u3WE9ixpy1VKK2CVssvsjQT15qcmQsG662Zj4';
const SESSION = '663dmJngqu1yUmENnFM6PEsaeCKXTc4XHj6NfYbnA1ooLXuMDpNLmZu';

// runs the commands as `dbc` would, through commander, in a child process
const distRoot = new URL('../../', import.meta.url);
const driver = `
import { Command } from 'commander';
import { registerSign } from ${JSON.stringify(new URL('src/cli/sign.js', distRoot).href)};
import { registerKeys } from ${JSON.stringify(new URL('src/cli/keys.js', distRoot).href)};
const program = new Command('dbc');
registerSign(program);
registerKeys(program);
await program.parseAsync(process.argv.slice(1), { from: 'user' });
`;
function dbc(...args: string[]) {
  const cwd = fileURLToPath(new URL('../../../', import.meta.url)); // repo root, for node_modules
  return spawnSync(process.execPath, ['--input-type=module', '-e', driver, '--', ...args], { cwd, encoding: 'utf8' });
}

test('signNonce gives a wallet credential that verifies', () => {
  const out = signNonce(`0x${SEED}`);
  assert.equal(out.wallet, WALLET);
  assert.equal(out.nonce.length, 55);
  assert.ok(base58CheckDecode(out.nonce));
  assert.match(out.sign, /^0x[0-9a-f]{128}$/);
  assert.equal(verifySr25519(out.nonce, out.sign, out.wallet), true);
  assert.equal(out.session_id, undefined);
  const withSession = signNonce(SEED, SESSION);
  assert.equal(withSession.session_id, SESSION);
  assert.equal(verifySr25519(SESSION, withSession.session_id_sign!, WALLET), true);
  assert.notEqual(signNonce(SEED).nonce, out.nonce, 'a fresh nonce every time');
});

test('sign_tool lines are right-aligned to the longest label', () => {
  const nonce = '3eMPSsEtYRcPBkSMybhtdYA8WtpscTRjjNHR2AYXdFawgKW5LyEiUpr';
  const sig = '2e3059e12892160f736fca6ec0ab258346fa9612736735652eae893a431fab58f629fb185bee52edcca233a9e26394c1453ece51199d8f34956c626bd808b38a';
  assert.deepEqual(formatSignToolLines({ wallet: WALLET, nonce, nonce_sign: sig }), [`    wallet: ${WALLET}`, `     nonce: ${nonce}`, `nonce_sign: ${sig}`]);
  const lines = formatSignToolLines({ wallet: WALLET, nonce, nonce_sign: sig, session_id: SESSION, session_id_sign: sig });
  assert.deepEqual(
    lines.map((l) => l.indexOf(': ')),
    [15, 15, 15, 15, 15],
  );
  assert.equal(lines[0], `         wallet: ${WALLET}`);
  assert.equal(lines[4], `session_id_sign: ${sig}`);
});

test('dbc sign <wallet> <key> [session_id] prints the original lines with signatures that verify', () => {
  const run = dbc('sign', WALLET, SEED, SESSION);
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 5);
  const m = lines.map((l) => /^ *([a-z_]+): (\S+)$/.exec(l)!);
  assert.deepEqual(
    m.map((x) => x[1]),
    ['wallet', 'nonce', 'nonce_sign', 'session_id', 'session_id_sign'],
  );
  assert.equal(lines[0], `         wallet: ${WALLET}`);
  const [wallet, nonce, nonceSign, sessionId, sessionSign] = m.map((x) => x[2]!);
  assert.match(nonceSign!, /^[0-9a-f]{128}$/);
  assert.equal(verifySr25519(nonce!, nonceSign!, wallet!), true);
  assert.equal(sessionId, SESSION);
  assert.equal(verifySr25519(SESSION, sessionSign!, WALLET), true);

  const short = dbc('sign', WALLET, `0x${SEED}`);
  assert.equal(short.status, 0, short.stderr);
  assert.match(short.stdout, /^ {4}wallet: 5Dy8\S+\n {5}nonce: \S{55}\nnonce_sign: [0-9a-f]{128}\n$/);
});

test('dbc sign refuses a key that does not belong to the wallet', () => {
  const run = dbc('sign', WALLET, '11'.repeat(32));
  assert.equal(run.status, 1);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /private key does not belong to wallet 5Dy8/);
});

test('dbc sign --seed prints one JSON credential', () => {
  const run = dbc('sign', '--seed', `0x${SEED}`, '--session-id', SESSION);
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout) as Record<string, string>;
  assert.deepEqual(Object.keys(out), ['wallet', 'nonce', 'sign', 'session_id', 'session_id_sign']);
  assert.equal(out.wallet, WALLET);
  assert.equal(verifySr25519(out.nonce!, out.sign!, WALLET), true);
  assert.equal(verifySr25519(SESSION, out.session_id_sign!, WALLET), true);
});

test('dbc keys creates the node identity once and keeps it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dbc-keys-'));
  try {
    const dataDir = join(dir, 'data', 'nested');
    const first = dbc('keys', '--data-dir', dataDir);
    assert.equal(first.status, 0, first.stderr);
    const out = JSON.parse(first.stdout) as { node_id: string; address: string; file: string };
    assert.match(out.node_id, /^[0-9a-f]{64}$/);
    assert.equal(out.file, join(dataDir, 'node.dat'));
    assert.equal(statSync(out.file).mode & 0o777, 0o600);
    assert.match(readFileSync(out.file, 'utf8'), /^node_id=[0-9a-f]{64}\nnode_private_key=[0-9a-f]{64}\n$/);
    assert.deepEqual(JSON.parse(dbc('keys', '--data-dir', dataDir).stdout), out);

    const identity = loadOrCreateNodeIdentity(dataDir);
    assert.equal(identity.nodeId, out.node_id);
    assert.equal(identity.address, out.address);
    assert.equal(verifySr25519('hello', identity.sign('hello'), identity.nodeId), true);

    // a key that does not derive node_id is refused
    writeFileSync(out.file, `node_id=${out.node_id}\nnode_private_key=${'11'.repeat(32)}\n`);
    assert.throws(() => loadOrCreateNodeIdentity(dataDir), /does not derive node_id/);
    assert.equal(dbc('keys', '--data-dir', dataDir).status, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an original node.dat with the published key loads', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dbc-keys-'));
  try {
    writeFileSync(join(dir, 'node.dat'), `node_id=5437db36c5532df3a5937b62563d71c372a74e73d71f1edc4b3836718541c510\nnode_private_key=${SEED}\n`);
    const identity = loadOrCreateNodeIdentity(dir);
    assert.equal(identity.address, WALLET);
    assert.equal(identity.seedHex, SEED);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
