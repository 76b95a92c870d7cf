import { z } from 'zod';

export const budgetRenewalSchema = z.enum(['daily', 'weekly', 'monthly', 'yearly', 'never']);
export type BudgetRenewal = z.infer<typeof budgetRenewalSchema>;

/**
 * Budget windows are calendar periods in UTC: a day starts at 00:00 UTC, a week on Monday
 * 00:00 UTC, a month on its first day, a year on 1 January. Bridge and vaults compute them
 * with this one function, so both count the same payments.
 *
 * Returns the window containing `nowSec` as [start, end) in unix seconds; `never` is one
 * window from 0 to infinity (end = null).
 */
export function budgetWindow(renewal: BudgetRenewal, nowSec: number): { start: number; end: number | null } {
  const now = new Date(nowSec * 1000);
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  const d = now.getUTCDate();
  const sec = (ms: number) => Math.floor(ms / 1000);
  switch (renewal) {
    case 'never':
      return { start: 0, end: null };
    case 'daily':
      return { start: sec(Date.UTC(y, m, d)), end: sec(Date.UTC(y, m, d + 1)) };
    case 'weekly': {
      const sinceMonday = (now.getUTCDay() + 6) % 7;
      return { start: sec(Date.UTC(y, m, d - sinceMonday)), end: sec(Date.UTC(y, m, d - sinceMonday + 7)) };
    }
    case 'monthly':
      return { start: sec(Date.UTC(y, m, 1)), end: sec(Date.UTC(y, m + 1, 1)) };
    case 'yearly':
      return { start: sec(Date.UTC(y, 0, 1)), end: sec(Date.UTC(y + 1, 0, 1)) };
  }
}
