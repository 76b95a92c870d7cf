import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { getPublicKey } from 'nostr-tools/pure';

/** The bridge's keys, all derived from one master key so they can be recomputed, never stored. */
export interface BridgeKeys {
  /** The NIP-47 wallet service key (the pubkey in nostr+walletconnect:// URIs). */
  serviceSecret: Uint8Array;
  servicePubkey: string;
  /** The key the bridge signs Vault API calls with (NIP-98): who is calling, never spending. */
  vaultAuthSecret: Uint8Array;
  vaultAuthPubkey: string;
}

const utf8 = new TextEncoder();

/** A secp256k1 secret for `purpose`: HKDF-SHA256 of the master key, re-derived in the negligible case it is out of range. */
export function deriveSecret(masterKey: Uint8Array, purpose: string): Uint8Array {
  for (let counter = 0; ; counter++) {
    const candidate = hkdf(sha256, masterKey, utf8.encode('deposit-bridge'), utf8.encode(`${purpose}/${counter}`), 32);
    if (secp256k1.utils.isValidSecretKey(candidate)) return candidate;
  }
}

export function deriveBridgeKeys(masterKey: Uint8Array): BridgeKeys {
  const serviceSecret = deriveSecret(masterKey, 'nwc-service');
  const vaultAuthSecret = deriveSecret(masterKey, 'vault-auth');
  return {
    serviceSecret,
    servicePubkey: getPublicKey(serviceSecret),
    vaultAuthSecret,
    vaultAuthPubkey: getPublicKey(vaultAuthSecret),
  };
}
