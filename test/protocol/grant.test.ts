import fc from 'fast-check';
import { generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import { feeLimitFor, type Msat } from '../../src/protocol/amounts.ts';
import { checkSpendLimits, grantInForce, grantTerms, parseGrant, signGrant, type Grant, type GrantTerms } from '../../src/protocol/grant.ts';
import { KIND } from '../../src/protocol/kinds.ts';
import type { VaultErrorCode } from '../../src/protocol/result.ts';
import { readVector } from '../vectors/generate.ts';

interface PlainGrant {
  userPubkey: string;
  connectionPubkey: string;
  name: string;
  methods: string[];
  budget: { amountMsat: string; renewal: string } | null;
  maxAmountMsat: string | null;
  feeLimit: { baseMsat: string; ppm: number };
  expiresAt: number | null;
  vaultOperators: string[] | null;
  velocity: { paymentsPerHour: number | null; amountMsatPerHour: string | null } | null;
  revoked: boolean;
  createdAt: number;
}

interface GrantVectors {
  valid: { name: string; event: Event; expected: { ok: true; grant?: PlainGrant; revoked?: boolean } }[];
  invalid: { name: string; event: Event; expected: { ok: false; code: VaultErrorCode } }[];
}

/** A grant with its msat amounts as decimal strings, to compare with the vectors. */
function plain(g: Grant): PlainGrant {
  return {
    ...g,
    budget: g.budget && { amountMsat: g.budget.amountMsat.toString(), renewal: g.budget.renewal },
    maxAmountMsat: g.maxAmountMsat === null ? null : g.maxAmountMsat.toString(),
    feeLimit: { baseMsat: g.feeLimit.baseMsat.toString(), ppm: g.feeLimit.ppm },
    velocity: g.velocity && { paymentsPerHour: g.velocity.paymentsPerHour, amountMsatPerHour: g.velocity.amountMsatPerHour?.toString() ?? null },
  };
}

const vectors = readVector<GrantVectors>('grants.json');

describe('parseGrant on the grant vectors', () => {
  it.each(vectors.valid)('$name', ({ event, expected }) => {
    const parsed = parseGrant(event);
    if (!parsed.ok) throw new Error(`refused: ${parsed.error.message}`);
    if (expected.grant) expect(plain(parsed.value)).toEqual(expected.grant);
    if (expected.revoked !== undefined) expect(parsed.value.revoked).toBe(expected.revoked);
  });

  it.each(vectors.invalid)('$name', ({ event, expected }) => {
    const parsed = parseGrant(event);
    expect(parsed.ok ? 'accepted' : parsed.error.code).toBe(expected.code);
  });
});

describe('signGrant and parseGrant', () => {
  const user = generateSecretKey();
  const userPubkey = getPublicKey(user);
  const connection = getPublicKey(generateSecretKey());

  it('signs a kind 31347 event whose d and p tags name the connection', () => {
    const event = signGrant(grantTerms(connection, ['pay_invoice']), user, 1_700_000_000);
    expect(event.kind).toBe(KIND.grant);
    expect(event.kind).toBe(31347);
    expect(event.pubkey).toBe(userPubkey);
    expect(event.created_at).toBe(1_700_000_000);
    expect(event.tags).toEqual([
      ['d', connection],
      ['p', connection],
    ]);
  });

  it('writes the content documented in docs/vault-api.md, amounts as decimal strings', () => {
    const terms = grantTerms(connection, ['get_info', 'pay_invoice'], {
      name: 'Alby Go',
      budget: { amountMsat: 100_000_000n, renewal: 'monthly' },
      maxAmountMsat: 50_000_000n,
      feeLimit: { baseMsat: 10_000n, ppm: 10_000 },
    });
    const event = signGrant(terms, user, 1_700_000_000);
    expect(JSON.parse(event.content)).toEqual({
      v: 1,
      connection,
      name: 'Alby Go',
      methods: ['get_info', 'pay_invoice'],
      budget: { amount_msat: '100000000', renewal: 'monthly' },
      max_amount_msat: '50000000',
      fee_limit: { base_msat: '10000', ppm: 10000 },
      expires_at: null,
      vault_operators: null,
      revoked: false,
    });
  });

  it('defaults created_at to the current time', () => {
    const before = Math.floor(Date.now() / 1000);
    const event = signGrant(grantTerms(connection, []), user);
    const after = Math.floor(Date.now() / 1000);
    expect(event.created_at).toBeGreaterThanOrEqual(before);
    expect(event.created_at).toBeLessThanOrEqual(after);
  });

  it('grantTerms defaults to no budget, no maximum, the default fee limit, no expiry, every operator', () => {
    expect(grantTerms(connection, ['pay_invoice'])).toEqual({
      connectionPubkey: connection,
      name: '',
      methods: ['pay_invoice'],
      budget: null,
      maxAmountMsat: null,
      feeLimit: { baseMsat: 10_000n, ppm: 10_000 },
      expiresAt: null,
      vaultOperators: null,
      velocity: null,
      revoked: false,
    });
  });

  const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
  const msat = fc.bigInt({ min: 0n, max: 2_100_000_000_000_000_000n });
  const termsArb: fc.Arbitrary<GrantTerms> = fc.record({
    connectionPubkey: hex(64),
    name: fc.string({ maxLength: 40, unit: 'grapheme' }),
    methods: fc.array(fc.stringMatching(/^[a-z_]{1,64}$/), { maxLength: 8 }),
    budget: fc.option(fc.record({ amountMsat: msat, renewal: fc.constantFrom('daily', 'weekly', 'monthly', 'yearly', 'never') }), { nil: null }),
    maxAmountMsat: fc.option(msat, { nil: null }),
    feeLimit: fc.record({ baseMsat: msat, ppm: fc.integer({ min: 0, max: 1_000_000 }) }),
    expiresAt: fc.option(fc.integer({ min: 1, max: 2 ** 40 }), { nil: null }),
    vaultOperators: fc.option(fc.array(fc.stringMatching(/^0[23][0-9a-f]{64}$/), { maxLength: 4 }), { nil: null }),
    velocity: fc.option(
      fc.record({ paymentsPerHour: fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: null }), amountMsatPerHour: fc.option(msat, { nil: null }) }),
      { nil: null },
    ),
    revoked: fc.boolean(),
  });

  it('round trips any valid terms: parseGrant(signGrant(terms)) gives the terms back', () => {
    fc.assert(
      fc.property(termsArb, fc.integer({ min: 0, max: 2 ** 32 }), (terms, createdAt) => {
        const parsed = parseGrant(signGrant(terms, user, createdAt));
        if (!parsed.ok) throw new Error(parsed.error.message);
        expect(parsed.value).toEqual({ ...terms, userPubkey, createdAt });
      }),
      { numRuns: 30 },
    );
  });

  it('refuses a signed grant object whose content was changed in memory afterwards', () => {
    const event = signGrant(grantTerms(connection, ['pay_invoice'], { maxAmountMsat: 1_000n }), user);
    const content = JSON.parse(event.content);
    const raised = { ...event, content: JSON.stringify({ ...content, max_amount_msat: '1000000000' }) };
    const parsed = parseGrant(raised);
    expect(parsed.ok ? 'accepted' : parsed.error.code).toBe('UNAUTHORIZED');
  });

  it('refuses a grant re-signed by another user under the first user pubkey', () => {
    const event = signGrant(grantTerms(connection, ['pay_invoice']), generateSecretKey());
    const parsed = parseGrant({ ...JSON.parse(JSON.stringify(event)), pubkey: userPubkey });
    expect(parsed.ok ? 'accepted' : parsed.error.code).toBe('UNAUTHORIZED');
  });
});

