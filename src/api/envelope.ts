// The request body as the original client parsed it (parse_req_params, original §2.4) and the client-side
// credential pre-check (check_wallet_sign / check_multisig_wallets). Texts and their order are the original's.
import { ClientErrors } from '../protocol/errors.js';
import type { RouteSpec } from '../protocol/routes.js';
import type { DbcBody, MultisigAccounts, MultisigSign } from '../protocol/types.js';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (o: Json, key: string) => Object.prototype.hasOwnProperty.call(o, key);

function optionalString(doc: Json, key: keyof DbcBody, out: DbcBody): void {
  if (!has(doc, key)) return;
  const v = doc[key];
  if (typeof v !== 'string') throw ClientErrors.fieldNotString(key);
  (out as unknown as Record<string, string>)[key] = v;
}

function parseMultisig(v: unknown): MultisigAccounts {
  if (!isObject(v)) throw ClientErrors.multisigNotObject();
  if (!has(v, 'wallets')) throw ClientErrors.multisigNoWallets();
  const wallets = v.wallets;
  if (!Array.isArray(wallets)) throw ClientErrors.multisigWalletsNotArray();
  // ours: the original called GetString() on any element (undefined behaviour)
  if (!wallets.every((w) => typeof w === 'string')) throw ClientErrors.multisigWalletItem();
  if (!has(v, 'threshold')) throw ClientErrors.multisigNoThreshold();
  if (typeof v.threshold !== 'string') throw ClientErrors.multisigThresholdNotString();
  if (!has(v, 'signs')) throw ClientErrors.multisigNoSigns();
  const signs = v.signs;
  if (!Array.isArray(signs)) throw ClientErrors.multisigSignsNotArray();
  const items: MultisigSign[] = [];
  for (const s of signs) {
    // ours: the original read wallet/nonce/sign of each item unchecked
    if (!isObject(s) || typeof s.wallet !== 'string' || typeof s.nonce !== 'string' || typeof s.sign !== 'string') {
      throw ClientErrors.multisigSignItem();
    }
    items.push({ wallet: s.wallet, nonce: s.nonce, sign: s.sign });
  }
  return { wallets: wallets, threshold: v.threshold, signs: items };
}

/** nesting allowed inside `additional` (objects and arrays) */
export const MAX_ADDITIONAL_DEPTH = 32;

/** is any value inside v nested deeper than max levels? (iterative: the input may be 100,000 levels deep) */
function nestedDeeper(v: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[v, 1]];
  while (stack.length > 0) {
    const [x, depth] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(x) ? x : Object.values(x)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * parse_req_params. Only known keys reach the node; `peer_nodes_list` keeps its first element only (the
 * original forwarded `[list[0]]`).
 */
export function parseBody(raw: string | Buffer | undefined): DbcBody {
  const text = raw === undefined ? '' : typeof raw === 'string' ? raw : raw.toString('utf8');
  if (text.length === 0) throw ClientErrors.emptyBody();
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw ClientErrors.jsonParse(e instanceof Error ? e.message : String(e));
  }
  if (!isObject(doc)) throw ClientErrors.invalidJson();

  if (!has(doc, 'peer_nodes_list')) throw ClientErrors.noPeerList();
  const peers = doc.peer_nodes_list;
  if (!Array.isArray(peers)) throw ClientErrors.peerListNotArray();
  if (!peers.every((p) => typeof p === 'string')) throw ClientErrors.peerListItemNotString();
  if (!has(doc, 'additional')) throw ClientErrors.noAdditional();
  if (!isObject(doc.additional)) throw ClientErrors.additionalNotObject();
  // ours: no route takes nesting anywhere near this; deeper documents overflow the stack of structuredClone,
  // JSON.stringify and schema checks further on
  if (nestedDeeper(doc.additional, MAX_ADDITIONAL_DEPTH)) throw ClientErrors.additionalTooDeep();

  const body: DbcBody = {
    peer_nodes_list: peers.length > 0 ? [peers[0] as string] : [],
    additional: doc.additional,
  };
  optionalString(doc, 'wallet', body);
  optionalString(doc, 'nonce', body);
  optionalString(doc, 'sign', body);
  if (has(doc, 'multisig_accounts')) body.multisig_accounts = parseMultisig(doc.multisig_accounts);
  optionalString(doc, 'session_id', body);
  optionalString(doc, 'session_id_sign', body);
  optionalString(doc, 'rent_order', body);
  return body;
}

/** Real clients send String(undefined) for missing fields. */
export const isEmptyField = (v: string | undefined): boolean => v === undefined || v === '' || v === 'undefined';

/** C atoi: leading spaces, optional sign, digits; anything else stops the number (0 when none). */
export function atoi(text: string): number {
  const m = /^[\t\n\v\f\r ]*([+-]?\d+)/.exec(text);
  if (m === null) return 0;
  const n = Number.parseInt(m[1]!, 10);
  // int32 overflow is undefined in C; clamp so `> 100` and `<= 0` keep their meaning
  return Math.max(-2147483648, Math.min(2147483647, n));
}

export function hasWalletSign(body: DbcBody): boolean {
  return !isEmptyField(body.wallet) && !isEmptyField(body.nonce) && !isEmptyField(body.sign);
}

/**
 * check_multisig_wallets without its uninitialised-threshold bug: an absent multisig or a threshold below 1 is
 * no credential.
 */
export function hasValidLookingMultisig(body: DbcBody): boolean {
  const ms = body.multisig_accounts;
  if (ms === undefined) return false;
  const threshold = atoi(ms.threshold);
  if (threshold < 1 || threshold > ms.wallets.length || threshold > ms.signs.length) return false;
  return ms.signs.every((s) => ms.wallets.includes(s.wallet) && !isEmptyField(s.wallet) && !isEmptyField(s.nonce) && !isEmptyField(s.sign));
}

/**
 * The client-side pre-check before relaying (RAS:681-716 and each handler). The GPU node authenticates for real.
 * Text as the original: tasks/start (create) says `session_id and wallet all invalid`; every other route,
 * session-capable or not, says `wallet_sign and multisig_wallets all invalid` (rest_list_task, rest_passwd_task,
 * rest_task_logs, ...).
 */
export function clientPreCheck(route: RouteSpec, body: DbcBody): void {
  if (route.clientAuth === 'none') return;
  if (route.clientAuth === 'session' && !isEmptyField(body.session_id) && !isEmptyField(body.session_id_sign)) return;
  if (hasWalletSign(body) || hasValidLookingMultisig(body)) return;
  throw route.id === 'tasks.create' ? ClientErrors.sessionWalletInvalid() : ClientErrors.walletSignInvalid();
}
