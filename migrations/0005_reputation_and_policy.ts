import { sql, type Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  // Auditor reports as received and verified (kept 90 days): scores are recomputed from them.
  await db.schema
    .createTable('auditor_reports')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('auditor_pubkey', 'text', (c) => c.notNull())
    .addColumn('operator_pubkey', 'text', (c) => c.notNull())
    .addColumn('window_start', 'bigint', (c) => c.notNull())
    .addColumn('window_end', 'bigint', (c) => c.notNull())
    .addColumn('content', 'jsonb', (c) => c.notNull())
    .addColumn('event', 'jsonb', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('auditor_reports_once', ['auditor_pubkey', 'operator_pubkey', 'window_start'])
    .execute();
  await db.schema.createIndex('auditor_reports_operator_idx').on('auditor_reports').columns(['operator_pubkey', 'window_end']).execute();

  // The bridge's own observations of each operator, one row per operator and hour.
  await db.schema
    .createTable('operator_observations')
    .addColumn('operator_pubkey', 'text', (c) => c.notNull())
    .addColumn('hour_start', 'timestamptz', (c) => c.notNull())
    .addColumn('calls', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('slow_calls', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('latency_ms_total', 'bigint', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('operator_observations_pk', ['operator_pubkey', 'hour_start'])
    .execute();

  // A user's spreading rules (docs/allocation.md); no row means the defaults.
  await db.schema
    .createTable('allocation_policies')
    .addColumn('user_pubkey', 'text', (c) => c.primaryKey())
    .addColumn('max_share_ppm', 'integer', (c) => c.notNull())
    .addColumn('test_amount_msat', 'bigint', (c) => c.notNull())
    .addColumn('trusted_score', 'double precision', (c) => c.notNull())
    .addColumn('min_score', 'double precision', (c) => c.notNull())
    .addColumn('exponent', 'double precision', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('allocation_policies').execute();
  await db.schema.dropTable('operator_observations').execute();
  await db.schema.dropTable('auditor_reports').execute();
}
