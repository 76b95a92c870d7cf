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

/** The user's rules for spreading money (docs/allocation.md), with the defaults below. */
export interface AllocationPolicy {
  /** The largest share of the user's money one operator holds while others have room, in ppm. */
  maxSharePpm: number;
  /** What an operator below `trustedScore` may hold: a test amount. */
  testAmountMsat: Msat;
  /** From this score up, an operator is trusted beyond a test amount. */
  trustedScore: number;
  /** Below this score an operator is given nothing new (and is drained by the rebalancer). */
  minScore: number;
  /** Targets are proportional to score^exponent. */
  exponent: number;
}

export const DEFAULT_POLICY: AllocationPolicy = {
  maxSharePpm: 400_000,
  testAmountMsat: 10_000_000n,
  trustedScore: 0.3,
  minScore: 0.05,
  exponent: 2,
};

/** Operators that may be given money: healthy, and not below the score floor. */
function eligible(c: DepositCandidate, policy: AllocationPolicy): boolean {
  return c.healthy && c.score >= policy.minScore;
}

/** The smaller of two caps, null meaning none. */
function lower(a: Msat | null, b: Msat | null): Msat | null {
  if (a === null) return b;
  if (b === null) return a;
  return a < b ? a : b;
}

/** The operator's own limit on what it holds for the user, or null for none stated. */
function limitOf(c: DepositCandidate): Msat | null {
  return c.roomMsat === null ? null : c.confirmedMsat + c.roomMsat;
}

/**
 * The least ceiling x (at least `floor`) for which the operators, each held at
 * min(x, its other cap), can hold `totalMsat`; null when no ceiling is low enough to matter.
 * Raising a cap only as far as needed keeps targets continuous in the total.
 */
function leastCeiling(others: readonly (Msat | null)[], totalMsat: Msat, floor: Msat): Msat | null {
  const capacityAt = (x: Msat) => others.reduce<Msat>((sum, cap) => sum + (cap === null || cap > x ? x : cap), 0n);
  if (capacityAt(floor) >= totalMsat) return floor;
  if (capacityAt(totalMsat) < totalMsat) return null;
  let low = floor;
  let high = totalMsat;
  while (high - low > 1n) {
    const mid = (low + high) / 2n;
    if (capacityAt(mid) >= totalMsat) high = mid;
    else low = mid;
  }
  return high;
}

/**
 * The most each operator should hold of `totalMsat`: its own limit, a test amount below
 * `trustedScore`, and the share cap. While the operators cannot hold the total within these,
 * the share cap is raised just far enough, and failing that the test amount is.
 */
function capsFor(pool: readonly DepositCandidate[], totalMsat: Msat, policy: AllocationPolicy): { caps: Map<bigint, Msat | null>; relaxed: CapRelaxation } {
  const tierOf = (c: DepositCandidate, testAmount: Msat | null) => lower(limitOf(c), c.score < policy.trustedScore ? testAmount : null);
  const tiered = pool.map((c) => tierOf(c, policy.testAmountMsat));
  const shareCap = (totalMsat * BigInt(policy.maxSharePpm)) / 1_000_000n;
  const share = leastCeiling(tiered, totalMsat, shareCap);
  if (share !== null) {
    const caps = new Map(pool.map((c, i) => [c.depositId, lower(tiered[i]!, share)]));
    return { caps, relaxed: share === shareCap ? 'none' : 'share-cap' };
  }
  const testAmount = leastCeiling(
    pool.map((c) => (c.score < policy.trustedScore ? limitOf(c) : (limitOf(c) ?? totalMsat))),
    totalMsat,
    policy.testAmountMsat,
  );
  return { caps: new Map(pool.map((c) => [c.depositId, tierOf(c, testAmount)])), relaxed: 'score-tiers' };
}

/** score^exponent as an integer weight, so the split of money stays in integer arithmetic. */
function weightOf(score: number, exponent: number): bigint {
  return BigInt(Math.round(Math.max(score, 0) ** exponent * 1e9));
}

/** How far the caps had to be relaxed for the operators to hold the user's money. */
export type CapRelaxation = 'none' | 'share-cap' | 'score-tiers';

/** Target balances and the caps they were computed under (0 for an ineligible operator; null: none). */
export interface Allocation {
  targets: Map<bigint, Msat>;
  caps: Map<bigint, Msat | null>;
  relaxed: CapRelaxation;
}

/**
 * Target balances for `totalMsat` of the user's money: proportional to score^k among the
 * eligible operators, by water-filling (an operator whose share would pass its cap is held at
 * the cap and the rest is spread again over the others). Ineligible operators get 0. The
 * targets sum to the total whenever the operators can hold it: caps are relaxed (share cap
 * first, then score tiers) rather than leave money without a target.
 */
