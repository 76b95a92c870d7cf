import type { Expression, ExpressionBuilder, Kysely, Transaction } from 'kysely';
import type { Msat } from '../protocol/amounts.ts';
import { retryingLostRaces } from '../db/lost-race.ts';
import type { Database, DepositRow, JournalKind } from '../db/schema.ts';

export type Trx = Transaction<Database> | Kysely<Database>;

export interface MoneyChange {
  depositId: bigint;
  transactionId: bigint | null;
  kind: JournalKind;
  confirmedDeltaMsat: Msat;
  reservedDeltaMsat: Msat;
  /** Apply only if the deposit's available balance (confirmed − reserved) is at least this. */
  requireAvailableMsat?: Msat;
}

/**
 * Changes a deposit's money columns with one atomic conditional UPDATE, in the caller's database
 * transaction if any. The UPDATE names the journal entry's kind and transaction, and the
 * database writes the entry from the row's own change (migration 0011): no change without its
 * entry, and no entry that differs from the change. Returns null, changing nothing, when the
 * condition does not hold. The row is locked by the UPDATE until the transaction ends, so
 * concurrent reservations on several instances queue on it instead of racing.
 */
export async function changeDepositMoney(trx: Trx, change: MoneyChange): Promise<DepositRow | null> {
  let update = trx
    .updateTable('deposits')
    .set((eb) => ({
      confirmed_msat: eb('confirmed_msat', '+', change.confirmedDeltaMsat),
      reserved_msat: eb('reserved_msat', '+', change.reservedDeltaMsat),
      ...journalEntry(change.kind, change.transactionId),
      updated_at: new Date(),
    }))
    .where('id', '=', change.depositId);
  if (change.requireAvailableMsat !== undefined) update = update.where(availableAtLeast(change.requireAvailableMsat));
  return (await update.returningAll().executeTakeFirst()) ?? null;
}

/**
 * The SET values naming the journal entry of a money change (`transaction` a transaction id, or
 * a reference to one in the same statement); every UPDATE of the money columns carries them.
 */
export function journalEntry<T extends bigint | null | Expression<bigint>>(kind: JournalKind, transaction: T) {
  return { journal_kind: kind, journal_transaction_id: transaction };
}

/** The condition that a deposit's available balance (confirmed − reserved) is at least `need`. */
export function availableAtLeast(need: Msat) {
  return (eb: ExpressionBuilder<Database, 'deposits'>) => eb(eb('deposits.confirmed_msat', '-', eb.ref('deposits.reserved_msat')), '>=', need);
}

/**
 * Runs `work` in a database transaction, again (up to three times) when PostgreSQL aborts it to
 * break a deadlock: rows are locked in whatever order requests arrive, and a lost race is
 * simply run again on fresh data.
 */
export function inTransaction<T>(db: Kysely<Database>, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return retryingLostRaces(() => db.transaction().execute(work));
}
