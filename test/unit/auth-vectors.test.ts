// The real signatures of the original sign_tool verify; anything altered does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stringToU8a, u8aToHex, u8aWrapBytes } from '@polkadot/util';
import { sr25519PairFromSeed, sr25519Sign } from '@polkadot/util-crypto';
import { cryptoReady, verifySr25519 } from '../../src/auth/verify.js';
import { multisigAccount } from '../../src/auth/multisig.js';
import { base58CheckDecode } from '../../src/auth/base58.js';

const repoRoot = new URL('../../../', import.meta.url);
const vectors = JSON.parse(readFileSync(fileURLToPath(new URL('test/fixtures/auth-vectors.json', repoRoot)), 'utf8')) as {
  wallet: string;
  wallet_public_key_hex: string;
  wallet_seed_hex: string;
  signatures: Array<{ kind: string; message: string; sign: string }>;
  multisig_example: { addresses: string[]; threshold: number; multisig_address: string };
};

await cryptoReady();

test('every sign_tool signature verifies against the SS58 wallet, hex with and without 0x', () => {
  assert.equal(vectors.signatures.length, 4);
  for (const { message, sign } of vectors.signatures) {
    assert.equal(verifySr25519(message, sign, vectors.wallet), true, message);
    assert.equal(verifySr25519(message, `0x${sign}`, vectors.wallet), true, message);
    assert.equal(verifySr25519(message, sign.toUpperCase(), vectors.wallet), true, message);
  }
});

test('the wallet may be given as its 64-hex public key, with or without 0x', () => {
  for (const { message, sign } of vectors.signatures) {
    assert.equal(verifySr25519(message, sign, vectors.wallet_public_key_hex), true);
    assert.equal(verifySr25519(message, sign, `0x${vectors.wallet_public_key_hex}`), true);
  }
});

test('a flipped byte, a wrong wallet or a wrong message fails', () => {
  const { message, sign } = vectors.signatures[0]!;
  const flipped = (parseInt(sign.slice(10, 12), 16) ^ 0x01).toString(16).padStart(2, '0');
  assert.equal(verifySr25519(message, sign.slice(0, 10) + flipped + sign.slice(12), vectors.wallet), false);
  assert.equal(verifySr25519(message, sign, vectors.multisig_example.addresses[0]!), false);
  assert.equal(verifySr25519(vectors.signatures[1]!.message, sign, vectors.wallet), false);
  assert.equal(verifySr25519(`${message} `, sign, vectors.wallet), false);
});

test('malformed input is refused, never thrown', () => {
  const { message, sign } = vectors.signatures[0]!;
  assert.equal(verifySr25519(message, sign.slice(2), vectors.wallet), false); // 63 bytes
  assert.equal(verifySr25519(message, `${sign}zz`, vectors.wallet), false);
  assert.equal(verifySr25519(message, '', vectors.wallet), false);
  assert.equal(verifySr25519(message, sign, 'not-a-wallet'), false);
  assert.equal(verifySr25519(message, sign, `${vectors.wallet.slice(0, -1)}5`), false); // bad SS58 checksum
  assert.equal(verifySr25519(message, sign, ''), false);
  assert.equal(verifySr25519(undefined as unknown as string, sign, vectors.wallet), false);
});

test('the nonces and session id of the original are base58check of a UUID text', () => {
  for (const { message } of vectors.signatures) {
    const payload = base58CheckDecode(message);
    assert.ok(payload, message);
    assert.match(Buffer.from(payload).toString('ascii'), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
  assert.equal(base58CheckDecode(`${vectors.signatures[0]!.message.slice(0, -1)}x`), undefined);
});

test('a message starting with 0x is signed as its text, not hex-decoded', () => {
  const pair = sr25519PairFromSeed(Buffer.from(vectors.wallet_seed_hex, 'hex'));
  const message = '0x1234';
  const asText = u8aToHex(sr25519Sign(stringToU8a(message), pair));
  const asBytes = u8aToHex(sr25519Sign(new Uint8Array([0x12, 0x34]), pair));
  assert.equal(verifySr25519(message, asText, vectors.wallet), true);
  assert.equal(verifySr25519(message, asBytes, vectors.wallet), false);
});

test('a browser wallet signature over the <Bytes>-wrapped message is accepted', () => {
  const pair = sr25519PairFromSeed(Buffer.from(vectors.wallet_seed_hex, 'hex'));
  const nonce = vectors.signatures[0]!.message;
  const wrapped = u8aToHex(sr25519Sign(u8aWrapBytes(stringToU8a(nonce)), pair));
  assert.equal(verifySr25519(nonce, wrapped, vectors.wallet), true);
  assert.equal(verifySr25519(`<Bytes>${nonce}</Bytes>`, vectors.signatures[0]!.sign, vectors.wallet), true);
  assert.equal(verifySr25519(vectors.signatures[1]!.message, wrapped, vectors.wallet), false);
});

test('the 2-of-3 multisig account matches the vector, whatever the member order', () => {
  const { addresses, threshold, multisig_address } = vectors.multisig_example;
  assert.equal(multisigAccount(addresses, threshold), multisig_address);
  assert.equal(multisigAccount([...addresses].reverse(), threshold), multisig_address);
  assert.notEqual(multisigAccount(addresses, 3), multisig_address);
  assert.throws(() => multisigAccount(addresses, 4));
  assert.throws(() => multisigAccount(addresses, 0));
});
