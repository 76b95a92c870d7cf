import { signSchnorr as wasmSign, verifySchnorr as wasmVerify } from 'tiny-secp256k1';

/**
 * BIP-340 signatures over 32-byte messages (Nostr event ids, balance updates, vault proofs,
 * owner attestations) through libsecp256k1 in WASM (tiny-secp256k1): about ten times faster than
 * pure JS to sign and five times to verify, and these run several times per payment at the
 * bridge and at every vault (bench/HISTORY.md).
 */

/** True when `signature` is a valid BIP-340 signature of `message` by `xOnlyPubkey`; false for any malformed input. */
export function verifySchnorr(signature: Uint8Array, message: Uint8Array, xOnlyPubkey: Uint8Array): boolean {
  try {
    return wasmVerify(message, xOnlyPubkey, signature);
  } catch {
    // The library throws on a point not on the curve, r ≥ p, s ≥ n or a wrong length.
    return false;
  }
}

/** Signs a 32-byte message; fresh auxiliary randomness unless `aux` is given (BIP-340's recommendation). */
export function signSchnorr(message: Uint8Array, secretKey: Uint8Array, aux: Uint8Array = crypto.getRandomValues(new Uint8Array(32))): Uint8Array {
  return wasmSign(message, secretKey, aux);
}
