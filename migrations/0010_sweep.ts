import { sql, type Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  // A user's sweep policy (docs/sweep.md): keep at most keep_max_msat in deposits, pay the rest
  // to the one destination the sweep connection's grant names. The connection's secret is kept
  // sealed (NIP-44 v2 under an ECDH key of a fresh key and the connection's wallet service key,
  // which derives from the master key); never in the clear.
  await db.schema
    .createTable('sweep_policies')
    .addColumn('user_pubkey', 'text', (c) => c.primaryKey().references('users.pubkey'))
    .addColumn('connection_pubkey', 'text', (c) => c.notNull().references('connections.pubkey'))
    .addColumn('keep_max_msat', 'bigint', (c) => c.notNull().check(sql`keep_max_msat >= 0`))
    .addColumn('min_sweep_msat', 'bigint', (c) => c.notNull().check(sql`min_sweep_msat > 0`))
    .addColumn('encrypted_secret', 'text', (c) => c.notNull())
    .addColumn('encryption_pubkey', 'text', (c) => c.notNull())
    // The signed request of the sweep in flight: one per user, claimed before it is paid.
    .addColumn('in_flight_request', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('sweep_policies').execute();
}
