// The page's DBC client: signs in (the demo renter of `dbc up`, the polkadot{.js} extension, or a pasted session),
// then sends every request with the session pair, so the wallet signs twice per sign-in and never per request.
import { web3Accounts, web3Enable, web3FromAddress } from '@polkadot/extension-dapp';
import { hexToU8a, stringToHex, stringToU8a, u8aToHex } from '@polkadot/util';
import { cryptoWaitReady, sr25519PairFromSeed, sr25519Sign, encodeAddress } from '@polkadot/util-crypto';

export interface Reply<T = any> {
  errcode: number;
  message: T;
  operation_id?: string;
}

export interface Auth {
  wallet: string;
  session_id: string;
  session_id_sign: string;
  how: 'devnet' | 'extension' | 'session';
}

type Signer = (message: string) => Promise<string>;

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
export function nonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return [...bytes].map((b) => B58[b % 58]).join('');
}

export async function rawPost<T = any>(path: string, body: unknown): Promise<Reply<T>> {
  const r = await fetch(`/api/v1/${path}`, { method: 'POST', body: JSON.stringify(body) });
  const text = await r.text();
  try {
    return JSON.parse(text) as Reply<T>;
  } catch {
    return { errcode: -1, message: `HTTP ${r.status}: ${text.slice(0, 200)}` as unknown as T };
  }
}

/** the session pair for a wallet: one signed request for the session id, one signature of it */
async function session(nodeId: string, wallet: string, sign: Signer, how: Auth['how']): Promise<Auth> {
  const n = nonce();
  const r = await rawPost<{ session_id: string }>('mining_nodes/session_id', {
    peer_nodes_list: [nodeId],
    additional: {},
    wallet,
    nonce: n,
    sign: await sign(n),
  });
  if (r.errcode !== 0) throw new Error(String(r.message));
  const sid = r.message.session_id;
  return { wallet, session_id: sid, session_id_sign: await sign(sid), how };
}

export async function devnetSignIn(): Promise<{ auth: Auth; nodeId: string } | undefined> {
  const r = await fetch('/ui/devnet.json');
  if (!r.ok) return undefined;
  const d = (await r.json()) as { node_id: string; wallet: string; seed: string };
  await cryptoWaitReady();
  const pair = sr25519PairFromSeed(hexToU8a(d.seed));
  const sign: Signer = async (m) => u8aToHex(sr25519Sign(stringToU8a(m), pair));
  return { auth: await session(d.node_id, d.wallet || encodeAddress(pair.publicKey, 42), sign, 'devnet'), nodeId: d.node_id };
}

export async function devnetAvailable(): Promise<boolean> {
  try {
    return (await fetch('/ui/devnet.json', { method: 'GET' })).ok;
  } catch {
    return false;
  }
}

export async function extensionAccounts(): Promise<Array<{ address: string; name?: string }>> {
  const exts = await web3Enable('dbc-node');
  if (exts.length === 0) throw new Error('no polkadot{.js} extension answered (install it, or allow this page)');
  return (await web3Accounts()).map((a) => ({ address: a.address, name: a.meta.name }));
}

export async function extensionSignIn(nodeId: string, address: string): Promise<Auth> {
  const injector = await web3FromAddress(address);
  const signRaw = injector.signer.signRaw;
  if (!signRaw) throw new Error('the extension cannot sign raw messages');
  const sign: Signer = async (m) => (await signRaw({ address, data: stringToHex(m), type: 'bytes' })).signature;
  return session(nodeId, address, sign, 'extension');
}

export class Api {
  constructor(
    public nodeId: string,
    readonly auth: Auth,
  ) {}

  post<T = any>(path: string, additional: Record<string, unknown> = {}): Promise<Reply<T>> {
    const { session_id, session_id_sign } = this.auth;
    return rawPost<T>(path, { peer_nodes_list: [this.nodeId], additional, session_id, session_id_sign });
  }

  /** like post, but a non-zero errcode throws with the node's text */
  async call<T = any>(path: string, additional: Record<string, unknown> = {}): Promise<Reply<T>> {
    const r = await this.post<T>(path, additional);
    if (r.errcode !== 0) throw new Error(typeof r.message === 'string' ? r.message : JSON.stringify(r.message));
    return r;
  }
}
