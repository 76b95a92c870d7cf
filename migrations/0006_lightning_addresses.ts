import { sql, type Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  // One lightning address (LUD-16 `name@host`) per user, each name taken once.
  await db.schema
    .createTable('lightning_addresses')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('user_pubkey', 'text', (c) => c.notNull().unique().references('users.pubkey'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint('lightning_addresses_name_charset', sql`name ~ '^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$'`)
    .execute();

  // Invoices handed out over LNURL-pay: which address they were asked of (LUD-21 verify answers
  // only for these), and for a zap the request as received (its SHA-256 is the invoice's
  // description hash) with the receipt built and published once the invoice settles.
  await db.schema
    .createTable('lnurl_invoices')
    .addColumn('transaction_id', 'bigint', (c) => c.primaryKey().references('transactions.id'))
    .addColumn('payment_hash', 'text', (c) => c.notNull().unique())
    .addColumn('address_name', 'text', (c) => c.notNull())
    .addColumn('zap_request', 'text')
    .addColumn('zap_relays', 'jsonb')
    .addColumn('zap_receipt', 'jsonb')
    .addColumn('zap_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('zap_next_attempt_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('zap_last_error', 'text')
    .addColumn('zap_published_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('lnurl_invoices_zap_unpublished_idx')
    .on('lnurl_invoices')
    .column('zap_next_attempt_at')
    .where(sql.ref('zap_request'), 'is not', null)
    .where(sql.ref('zap_published_at'), 'is', null)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('lnurl_invoices').execute();
  await db.schema.dropTable('lightning_addresses').execute();
}
