import { z } from 'zod';

/** Millisatoshis. Always a bigint in code, BIGINT in SQL, a decimal string on the Vault API. */
export type Msat = bigint;

const MAX_MSAT = 21_000_000n * 100_000_000n * 1000n;

/** A non-negative msat amount written as a decimal string (the Vault API's form). */
export const msatString = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,20})$/, 'expected a decimal string of millisatoshis')
  .transform((s) => BigInt(s))
  .refine((v) => v <= MAX_MSAT, 'amount larger than all bitcoin');

/** Encodes msats for the Vault API. */
export function msatToString(amount: Msat): string {
  return amount.toString();
}

/**
 * A msat amount from a NIP-47 JSON number: must be a non-negative safe integer, because a JSON
 * number past 2^53 has already lost precision when it reaches us.
 */
export const nip47Msat = z
  .number()
  .int('amount must be an integer number of millisatoshis')
  .nonnegative('amount must not be negative')
  .max(Number.MAX_SAFE_INTEGER, 'amount too large')
  .transform((n) => BigInt(n));

/** Encodes msats as a NIP-47 JSON number; throws if it would not be exact (a bug, not input). */
export function msatToNip47(amount: Msat): number {
  if (amount < 0n || amount > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`msat amount ${amount} cannot be a JSON number`);
  }
  return Number(amount);
}

export function satToMsat(sat: bigint): Msat {
  return sat * 1000n;
}

/** A fee limit: the larger of a base amount and a proportional part (ppm) of the amount. */
export interface FeeLimit {
  baseMsat: Msat;
  ppm: number;
}

/** Alby Hub's default: max(1 %, 10 sat). */
export const DEFAULT_FEE_LIMIT: FeeLimit = { baseMsat: 10_000n, ppm: 10_000 };

/** The most a payment of `amount` may pay in fees under `limit` (rounded down). */
export function feeLimitFor(amount: Msat, limit: FeeLimit): Msat {
  const proportional = (amount * BigInt(limit.ppm)) / 1_000_000n;
  return proportional > limit.baseMsat ? proportional : limit.baseMsat;
}
