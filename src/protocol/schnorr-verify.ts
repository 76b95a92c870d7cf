import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex } from './hex.ts';

const Point = secp256k1.Point;
type Point = InstanceType<typeof Point>;
const { Fp, Fn } = Point;

/** Node keys verified against, lifted and with multiples precomputed: a handful per operator. */
const KEY_CACHE_SIZE = 64;
/** 4-bit windows: 520 points (about 60 kB) per key, a few ms once, no doublings per verify. */
const WINDOW_BITS = 4;
const liftedKeys = new Map<string, Point>();

function toBigint(bytes: Uint8Array): bigint {
  return BigInt('0x' + (bytesToHex(bytes) || '0'));
}

function liftedKey(xOnly: Uint8Array): Point {
  const hex = bytesToHex(xOnly);
  let point = liftedKeys.get(hex);
  if (point === undefined) {
    point = schnorr.utils.lift_x(toBigint(xOnly));
    point.precompute(WINDOW_BITS, false);
    if (liftedKeys.size >= KEY_CACHE_SIZE) liftedKeys.delete(liftedKeys.keys().next().value!);
    liftedKeys.set(hex, point);
  }
  return point;
}

/**
 * BIP-340 verification, as `schnorr.verify` of @noble/curves decides it (the same checks, r and
 * s nonzero included), but with the public key's point lifted once and its multiples kept: the
 * bridge checks every balance update and vault proof against the same few node keys, and pure-JS
 * verification from scratch was a tenth of its CPU per payment (bench/HISTORY.md).
 */
export function verifySchnorr(signature: Uint8Array, message: Uint8Array, xOnlyPubkey: Uint8Array): boolean {
  if (signature.length !== 64 || xOnlyPubkey.length !== 32) return false;
  try {
    const P = liftedKey(xOnlyPubkey);
    const rBytes = signature.subarray(0, 32);
    const r = toBigint(rBytes);
    if (!Fp.isValidNot0(r)) return false;
    const s = toBigint(signature.subarray(32, 64));
    if (!Fn.isValidNot0(s)) return false;
    const e = Fn.create(toBigint(schnorr.utils.taggedHash('BIP0340/challenge', rBytes, xOnlyPubkey, message)));
    // R = s·G − e·P; public values only, so the variable-time multiplications are fine.
    const R = Point.BASE.multiplyUnsafe(s).add(P.multiplyUnsafe(Fn.neg(e)));
    if (R.is0()) return false;
    const { x, y } = R.toAffine();
    return Fp.eql(x, r) && (y & 1n) === 0n;
  } catch {
    return false;
  }
}
