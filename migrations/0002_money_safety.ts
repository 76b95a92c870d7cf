import { sql, type Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('connections')
    .addColumn('velocity_payments_per_hour', 'integer')
    .addColumn('velocity_amount_msat_per_hour', 'bigint')
    .execute();

  await db.schema
    .alterTable('users')
    .addColumn('locked', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('lock_event', 'jsonb')
    .addColumn('lock_created_at', 'bigint')
    .execute();

  // One live attempt per invoice and user: a second request for a pending or settled payment
  // hash gets the first one's outcome instead of a second payment.
  await db.schema
    .createIndex('transactions_outgoing_live_unique')
    .on('transactions')
    .columns(['user_pubkey', 'payment_hash'])
    .unique()
    .where(sql.ref('type'), '=', 'outgoing')
    .where(sql.ref('state'), 'in', ['pending', 'settled'])
    .execute();

  // A claim on a request is a lease: an instance that dies lets it lapse, another takes it over.
  await db.schema
    .alterTable('nwc_requests')
    .addColumn('claimed_by', 'text')
    .addColumn('lease_until', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('audit_log')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('user_pubkey', 'text', (c) => c.notNull())
    .addColumn('connection_pubkey', 'text')
    .addColumn('request_event_id', 'text')
    .addColumn('method', 'text')
    .addColumn('code', 'text', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('audit_log_user_idx').on('audit_log').columns(['user_pubkey', 'id']).execute();

  await db.schema
    .createTable('operator_incidents')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('operator_pubkey', 'text', (c) => c.notNull().references('vault_operators.node_pubkey'))
    .addColumn('user_pubkey', 'text')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('evidence', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('operator_incidents_operator_idx').on('operator_incidents').columns(['operator_pubkey', 'id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('operator_incidents').execute();
  await db.schema.dropTable('audit_log').execute();
  await db.schema.alterTable('nwc_requests').dropColumn('lease_until').dropColumn('claimed_by').execute();
  await db.schema.dropIndex('transactions_outgoing_live_unique').execute();
  await db.schema.alterTable('users').dropColumn('lock_created_at').dropColumn('lock_event').dropColumn('locked').execute();
  await db.schema.alterTable('connections').dropColumn('velocity_amount_msat_per_hour').dropColumn('velocity_payments_per_hour').execute();
}
