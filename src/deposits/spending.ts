import { sql, type QueryCreator } from 'kysely';
import type { Database } from '../db/schema.ts';
import { budgetWindow } from '../protocol/budget.ts';
import { budgetWindowStart, VELOCITY_WINDOW_SECONDS, type SpendUsage } from '../protocol/grant.ts';
import type { Connection } from './connections.ts';
import type { Trx } from './journal.ts';

/** Where the spending a connection is held to starts: its budget window, and the last hour (null: not counted). */
export interface UsageWindows {
  windowStart: bigint | null;
  hourStart: bigint | null;
}

/**
 * The windows of a connection's spending at `nowSec`. With `only: 'limited'` (admission), just
 * the ones its grant limits, so a connection without a budget or velocity limit reads no
 * history at all; without a budget, the budget use is not counted either way.
 */
export function usageWindows(connection: Connection, nowSec: number, only: 'limited' | 'all' = 'all'): UsageWindows {
  const { budget, velocity } = connection.grant;
  return {
    windowStart: budget ? BigInt(budgetWindowStart(connection.grant, nowSec)) : null,
    hourStart: velocity || only === 'all' ? BigInt(nowSec - VELOCITY_WINDOW_SECONDS) : null,
  };
}

/**
 * What a connection has committed, as the grant's limits count it: in the budget window,
 * settled payments with their fee and pending ones with their fee reserve; in the last hour,
 * the number and amounts of settled and pending payments; zeros for a window not counted. One
 * row; `spendUsageFrom` reads it. The statement is the same whatever the windows.
 */
export function spendUsageQuery(db: QueryCreator<Database>, connectionPubkey: string, windows: UsageWindows) {
  const { windowStart, hourStart } = windows;
  return db
    .selectFrom('transactions')
    .select([
      sql<bigint>`coalesce(sum(amount_msat + case when state = 'settled' then fee_msat else fee_reserve_msat end) filter (where created_at >= ${windowStart}), 0)::bigint`.as('used'),
      sql<bigint>`count(*) filter (where created_at >= ${hourStart})`.as('hour_payments'),
      sql<bigint>`coalesce(sum(amount_msat) filter (where created_at >= ${hourStart}), 0)::bigint`.as('hour_amount'),
    ])
    .where('connection_pubkey', '=', connectionPubkey)
    // Literals, not parameters: a prepared statement's generic plan then uses the partial index of outgoing payments.
    .where('type', '=', sql.lit('outgoing'))
    .where('state', 'in', [sql.lit('pending' as const), sql.lit('settled' as const)])
    // Neither window counted: least() is null, and no row is read.
    .where(sql<boolean>`created_at >= least(${windowStart}::bigint, ${hourStart}::bigint)`);
}

export function spendUsageFrom(row: { used: bigint; hour_payments: bigint; hour_amount: bigint }): SpendUsage {
  return { usedMsat: row.used, lastHour: { payments: Number(row.hour_payments), amountMsat: row.hour_amount } };
}

export async function spendUsage(trx: Trx, connection: Connection, nowSec: number): Promise<SpendUsage> {
  return spendUsageFrom(await spendUsageQuery(trx, connection.pubkey, usageWindows(connection, nowSec)).executeTakeFirstOrThrow());
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
