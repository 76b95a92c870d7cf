/**
 * A faster Nostr event signer for the fuzz suites. nostr-tools' `finalizeEvent` derives the
 * public key again, hashes twice and (through noble's `schnorr.sign`) verifies its own
 * signature: about 4 ms per event on a small CI machine. Here the public key is derived once
 * per key and the signature is not re-verified, which leaves one base-point multiplication per
 * event. The signatures are ordinary BIP-340 ones (`fast-sign.test.ts` checks them with
 * nostr-tools' `verifyEvent`).
 */
import { schnorr } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, randomBytes } from '@noble/hashes/utils.js';
import type { Event, EventTemplate } from 'nostr-tools/pure';

const { Point } = schnorr;
const Fn = Point.Fn;
const N_BYTES = 32;

interface SigningKey {
  secretKey: Uint8Array;
  /** x-only public key. */
  px: Uint8Array;
  pubkey: string;
  /** The secret scalar, negated when its point has an odd y (BIP-340). */
  d: bigint;
}

const keys = new Map<string, SigningKey>();

function bytesToNumber(bytes: Uint8Array): bigint {
  return BigInt(`0x${bytesToHex(bytes) || '0'}`);
}

function numberTo32Bytes(n: bigint): Uint8Array {
  return Fn.toBytes(n);
}

const tagPrefixes = new Map<string, Uint8Array>();
function taggedHash(tag: string, ...messages: Uint8Array[]): Uint8Array {
  let prefix = tagPrefixes.get(tag);
  if (!prefix) {
    const h = sha256(new TextEncoder().encode(tag));
    prefix = concatBytes(h, h);
    tagPrefixes.set(tag, prefix);
  }
  return sha256(concatBytes(prefix, ...messages));
}

function signingKey(secretKey: Uint8Array): SigningKey {
  const cacheKey = bytesToHex(secretKey);
  let key = keys.get(cacheKey);
  if (!key) {
    const d0 = Fn.fromBytes(secretKey);
    const p = Point.BASE.multiply(d0).toAffine();
    const px = numberTo32Bytes(p.x);
    key = { secretKey, px, pubkey: bytesToHex(px), d: p.y % 2n === 0n ? d0 : Fn.neg(d0) };
    keys.set(cacheKey, key);
  }
  return key;
}

/** The x-only public key of a secret key, hex (cached). */
export function fastPublicKey(secretKey: Uint8Array): string {
  return signingKey(secretKey).pubkey;
}

/** A BIP-340 signature of a 32-byte message (no self-verification). */
export function fastSchnorrSign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  const { px, d } = signingKey(secretKey);
  const t = numberTo32Bytes(d ^ bytesToNumber(taggedHash('BIP0340/aux', randomBytes(N_BYTES))));
  const k0 = Fn.create(bytesToNumber(taggedHash('BIP0340/nonce', t, px, message)));
  if (k0 === 0n) throw new Error('nonce is zero');
  const r = Point.BASE.multiply(k0).toAffine();
  const k = r.y % 2n === 0n ? k0 : Fn.neg(k0);
  const rx = numberTo32Bytes(r.x);
  const e = Fn.create(bytesToNumber(taggedHash('BIP0340/challenge', rx, px, message)));
  return concatBytes(rx, numberTo32Bytes(Fn.create(k + e * d)));
}

/** The NIP-01 id of an event template signed by `pubkey`. */
export function eventId(pubkey: string, template: EventTemplate): string {
  return bytesToHex(sha256(new TextEncoder().encode(JSON.stringify([0, pubkey, template.created_at, template.kind, template.tags, template.content]))));
}

/** Like nostr-tools' `finalizeEvent`, returning a plain object (no cached verification mark). */
export function fastFinalizeEvent(template: EventTemplate, secretKey: Uint8Array): Event {
  const pubkey = fastPublicKey(secretKey);
  const id = eventId(pubkey, template);
  const sig = bytesToHex(fastSchnorrSign(Uint8Array.from(Buffer.from(id, 'hex')), secretKey));
  return { kind: template.kind, created_at: template.created_at, tags: template.tags, content: template.content, pubkey, id, sig };
}
