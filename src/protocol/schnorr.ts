import { createRequire } from 'node:module';
import { signSchnorr as wasmSign, verifySchnorr as wasmVerify } from 'tiny-secp256k1';

/**
 * BIP-340 signatures over 32-byte messages (Nostr event ids, balance updates, vault proofs,
 * owner attestations), several per payment at the bridge and at every vault. Two backends with
 * the same verdicts (test/protocol/schnorr-suite.ts checks each against @noble/curves):
 * - native: the system's libsecp256k1 through `native/secp256k1.c`, built by `npm ci` where
 *   libsecp256k1-dev is installed; with a key pair kept per secret key, about seven times
 *   faster than WASM to sign and four to verify (bench/HISTORY.md);
 * - wasm: libsecp256k1 compiled to WASM (tiny-secp256k1), everywhere else.
 * `SECP256K1_BACKEND=wasm` forces the second.
 */

interface NativeSecp256k1 {
  verify(signature: Uint8Array, message: Uint8Array, xOnlyPubkey: Uint8Array): boolean;
  keypair(secretKey: Uint8Array): Uint8Array | null;
  sign(message: Uint8Array, keypair: Uint8Array, aux: Uint8Array): Uint8Array;
}

function loadNative(): NativeSecp256k1 | null {
  if (process.env.SECP256K1_BACKEND === 'wasm') return null;
  try {
    return createRequire(import.meta.url)('../../build/Release/secp256k1_native.node') as NativeSecp256k1;
  } catch {
    // Not built (no libsecp256k1-dev where `npm ci` ran): the WASM backend serves.
    return null;
  }
}

const native = loadNative();

/** Which backend this process signs and verifies with. */
export const schnorrBackend: 'native' | 'wasm' = native ? 'native' : 'wasm';

/** The native verify throws on a wrong length; verifySchnorr answers false instead. */
const hasBip340Lengths = (signature: Uint8Array, message: Uint8Array, key: Uint8Array) => signature.length === 64 && message.length === 32 && key.length === 32;

/** True when `signature` is a valid BIP-340 signature of `message` by `xOnlyPubkey`; false for any malformed input. */
export function verifySchnorr(signature: Uint8Array, message: Uint8Array, xOnlyPubkey: Uint8Array): boolean {
  if (native) return hasBip340Lengths(signature, message, xOnlyPubkey) && native.verify(signature, message, xOnlyPubkey);
  try {
    return wasmVerify(message, xOnlyPubkey, signature);
  } catch {
    // The library throws on a point not on the curve, r ≥ p, s ≥ n or a wrong length.
    return false;
  }
}

/** Key pairs by the secret key array they were made from: the bridge's and vaults' keys live for the process. */
const keypairs = new WeakMap<Uint8Array, Uint8Array>();

function keypairOf(secretKey: Uint8Array, backend: NativeSecp256k1): Uint8Array {
  const kept = keypairs.get(secretKey);
  if (kept) return kept;
  // Throws for a wrong length, null for a value that is no secret key (zero, the group order or above).
  const made = backend.keypair(secretKey);
  if (!made) throw new Error('invalid secret key');
  keypairs.set(secretKey, made);
  return made;
}

/** Signs a 32-byte message; fresh auxiliary randomness unless `aux` is given (BIP-340's recommendation). */
export function signSchnorr(message: Uint8Array, secretKey: Uint8Array, aux: Uint8Array = crypto.getRandomValues(new Uint8Array(32))): Uint8Array {
  if (!native) return wasmSign(message, secretKey, aux);
  return native.sign(message, keypairOf(secretKey, native), aux);
}
