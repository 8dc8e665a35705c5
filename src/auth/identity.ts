// The node's own sr25519 key, kept like the original's dat/node.dat: `node_id=<hex>` and `node_private_key=<hex>`
// (the 32-byte mini-secret seed). node_id = the public key as 64 lowercase hex chars.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringToU8a } from '@polkadot/util';
import { encodeAddress, sr25519PairFromSeed, sr25519Sign } from '@polkadot/util-crypto';
import { SS58_PREFIX } from './multisig.js';

export interface NodeIdentity {
  nodeId: string;
  seedHex: string;
  address: string;
  /** sr25519 signature over the UTF-8 bytes of `message`, 128 hex chars without 0x */
  sign: (message: string) => string;
}

export const NODE_DAT = 'node.dat';

const HEX64 = /^[0-9a-f]{64}$/;

export function identityFromSeed(seedHex: string): NodeIdentity {
  const seed = seedHex.toLowerCase().replace(/^0x/, '');
  if (!HEX64.test(seed)) throw new Error('node private key must be 32 bytes hex');
  const pair = sr25519PairFromSeed(Buffer.from(seed, 'hex'));
  return {
    nodeId: Buffer.from(pair.publicKey).toString('hex'),
    seedHex: seed,
    address: encodeAddress(pair.publicKey, SS58_PREFIX),
    sign: (message: string) => Buffer.from(sr25519Sign(stringToU8a(message), pair)).toString('hex'),
  };
}

export function loadOrCreateNodeIdentity(dataDir: string): NodeIdentity {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, NODE_DAT);
  if (existsSync(file)) {
    const fields = parseNodeDat(readFileSync(file, 'utf8'));
    const nodeId = fields.get('node_id')?.toLowerCase();
    const key = fields.get('node_private_key');
    if (!nodeId || !key) throw new Error(`${file}: node_id or node_private_key missing`);
    const identity = identityFromSeed(key);
    if (identity.nodeId !== nodeId.replace(/^0x/, '')) {
      throw new Error(`${file}: node_private_key does not derive node_id ${nodeId}`);
    }
    return identity;
  }
  const identity = identityFromSeed(randomBytes(32).toString('hex'));
  // written aside and renamed, so a crash never leaves a half-written key
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `node_id=${identity.nodeId}\nnode_private_key=${identity.seedHex}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return identity;
}

function parseNodeDat(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return fields;
}
