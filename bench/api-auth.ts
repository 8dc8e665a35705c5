// Signed requests per second through the HTTP API of `dbc up`, which runs as a separate child process so the load
// generator does not share the server's event loop. Three modes against the same server, same run:
//   session          POST tasks (list) with session auth: the same body every time (the node caches verified
//                    session signatures), so this is the steady-state cost of an authorised request;
//   wallet           POST tasks (list) with wallet auth: a fresh nonce + signature per request (sr25519 verify and a
//                    persisted single-use nonce each time); all bodies are signed BEFORE the timed run;
//   version_baseline POST /api/v1/ (version route: no auth, no node): the HTTP layer's ceiling on this machine.
// Keep-alive HTTP (node:http Agent), CONCURRENCY requests in flight, WARMUP_S then SECONDS per mode. Prints JSON.
import { keepAlivePoster } from './http-post.js';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { sr25519KeypairFromSeed, sr25519Sign, sr25519Verify, waitReady } from '@polkadot/wasm-crypto';
import { createBase58Id } from '../src/auth/base58.js';
import { identityFromSeed } from '../src/auth/identity.js';
import { signNonce } from '../src/cli/sign.js';
import { post, signedBody, startDevnet, type Devnet } from '../test/helpers/devnet.js';
import { percentile, rounder } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 1);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 24);
/** pre-signed wallet bodies: more than the wallet mode can use in WARMUP_S + SECONDS on this kind of machine */
const WALLET_BODIES = Number(process.env.BENCH_WALLET_BODIES ?? 12_000);
const TARGET_SESSION_REQ_PER_S = 2000;

export interface ModeResult {
  req_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  requests: number;
  seconds: number;
  /** wallet mode only: the pre-signed bodies ran out before the end, throughput is over the time they lasted */
  bodies_exhausted?: boolean;
  first_error?: string;
}

const round = rounder(2);

/**
 * Drive `url` with CONCURRENCY keep-alive connections: warm up, then measure for `seconds`.
 * next() gives each request body (null: none left); check() tells whether a reply is a success.
 */