function grant(overrides: Partial<GrantTerms> = {}): Grant {
  return { ...grantTerms('c'.repeat(64), ['pay_invoice'], overrides), userPubkey: 'a'.repeat(64), createdAt: 1_700_000_000 };
}

describe('grantInForce', () => {
  const now = 1_800_000_000;

  it.each<[string, Partial<GrantTerms>, VaultErrorCode | 'ok']>([
    ['accepts a grant without expiry', {}, 'ok'],
    ['accepts a grant expiring one second from now', { expiresAt: now + 1 }, 'ok'],
    ['refuses a grant expiring exactly now', { expiresAt: now }, 'EXPIRED'],
    ['refuses a grant that expired', { expiresAt: now - 1 }, 'EXPIRED'],
    ['refuses a revoked grant', { revoked: true }, 'UNAUTHORIZED'],
    ['refuses a revoked grant that has also expired as revoked', { revoked: true, expiresAt: now - 1 }, 'UNAUTHORIZED'],
  ])('%s', (_, overrides, expected) => {
    const result = grantInForce(grant(overrides), now);
    expect(result.ok ? 'ok' : result.error.code).toBe(expected);
  });

  it('refuses a grant dated more than a minute in the future, which would outrank a later revocation', () => {
    const dated = (createdAt: number) => ({ ...grant(), createdAt });
    expect(grantInForce(dated(now + 60), now).ok).toBe(true);
    const ahead = grantInForce(dated(now + 61), now);
    expect(ahead.ok ? 'ok' : ahead.error.code).toBe('BAD_REQUEST');
  });
});

