import { sql } from 'kysely';
import { compiledOnce } from '../db/compiled-once.ts';
import { isLostRace } from '../db/lost-race.ts';
import type { DepositRow, TransactionRow } from '../db/schema.ts';
import type { Msat } from '../protocol/amounts.ts';
import type { SpendUsage } from '../protocol/grant.ts';
import type { AllocationPolicy, DepositCandidate } from './allocation.ts';
import { StaleConnection, type Connection } from './connections.ts';
import type { WalletContext } from './context.ts';
import { candidateFrom, incomingOpenMsat } from './deposit-candidates.ts';
import { availableAtLeast, journalEntry, type Trx } from './journal.ts';
import { policyFrom } from './policy.ts';
import { spendUsageFrom, spendUsageQuery, usageWindows, type UsageWindows } from './spending.ts';

/*
 * Admission of a payment. Admissions of one connection must each see the spending of every
 * one before it (budget and velocity limits), across instances. They are serialized by the
 * connection's `admission_seq` (migration 0013): everything the decision needs is read in one
 * statement, the decision is made, and one statement then inserts the payment with its
 * reservation only if the counter is still the one read, incrementing it. An admission that
 * lost the race (or whose deposit no longer had the money) is read and decided again. No lock
 * is held while the decision is made, and a payment costs two statements.
 */

/** What the admission of a payment decides on, read in one statement. */
export interface AdmissionState {
  /** The connection's admission counter when this was read. */
  admissionSeq: bigint;
  /** The created_at of the grant the connection's row holds. */
  grantCreatedAt: bigint;
  /** The owner's emergency lock. */
  locked: boolean;
  usage: SpendUsage;
  /** The user's deposits, in id order. */
  candidates: DepositCandidate[];
  policy: AllocationPolicy;
  /** The user's payment of the same hash already pending or settled, if any: the request shares its outcome. */
  liveTransactionId: bigint | null;
}

/**
 * Reads all a payment's admission needs: the connection's counter and grant, the owner's lock,
 * the connection's spending, the user's deposits with their room, the user's spreading rules,
 * and a live payment of `paymentHash`. StaleConnection when the connection's row no longer
 * holds the grant `connection` was read with.
 */
export async function readAdmission(ctx: WalletContext, trx: Trx, connection: Connection, paymentHash: string | null): Promise<AdmissionState> {
  const now = ctx.now();
  const { rows } = await admissionStatement(trx, {
    userPubkey: connection.userPubkey,
    connectionPubkey: connection.pubkey,
    ...usageWindows(connection, now, 'limited'),
    now: BigInt(now),
    paymentHash,
  });
  const first = rows[0];
  if (!first || first.grant_created_at !== BigInt(connection.grant.createdAt)) throw new StaleConnection(connection.pubkey);
  const candidates: DepositCandidate[] = [];
  for (const row of rows) {
    const { id, operator_pubkey, confirmed_msat, reserved_msat } = row;
    if (id === null || operator_pubkey === null || confirmed_msat === null || reserved_msat === null) continue;
    candidates.push(candidateFrom(ctx, { id, operator_pubkey, confirmed_msat, reserved_msat, incoming_open_msat: row.incoming_open_msat }));
  }
  return {
    admissionSeq: first.admission_seq,
    grantCreatedAt: first.grant_created_at,
    locked: first.locked,
    usage: spendUsageFrom(first),
    candidates,
    policy: policyFrom(first),
    liveTransactionId: first.live_transaction_id,
  };
}

const admissionStatement = compiledOnce(
  ['userPubkey', 'connectionPubkey', 'windowStart', 'hourStart', 'now', 'paymentHash'],
  (db, a: { userPubkey: string; connectionPubkey: string; now: bigint; paymentHash: string | null } & UsageWindows) =>
    db
      .selectFrom('users')
      .innerJoin('connections', (join) => join.onRef('connections.user_pubkey', '=', 'users.pubkey').on('connections.pubkey', '=', a.connectionPubkey))
      .innerJoin(spendUsageQuery(db, a.connectionPubkey, a).as('usage'), (join) => join.onTrue())
      .leftJoin('deposits', 'deposits.user_pubkey', 'users.pubkey')
      .leftJoin('allocation_policies', 'allocation_policies.user_pubkey', 'users.pubkey')
      .select((eb) => [
        'connections.admission_seq',
        'connections.grant_created_at',
        'users.locked',
        'usage.used',
        'usage.hour_payments',
        'usage.hour_amount',
        'deposits.id',
        'deposits.operator_pubkey',
        'deposits.confirmed_msat',
        'deposits.reserved_msat',
        incomingOpenMsat(eb, a.now).as('incoming_open_msat'),
        'allocation_policies.max_share_ppm',
        'allocation_policies.test_amount_msat',
        'allocation_policies.trusted_score',
        'allocation_policies.min_score',
        'allocation_policies.exponent',
        eb
          .selectFrom('transactions')
          .select('transactions.id')
          .where('transactions.user_pubkey', '=', a.userPubkey)
          // No hash known (a keysend or address without one yet): null matches nothing.
          .where('transactions.payment_hash', '=', a.paymentHash)
          // Literals: the partial unique index of live attempts serves a generic plan too.
          .where('transactions.type', '=', sql.lit('outgoing'))
          .where('transactions.state', 'in', [sql.lit('pending' as const), sql.lit('settled' as const)])
          .limit(1)
          .as('live_transaction_id'),
      ])
      .where('users.pubkey', '=', a.userPubkey)
      .orderBy('deposits.id'),
);

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

/** The SQLSTATE `deposit_bridge_require` refuses a statement with (migration 0013). */
const REQUIREMENT_FAILED = 'BR001';

