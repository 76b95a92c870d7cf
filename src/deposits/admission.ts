import { sql } from 'kysely';
import { compiledOnce } from '../db/compiled-once.ts';
import type { SpendUsage } from '../protocol/grant.ts';
import type { AllocationPolicy, DepositCandidate } from './allocation.ts';
import { StaleConnection, type Connection } from './connections.ts';
import type { WalletContext } from './context.ts';
import { candidateFrom, incomingOpenMsat } from './deposit-candidates.ts';
import type { Trx } from './journal.ts';
import { policyFrom } from './policy.ts';
import { spendUsageFrom, spendUsageQuery, usageWindows, type UsageWindows } from './spending.ts';

/**
 * Locks the connection's row for the admission of a payment: admissions of one connection
 * queue on it across instances, so each reads budget use with every earlier one committed.
 * NO KEY UPDATE: foreign-key checks of rows pointing at the connection (the notification
 * outbox, written while a deposit row is locked) take KEY SHARE and must not wait on it.
 * Throws StaleConnection when the row holds another grant than the one the request was read with.
 */
export async function lockConnection(trx: Trx, connection: Connection): Promise<void> {
  const { rows } = await lockStatement(trx, { pubkey: connection.pubkey });
  const row = rows[0];
  if (!row || row.grant_created_at !== BigInt(connection.grant.createdAt)) throw new StaleConnection(connection.pubkey);
}

const lockStatement = compiledOnce(['pubkey'], (db, a: { pubkey: string }) =>
  db.selectFrom('connections').select('grant_created_at').where('pubkey', '=', a.pubkey).forNoKeyUpdate(),
);

/** What the admission of a payment decides on, read in one statement once the connection is locked. */
export interface AdmissionState {
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
 * Reads, after `lockConnection` (so in a snapshot that sees every admission before it), all a
 * payment's admission needs: the owner's lock, the connection's spending, the user's deposits
 * with their room, the user's spreading rules, and a live payment of `paymentHash`.
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
  if (!first) throw new StaleConnection(connection.pubkey);
  const candidates: DepositCandidate[] = [];
  for (const row of rows) {
    const { id, operator_pubkey, confirmed_msat, reserved_msat } = row;
    if (id === null || operator_pubkey === null || confirmed_msat === null || reserved_msat === null) continue;
    candidates.push(candidateFrom(ctx, { id, operator_pubkey, confirmed_msat, reserved_msat, incoming_open_msat: row.incoming_open_msat }));
  }
  return {
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
      .innerJoin(spendUsageQuery(db, a.connectionPubkey, a).as('usage'), (join) => join.onTrue())
      .leftJoin('deposits', 'deposits.user_pubkey', 'users.pubkey')
      .leftJoin('allocation_policies', 'allocation_policies.user_pubkey', 'users.pubkey')
      .select((eb) => [
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