export function allocate(candidates: readonly DepositCandidate[], totalMsat: Msat, policy: AllocationPolicy = DEFAULT_POLICY): Allocation {
  const pool = candidates.filter((c) => eligible(c, policy) && weightOf(c.score, policy.exponent) > 0n);
  const { caps, relaxed } = capsFor(pool, totalMsat, policy);
  const targets = new Map<bigint, Msat>(candidates.map((c) => [c.depositId, 0n]));
  let active = [...pool];
  let remaining = totalMsat;
  while (active.length > 0) {
    const weights = active.reduce((sum, c) => sum + weightOf(c.score, policy.exponent), 0n);
    const shareOf = (c: DepositCandidate) => (remaining * weightOf(c.score, policy.exponent)) / weights;
    const over = active.filter((c) => {
      const cap = caps.get(c.depositId) ?? null;
      return cap !== null && shareOf(c) > cap;
    });
    if (over.length === 0) {
      let leftover = remaining;
      for (const c of active) {
        targets.set(c.depositId, shareOf(c));
        leftover -= shareOf(c);
      }
      // The rounding remainder (less than one msat each) goes to the heaviest with room, as much
      // as each can take: those rounded down onto their caps may leave it all to a lighter one.
      for (const c of [...active].sort(heaviestFirst(policy))) {
        if (leftover === 0n) break;
        const cap = caps.get(c.depositId) ?? null;
        const target = targets.get(c.depositId)!;
        const room = cap === null ? leftover : cap - target;
        const given = room < leftover ? room : leftover;
        if (given <= 0n) continue;
        targets.set(c.depositId, target + given);
        leftover -= given;
      }
      break;
    }
    for (const c of over) {
      const cap = caps.get(c.depositId) ?? 0n;
      targets.set(c.depositId, cap);
      remaining -= cap;
    }
    active = active.filter((c) => !over.includes(c));
  }
  const allCaps = new Map<bigint, Msat | null>(candidates.map((c) => [c.depositId, caps.has(c.depositId) ? (caps.get(c.depositId) ?? null) : 0n]));
  return { targets, caps: allCaps, relaxed };
}

function heaviestFirst(policy: AllocationPolicy) {
  return (a: DepositCandidate, b: DepositCandidate): number => {
    const wa = weightOf(a.score, policy.exponent);
    const wb = weightOf(b.score, policy.exponent);
    if (wa !== wb) return wa > wb ? -1 : 1;
    return a.depositId < b.depositId ? -1 : a.depositId > b.depositId ? 1 : 0;
  };
}

export interface ReceiveChoice {
  candidate: DepositCandidate;
  /** True when no operator could take the amount within its cap, so one took it beyond. */
  overCap: boolean;
}

function totalOf(candidates: readonly DepositCandidate[]): Msat {
  return candidates.reduce((sum, c) => sum + c.confirmedMsat, 0n);
}

function byScoreThenLighter(a: DepositCandidate, b: DepositCandidate): number {
  if (a.score !== b.score) return b.score - a.score;
  if (a.confirmedMsat !== b.confirmedMsat) return a.confirmedMsat < b.confirmedMsat ? -1 : 1;
  return a.operatorPubkey < b.operatorPubkey ? -1 : 1;
}

/**
 * Where to receive `amount`: among eligible operators the amount fits (within the cap the
 * allocation uses and the operator's own limit), the one furthest below its target once the
 * amount is counted in. When none fits, the eligible operator with room for it furthest below
 * its target (`overCap`), and failing that the best-scored healthy one. Null when no operator is healthy.
 */
export function chooseReceiveDeposit(candidates: readonly DepositCandidate[], amount: Msat, policy: AllocationPolicy = DEFAULT_POLICY): ReceiveChoice | null {
  const { targets, caps } = allocate(candidates, totalOf(candidates) + amount, policy);
  const fits = candidates.filter((c) => {
    if (!eligible(c, policy)) return false;
    if (c.roomMsat !== null && c.roomMsat < amount) return false;
    const cap = caps.get(c.depositId) ?? null;
    return cap === null || c.confirmedMsat + amount <= cap;
  });
  const deficit = (c: DepositCandidate) => (targets.get(c.depositId) ?? 0n) - c.confirmedMsat;
  const furthestBelowTarget = (a: DepositCandidate, b: DepositCandidate) => {
    const da = deficit(a);
    const db = deficit(b);
    return da !== db ? (da > db ? -1 : 1) : byScoreThenLighter(a, b);
  };
  const best = fits.sort(furthestBelowTarget)[0];
  if (best) return { candidate: best, overCap: false };
  // Beyond the caps, still the one furthest below its target: it passes its cap by the least.
  const fallback =
    candidates.filter((c) => eligible(c, policy) && (c.roomMsat === null || c.roomMsat >= amount)).sort(furthestBelowTarget)[0] ??
    candidates.filter((c) => c.healthy && c.score > 0).sort(byScoreThenLighter)[0];
  return fallback ? { candidate: fallback, overCap: true } : null;
}

/**
 * Which deposits may pay `need` (amount + fee limit), best first: healthy ones whose available
 * balance covers it, the one furthest above its target first (so paying brings the spread back
 * towards the targets), then the fuller, then the better scored.
 */
export function payingDepositsInOrder(candidates: readonly DepositCandidate[], need: Msat, policy: AllocationPolicy = DEFAULT_POLICY): DepositCandidate[] {
  const { targets } = allocate(candidates, totalOf(candidates), policy);
  const excess = (c: DepositCandidate) => c.confirmedMsat - (targets.get(c.depositId) ?? 0n);
  return candidates
    .filter((c) => c.healthy && c.availableMsat >= need)
    .sort((a, b) => {
      const ea = excess(a);
      const eb = excess(b);
      if (ea !== eb) return ea > eb ? -1 : 1;
      if (a.availableMsat !== b.availableMsat) return a.availableMsat > b.availableMsat ? -1 : 1;
      return byScoreThenLighter(a, b);
    });
}
