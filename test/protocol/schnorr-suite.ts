/** The BIP-340 checks every backend of src/protocol/schnorr.ts must pass, against @noble/curves. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { schnorr } from '@noble/curves/secp256k1.js';
import type * as Schnorr from '../../src/protocol/schnorr.ts';

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const P = 2n ** 256n - 2n ** 32n - 977n;
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const be32 = (v: bigint) => Uint8Array.from(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'));

export function schnorrSuite({ signSchnorr, verifySchnorr, schnorrBackend }: typeof Schnorr): void {
  describe(`verifySchnorr and signSchnorr: BIP-340 through libsecp256k1 (${schnorrBackend})`, () => {
    const secrets = [1, 2, 3].map(() => schnorr.utils.randomSecretKey());
    const keys = secrets.map((s) => schnorr.getPublicKey(s));

    it('accepts exactly what @noble/curves accepts: valid signatures and every single-byte change of signature, message or key', () => {
      fc.assert(
        fc.property(fc.nat({ max: 2 }), bytes(32), fc.nat({ max: 127 }), fc.integer({ min: 1, max: 255 }), (which, message, at, flip) => {
          const sig = schnorr.sign(message, secrets[which]!);
          const key = keys[which]!;
          expect(verifySchnorr(sig, message, key)).toBe(true);
          const badSig = sig.slice();
          badSig[at % 64]! ^= flip;
          const badMessage = message.slice();
          badMessage[at % 32]! ^= flip;
          const badKey = key.slice();
          badKey[at % 32]! ^= flip;
          for (const [s, m, k] of [
            [badSig, message, key],
            [sig, badMessage, key],
            [sig, message, badKey],
            [sig, message, keys[(which + 1) % 3]!],
          ] as const) {
            expect(verifySchnorr(s, m, k)).toBe(schnorr.verify(s, m, k));
          }
        }),
        { numRuns: 200 },
      );
    });

    it('signs as BIP-340 says: verified by @noble/curves, and byte for byte its signature for the same auxiliary randomness', () => {
      fc.assert(
        fc.property(fc.nat({ max: 2 }), bytes(32), bytes(32), (which, message, aux) => {
          const sig = signSchnorr(message, secrets[which]!, aux);
          expect(Buffer.from(sig).toString('hex')).toBe(Buffer.from(schnorr.sign(message, secrets[which]!, aux)).toString('hex'));
          expect(schnorr.verify(signSchnorr(message, secrets[which]!), message, keys[which]!)).toBe(true);
        }),
        { numRuns: 100 },
      );
    });

    it('agrees with @noble/curves on arbitrary bytes and on the edge values of r, s and the key', () => {
      fc.assert(
        fc.property(bytes(64), bytes(32), bytes(32), (sig, message, key) => {
          expect(verifySchnorr(sig, message, key)).toBe(schnorr.verify(sig, message, key));
        }),
        { numRuns: 200 },
      );
      const message = new Uint8Array(32).fill(7);
      const sig = schnorr.sign(message, secrets[0]!);
      const s = sig.subarray(32);
      const r = sig.subarray(0, 32);
      for (const [rr, ss, k] of [
        [be32(P), s, keys[0]!],
        [be32(0n), s, keys[0]!],
        [r, be32(N), keys[0]!],
        [r, be32(0n), keys[0]!],
        [r, s, be32(P)],
        [r, s, be32(0n)],
      ] as const) {
        const edge = new Uint8Array([...rr, ...ss]);
        expect(verifySchnorr(edge, message, k)).toBe(false);
        expect(schnorr.verify(edge, message, k)).toBe(false);
      }
      expect(verifySchnorr(sig.subarray(0, 63), message, keys[0]!)).toBe(false);
      expect(verifySchnorr(sig, message.subarray(0, 31), keys[0]!)).toBe(false);
      expect(verifySchnorr(sig, message, keys[0]!.subarray(0, 31))).toBe(false);
    });

    it('refuses to sign with a secret key that is not one: zero, the group order, a wrong length', () => {
      const message = new Uint8Array(32).fill(9);
      for (const secret of [new Uint8Array(32), be32(N), new Uint8Array(31).fill(1)]) expect(() => signSchnorr(message, secret)).toThrow();
    });
  });
}
