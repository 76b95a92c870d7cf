import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { DepositCandidate } from '../../src/deposits/allocation.ts';
import { receivableRange } from '../../src/lnurl/pay.ts';
import { checkAddressName } from '../../src/lnurl/names.ts';

const candidate = (operatorPubkey: string, fields: Partial<DepositCandidate> = {}): DepositCandidate => ({
  depositId: BigInt(operatorPubkey.charCodeAt(0)),
  operatorPubkey,
  score: 0.5,
  healthy: true,
  confirmedMsat: 0n,
  availableMsat: 0n,
  roomMsat: null,
  ...fields,
});

const LIMITS = { minMsat: 1_000n, maxMsat: 100_000_000n };
const limitsOf = (op: string) => (op === 'unknown' ? undefined : LIMITS);

describe('what one LNURL invoice can carry', () => {
  it("is bounded by the operators' invoice limits when deposits have room", () => {
    expect(receivableRange([candidate('a'), candidate('b', { roomMsat: 500_000_000n })], limitsOf)).toEqual({ minMsat: 1_000n, maxMsat: 100_000_000n });
  });

  it('is the room of the roomiest deposit when that is below the invoice limit', () => {
    expect(receivableRange([candidate('a', { roomMsat: 30_000n }), candidate('b', { roomMsat: 70_000n })], limitsOf)).toEqual({ minMsat: 1_000n, maxMsat: 70_000n });
  });

  it('leaves out unhealthy, zero-score and unknown operators, and deposits with less room than the minimum', () => {
    const range = receivableRange(
      [
        candidate('a', { healthy: false }),
        candidate('b', { score: 0 }),
        candidate('unknown'),
        candidate('c', { roomMsat: 999n }),
        candidate('d', { roomMsat: 5_000n }),
      ],
      limitsOf,
    );
    expect(range).toEqual({ minMsat: 1_000n, maxMsat: 5_000n });
  });

  it('is null when no deposit can take anything', () => {
    expect(receivableRange([], limitsOf)).toBeNull();
    expect(receivableRange([candidate('a', { healthy: false }), candidate('b', { roomMsat: 0n })], limitsOf)).toBeNull();
  });

  it('never goes below 1 msat nor above a safe JSON number', () => {
    expect(receivableRange([candidate('a')], () => ({ minMsat: 0n, maxMsat: 10n ** 20n }))).toEqual({ minMsat: 1n, maxMsat: BigInt(Number.MAX_SAFE_INTEGER) });
  });

  it('always has min <= max, and max within some deposit room and limit (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ healthy: fc.boolean(), score: fc.double({ min: 0, max: 1, noNaN: true }), room: fc.option(fc.bigInt({ min: 0n, max: 10n ** 12n })) }), { maxLength: 6 }),
        (specs) => {
          const candidates = specs.map((s, i) => candidate(String.fromCharCode(97 + i), { healthy: s.healthy, score: s.score, roomMsat: s.room }));
          const range = receivableRange(candidates, limitsOf);
          if (range === null) return;
          expect(range.minMsat <= range.maxMsat).toBe(true);
          expect(range.maxMsat <= LIMITS.maxMsat).toBe(true);
          expect(candidates.some((c) => c.healthy && c.score > 0 && (c.roomMsat === null || c.roomMsat >= range.maxMsat))).toBe(true);
        },
      ),
    );
  });
});

describe('lightning address names', () => {
  it.each(['a', 'alice', 'bob.smith', 'x_y-z', '0', 'a'.repeat(64)])('takes %j', (name) => {
    expect(checkAddressName(name)).toEqual({ ok: true, value: name });
  });
});
