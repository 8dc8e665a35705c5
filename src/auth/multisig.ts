// The Substrate multisig account of a member set and threshold (what the original's create_multisig_account gives
// and what the chain records as the renter). Member order does not matter: createKeyMulti sorts the keys.
import { createKeyMulti, encodeAddress } from '@polkadot/util-crypto';

export const SS58_PREFIX = 42;

/** throws when a wallet is not a valid address or the threshold is out of range */
export function multisigAccount(wallets: string[], threshold: number): string {
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > wallets.length || threshold > 0xffff) {
    throw new Error(`invalid multisig threshold ${threshold} for ${wallets.length} wallets`);
  }
  return encodeAddress(createKeyMulti(wallets, threshold), SS58_PREFIX);
}