describe('checkSpendLimits', () => {
  // At most 50 000 msat a payment, max(10 000 msat, 1 %) in fees, 100 000 msat a window.
  const limited = grant({ maxAmountMsat: 50_000n, feeLimit: { baseMsat: 10_000n, ppm: 10_000 }, budget: { amountMsat: 100_000n, renewal: 'daily' } });
  const unlimited = grant({ maxAmountMsat: null, budget: null, feeLimit: { baseMsat: 10_000n, ppm: 10_000 } });

  it.each<[string, Grant, Msat, Msat, Msat, VaultErrorCode | 'ok']>([
    ['refuses a zero amount', limited, 0n, 0n, 0n, 'BAD_REQUEST'],
    ['refuses a negative amount', limited, -1n, 0n, 0n, 'BAD_REQUEST'],
    ['accepts one msat', limited, 1n, 0n, 0n, 'ok'],
    ['accepts exactly the per-payment maximum', limited, 50_000n, 0n, 0n, 'ok'],
    ['refuses one msat above the per-payment maximum', limited, 50_001n, 0n, 0n, 'QUOTA_EXCEEDED'],
    ['accepts a fee limit equal to the grant fee limit', limited, 50_000n, 10_000n, 0n, 'ok'],
    ['refuses a fee limit one msat above the grant fee limit', limited, 50_000n, 10_001n, 0n, 'FEE_LIMIT'],
    ['accepts a budget used to the last msat (used + amount + fee = budget)', limited, 40_000n, 10_000n, 50_000n, 'ok'],
    ['refuses one msat over the budget', limited, 40_001n, 10_000n, 50_000n, 'QUOTA_EXCEEDED'],
    ['counts the fee limit against the budget', limited, 40_000n, 10_000n, 50_001n, 'QUOTA_EXCEEDED'],
    ['refuses any payment once the budget is used up', limited, 1n, 0n, 100_000n, 'QUOTA_EXCEEDED'],
    ['checks the per-payment maximum before the fee limit', limited, 50_001n, 1_000_000n, 0n, 'QUOTA_EXCEEDED'],
    ['checks the fee limit before the budget', limited, 50_000n, 10_001n, 100_000n, 'FEE_LIMIT'],
    ['accepts a large payment without maximum or budget', unlimited, 10n ** 15n, 10n ** 13n, 10n ** 18n, 'ok'],
    ['applies the fee limit without maximum or budget', unlimited, 10n ** 15n, 10n ** 13n + 1n, 0n, 'FEE_LIMIT'],
    ['refuses a negative fee limit, which would shrink the budget sum', limited, 40_000n, -1n, 60_000n, 'BAD_REQUEST'],
  ])('%s', (_, g, amount, maxFee, used, expected) => {
    const result = checkSpendLimits(g, amount, maxFee, { usedMsat: used, lastHour: { payments: 0, amountMsat: 0n } });
    expect(result.ok ? 'ok' : result.error.code).toBe(expected);
  });

  it('accepts exactly when the amount is positive, within the maximum, the fee within the limit and the window within budget', () => {
    const amount = fc.bigInt({ min: -10n, max: 200_000n });
    fc.assert(
      fc.property(
        fc.option(fc.bigInt({ min: 0n, max: 150_000n }), { nil: null }),
        fc.option(fc.bigInt({ min: 0n, max: 300_000n }), { nil: null }),
        fc.bigInt({ min: 0n, max: 20_000n }),
        fc.integer({ min: 0, max: 1_000_000 }),
        amount,
        fc.bigInt({ min: 0n, max: 100_000n }),
        fc.bigInt({ min: 0n, max: 300_000n }),
        (max, budget, base, ppm, amountMsat, maxFee, used) => {
          const g = grant({ maxAmountMsat: max, budget: budget === null ? null : { amountMsat: budget, renewal: 'weekly' }, feeLimit: { baseMsat: base, ppm } });
          const allowed =
            amountMsat > 0n &&
            maxFee >= 0n &&
            (max === null || amountMsat <= max) &&
            maxFee <= feeLimitFor(amountMsat, g.feeLimit) &&
            (budget === null || used + amountMsat + maxFee <= budget);
          expect(checkSpendLimits(g, amountMsat, maxFee, { usedMsat: used, lastHour: { payments: 0, amountMsat: 0n } }).ok).toBe(allowed);
        },
      ),
    );
  });
});

describe('velocity limits', () => {
  const g = (paymentsPerHour: number | null, amountMsatPerHour: bigint | null) => grant({ velocity: { paymentsPerHour, amountMsatPerHour } });
  const check = (grantWithVelocity: Grant, payments: number, hourAmount: bigint, amount: bigint) => {
    const result = checkSpendLimits(grantWithVelocity, amount, 0n, { usedMsat: 0n, lastHour: { payments, amountMsat: hourAmount } });
    return result.ok ? 'ok' : `${result.error.code}: ${result.error.message}`;
  };

  it('allows the n-th payment of the hour and refuses the next', () => {
    expect(check(g(3, null), 2, 0n, 1n)).toBe('ok');
    expect(check(g(3, null), 3, 0n, 1n)).toMatch(/^QUOTA_EXCEEDED: velocity/);
  });

  it('allows an hour amount up to the limit and refuses one msat more', () => {
    expect(check(g(null, 1_000n), 5, 600n, 400n)).toBe('ok');
    expect(check(g(null, 1_000n), 5, 600n, 401n)).toMatch(/^QUOTA_EXCEEDED: velocity/);
  });

  it('limits nothing without a velocity', () => {
    expect(check(grant(), 1_000_000, 10n ** 18n, 1n)).toBe('ok');
  });
});
