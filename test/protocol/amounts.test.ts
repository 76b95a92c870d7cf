import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_FEE_LIMIT,
  feeLimitFor,
  msatString,
  msatToNip47,
  msatToString,
  nip47Msat,
  satToMsat,
  type FeeLimit,
} from '../../src/protocol/amounts.ts';

/** 21 million BTC in msat. */
const ALL_BITCOIN_MSAT = 21_000_000n * 100_000_000n * 1000n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

describe('msatString (Vault API amounts)', () => {
  it.each([
    ['0', 0n],
    ['1', 1n],
    ['21000', 21_000n],
    ['9007199254740993', 9_007_199_254_740_993n],
    ['2100000000000000000', ALL_BITCOIN_MSAT],
  ])('parses %j to %s msat as a bigint', (input, expected) => {
    expect(msatString.parse(input)).toBe(expected);
  });

  it.each([
    ['a leading zero', '021000'],
    ['a double zero', '00'],
    ['a negative amount', '-1'],
    ['a negative zero', '-0'],
    ['a decimal fraction', '1.5'],
    ['a trailing decimal point', '1.'],
    ['an exponent', '1e3'],
    ['a plus sign', '+1'],
    ['a leading space', ' 1'],
    ['a trailing newline', '1\n'],
    ['an empty string', ''],
    ['hex', '0x10'],
    ['one msat more than all bitcoin', '2100000000000000001'],
    ['a 21-digit amount', '999999999999999999999'],
    ['a 40-digit amount', '1'.repeat(40)],
    ['non-ASCII digits', '١٢٣'],
  ])('refuses %s (%j)', (_, input) => {
    expect(msatString.safeParse(input).success).toBe(false);
  });

  it.each([[21_000], [21_000n], [null], [undefined], [true], [['1']]])('refuses the non-string %s', (input) => {
    expect(msatString.safeParse(input).success).toBe(false);
  });

  it('round trips every amount up to all bitcoin through msatToString', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: ALL_BITCOIN_MSAT }), (amount) => {
        expect(msatString.parse(msatToString(amount))).toBe(amount);
      }),
    );
  });
});

describe('nip47Msat (NIP-47 JSON numbers)', () => {
  it.each([
    [0, 0n],
    [1, 1n],
    [21_000, 21_000n],
    [Number.MAX_SAFE_INTEGER, MAX_SAFE],
  ])('parses %s to %s msat', (input, expected) => {
    expect(nip47Msat.parse(input)).toBe(expected);
  });

  it.each([
    ['a fraction', 1.5],
    ['a tiny fraction', 0.1],
    ['a negative amount', -1],
    ['2^53, past the safe integers', 2 ** 53],
    ['2^53 + 2', 2 ** 53 + 2],
    ['1e21', 1e21],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a decimal string', '21000'],
    ['a bigint', 21_000n],
  ])('refuses %s', (_, input) => {
    expect(nip47Msat.safeParse(input).success).toBe(false);
  });
});

describe('msatToNip47', () => {
  it('encodes safe amounts as the same number', () => {
    expect(msatToNip47(0n)).toBe(0);
    expect(msatToNip47(21_000n)).toBe(21_000);
    expect(msatToNip47(MAX_SAFE)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('throws a RangeError past the safe integers instead of losing precision', () => {
    expect(() => msatToNip47(MAX_SAFE + 1n)).toThrow(RangeError);
    expect(() => msatToNip47(ALL_BITCOIN_MSAT)).toThrow(RangeError);
  });

  it('throws a RangeError for a negative amount', () => {
    expect(() => msatToNip47(-1n)).toThrow(RangeError);
  });

  it('round trips every safe amount through nip47Msat', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX_SAFE }), (amount) => {
        expect(nip47Msat.parse(msatToNip47(amount))).toBe(amount);
      }),
    );
  });
});

describe('satToMsat', () => {
  it('converts satoshis to millisatoshis', () => {
    expect(satToMsat(0n)).toBe(0n);
    expect(satToMsat(21n)).toBe(21_000n);
  });
});

describe('feeLimitFor', () => {
  it('defaults to max(10 sat, 1 %), as the design notes (Alby Hub) say', () => {
    expect(DEFAULT_FEE_LIMIT).toEqual({ baseMsat: 10_000n, ppm: 10_000 });
  });

  it.each<[string, FeeLimit, bigint, bigint]>([
    ['the base for a zero amount', DEFAULT_FEE_LIMIT, 0n, 10_000n],
    ['the base while 1 % is below it', DEFAULT_FEE_LIMIT, 500_000n, 10_000n],
    ['the base when 1 % equals it', DEFAULT_FEE_LIMIT, 1_000_000n, 10_000n],
    ['1 % rounded down just above the crossover', DEFAULT_FEE_LIMIT, 1_000_099n, 10_000n],
    ['1 % once above the base', DEFAULT_FEE_LIMIT, 1_000_100n, 10_001n],
    ['1 % of a large payment', DEFAULT_FEE_LIMIT, 100_000_000_000n, 1_000_000_000n],
    ['only the base with ppm 0', { baseMsat: 2_000n, ppm: 0 }, 10n ** 15n, 2_000n],
    ['0 for a zero limit', { baseMsat: 0n, ppm: 0 }, 1_000_000n, 0n],
    ['a proportional part rounded down to 0', { baseMsat: 0n, ppm: 3 }, 333_333n, 0n],
    ['a proportional part rounded down to 1', { baseMsat: 0n, ppm: 3 }, 666_666n, 1n],
    ['an exact proportional part', { baseMsat: 0n, ppm: 3 }, 1_000_000n, 3n],
    ['the whole amount at one million ppm', { baseMsat: 0n, ppm: 1_000_000 }, 123_456n, 123_456n],
  ])('gives %s', (_, limit, amount, expected) => {
    expect(feeLimitFor(amount, limit)).toBe(expected);
  });

  const limitArb = fc.record({ baseMsat: fc.bigInt({ min: 0n, max: 10n ** 12n }), ppm: fc.integer({ min: 0, max: 1_000_000 }) });
  const amountArb = fc.bigInt({ min: 0n, max: ALL_BITCOIN_MSAT });

  it('is never below the base', () => {
    fc.assert(
      fc.property(limitArb, amountArb, (limit, amount) => {
        expect(feeLimitFor(amount, limit) >= limit.baseMsat).toBe(true);
      }),
    );
  });

  it('never exceeds the exact proportional fee when above the base (rounds down)', () => {
    fc.assert(
      fc.property(limitArb, amountArb, (limit, amount) => {
        const fee = feeLimitFor(amount, limit);
        if (fee > limit.baseMsat) {
          expect(fee * 1_000_000n <= amount * BigInt(limit.ppm)).toBe(true);
          expect((fee + 1n) * 1_000_000n > amount * BigInt(limit.ppm)).toBe(true);
        }
      }),
    );
  });

  it('is monotone in the amount', () => {
    fc.assert(
      fc.property(limitArb, amountArb, amountArb, (limit, a, b) => {
        const [low, high] = a <= b ? [a, b] : [b, a];
        expect(feeLimitFor(low, limit) <= feeLimitFor(high, limit)).toBe(true);
      }),
    );
  });
});
