// sr25519 signature checks for DBC credentials: the message is the UTF-8 text (nonce or session_id), the signature
// 64 bytes hex with or without 0x, the account an SS58 address or a 64-hex public key (node ids).
import {
  ed25519Verify as wasmEd25519Verify,
  isReady as wasmIsReady,
  sr25519Verify as wasmSr25519Verify,
  waitReady as wasmWaitReady,
} from '@polkadot/wasm-crypto';
import { stringToU8a, u8aIsWrapped, u8aUnwrapBytes, u8aWrapBytes } from '@polkadot/util';
import { cryptoWaitReady, decodeAddress, ed25519Verify as jsEd25519Verify, signatureVerify, sr25519Verify as jsSr25519Verify } from '@polkadot/util-crypto';

export async function cryptoReady(): Promise<void> {
  await wasmWaitReady();
  await cryptoWaitReady();
}

const HEX64 = /^[0-9a-fA-F]{64}$/;
const SIG_HEX = /^(?:[0-9a-fA-F]{2}){64,66}$/;

// Decoded accounts are reused across requests (a renter signs many); bounded so random input cannot grow it.
const publicKeyCache = new Map<string, Uint8Array | null>();
const PUBLIC_KEY_CACHE_MAX = 4096;

/** the 32-byte public key of an SS58 address or 64-hex key (with or without 0x); null when neither */
export function accountPublicKey(account: string): Uint8Array | null {
  const cached = publicKeyCache.get(account);
  if (cached !== undefined) return cached;
  let key: Uint8Array | null = null;
  const hex = account.startsWith('0x') ? account.slice(2) : account;
  if (HEX64.test(hex)) key = Buffer.from(hex, 'hex');
  else if (account.length >= 40 && account.length <= 60) {
    try {
      const decoded = decodeAddress(account);
      key = decoded.length === 32 ? decoded : null;
    } catch {
      key = null;
    }
  }
  if (publicKeyCache.size >= PUBLIC_KEY_CACHE_MAX) publicKeyCache.delete(publicKeyCache.keys().next().value!);
  publicKeyCache.set(account, key);
  return key;
}

/** lowercase hex of the account's public key (no 0x): one spelling per key, e.g. for replay bookkeeping */
export function accountKeyHex(account: string): string | null {
  const key = accountPublicKey(account);
  return key ? Buffer.from(key).toString('hex') : null;
}

function sr25519(sig: Uint8Array, msg: Uint8Array, key: Uint8Array): boolean {
  try {
    return wasmIsReady() ? wasmSr25519Verify(sig, msg, key) : jsSr25519Verify(msg, sig, key);
  } catch {
    return false;
  }
}

function ed25519(sig: Uint8Array, msg: Uint8Array, key: Uint8Array): boolean {
  try {
    return wasmIsReady() ? wasmEd25519Verify(sig, msg, key) : jsEd25519Verify(msg, sig, key);
  } catch {
    return false;
  }
}

/** what signatureVerify would accept from a browser wallet: <Bytes>-wrapped messages, ed25519 keys, and
 *  MultiSignature-prefixed (0x00 ed25519 / 0x01 sr25519) 65-byte signatures */
function browserWalletVerify(sig: Uint8Array, msg: Uint8Array, key: Uint8Array): boolean {
  const other = u8aIsWrapped(msg, false) ? u8aUnwrapBytes(msg) : u8aWrapBytes(msg);
  if (sig.length === 64) {
    return sr25519(sig, other, key) || ed25519(sig, msg, key) || ed25519(sig, other, key);
  }
  if (sig.length === 65 && (sig[0] === 0 || sig[0] === 1)) {
    const inner = sig.subarray(1);
    const check = sig[0] === 1 ? sr25519 : ed25519;
    if (check(inner, msg, key) || check(inner, other, key)) return true;
  }
  // ecdsa (65/66 bytes): rare, leave it to polkadot-js
  try {
    return signatureVerify(msg, sig, key).isValid;
  } catch {
    return false;
  }
}

/** true when `signatureHex` is `account`'s signature over the UTF-8 bytes of `message`; never throws */
export function verifySr25519(message: string, signatureHex: string, account: string): boolean {
  if (typeof message !== 'string' || typeof signatureHex !== 'string' || typeof account !== 'string') return false;
  const hex = signatureHex.startsWith('0x') ? signatureHex.slice(2) : signatureHex;
  if (!SIG_HEX.test(hex)) return false;
  const key = accountPublicKey(account);
  if (!key) return false;
  const sig = Buffer.from(hex, 'hex');
  // never u8aToU8a: it would hex-decode a message starting with 0x
  const msg = stringToU8a(message);
  if (sig.length === 64 && sr25519(sig, msg, key)) return true;
  return browserWalletVerify(sig, msg, key);
}