async function load(
  url: string,
  next: () => string | null,
  seconds: number,
  warmupS: number,
  check: (status: number, text: string) => boolean,
): Promise<ModeResult> {
  const poster = keepAlivePoster(CONCURRENCY);
  const target = new URL(url);
  const send = (body: string) => poster.post(target, body);

  let measuring = false;
  let stop = false;
  let exhausted = false;
  let count = 0;
  let errors = 0;
  let firstError: string | undefined;
  let lat = new Float64Array(1 << 16);
  const record = (ms: number) => {
    if (count === lat.length) {
      const bigger = new Float64Array(lat.length * 2);
      bigger.set(lat);
      lat = bigger;
    }
    lat[count++] = ms;
  };
  let measureEnd = 0;

  const worker = async () => {
    while (!stop) {
      const body = next();
      if (body === null) {
        exhausted = true;
        if (measuring && measureEnd === 0) measureEnd = performance.now();
        stop = true;
        break;
      }
      const t0 = performance.now();
      let ok = false;
      let why = '';
      try {
        const r = await send(body);
        ok = check(r.status, r.text);
        if (!ok) why = `HTTP ${r.status}: ${r.text.slice(0, 300)}`;
      } catch (err) {
        why = String(err);
      }
      if (!measuring) continue;
      record(performance.now() - t0);
      if (!ok) {
        errors++;
        firstError ??= why;
      }
    }
  };

  const workers = Array.from({ length: CONCURRENCY }, () => worker());
  await new Promise((r) => setTimeout(r, warmupS * 1000));
  const start = performance.now();
  measuring = true;
  const deadline = start + seconds * 1000;
  // the wallet pool may run out early: stop waiting then
  while (!stop && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  if (measureEnd === 0) measureEnd = performance.now();
  stop = true;
  const n = count; // replies after this point are not counted
  await Promise.all(workers);
  poster.close();

  const elapsed = (measureEnd - start) / 1000;
  const sorted = lat.slice(0, n).sort();
  const out: ModeResult = {
    req_per_s: Math.round(n / elapsed),
    p50_ms: round(percentile(sorted, 50)),
    p99_ms: round(percentile(sorted, 99)),
    errors,
    requests: n,
    seconds: round(elapsed),
  };
  if (exhausted) out.bodies_exhausted = true;
  if (firstError) out.first_error = firstError;
  return out;
}

const errcodeZero = (status: number, text: string): boolean => {
  if (status !== 200) return false;
  try {
    return (JSON.parse(text) as { errcode?: unknown }).errcode === 0;
  } catch {
    return false;
  }
};

export async function benchApiAuth(): Promise<Record<string, unknown>> {
  const loadBefore = os.loadavg();
  let d: Devnet | undefined;
  try {
    d = await startDevnet();
    const api = d.api;
    const tasksUrl = `${api}/api/v1/tasks`;

    // a session id for the renter, and the one body session mode sends again and again
    const sid = await post(api, 'mining_nodes/session_id', signedBody(d.node_id, d.renter.seed));
    if (sid.body.errcode !== 0) throw new Error(`mining_nodes/session_id: ${sid.text}`);
    const sessionId = String(sid.body.message.session_id);
    const signed = signNonce(d.renter.seed, sessionId);
    const sessionJson = JSON.stringify({
      peer_nodes_list: [d.node_id],
      additional: {},
      session_id: sessionId,
      session_id_sign: signed.session_id_sign,
    });
    const probe = await post(api, 'tasks', sessionJson, true);
    if (probe.body.errcode !== 0) throw new Error(`tasks with session auth: ${probe.text}`);

    // wallet bodies, all signed before anything is timed. signNonce() derives the key pair on every call with the
    // pure-JS sr25519 (~3.5 ms a body here); the wasm signer with the pair derived once is ~30x faster. Same format:
    // base58 nonce, 0x-prefixed signature over its UTF-8 bytes.
    await waitReady();
    const t0 = performance.now();
    const pair = sr25519KeypairFromSeed(Buffer.from(d.renter.seed.replace(/^0x/, ''), 'hex'));
    const secret = pair.subarray(0, 64);
    const pub = pair.subarray(64, 96);
    const walletAddr = identityFromSeed(d.renter.seed).address;
    if (walletAddr !== d.renter.wallet) throw new Error(`renter seed gives ${walletAddr}, devnet says ${d.renter.wallet}`);
    const walletBodies: string[] = new Array(WALLET_BODIES);
    for (let i = 0; i < WALLET_BODIES; i++) {
      const nonce = createBase58Id();
      const msg = Buffer.from(nonce, 'utf8');
      const sig = sr25519Sign(pub, secret, msg);
      if (i === 0 && !sr25519Verify(sig, msg, pub)) throw new Error('wasm sr25519 signature does not verify');
      walletBodies[i] = JSON.stringify({
        peer_nodes_list: [d.node_id],
        additional: {},
        wallet: walletAddr,
        nonce,
        sign: `0x${Buffer.from(sig).toString('hex')}`,
      });
    }
    const signMs = performance.now() - t0;

    const wprobe = await post(api, 'tasks', walletBodies.pop()!, true);
    if (wprobe.body.errcode !== 0) throw new Error(`tasks with wallet auth: ${wprobe.text}`);

    const versionBody = '{}';
    const version = await load(`${api}/api/v1/`, () => versionBody, SECONDS, WARMUP_S, errcodeZero);
    const session = await load(tasksUrl, () => sessionJson, SECONDS, WARMUP_S, errcodeZero);
    let wi = 0;
    const wallet = await load(tasksUrl, () => (wi < walletBodies.length ? walletBodies[wi++]! : null), SECONDS, WARMUP_S, errcodeZero);

    const loadAfter = os.loadavg();
    return {
      session,
      wallet,
      version_baseline: version,
      cores: os.cpus().length,
      target_session_req_per_s: TARGET_SESSION_REQ_PER_S,
      pass: session.errors === 0 && wallet.errors === 0 && version.errors === 0 && session.req_per_s >= TARGET_SESSION_REQ_PER_S,
      concurrency: CONCURRENCY,
      seconds_per_mode: SECONDS,
      warmup_s: WARMUP_S,
      wallet_bodies_presigned: WALLET_BODIES,
      presign_ms: Math.round(signMs),
      loadavg_before: loadBefore.map((x) => round(x)),
      loadavg_after: loadAfter.map((x) => round(x)),
    };
  } finally {
    await d?.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  benchApiAuth().then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
    },
    (err) => {
      process.stderr.write(`api-auth bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
