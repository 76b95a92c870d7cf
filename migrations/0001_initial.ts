import { sql, type Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('pubkey', 'text', (c) => c.primaryKey())
    .addColumn('deposit_open_event', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('vault_operators')
    .addColumn('node_pubkey', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('peer_node_pubkey', 'text', (c) => c.notNull())
    .addColumn('network', 'text', (c) => c.notNull())
    .addColumn('info', 'jsonb', (c) => c.notNull())
    .addColumn('score', 'double precision', (c) => c.notNull())
    .addColumn('score_reasons', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('events_cursor', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('available', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('last_seen_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('deposits')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('user_pubkey', 'text', (c) => c.notNull().references('users.pubkey'))
    .addColumn('operator_pubkey', 'text', (c) => c.notNull().references('vault_operators.node_pubkey'))
    .addColumn('remote_deposit_id', 'text', (c) => c.notNull())
    .addColumn('vault_id', 'text', (c) => c.notNull())
    .addColumn('channel_id', 'text', (c) => c.notNull())
    .addColumn('multisig_pubkey', 'text', (c) => c.notNull())
    .addColumn('confirmed_msat', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('reserved_msat', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('vault_balance_msat', 'bigint')
    .addColumn('vault_balance_seq', 'integer')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('deposits_user_operator_unique', ['user_pubkey', 'operator_pubkey'])
    .addUniqueConstraint('deposits_remote_unique', ['operator_pubkey', 'remote_deposit_id'])
    // The database refuses what no code path may do: a negative or over-reserved deposit.
    .addCheckConstraint('deposits_reserved_within_confirmed', sql`reserved_msat >= 0 and reserved_msat <= confirmed_msat`)
    .execute();

  await db.schema
    .createTable('connections')
    .addColumn('pubkey', 'text', (c) => c.primaryKey())
    .addColumn('user_pubkey', 'text', (c) => c.notNull().references('users.pubkey'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('grant_event', 'jsonb', (c) => c.notNull())
    .addColumn('grant_created_at', 'bigint', (c) => c.notNull())
    .addColumn('methods', 'jsonb', (c) => c.notNull())
    .addColumn('budget_msat', 'bigint')
    .addColumn('budget_renewal', 'text')
    .addColumn('max_amount_msat', 'bigint')
    .addColumn('fee_base_msat', 'bigint', (c) => c.notNull())
    .addColumn('fee_ppm', 'integer', (c) => c.notNull())
    .addColumn('expires_at', 'bigint')
    .addColumn('vault_operators', 'jsonb')
    .addColumn('revoked', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('connections_user_idx').on('connections').column('user_pubkey').execute();

  await db.schema
    .createTable('nwc_requests')
    .addColumn('event_id', 'text', (c) => c.primaryKey())
    .addColumn('connection_pubkey', 'text', (c) => c.notNull())
    .addColumn('event', 'jsonb', (c) => c.notNull())
    .addColumn('method', 'text')
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('processing', 'done')`))
    .addColumn('response_event', 'jsonb')
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('nwc_requests_processing_idx').on('nwc_requests').column('state').where('state', '=', 'processing').execute();

  await db.schema
    .createTable('transactions')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('user_pubkey', 'text', (c) => c.notNull().references('users.pubkey'))
    .addColumn('deposit_id', 'bigint', (c) => c.notNull().references('deposits.id'))
    .addColumn('connection_pubkey', 'text')
    .addColumn('type', 'text', (c) => c.notNull().check(sql`type in ('incoming', 'outgoing')`))
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('pending', 'settled', 'failed', 'expired')`))
    .addColumn('step', 'text', (c) => c.notNull().check(sql`step in ('reserved', 'sent', 'final')`))
    .addColumn('payment_hash', 'text', (c) => c.notNull())
    .addColumn('invoice', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('description_hash', 'text')
    .addColumn('preimage', 'text')
    .addColumn('amount_msat', 'bigint', (c) => c.notNull().check(sql`amount_msat > 0`))
    .addColumn('fee_msat', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('fee_reserve_msat', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('request_event_id', 'text', (c) => c.unique())
    .addColumn('idempotency_key', 'text')
    .addColumn('failure_reason', 'text')
    .addColumn('metadata', 'jsonb')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint')
    .addColumn('settled_at', 'bigint')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('transactions_user_created_idx').on('transactions').columns(['user_pubkey', 'created_at']).execute();
  await db.schema.createIndex('transactions_payment_hash_idx').on('transactions').column('payment_hash').execute();
  await db.schema
    .createIndex('transactions_incoming_unique')
    .on('transactions')
    .columns(['deposit_id', 'payment_hash'])
    .unique()
    .where(sql.ref('type'), '=', 'incoming')
    .execute();
  await db.schema
    .createIndex('transactions_connection_outgoing_idx')
    .on('transactions')
    .columns(['connection_pubkey', 'created_at'])
    .where(sql.ref('type'), '=', 'outgoing')
    .execute();

  await db.schema
    .createTable('journal_entries')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('deposit_id', 'bigint', (c) => c.notNull().references('deposits.id'))
    .addColumn('transaction_id', 'bigint', (c) => c.references('transactions.id'))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('reserve', 'release', 'debit', 'credit')`))
    .addColumn('confirmed_delta_msat', 'bigint', (c) => c.notNull())
    .addColumn('reserved_delta_msat', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('journal_entries_deposit_idx').on('journal_entries').column('deposit_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['journal_entries', 'transactions', 'nwc_requests', 'connections', 'deposits', 'vault_operators', 'users']) {
    await db.schema.dropTable(table).execute();
  }
}
