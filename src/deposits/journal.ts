import type { Kysely, Transaction } from 'kysely';
import type { Msat } from '../protocol/amounts.ts';
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
 * The one place that changes a deposit's money columns: an atomic conditional UPDATE plus its
 * journal entry, in the caller's database transaction. Returns null, changing nothing, when the
 * condition does not hold. The row is locked by the UPDATE until the transaction ends, so
 * concurrent reservations on several instances queue on it instead of racing.
 */
export async function changeDepositMoney(trx: Trx, change: MoneyChange): Promise<DepositRow | null> {
  let update = trx
    .updateTable('deposits')
    .set((eb) => ({
      confirmed_msat: eb('confirmed_msat', '+', change.confirmedDeltaMsat),
      reserved_msat: eb('reserved_msat', '+', change.reservedDeltaMsat),
      updated_at: new Date(),
    }))
    .where('id', '=', change.depositId);
  if (change.requireAvailableMsat !== undefined) {
    const need = change.requireAvailableMsat;
    update = update.where((eb) => eb(eb('confirmed_msat', '-', eb.ref('reserved_msat')), '>=', need));
  }
  const row = await update.returningAll().executeTakeFirst();
  if (!row) return null;
  await trx
    .insertInto('journal_entries')
    .values({
      deposit_id: change.depositId,
      transaction_id: change.transactionId,
      kind: change.kind,
      confirmed_delta_msat: change.confirmedDeltaMsat,
      reserved_delta_msat: change.reservedDeltaMsat,
    })
    .execute();
  return row;
}

/** PostgreSQL's codes for a transaction it aborted to break a deadlock or a serialization conflict. */
const RETRYABLE = new Set(['40P01', '40001']);

/**
 * Runs `work` in a database transaction, again (up to three times) when PostgreSQL aborts it to
 * break a deadlock: rows are locked in whatever order requests arrive, and a lost race is
 * simply run again on fresh data.
 */
export async function inTransaction<T>(db: Kysely<Database>, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(work);
    } catch (error) {
      const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
      if (attempt >= 3 || typeof code !== 'string' || !RETRYABLE.has(code)) throw error;
    }
  }
}
