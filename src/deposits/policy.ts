import { z } from 'zod';
import { msatString } from '../protocol/amounts.ts';
import { DEFAULT_POLICY, type AllocationPolicy } from './allocation.ts';
import type { Trx } from './journal.ts';

const score = z.number().min(0).max(1);

/** A policy as the HTTP API reads and writes it (amounts as decimal strings). */
export const policyJsonSchema = z.strictObject({
  max_share_ppm: z.number().int().min(1).max(1_000_000),
  test_amount_msat: msatString,
  trusted_score: score,
  min_score: score,
  /** Past 8 a single point of score difference would decide everything. */
  exponent: z.number().min(0.25).max(8),
});

export interface PolicyJson {
  max_share_ppm: number;
  test_amount_msat: string;
  trusted_score: number;
  min_score: number;
  exponent: number;
}

export function policyToJson(policy: AllocationPolicy): PolicyJson {
  return {
    max_share_ppm: policy.maxSharePpm,
    test_amount_msat: policy.testAmountMsat.toString(),
    trusted_score: policy.trustedScore,
    min_score: policy.minScore,
    exponent: policy.exponent,
  };
}

export function policyFromJson(json: z.output<typeof policyJsonSchema>): AllocationPolicy {
  return { maxSharePpm: json.max_share_ppm, testAmountMsat: json.test_amount_msat, trustedScore: json.trusted_score, minScore: json.min_score, exponent: json.exponent };
}

/** The user's spreading rules, or the defaults when the user has set none. */
export async function userPolicy(trx: Trx, userPubkey: string): Promise<AllocationPolicy> {
  return policyFrom(await trx.selectFrom('allocation_policies').selectAll().where('user_pubkey', '=', userPubkey).executeTakeFirst());
}

/** A stored policy row (its columns null or the row absent when the user has set none). */
export function policyFrom(
  row: { max_share_ppm: number | null; test_amount_msat: bigint | null; trusted_score: number | null; min_score: number | null; exponent: number | null } | undefined,
): AllocationPolicy {
  if (!row || row.max_share_ppm === null || row.test_amount_msat === null || row.trusted_score === null || row.min_score === null || row.exponent === null) return DEFAULT_POLICY;
  return { maxSharePpm: row.max_share_ppm, testAmountMsat: row.test_amount_msat, trustedScore: row.trusted_score, minScore: row.min_score, exponent: row.exponent };
}

/** Stores the user's spreading rules; the next receive, payment and rebalance use them. */
export async function setUserPolicy(trx: Trx, userPubkey: string, policy: AllocationPolicy): Promise<void> {
  const values = {
    max_share_ppm: policy.maxSharePpm,
    test_amount_msat: policy.testAmountMsat,
    trusted_score: policy.trustedScore,
    min_score: policy.minScore,
    exponent: policy.exponent,
    updated_at: new Date(),
  };
  await trx
    .insertInto('allocation_policies')
    .values({ user_pubkey: userPubkey, ...values })
    .onConflict((oc) => oc.column('user_pubkey').doUpdateSet(values))
    .execute();
}
