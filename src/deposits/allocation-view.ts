import type { Msat } from '../protocol/amounts.ts';
import { allocate, type AllocationPolicy, type CapRelaxation } from './allocation.ts';
import type { WalletContext } from './context.ts';
import { depositCandidates } from './deposit-candidates.ts';
import { userPolicy } from './policy.ts';

/** Why an operator may hold what it holds, in the words the account page uses. */
export type OperatorTier = 'trusted' | 'test-amount' | 'below-floor' | 'unavailable';

export interface OperatorAllocation {
  name: string;
  nodePubkey: string;
  score: number;
  scoreReasons: string[];
  available: boolean;
  tier: OperatorTier;
  balanceMsat: Msat;
  targetMsat: Msat;
  /** The most the operator should hold under the policy, null for no cap. */
  capMsat: Msat | null;
  actualSharePpm: number;
  targetSharePpm: number;
}

export interface AllocationView {
  totalMsat: Msat;
  policy: AllocationPolicy;
  relaxed: CapRelaxation;
  operators: OperatorAllocation[];
}

const sharePpm = (part: Msat, total: Msat): number => (total === 0n ? 0 : Number((part * 1_000_000n) / total));

/** The user's deposits against their targets: what the spreading rules want and why. */
export async function explainAllocation(ctx: WalletContext, userPubkey: string): Promise<AllocationView> {
  const [candidates, policy] = await Promise.all([depositCandidates(ctx, ctx.db, userPubkey), userPolicy(ctx.db, userPubkey)]);
  const totalMsat = candidates.reduce((sum, c) => sum + c.confirmedMsat, 0n);
  const { targets, caps, relaxed } = allocate(candidates, totalMsat, policy);
  const operators = candidates.map((c): OperatorAllocation => {
    const op = ctx.operators.get(c.operatorPubkey);
    const tier: OperatorTier = !c.healthy ? 'unavailable' : c.score < policy.minScore ? 'below-floor' : c.score < policy.trustedScore ? 'test-amount' : 'trusted';
    const targetMsat = targets.get(c.depositId) ?? 0n;
    return {
      name: op?.name ?? c.operatorPubkey.slice(0, 12),
      nodePubkey: c.operatorPubkey,
      score: c.score,
      scoreReasons: op?.scoreReasons ?? ['operator not connected to this bridge'],
      available: c.healthy,
      tier,
      balanceMsat: c.confirmedMsat,
      targetMsat,
      capMsat: caps.get(c.depositId) ?? null,
      actualSharePpm: sharePpm(c.confirmedMsat, totalMsat),
      targetSharePpm: sharePpm(targetMsat, totalMsat),
    };
  });
  return { totalMsat, policy, relaxed, operators };
}
