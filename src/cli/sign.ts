// `dbc sign`: makes wallet credentials for a request, compatible with the original sign_tool.
//   dbc sign --seed 0x<seed> [--session-id S]       one JSON line, signatures with 0x (as Node.js clients send them)
//   dbc sign <wallet> <private_key> [session_id]    the original sign_tool's lines, signatures without 0x
import type { Command } from 'commander';
import { createBase58Id } from '../auth/base58.js';
import { identityFromSeed } from '../auth/identity.js';
import { accountKeyHex } from '../auth/verify.js';

export interface SignedNonce {
  wallet: string;
  nonce: string;
  sign: string;
  session_id?: string;
  session_id_sign?: string;
}

/** a fresh nonce (base58check of a UUID, as create_nonce()) signed with the seed; signatures 0x-prefixed */
export function signNonce(seedHex: string, sessionId?: string): SignedNonce {
  const key = identityFromSeed(seedHex);
  const nonce = createBase58Id();
  const out: SignedNonce = { wallet: key.address, nonce, sign: `0x${key.sign(nonce)}` };
  if (sessionId !== undefined) {
    out.session_id = sessionId;
    out.session_id_sign = `0x${key.sign(sessionId)}`;
  }
  return out;
}

export interface SignToolOutput {
  wallet: string;
  nonce: string;
  nonce_sign: string;
  session_id?: string;
  session_id_sign?: string;
}

/** sign_tool's output: `label: value` lines, labels right-aligned to the longest one */
export function formatSignToolLines(out: SignToolOutput): string[] {
  const rows: Array<[string, string]> = [
    ['wallet', out.wallet],
    ['nonce', out.nonce],
    ['nonce_sign', out.nonce_sign],
  ];
  if (out.session_id !== undefined) {
    rows.push(['session_id', out.session_id], ['session_id_sign', out.session_id_sign ?? '']);
  }
  const width = Math.max(...rows.map(([label]) => label.length + 1));
  return rows.map(([label, value]) => `${`${label}:`.padStart(width)} ${value}`);
}

/** the positional form; throws when the key does not belong to the wallet */
export function signToolOutput(wallet: string, privateKeyHex: string, sessionId?: string): SignToolOutput {
  const key = identityFromSeed(privateKeyHex);
  const walletKey = accountKeyHex(wallet);
  if (walletKey === null) throw new Error(`wallet ${wallet} is not an SS58 address or 64-hex public key`);
  if (walletKey !== key.nodeId) throw new Error(`private key does not belong to wallet ${wallet}`);
  const nonce = createBase58Id();
  const out: SignToolOutput = { wallet, nonce, nonce_sign: key.sign(nonce) };
  if (sessionId !== undefined) {
    out.session_id = sessionId;
    out.session_id_sign = key.sign(sessionId);
  }
  return out;
}

export function registerSign(program: Command): void {
  program
    .command('sign')
    .description('sign a fresh nonce (and optionally a session id) for wallet authentication')
    .argument('[wallet]', 'wallet address (original sign_tool form)')
    .argument('[private_key]', '32-byte sr25519 seed hex, with or without 0x')
    .argument('[session_id]', 'session id to sign as well')
    .option('--seed <hex>', '32-byte sr25519 seed hex (0x...): prints one JSON line')
    .option('--session-id <id>', 'with --seed: also sign this session id')
    .action(
      (
        wallet: string | undefined,
        privateKey: string | undefined,
        sessionId: string | undefined,
        opts: {
          seed?: string;
          sessionId?: string;
        },
      ) => {
        try {
          if (opts.seed !== undefined) {
            if (wallet !== undefined) throw new Error('use either --seed or <wallet> <private_key>, not both');
            process.stdout.write(`${JSON.stringify(signNonce(opts.seed, opts.sessionId))}\n`);
            return;
          }
          if (wallet === undefined || privateKey === undefined) {
            throw new Error('usage: dbc sign --seed 0x<seed> [--session-id S] | dbc sign <wallet> <private_key> [session_id]');
          }
          const lines = formatSignToolLines(signToolOutput(wallet, privateKey, sessionId ?? opts.sessionId));
          process.stdout.write(`${lines.join('\n')}\n`);
        } catch (err) {
          process.stderr.write(`dbc sign: ${err instanceof Error ? err.message : String(err)}\n`);
          process.exitCode = 1;
        }
      },
    );
}
