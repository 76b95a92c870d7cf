import { sql, type Expression, type ExpressionBuilder, type QueryCreator, type SqlBool } from 'kysely';
import type { Database, NotificationType } from '../db/schema.ts';
import type { Trx } from './journal.ts';

/** Something that sends what was just queued, soon after it is written (the NWC notifications, zap receipts). */
export interface NotificationSink {
  poke(): void;
}

/** The connections that hear of their user's transactions: granted `notifications`, not revoked. */
export function notifiedConnections(eb: ExpressionBuilder<Database, 'connections'>) {
  return eb.and([eb('connections.revoked', '=', false), sql<boolean>`${eb.ref('connections.methods')} @> '["notifications"]'::jsonb`]);
}

/** The transaction a statement just settled, as its `settled` CTE returns it. */
type WithSettled = Database & { settled: { id: bigint; user_pubkey: string } };

/**
 * The CTE that queues `type` about the transaction of the statement's `settled` CTE for every
 * notified connection of its user, unless `ownMove` (money moved between the user's own
 * deposits, which no app made); returns the ids queued.
 */
export function queueSettledNotifications(qb: QueryCreator<WithSettled>, type: NotificationType, ownMove: Expression<SqlBool>) {
  return qb
    .insertInto('notifications')
    .columns(['connection_pubkey', 'transaction_id', 'type'])
    .expression((eb) =>
      eb
        .selectFrom('connections')
        .innerJoin('settled', 'settled.user_pubkey', 'connections.user_pubkey')
        .select((s) => ['connections.pubkey', 'settled.id', s.val(type).as('type')])
        .where(notifiedConnections)
        .where((s) => s.not(ownMove)),
    )
    .onConflict((oc) => oc.constraint('notifications_once').doNothing())
    .returning('notifications.id');
}

/**
 * Queues a notification about a transaction for every connection of the user that was
 * granted `notifications`, in the caller's database transaction, so a settlement and its
 * notification commit together. Queued once per connection, transaction and type. Returns how
 * many were queued: with none, there is nothing for the sender to do.
 */
export async function queueNotifications(trx: Trx, userPubkey: string, transactionId: bigint, type: NotificationType): Promise<number> {
  const result = await trx
    .insertInto('notifications')
    .columns(['connection_pubkey', 'transaction_id', 'type'])
    .expression((eb) =>
      eb
        .selectFrom('connections')
        .select([sql.ref<string>('pubkey').as('connection_pubkey'), sql.lit(transactionId).as('transaction_id'), sql.lit(type).as('type')])
        .where('user_pubkey', '=', userPubkey)
        .where(notifiedConnections),
    )
    .onConflict((oc) => oc.constraint('notifications_once').doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n);
}
