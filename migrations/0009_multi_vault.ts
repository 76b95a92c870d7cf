import { sql, type Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  // The parts of a multi-part payment: one NWC payment (its transactions row) paid by several
  // deposits at once, each part reserved, sent and finished on its own deposit.
  await db.schema
    .createTable('payment_parts')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('transaction_id', 'bigint', (c) => c.notNull().references('transactions.id'))
    .addColumn('deposit_id', 'bigint', (c) => c.notNull().references('deposits.id'))
    .addColumn('amount_msat', 'bigint', (c) => c.notNull().check(sql`amount_msat > 0`))
    .addColumn('fee_reserve_msat', 'bigint', (c) => c.notNull().check(sql`fee_reserve_msat >= 0`))
    .addColumn('fee_msat', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('idempotency_key', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('pending', 'settled', 'failed')`))
    .addColumn('step', 'text', (c) => c.notNull().check(sql`step in ('reserved', 'sent', 'final')`))
    .addColumn('preimage', 'text')
    .addColumn('failure_reason', 'text')
    .addColumn('failure_code', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('payment_parts_deposit_key_unique', ['deposit_id', 'idempotency_key'])
    .addUniqueConstraint('payment_parts_transaction_deposit_unique', ['transaction_id', 'deposit_id'])
    .execute();
  await db.schema.createIndex('payment_parts_pending_idx').on('payment_parts').column('transaction_id').where(sql.ref('state'), '=', 'pending').execute();

  // Money moved between one user's own deposits: an outgoing transaction on the source, an
  // incoming one on the destination. At most one transfer of a user is in flight at a time.
  await db.schema
    .createTable('transfers')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('user_pubkey', 'text', (c) => c.notNull().references('users.pubkey'))
    .addColumn('purpose', 'text', (c) => c.notNull().check(sql`purpose in ('rebalance', 'payment', 'drain', 'operator')`))
    .addColumn('from_deposit_id', 'bigint', (c) => c.notNull().references('deposits.id'))
    .addColumn('to_deposit_id', 'bigint', (c) => c.references('deposits.id'))
    .addColumn('amount_msat', 'bigint', (c) => c.notNull().check(sql`amount_msat > 0`))
    .addColumn('max_fee_msat', 'bigint', (c) => c.notNull())
    .addColumn('outgoing_transaction_id', 'bigint', (c) => c.references('transactions.id'))
    .addColumn('incoming_transaction_id', 'bigint', (c) => c.references('transactions.id'))
    /** The NWC request a `payment` transfer prepares. */
    .addColumn('request_event_id', 'text')
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('pending', 'settled', 'failed')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('transfers_one_in_flight_per_user')
    .on('transfers')
    .column('user_pubkey')
    .unique()
    .where(sql.ref('state'), '=', 'pending')
    .where(sql.ref('purpose'), '<>', 'operator')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('transfers').execute();
  await db.schema.dropTable('payment_parts').execute();
}
