import { sql, type ExpressionBuilder } from 'kysely';
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
