import { sql, type Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  // Each connection gets its own wallet service key (derived from the master key, so only its
  // public half is kept); null for connections made before, which keep the bridge-wide key.
  await db.schema.alterTable('connections').addColumn('service_pubkey', 'text').addColumn('info_published_at', 'timestamptz').execute();
  await db.schema.createIndex('connections_service_pubkey_unique').on('connections').column('service_pubkey').unique().execute();

  // The notification outbox: one row per connection, transaction and type, so never twice; the
  // signed events are kept once built, so a retry republishes the very same events.
  await db.schema
    .createTable('notifications')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('connection_pubkey', 'text', (c) => c.notNull().references('connections.pubkey'))
    .addColumn('transaction_id', 'bigint', (c) => c.notNull().references('transactions.id'))
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('events', 'jsonb')
    .addColumn('published_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('notifications_once', ['connection_pubkey', 'transaction_id', 'type'])
    .execute();
  await db.schema.createIndex('notifications_unpublished_idx').on('notifications').column('id').where(sql.ref('published_at'), 'is', null).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('notifications').execute();
  await db.schema.dropIndex('connections_service_pubkey_unique').execute();
  await db.schema.alterTable('connections').dropColumn('info_published_at').dropColumn('service_pubkey').execute();
}
