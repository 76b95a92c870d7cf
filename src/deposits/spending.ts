import { sql, type QueryCreator } from 'kysely';
import type { Database } from '../db/schema.ts';
import { budgetWindow } from '../protocol/budget.ts';
import { budgetWindowStart, VELOCITY_WINDOW_SECONDS, type SpendUsage } from '../protocol/grant.ts';
import type { Connection } from './connections.ts';
import type { Trx } from './journal.ts';

/**
 * What a connection has committed, as the grant's limits count it: in the current budget
 * window, settled payments with their fee and pending ones with their fee reserve; in the last
 * hour, the number and amounts of settled and pending payments. One row; `spendUsageFrom` reads
 * it. With `only: 'limited'` (admission) just what the grant limits is summed, zeros otherwise,
 * so a connection without a budget or velocity limit reads no history at all; without a budget
 * the budget use is zero either way.
 */
export function spendUsageQuery(db: QueryCreator<Database>, connection: Connection, nowSec: number, only: 'limited' | 'all' = 'all') {
  const { budget, velocity } = connection.grant;
  const windowStart = budget ? budgetWindowStart(connection.grant, nowSec) : null;
  const hourStart = velocity || only === 'all' ? nowSec - VELOCITY_WINDOW_SECONDS : null;
  const from = Math.min(windowStart ?? Infinity, hourStart ?? Infinity);
  // Aggregates over nothing (no limit to count against) still give their one row of zeros.
  const since = (start: number | null) => (start === null ? sql<boolean>`false` : sql<boolean>`created_at >= ${BigInt(start)}`);
  return db
    .selectFrom('transactions')
    .select([
      sql<bigint>`coalesce(sum(amount_msat + case when state = 'settled' then fee_msat else fee_reserve_msat end) filter (where ${since(windowStart)}), 0)::bigint`.as('used'),
      sql<bigint>`count(*) filter (where ${since(hourStart)})`.as('hour_payments'),
      sql<bigint>`coalesce(sum(amount_msat) filter (where ${since(hourStart)}), 0)::bigint`.as('hour_amount'),
    ])
    .where('connection_pubkey', '=', connection.pubkey)
    // Literals, not parameters: a prepared statement's generic plan then uses the partial index of outgoing payments.
    .where('type', '=', sql.lit('outgoing'))
    .where('state', 'in', [sql.lit('pending' as const), sql.lit('settled' as const)])
    .where(Number.isFinite(from) ? since(from) : sql<boolean>`false`);
}

export function spendUsageFrom(row: { used: bigint; hour_payments: bigint; hour_amount: bigint }): SpendUsage {
  return { usedMsat: row.used, lastHour: { payments: Number(row.hour_payments), amountMsat: row.hour_amount } };
}

export async function spendUsage(trx: Trx, connection: Connection, nowSec: number): Promise<SpendUsage> {
  return spendUsageFrom(await spendUsageQuery(trx, connection, nowSec).executeTakeFirstOrThrow());
}

export interface BudgetStatus {
  usedMsat: bigint;
  totalMsat: bigint;
  renewal: string;
  /** Unix seconds when the window ends, or null when the budget never renews. */
  renewsAt: number | null;
}

/** The connection's budget now (get_budget), or null when its grant sets none. */
export async function budgetStatus(trx: Trx, connection: Connection, nowSec: number): Promise<BudgetStatus | null> {
  const budget = connection.grant.budget;
  if (!budget) return null;
  const usage = await spendUsage(trx, connection, nowSec);
  return { usedMsat: usage.usedMsat, totalMsat: budget.amountMsat, renewal: budget.renewal, renewsAt: budgetWindow(budget.renewal, nowSec).end };
}
