import type { Msat } from '../protocol/amounts.ts';

/** A user's deposit at one operator, as the allocation rules see it. */
export interface DepositCandidate {
  depositId: bigint;
  operatorPubkey: string;
  /** Operator reputation in [0, 1]. */
  score: number;
  healthy: boolean;
  confirmedMsat: Msat;
  availableMsat: Msat;
  /** How much more the operator accepts into this deposit, or null for no stated limit. */
  roomMsat: Msat | null;
}

export interface ReceiveChoice {
  candidate: DepositCandidate;
  /** True when no healthy operator had room and the best-scored one was taken anyway. */
  overCap: boolean;
}

function byScoreThenLighter(a: DepositCandidate, b: DepositCandidate): number {
  if (a.score !== b.score) return b.score - a.score;
  if (a.confirmedMsat !== b.confirmedMsat) return a.confirmedMsat < b.confirmedMsat ? -1 : 1;
  return a.operatorPubkey < b.operatorPubkey ? -1 : 1;
}

/**
 * Where to receive `amount`: the highest-scored healthy operator with room for it (ties go to
 * the lighter deposit, which spreads equal operators). When none has room, the highest-scored
 * healthy one, flagged `overCap`. Null when no operator is healthy.
 */
export function chooseReceiveDeposit(candidates: readonly DepositCandidate[], amount: Msat): ReceiveChoice | null {
  const healthy = candidates.filter((c) => c.healthy && c.score > 0).sort(byScoreThenLighter);
  const withRoom = healthy.find((c) => c.roomMsat === null || c.roomMsat >= amount);
  if (withRoom) return { candidate: withRoom, overCap: false };
  const best = healthy[0];
  return best ? { candidate: best, overCap: true } : null;
}

/**
 * Which deposits may pay `need` (amount + fee limit), best first: healthy ones whose available
 * balance covers it, the fullest first (the one furthest above an even share), then by score.
 */
export function payingDepositsInOrder(candidates: readonly DepositCandidate[], need: Msat): DepositCandidate[] {
  return candidates
    .filter((c) => c.healthy && c.availableMsat >= need)
    .sort((a, b) => (a.availableMsat !== b.availableMsat ? (a.availableMsat > b.availableMsat ? -1 : 1) : byScoreThenLighter(a, b)));
}
