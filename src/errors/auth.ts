// Authentication failures of the GPU node (check_authority): HTTP 200, errcode -3, text
// `check authority failed: <reason>`. The reasons are the original's unless `ours` says otherwise.
import { define, E_DEFAULT, type ErrorArg } from './dbc-error.js';

/** every authentication failure starts with this (api/auth-budget.ts counts replies that do) */
export const CHECK_AUTHORITY_FAILED = 'check authority failed';

const REASONS = {
  nonceCheckFailed: 'nonce check failed',
  sessionInvalid: 'session_id is invalid',
  walletNotRented: 'wallet not rented',
  expired: 'machine has already expired',
  notRented: 'machine is not be rented',
  queryStatusFailed: 'query machine_status failed',
  notInVerifyTime: 'not in verify time',
  noCredential: 'no credential given',
  multisigWalletsEmpty: 'multisig wallets is empty',
  multisigSignsEmpty: 'multisig signs is empty',
  multisigThresholdInvalid: 'multisig threshold is invalid',
  multisigWalletInvalid: 'multisig wallets has an invalid address',
  multisigSignItemEmpty: 'multisig sign wallet, nonce or sign is empty',
  multisigSignWalletNotFound: 'multisig sign_wallet {wallet} not found in wallets',
  multisigTooFewSigners: 'multisig distinct signers fewer than threshold',
  chainUnavailable: 'query machine_status failed: {detail}',
  verifierNotAllowed: 'verifier can not use this route',
  nonceInvalid: 'nonce must be 1 to 128 printable ASCII characters',
  tooManyFailures: 'too many failed attempts, try again later',
} as const;

const e = <A extends readonly ErrorArg[] = []>(code: string, reason: keyof typeof REASONS, where: string) =>
  define<A>({ code, errcode: E_DEFAULT, http: 200, text: `${CHECK_AUTHORITY_FAILED}: ${REASONS[reason]}`, where });

export const AuthErrors = {
  nonceCheckFailed: e(
    'AUTH_NONCE_CHECK_FAILED',
    'nonceCheckFailed',
    'wallet/nonce/sign missing, bad signature or a replayed nonce; a session id used as wallet',
  ),
  sessionInvalid: e('AUTH_SESSION_INVALID', 'sessionInvalid', 'session_id/session_id_sign that do not verify, and no wallet'),
  walletNotRented: e('AUTH_WALLET_NOT_RENTED', 'walletNotRented', 'the wallet does not rent this machine'),
  expired: e('AUTH_EXPIRED', 'expired', 'a session whose rental ended'),
  notRented: e('AUTH_NOT_RENTED', 'notRented', 'the machine is not rented'),
  queryStatusFailed: e('AUTH_QUERY_STATUS_FAILED', 'queryStatusFailed', 'the rental source gave no machine status'),
  notInVerifyTime: e('AUTH_NOT_IN_VERIFY_TIME', 'notInVerifyTime', 'a committee verifier outside its verify window'),
  noCredential: e('AUTH_NO_CREDENTIAL', 'noCredential', 'a node route that needs a caller, without any credential; ours'),
  multisigWalletsEmpty: e('AUTH_MULTISIG_WALLETS_EMPTY', 'multisigWalletsEmpty', 'multisig without wallets'),
  multisigSignsEmpty: e('AUTH_MULTISIG_SIGNS_EMPTY', 'multisigSignsEmpty', 'multisig without signs'),
  multisigThresholdInvalid: e('AUTH_MULTISIG_THRESHOLD', 'multisigThresholdInvalid', 'threshold not in 1..wallets'),
  multisigWalletInvalid: e('AUTH_MULTISIG_WALLET_INVALID', 'multisigWalletInvalid', 'a multisig wallet that is not an ss58 address; ours'),
  multisigSignItemEmpty: e('AUTH_MULTISIG_SIGN_ITEM_EMPTY', 'multisigSignItemEmpty', 'a sign item without wallet, nonce or sign; ours'),
  multisigSignWalletNotFound: e<[wallet: string]>('AUTH_MULTISIG_SIGN_WALLET', 'multisigSignWalletNotFound', 'a sign item whose wallet is not a member; ours'),
  multisigTooFewSigners: e('AUTH_MULTISIG_TOO_FEW', 'multisigTooFewSigners', 'fewer distinct valid signers than the threshold; ours'),
  /** ours: the original's text plus why (chain unreachable longer than the outage grace) */
  chainUnavailable: e<[detail: string]>('AUTH_CHAIN_UNAVAILABLE', 'chainUnavailable', 'the chain unreachable longer than the outage grace; ours'),
  /** ours: a committee verifier on a renter-only route (the original refused these without a text of its own) */
  verifierNotAllowed: e('AUTH_VERIFIER_NOT_ALLOWED', 'verifierNotAllowed', 'a verifier on a renter-only route; ours'),
  /** ours: a wallet (or multisig item) nonce longer than 128 characters or not printable ASCII, refused unverified */
  nonceInvalid: e('AUTH_NONCE_INVALID', 'nonceInvalid', 'a nonce longer than 128 or not printable ASCII; ours'),
  /** ours: the account spent its failed-authentication budget (src/auth/budget.ts); refused unverified */
  tooManyFailures: e('AUTH_TOO_MANY_FAILURES', 'tooManyFailures', 'an account past its failed-authentication budget (auth/budget.ts); ours'),
};