/**
 * Admits a payment decided on `state`, in one statement: the connection's counter moved on from
 * the one read (so no other admission of the connection came in between, and its grant is still
 * the one read), the transaction inserted, `sent` (its vault is called right after), and
 * `needMsat` reserved on its deposit (the database journals it), all or nothing. `conflict`:
 * another admission of the connection came first, or the deposit no longer has the money; the
 * caller reads and decides again.
 */
export async function admitPayment(
  trx: Trx,
  state: Pick<AdmissionState, 'admissionSeq' | 'grantCreatedAt'>,
  payment: AdmittedPayment,
  needMsat: Msat,
): Promise<{ tx: TransactionRow; reservedOn: ReservedDeposit } | 'conflict'> {
  let rows;
  try {
    ({ rows } = await admitStatement(trx, { ...payment, need: needMsat, admissionSeq: state.admissionSeq, grantCreatedAt: state.grantCreatedAt }));
  } catch (error) {
    // Lost to another payment on the deposit, or to a deadlock PostgreSQL broke: decided again.
    if (isLostRace(error) || (typeof error === 'object' && error !== null && 'code' in error && error.code === REQUIREMENT_FAILED)) return 'conflict';
    throw error;
  }
  const row = rows[0];
  if (!row) return 'conflict';
  const { reserved_id, reserved_operator, reserved_remote_id, reserved_confirmed, reserved: _reserved, ...tx } = row;
  // The statement refuses itself when nothing was reserved; a row here always has its deposit.
  if (reserved_id === null || reserved_operator === null || reserved_remote_id === null || reserved_confirmed === null) throw new Error('an admitted payment without its reservation');
  return { tx, reservedOn: { id: reserved_id, operator_pubkey: reserved_operator, remote_deposit_id: reserved_remote_id, confirmed_msat: reserved_confirmed } };
}

const admitStatement = compiledOnce(
  [
    'admissionSeq',
    'grantCreatedAt',
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
  (db, a: AdmittedPayment & { need: bigint; admissionSeq: bigint; grantCreatedAt: bigint }) =>
    db
      .with('admission', (qb) =>
        qb
          .updateTable('connections')
          .set((eb) => ({ admission_seq: eb('admission_seq', '+', 1n) }))
          .where('pubkey', '=', a.connection_pubkey)
          .where('admission_seq', '=', a.admissionSeq)
          .where('grant_created_at', '=', a.grantCreatedAt)
          .returning('pubkey'),
      )
      .with('tx', (qb) =>
        qb
          .insertInto('transactions')
          .columns([
            'user_pubkey',
            'deposit_id',
            'connection_pubkey',
            'type',
            'state',
            'step',
            'payment_hash',
            'invoice',
            'description',
            'description_hash',
            'preimage',
            'amount_msat',
            'fee_msat',
            'fee_reserve_msat',
            'request_event_id',
            'idempotency_key',
            'failure_reason',
            'metadata',
            'created_at',
            'expires_at',
            'settled_at',
          ])
          .expression((eb) =>
            eb
              .selectFrom('admission')
              .select((s) => [
                s.val(a.user_pubkey).as('user_pubkey'),
                s.val(a.deposit_id).as('deposit_id'),
                'admission.pubkey',
                s.val('outgoing').as('type'),
                s.val('pending').as('state'),
                s.val('sent').as('step'),
                s.val(a.payment_hash).as('payment_hash'),
                s.val(a.invoice).as('invoice'),
                s.val(a.description).as('description'),
                s.val(a.description_hash).as('description_hash'),
                s.val(null).as('preimage'),
                s.val(a.amount_msat).as('amount_msat'),
                s.val(0n).as('fee_msat'),
                s.val(a.fee_reserve_msat).as('fee_reserve_msat'),
                s.val(a.request_event_id).as('request_event_id'),
                s.val(a.idempotency_key).as('idempotency_key'),
                s.val(null).as('failure_reason'),
                s.val(a.metadata).as('metadata'),
                s.val(a.created_at).as('created_at'),
                s.val(a.expires_at).as('expires_at'),
                s.val(null).as('settled_at'),
              ]),
          )
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
      .select([
        'reserved.id as reserved_id',
        'reserved.operator_pubkey as reserved_operator',
        'reserved.remote_deposit_id as reserved_remote_id',
        'reserved.confirmed_msat as reserved_confirmed',
        // Admitted but not reserved (another payment took the money since the read): all undone.
        sql<boolean>`deposit_bridge_require(reserved.id is not null, 'the deposit no longer holds the payment')`.as('reserved'),
      ]),
);

/**
 * Locks the connection's row for an admission decided inside a database transaction (a
 * multi-part payment), moving its admission counter on: admissions of the connection queue on
 * the lock, and those decided outside it see the counter moved. NO KEY UPDATE: foreign-key
 * checks of rows pointing at the connection take KEY SHARE and do not wait on it.
 * StaleConnection when the row holds another grant than the one the request was read with.
 */
export async function lockConnection(trx: Trx, connection: Connection): Promise<void> {
  const { rows } = await lockStatement(trx, { pubkey: connection.pubkey, grantCreatedAt: BigInt(connection.grant.createdAt) });
  if (rows.length === 0) throw new StaleConnection(connection.pubkey);
}

const lockStatement = compiledOnce(['pubkey', 'grantCreatedAt'], (db, a: { pubkey: string; grantCreatedAt: bigint }) =>
  db
    .updateTable('connections')
    .set((eb) => ({ admission_seq: eb('admission_seq', '+', 1n) }))
    .where('pubkey', '=', a.pubkey)
    .where('grant_created_at', '=', a.grantCreatedAt)
    .returning('pubkey'),
);
