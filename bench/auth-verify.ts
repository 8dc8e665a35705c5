// sr25519 verification throughput: the wasm fast path we use vs polkadot-js signatureVerify (pure JS since 14.x),
// and a cached session check. Prints JSON; both baselines are measured in the same run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sr25519Verify } from '@polkadot/wasm-crypto';
import { stringToU8a } from '@polkadot/util';
import { decodeAddress, signatureVerify } from '@polkadot/util-crypto';
import { Authenticator } from '../src/auth/authenticator.js';
import { createBase58Id } from '../src/auth/base58.js';
import { identityFromSeed } from '../src/auth/identity.js';
import { cryptoReady, verifySr25519 } from '../src/auth/verify.js';
import { openDb } from '../src/store/db.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);

function perSecond(run: () => boolean): number {
  for (let i = 0; i < 20; i++) if (!run()) throw new Error('benchmark input did not verify');
  let count = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(SECONDS * 1e9));
  let now = start;
  while (now < end) {
    for (let i = 0; i < 16; i++) if (!run()) throw new Error('verification failed mid-run');
    count += 16;
    now = process.hrtime.bigint();
  }
  return Math.round(count / (Number(now - start) / 1e9));
}

await cryptoReady();
const key = identityFromSeed('b0afb3faa47534b5348b4ea731b75deae179b0e6f13a80bf2fe9c4307bf97fe9');
const nonce = createBase58Id();
const sign = key.sign(nonce);
const msg = stringToU8a(nonce);
const sig = Buffer.from(sign, 'hex');
const pub = decodeAddress(key.address);

const dir = mkdtempSync(join(tmpdir(), 'dbc-bench-auth-'));
const db = openDb(join(dir, 'node.db'));
try {
  const auth = new Authenticator(db);
  const sessionId = auth.sessions.getOrCreate(key.address);
  const sessionBody = { peer_nodes_list: [], additional: {}, session_id: sessionId, session_id_sign: key.sign(sessionId) };
  const result = {
    wasm_verify_per_s: perSecond(() => sr25519Verify(sig, msg, pub)),
    js_verify_per_s: perSecond(() => signatureVerify(msg, `0x${sign}`, key.address).isValid),
    verify_sr25519_per_s: perSecond(() => verifySr25519(nonce, sign, key.address)),
    session_cached_per_s: perSecond(() => auth.authenticate(sessionBody, { allowSession: true })?.kind === 'session'),
  };
  console.log(JSON.stringify(result));
} finally {
  db.close();
  rmSync(dir, { recursive: true, force: true });
}
