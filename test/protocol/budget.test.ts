import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { budgetWindow, type BudgetRenewal } from '../../src/protocol/budget.ts';
import { budgetWindowStart, grantTerms, type Grant } from '../../src/protocol/grant.ts';

/** Unix seconds of an ISO date-time (UTC). */
const t = (iso: string): number => Date.parse(iso) / 1000;

describe('budgetWindow', () => {
  it.each<[BudgetRenewal, string, string, string]>([
    // daily: 00:00 UTC to 00:00 UTC
    ['daily', '2026-03-15T13:45:10Z', '2026-03-15T00:00:00Z', '2026-03-16T00:00:00Z'],
    ['daily', '2026-03-15T00:00:00Z', '2026-03-15T00:00:00Z', '2026-03-16T00:00:00Z'],
    ['daily', '2026-03-15T23:59:59Z', '2026-03-15T00:00:00Z', '2026-03-16T00:00:00Z'],
    ['daily', '2026-01-31T12:00:00Z', '2026-01-31T00:00:00Z', '2026-02-01T00:00:00Z'],
    ['daily', '2028-02-28T12:00:00Z', '2028-02-28T00:00:00Z', '2028-02-29T00:00:00Z'],
    ['daily', '2028-02-29T12:00:00Z', '2028-02-29T00:00:00Z', '2028-03-01T00:00:00Z'],
    ['daily', '2026-12-31T23:59:59Z', '2026-12-31T00:00:00Z', '2027-01-01T00:00:00Z'],
    ['daily', '1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z', '1970-01-02T00:00:00Z'],
    // weekly: Monday 00:00 UTC to the next Monday (2026-03-16 is a Monday)
    ['weekly', '2026-03-18T09:00:00Z', '2026-03-16T00:00:00Z', '2026-03-23T00:00:00Z'],
    ['weekly', '2026-03-16T00:00:00Z', '2026-03-16T00:00:00Z', '2026-03-23T00:00:00Z'],
    ['weekly', '2026-03-15T23:59:59Z', '2026-03-09T00:00:00Z', '2026-03-16T00:00:00Z'],
    ['weekly', '2026-03-22T23:59:59Z', '2026-03-16T00:00:00Z', '2026-03-23T00:00:00Z'],
    ['weekly', '2026-01-01T00:00:00Z', '2025-12-29T00:00:00Z', '2026-01-05T00:00:00Z'],
    ['weekly', '2026-12-03T10:00:00Z', '2026-11-30T00:00:00Z', '2026-12-07T00:00:00Z'],
    ['weekly', '2028-03-01T10:00:00Z', '2028-02-28T00:00:00Z', '2028-03-06T00:00:00Z'],
    // monthly: the 1st to the 1st
    ['monthly', '2026-03-15T13:45:10Z', '2026-03-01T00:00:00Z', '2026-04-01T00:00:00Z'],
    ['monthly', '2026-03-01T00:00:00Z', '2026-03-01T00:00:00Z', '2026-04-01T00:00:00Z'],
    ['monthly', '2026-01-31T23:59:59Z', '2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z'],
    ['monthly', '2026-02-28T23:59:59Z', '2026-02-01T00:00:00Z', '2026-03-01T00:00:00Z'],
    ['monthly', '2028-02-29T12:00:00Z', '2028-02-01T00:00:00Z', '2028-03-01T00:00:00Z'],
    ['monthly', '2026-04-30T23:59:59Z', '2026-04-01T00:00:00Z', '2026-05-01T00:00:00Z'],
    ['monthly', '2026-12-31T23:59:59Z', '2026-12-01T00:00:00Z', '2027-01-01T00:00:00Z'],
    // yearly: 1 January to 1 January
    ['yearly', '2026-07-04T12:00:00Z', '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z'],
    ['yearly', '2027-01-01T00:00:00Z', '2027-01-01T00:00:00Z', '2028-01-01T00:00:00Z'],
    ['yearly', '2026-12-31T23:59:59Z', '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z'],
    ['yearly', '2028-02-29T00:00:00Z', '2028-01-01T00:00:00Z', '2029-01-01T00:00:00Z'],
  ])('%s window at %s is [%s, %s)', (renewal, now, start, end) => {
    expect(budgetWindow(renewal, t(now))).toEqual({ start: t(start), end: t(end) });
  });

  it('a leap year window is 366 days, a common year 365', () => {
    const leap = budgetWindow('yearly', t('2028-06-01T00:00:00Z'));
    const common = budgetWindow('yearly', t('2027-06-01T00:00:00Z'));
    expect(leap.end! - leap.start).toBe(366 * 86_400);
    expect(common.end! - common.start).toBe(365 * 86_400);
  });

  it('never renewing is one window from 0 with no end', () => {
    expect(budgetWindow('never', 0)).toEqual({ start: 0, end: null });
    expect(budgetWindow('never', t('2026-03-15T13:45:10Z'))).toEqual({ start: 0, end: null });
  });

  const renewals = fc.constantFrom<Exclude<BudgetRenewal, 'never'>>('daily', 'weekly', 'monthly', 'yearly');
  // 1970 to 2100, whole seconds.
  const nowArb = fc.integer({ min: 0, max: 4_102_444_800 });

  it('contains now: start <= now < end', () => {
    fc.assert(
      fc.property(renewals, nowArb, (renewal, now) => {
        const { start, end } = budgetWindow(renewal, now);
        expect(end).not.toBeNull();
        expect(start <= now && now < end!).toBe(true);
      }),
    );
  });

  it('windows are contiguous: the window at end starts at end, the one before start ends at start', () => {
    fc.assert(
      fc.property(renewals, nowArb, (renewal, now) => {
        const { start, end } = budgetWindow(renewal, now);
        expect(budgetWindow(renewal, end!).start).toBe(end);
        expect(budgetWindow(renewal, start - 1).end).toBe(start);
      }),
    );
  });

  it('every second of a window gives the same window', () => {
    fc.assert(
      fc.property(renewals, nowArb, fc.double({ min: 0, max: 1, noNaN: true }), (renewal, now, fraction) => {
        const window = budgetWindow(renewal, now);
        const other = window.start + Math.floor((window.end! - 1 - window.start) * fraction);
        expect(budgetWindow(renewal, other)).toEqual(window);
      }),
    );
  });

  it('windows start at midnight UTC on the calendar boundary of their period', () => {
    fc.assert(
      fc.property(renewals, nowArb, (renewal, now) => {
        const { start, end } = budgetWindow(renewal, now);
        const s = new Date(start * 1000);
        expect(start % 86_400 === 0).toBe(true);
        if (renewal === 'daily') expect(end! - start).toBe(86_400);
        if (renewal === 'weekly') {
          expect(s.getUTCDay()).toBe(1);
          expect(end! - start).toBe(7 * 86_400);
        }
        if (renewal === 'monthly') expect(s.getUTCDate()).toBe(1);
        if (renewal === 'yearly') expect([s.getUTCMonth(), s.getUTCDate()]).toEqual([0, 1]);
      }),
    );
  });
});

describe('budgetWindowStart', () => {
  const grant = (budget: Grant['budget']): Grant => ({ ...grantTerms('c'.repeat(64), ['pay_invoice'], { budget }), userPubkey: 'u'.repeat(64), createdAt: 0 });
  const now = t('2026-03-18T09:00:00Z');

  it('is 0 for a grant without a budget', () => {
    expect(budgetWindowStart(grant(null), now)).toBe(0);
  });

  it('is 0 for a budget that never renews', () => {
    expect(budgetWindowStart(grant({ amountMsat: 1_000n, renewal: 'never' }), now)).toBe(0);
  });

  it('is the start of the current calendar window of the budget', () => {
    expect(budgetWindowStart(grant({ amountMsat: 1_000n, renewal: 'weekly' }), now)).toBe(t('2026-03-16T00:00:00Z'));
    expect(budgetWindowStart(grant({ amountMsat: 1_000n, renewal: 'monthly' }), now)).toBe(t('2026-03-01T00:00:00Z'));
  });
});
