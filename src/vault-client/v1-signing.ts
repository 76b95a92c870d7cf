/**
 * Request signatures for v1 Bitcoin Deposits operators (docs/vault-api-v1.md, "Signing"):
 * ECDSA over secp256k1 by the deposit key, compact 64 bytes, low-S, over
 * SHA-256("<Method>\n<timestamp>\n<canonical JSON of every other signed field>").
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '../protocol/hex.ts';

/**
 * Holds one deposit key. A v1 operator lets whoever signs with it do anything with the deposit,
 * spending included, so a signer lives only in the user's own process (the CLI with
 * `--user-key`), never in the bridge, and must never be reachable by the bridge as a signing
 * oracle: `sign` sees a digest, not what it authorizes.
 */
export interface V1Signer {
  /** The deposit key: 33-byte compressed secp256k1 public key, lowercase hex. */
  readonly pubkey: string;
  /** A compact (r ‖ s, 64 bytes) low-S ECDSA signature of `digest` (32 bytes, already hashed: no second hash). */
  sign(digest: Uint8Array): Promise<Uint8Array>;
}

/** What a signed request may carry: strings, safe integers, and objects or arrays of them (no floats, no null). */
export type V1Value = string | number | readonly V1Value[] | { readonly [key: string]: V1Value };

/**
 * RFC 8785 (JCS) for the values requests carry: keys sorted by UTF-16 code units, no
 * whitespace, strings escaped as JSON.stringify does. Throws on a number that is not a safe
 * integer (a bug, not input: v1 requests carry no floats).
 */
export function canonicalJson(value: V1Value): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`v1 requests carry integers only, got ${value}`);
    return String(value);
  }
  if (isList(value)) return `[${value.map(canonicalJson).join(',')}]`;
  return `{${Object.entries(value)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`)
    .join(',')}}`;
}

function isList(value: V1Value): value is readonly V1Value[] {
  return Array.isArray(value);
}

/** The string a v1 request signature covers; `fields` is the body without `timestamp` and `signature`. */
export function v1SigningMessage(method: string, timestamp: number, fields: { readonly [key: string]: V1Value }): string {
  return `${method}\n${timestamp}\n${canonicalJson(fields)}`;
}

/** SHA-256 of the signing message: what the deposit key signs. */
export function v1Digest(method: string, timestamp: number, fields: { readonly [key: string]: V1Value }): Uint8Array {
  return sha256(new TextEncoder().encode(v1SigningMessage(method, timestamp, fields)));
}

/** Whether `signature` is a compact low-S ECDSA signature of `digest` by `pubkey` (hex, compressed). Never throws. */
export function isValidV1Signature(signature: Uint8Array, digest: Uint8Array, pubkey: string): boolean {
  try {
    return secp256k1.verify(signature, digest, hexToBytes(pubkey), { prehash: false, lowS: true, format: 'compact' });
  } catch {
    return false;
  }
}

/**
 * A signer from a secret key held in this process (the user's CLI). A user's Nostr key works:
 * its deposit key is 02/03 ‖ the x-only key, which is how deposits map to owners.
 */
export function v1SignerFromSecretKey(secretKey: Uint8Array): V1Signer {
  const key = Uint8Array.from(secretKey);
  return {
    pubkey: bytesToHex(secp256k1.getPublicKey(key, true)),
    sign: async (digest) => secp256k1.sign(digest, key, { prehash: false, lowS: true, format: 'compact' }),
  };
}
