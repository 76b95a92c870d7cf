import { sql, type Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  // A deposit's open invoices, counted against its operator's room on every payment and invoice:
  // only the pending ones are indexed, not the deposit's whole history of settled ones.
  await db.schema
    .createIndex('transactions_incoming_open_idx')
    .on('transactions')
    .columns(['deposit_id', 'expires_at'])
    .where(sql.ref('type'), '=', 'incoming')
    .where(sql.ref('state'), '=', 'pending')
    .execute();
  // A vault's report of a payment names it by its idempotency key.
  await db.schema.createIndex('transactions_outgoing_key_idx').on('transactions').column('idempotency_key').where(sql.ref('type'), '=', 'outgoing').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('transactions_outgoing_key_idx').execute();
  await db.schema.dropIndex('transactions_incoming_open_idx').execute();
}
