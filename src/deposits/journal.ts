import { sql, type Expression, type ExpressionBuilder, type Kysely, type Transaction } from 'kysely';
import { compiledOnce } from '../db/compiled-once.ts';
import type { Msat } from '../protocol/amounts.ts';
import type { Database, DepositRow, JournalKind, TransactionRow } from '../db/schema.ts';

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

/** The deposit a payment's money was reserved on, as paying from it needs it. */
export type ReservedDeposit = Pick<DepositRow, 'id' | 'operator_pubkey' | 'remote_deposit_id' | 'confirmed_msat'>;

/** What an outgoing payment's row records when it is admitted (the rest is fixed: pending, sent, nothing paid yet). */
export interface AdmittedPayment {
  user_pubkey: string;
  deposit_id: bigint;
  connection_pubkey: string;
  payment_hash: string;
  invoice: string;
  description: string | null;
  description_hash: string | null;
  amount_msat: bigint;
  fee_reserve_msat: bigint;
  request_event_id: string;
  idempotency_key: string;
  metadata: string;
  created_at: bigint;
  expires_at: bigint | null;
}

/**
 * Inserts an outgoing payment's transaction, `sent` (its vault is called right after the
 * commit), and reserves `needMsat` for it on its deposit, in one statement (the database
 * journals the reservation): `reservedOn` is null when the deposit no longer has it available,
 * the transaction being inserted all the same. Callers run it in the admission's database
 * transaction, which then reserves elsewhere or rolls back.
 */
export async function insertReserved(trx: Trx, payment: AdmittedPayment, needMsat: Msat): Promise<{ tx: TransactionRow; reservedOn: ReservedDeposit | null }> {
  const { rows } = await insertReservedStatement(trx, { ...payment, need: needMsat });
  const row = rows[0];
  if (!row) throw new Error('the insert of an admitted payment returned no row');
  const { reserved_id, reserved_operator, reserved_remote_id, reserved_confirmed, ...tx } = row;
  const reservedOn =
    reserved_id === null || reserved_operator === null || reserved_remote_id === null || reserved_confirmed === null
      ? null
      : { id: reserved_id, operator_pubkey: reserved_operator, remote_deposit_id: reserved_remote_id, confirmed_msat: reserved_confirmed };
  return { tx, reservedOn };
}

const insertReservedStatement = compiledOnce(
  [
    'user_pubkey',
    'deposit_id',
    'connection_pubkey',
    'payment_hash',
    'invoice',
    'description',
    'description_hash',
    'amount_msat',
    'fee_reserve_msat',
    'request_event_id',
    'idempotency_key',
    'metadata',
    'created_at',
    'expires_at',
    'need',
  ],
  (db, a: AdmittedPayment & { need: bigint }) =>
    db
      .with('tx', (qb) =>
        qb
          .insertInto('transactions')
          .values({
            user_pubkey: a.user_pubkey,
            deposit_id: a.deposit_id,
            connection_pubkey: a.connection_pubkey,
            type: 'outgoing',
            state: 'pending',
            step: 'sent',
            payment_hash: a.payment_hash,
            invoice: a.invoice,
            description: a.description,
            description_hash: a.description_hash,
            preimage: null,
            amount_msat: a.amount_msat,
            fee_msat: 0n,
            fee_reserve_msat: a.fee_reserve_msat,
            request_event_id: a.request_event_id,
            idempotency_key: a.idempotency_key,
            failure_reason: null,
            metadata: a.metadata,
            created_at: a.created_at,
            expires_at: a.expires_at,
            settled_at: null,
          })
          .returningAll(),
      )
      .with('reserved', (qb) =>
        qb
          .updateTable('deposits')
          .from('tx')
          .set((eb) => ({ reserved_msat: eb('deposits.reserved_msat', '+', a.need), ...journalEntry('reserve', eb.ref('tx.id')), updated_at: sql<Date>`now()` }))
          .whereRef('deposits.id', '=', 'tx.deposit_id')
          .where(availableAtLeast(a.need))
          .returning(['deposits.id', 'deposits.operator_pubkey', 'deposits.remote_deposit_id', 'deposits.confirmed_msat']),
      )
      .selectFrom('tx')
      .leftJoin('reserved', (join) => join.onTrue())
      .selectAll('tx')
      .select(['reserved.id as reserved_id', 'reserved.operator_pubkey as reserved_operator', 'reserved.remote_deposit_id as reserved_remote_id', 'reserved.confirmed_msat as reserved_confirmed']),
);

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
