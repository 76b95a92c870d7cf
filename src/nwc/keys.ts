import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { getPublicKey } from 'nostr-tools/pure';

/** The bridge's keys, all derived from one master key so they can be recomputed, never stored. */
export interface BridgeKeys {
  /** The bridge-wide NIP-47 wallet service key, kept by connections made before per-connection keys. */
  serviceSecret: Uint8Array;
  servicePubkey: string;
  /** The key the bridge signs Vault API calls with (NIP-98): who is calling, never spending. */
  vaultAuthSecret: Uint8Array;
  vaultAuthPubkey: string;
  /** A connection's own wallet service key (NIP-47 recommends one per connection, for privacy). */
  forConnection(connectionPubkey: string): { secret: Uint8Array; pubkey: string };
}

/** Per-connection keys kept in memory: deriving one costs a public-key multiplication. */
const CONNECTION_KEY_CACHE = 50_000;

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
  const cache = new Map<string, { secret: Uint8Array; pubkey: string }>();
  return {
    serviceSecret,
    servicePubkey: getPublicKey(serviceSecret),
    vaultAuthSecret,
    vaultAuthPubkey: getPublicKey(vaultAuthSecret),
    forConnection(connectionPubkey) {
      let key = cache.get(connectionPubkey);
      if (!key) {
        const secret = deriveSecret(masterKey, `nwc-service/${connectionPubkey}`);
        key = { secret, pubkey: getPublicKey(secret) };
        if (cache.size >= CONNECTION_KEY_CACHE) cache.delete(cache.keys().next().value ?? '');
        cache.set(connectionPubkey, key);
      }
      return key;
    },
  };
}
