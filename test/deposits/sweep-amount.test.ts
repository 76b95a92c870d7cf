/**
 * How much a sweep pays (`sweepAmount`, docs/sweep.md), as properties over any balances and fee
 * limits: never below the minimum, never more than the excess over keep-max, always payable
 * from one deposit with its fee limit beside it, and leaving the user at most keep-max when one
 * deposit holds the excess. Plus the sealed secret: opened only with the right key.
 */
import fc from 'fast-check';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import { openConnectionSecret, sealConnectionSecret, sendableWithFee, sweepAmount } from '../../src/deposits/sweep.ts';
import { DEFAULT_FEE_LIMIT, feeLimitFor } from '../../src/protocol/amounts.ts';

const SAT = 1000n;
const msat = fc.bigInt({ min: 0n, max: 2_100_000_000_000_000n });
const feeLimit = fc.record({ baseMsat: fc.bigInt({ min: 0n, max: 100_000n }), ppm: fc.integer({ min: 0, max: 100_000 }) });

describe('sweepAmount', () => {
  it('sweeps the excess over keep-max, payable from one deposit with its fee limit, never below the minimum', () => {
    fc.assert(
      fc.property(msat, msat, msat, fc.bigInt({ min: 1n, max: 1_000_000_000n }), feeLimit, (total, largestRaw, keepMax, minSweep, limit) => {
        const largest = largestRaw > total ? total : largestRaw;
        const amount = sweepAmount({ totalAvailableMsat: total, largestAvailableMsat: largest, keepMaxMsat: keepMax, minSweepMsat: minSweep, feeLimit: limit });
        if (amount === null) {
          // None only when the excess, or what the fullest deposit can send of it, is below the minimum.
          const excess = total - keepMax;
          const sendable = sendableWithFee(largest, limit);
          expect(excess < minSweep || (sendable < excess ? sendable : excess) < minSweep).toBe(true);
          return;
        }
        expect(amount).toBeGreaterThanOrEqual(minSweep);
        expect(amount).toBeLessThanOrEqual(total - keepMax);
        expect(amount + feeLimitFor(amount, limit)).toBeLessThanOrEqual(largest);
        // One deposit holding the excess: what stays is at most keep-max, whatever fee within the limit is paid.
        if (amount === total - keepMax) expect(total - amount).toBeLessThanOrEqual(keepMax);
      }),
    );
  });

  it.each<[string, bigint, bigint, bigint, bigint, bigint | null]>([
    ['nothing above keep-max', 100_000n, 100_000n, 100_000n, 1n, null],
    ['the excess below the minimum', 105_000n, 105_000n, 100_000n, 10_000n, null],
    ['the whole excess from one deposit', 300_000n, 300_000n, 100_000n, 10_000n, 200_000_000n],
    // Spread over deposits: the fullest sends what it can (amount + 1 % ≤ 150 000), the rest goes next pass.
    ['what the fullest deposit can send', 300_000n, 150_000n, 100_000n, 10_000n, 148_514_851n],
    ['nothing when the fullest deposit cannot send the minimum', 300_000n, 9_000n, 100_000n, 10_000n, null],
    ['everything sendable with keep-max 0', 50_000n, 50_000n, 0n, 1n, 49_504_950n],
  ])('%s', (_name, totalSat, largestSat, keepMaxSat, minSat, expectedMsat) => {
    const amount = sweepAmount({ totalAvailableMsat: totalSat * SAT, largestAvailableMsat: largestSat * SAT, keepMaxMsat: keepMaxSat * SAT, minSweepMsat: minSat * SAT, feeLimit: DEFAULT_FEE_LIMIT });
    expect(amount).toBe(expectedMsat);
  });
});

describe('the sealed sweep secret', () => {
  it('opens only with the wallet service secret it was sealed to, and only for its connection', () => {
    const connection = generateSecretKey();
    const service = generateSecretKey();
    const sealed = sealConnectionSecret(connection, getPublicKey(service));
    expect(openConnectionSecret(sealed, service, getPublicKey(connection))).toEqual(connection);
    expect(openConnectionSecret(sealed, generateSecretKey(), getPublicKey(connection))).toBeNull();
    expect(openConnectionSecret(sealed, service, getPublicKey(generateSecretKey()))).toBeNull();
    expect(openConnectionSecret({ ...sealed, encryptionPubkey: getPublicKey(generateSecretKey()) }, service, getPublicKey(connection))).toBeNull();
    // Each sealing uses a fresh key: the same secret never looks the same twice.
    expect(sealConnectionSecret(connection, getPublicKey(service)).encryptedSecret).not.toBe(sealed.encryptedSecret);
  });
});
