// Bitcoin base58check (payload + first 4 bytes of double SHA-256), as the original's EncodeBase58Check: its nonces,
// session ids and check_id() use it.
import { createHash, randomUUID } from 'node:crypto';

const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const INDEX = new Map([...ALPHABET].map((c, i) => [c, i]));

function checksum(payload: Uint8Array): Buffer {
  const once = createHash('sha256').update(payload).digest();
  return createHash('sha256').update(once).digest().subarray(0, 4);
}

export function base58Encode(bytes: Uint8Array): string {
  let zeros = 0;
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
  // big-endian base conversion, digits little-endian in `digits`
  const digits: number[] = [];
  for (let i = zeros; i < bytes.length; i++) {
    let carry = bytes[i]!;
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j]! << 8;
      digits[j] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = (carry / 58) | 0;
    }
  }
  let out = '1'.repeat(zeros);
  for (let k = digits.length - 1; k >= 0; k--) out += ALPHABET[digits[k]!];
  return out;
}

/** undefined when `text` holds a character outside the alphabet */
export function base58Decode(text: string): Uint8Array | undefined {
  let zeros = 0;
  while (zeros < text.length && text[zeros] === '1') zeros++;
  const bytes: number[] = [];
  for (let i = zeros; i < text.length; i++) {
    const value = INDEX.get(text[i]!);
    if (value === undefined) return undefined;
    let carry = value;
    for (let j = 0; j < bytes.length; j++) {
      carry += bytes[j]! * 58;
      bytes[j] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) {
      bytes.push(carry & 0xff);
      carry >>= 8;
    }
  }
  const out = new Uint8Array(zeros + bytes.length);
  for (let k = 0; k < bytes.length; k++) out[out.length - 1 - k] = bytes[k]!;
  return out;
}

export function base58CheckEncode(payload: Uint8Array): string {
  const withSum = new Uint8Array(payload.length + 4);
  withSum.set(payload);
  withSum.set(checksum(payload), payload.length);
  return base58Encode(withSum);
}

/** the payload, or undefined when the text is not base58 or its checksum is wrong (the original's check_id) */
export function base58CheckDecode(text: string): Uint8Array | undefined {
  const raw = base58Decode(text);
  if (!raw || raw.length < 4) return undefined;
  const payload = raw.subarray(0, raw.length - 4);
  return Buffer.from(checksum(payload)).equals(raw.subarray(raw.length - 4)) ? payload : undefined;
}

/** create_nonce() / create_session_id(): base58check of the ASCII text of a random lowercase UUID v4 (55 chars) */
export function createBase58Id(): string {
  return base58CheckEncode(Buffer.from(randomUUID(), 'ascii'));
}
