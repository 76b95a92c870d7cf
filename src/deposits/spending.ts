import { sql, type QueryCreator } from 'kysely';
import type { Database } from '../db/schema.ts';
import { budgetWindow } from '../protocol/budget.ts';
import { budgetWindowStart, VELOCITY_WINDOW_SECONDS, type SpendUsage } from '../protocol/grant.ts';
import type { Connection } from './connections.ts';
import type { Trx } from './journal.ts';

/**
 * What a connection has committed, as the grant's limits count it: in the current budget
 * window, settled payments with their fee and pending ones with their fee reserve; in the last
 * hour, the number and amounts of settled and pending payments. One row; `spendUsageFrom` reads it.
 */
export function spendUsageQuery(db: QueryCreator<Database>, connection: Connection, nowSec: number) {
  const windowStart = budgetWindowStart(connection.grant, nowSec);
  const hourStart = nowSec - VELOCITY_WINDOW_SECONDS;
  return db
    .selectFrom('transactions')
    .select([
      sql<bigint>`coalesce(sum(case when created_at >= ${BigInt(windowStart)} then amount_msat + case when state = 'settled' then fee_msat else fee_reserve_msat end end), 0)::bigint`.as('used'),
      sql<bigint>`count(*) filter (where created_at >= ${BigInt(hourStart)})`.as('hour_payments'),
      sql<bigint>`coalesce(sum(amount_msat) filter (where created_at >= ${BigInt(hourStart)}), 0)::bigint`.as('hour_amount'),
    ])
    .where('connection_pubkey', '=', connection.pubkey)
    .where('type', '=', 'outgoing')
    .where('state', 'in', ['pending', 'settled'])
    .where('created_at', '>=', BigInt(Math.min(windowStart, hourStart)));
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
