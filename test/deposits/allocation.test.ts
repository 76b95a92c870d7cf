import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { chooseReceiveDeposit, payingDepositsInOrder, type DepositCandidate } from '../../src/deposits/allocation.ts';

// Small amounts make rooms, balances and asks collide often, so the boundaries (room == amount,
// available == need, equal scores) are hit in most runs; a few large values keep bigint honest.
const msat = fc.oneof({ weight: 4, arbitrary: fc.bigInt({ min: 0n, max: 12n }) }, { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 10n ** 15n }) });
const positiveMsat = fc.oneof({ weight: 4, arbitrary: fc.bigInt({ min: 1n, max: 12n }) }, { weight: 1, arbitrary: fc.bigInt({ min: 1n, max: 10n ** 15n }) });
const score = fc.oneof(fc.constantFrom(0, 0.25, 0.5, 1), fc.double({ min: 0, max: 1, noNaN: true }));

const candidates: fc.Arbitrary<DepositCandidate[]> = fc
  .uniqueArray(
    fc.record({
      operatorPubkey: fc.stringMatching(/^[0-9a-f]{4}$/),
      score,
      healthy: fc.boolean(),
      availableMsat: msat,
      reservedMsat: msat,
      roomMsat: fc.option(msat, { nil: null, freq: 4 }),
    }),
    { selector: (c) => c.operatorPubkey, maxLength: 8 },
  )
  .map((rows) =>
    rows.map((r, i) => ({
      depositId: BigInt(i + 1),
      operatorPubkey: r.operatorPubkey,
      score: r.score,
      healthy: r.healthy,
      confirmedMsat: r.availableMsat + r.reservedMsat,
      availableMsat: r.availableMsat,
      roomMsat: r.roomMsat,
    })),
  );

/** May take new money at all: healthy and with a positive score. */
const eligible = (c: DepositCandidate) => c.healthy && c.score > 0;
const hasRoom = (c: DepositCandidate, amount: bigint) => c.roomMsat === null || c.roomMsat >= amount;
const maxScore = (cs: readonly DepositCandidate[]) => Math.max(...cs.map((c) => c.score));

describe('chooseReceiveDeposit', () => {
  it('returns null for no candidates', () => {
    expect(chooseReceiveDeposit([], 1_000n)).toBeNull();
  });

  it('returns null when every operator is unhealthy or has a zero score', () => {
    fc.assert(
      fc.property(candidates, positiveMsat, (cs, amount) => {
        const unusable = cs.map((c, i) => (i % 2 === 0 ? { ...c, healthy: false } : { ...c, score: 0 }));
        expect(chooseReceiveDeposit(unusable, amount)).toBeNull();
      }),
    );
  });

  it('picks one of the given eligible candidates whenever one exists, never an unhealthy or zero-score one', () => {
    fc.assert(
      fc.property(candidates, positiveMsat, (cs, amount) => {
        const choice = chooseReceiveDeposit(cs, amount);
        expect(choice === null).toBe(!cs.some(eligible));
        if (choice) {
          expect(cs).toContain(choice.candidate);
          expect(choice.candidate.healthy).toBe(true);
          expect(choice.candidate.score).toBeGreaterThan(0);
        }
      }),
    );
  });

  it('never breaks a cap while an eligible operator has room, and then takes the best-scored one with room', () => {
    fc.assert(
      fc.property(candidates, positiveMsat, (cs, amount) => {
        const withRoom = cs.filter((c) => eligible(c) && hasRoom(c, amount));
        fc.pre(withRoom.length > 0);
        const choice = chooseReceiveDeposit(cs, amount);
        expect(choice?.overCap).toBe(false);
        expect(hasRoom(choice!.candidate, amount)).toBe(true);
        expect(choice!.candidate.score).toBe(maxScore(withRoom));
      }),
    );
  });

  it('flags overCap exactly when no eligible operator has room, taking the best-scored eligible one', () => {
    fc.assert(
      fc.property(candidates, positiveMsat, (cs, amount) => {
        const usable = cs.filter(eligible);
        fc.pre(usable.length > 0);
        const choice = chooseReceiveDeposit(cs, amount)!;
        expect(choice.overCap).toBe(!usable.some((c) => hasRoom(c, amount)));
        if (choice.overCap) expect(choice.candidate.score).toBe(maxScore(usable));
      }),
    );
  });

  it('breaks a score tie in favour of the lighter deposit, so equal operators fill evenly', () => {
    fc.assert(
      fc.property(candidates, positiveMsat, (cs, amount) => {
        const choice = chooseReceiveDeposit(cs, amount);
        fc.pre(choice !== null && !choice.overCap);
        const rivals = cs.filter((c) => eligible(c) && hasRoom(c, amount) && c.score === choice!.candidate.score);
        for (const r of rivals) expect(choice!.candidate.confirmedMsat <= r.confirmedMsat).toBe(true);
      }),
    );
  });

  it('does not depend on the order the candidates come in', () => {
    fc.assert(
      fc.property(
        candidates.chain((cs) => fc.tuple(fc.constant(cs), fc.shuffledSubarray(cs, { minLength: cs.length, maxLength: cs.length }))),
        positiveMsat,
        ([cs, shuffled], amount) => {
          expect(chooseReceiveDeposit(shuffled, amount)?.candidate.depositId).toBe(chooseReceiveDeposit(cs, amount)?.candidate.depositId);
        },
      ),
    );
  });

  it('takes an operator with no stated limit for any amount', () => {
    const limited: DepositCandidate = { depositId: 1n, operatorPubkey: 'a', score: 1, healthy: true, confirmedMsat: 0n, availableMsat: 0n, roomMsat: 10n };
    const unlimited: DepositCandidate = { depositId: 2n, operatorPubkey: 'b', score: 0.1, healthy: true, confirmedMsat: 10n ** 15n, availableMsat: 0n, roomMsat: null };
    expect(chooseReceiveDeposit([limited, unlimited], 11n)).toEqual({ candidate: unlimited, overCap: false });
    expect(chooseReceiveDeposit([limited, unlimited], 10n)).toEqual({ candidate: limited, overCap: false });
  });
});

describe('payingDepositsInOrder', () => {
  it('returns nothing for no candidates', () => {
    expect(payingDepositsInOrder([], 1n)).toEqual([]);
  });

  it('returns exactly the healthy deposits whose available balance covers the need', () => {
    fc.assert(
      fc.property(candidates, positiveMsat, (cs, need) => {
        const ids = (list: DepositCandidate[]) => list.map((c) => c.depositId).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        const order = payingDepositsInOrder(cs, need);
        expect(ids(order)).toEqual(ids(cs.filter((c) => c.healthy && c.availableMsat >= need)));
        for (const c of order) expect(cs).toContain(c);
      }),
    );
  });

  it('orders them fullest first, then by score', () => {
    // A small need keeps most candidates in the list, so equal balances meet often.
    fc.assert(
      fc.property(candidates, fc.bigInt({ min: 1n, max: 3n }), (cs, need) => {
        const order = payingDepositsInOrder(cs, need);
        for (let i = 1; i < order.length; i++) {
          const [prev, next] = [order[i - 1]!, order[i]!];
          expect(prev.availableMsat >= next.availableMsat).toBe(true);
          if (prev.availableMsat === next.availableMsat) expect(prev.score).toBeGreaterThanOrEqual(next.score);
        }
      }),
    );
  });

  it('prefers the better-scored of two equally full deposits', () => {
    const low: DepositCandidate = { depositId: 1n, operatorPubkey: 'a', score: 0.1, healthy: true, confirmedMsat: 5n, availableMsat: 5n, roomMsat: null };
    const high: DepositCandidate = { ...low, depositId: 2n, operatorPubkey: 'b', score: 0.9 };
    expect(payingDepositsInOrder([low, high], 5n)).toEqual([high, low]);
    expect(payingDepositsInOrder([high, low], 5n)).toEqual([high, low]);
  });

  it('does not change its input', () => {
    fc.assert(
      fc.property(candidates, positiveMsat, (cs, need) => {
        const before = cs.map((c) => c.depositId);
        payingDepositsInOrder(cs, need);
        chooseReceiveDeposit(cs, need);
        expect(cs.map((c) => c.depositId)).toEqual(before);
      }),
    );
  });
});
