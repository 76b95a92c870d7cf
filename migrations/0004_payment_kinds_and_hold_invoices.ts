import { sql, type Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  // An amountless invoice has no amount until it is paid; payments always have one.
  await sql`alter table transactions drop constraint transactions_amount_msat_check`.execute(db);
  await sql`alter table transactions add constraint transactions_amount_check check (amount_msat > 0 or (type = 'incoming' and amount_msat = 0))`.execute(db);
  // A hold invoice whose payment is held, waiting for settle or cancel.
  await sql`alter table transactions drop constraint transactions_state_check`.execute(db);
  await sql`alter table transactions add constraint transactions_state_check check (state in ('pending', 'accepted', 'settled', 'failed', 'expired'))`.execute(db);
  await db.schema
    .alterTable('transactions')
    .addColumn('hold', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('settle_deadline', 'bigint')
    .addColumn('failure_code', 'text')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('transactions').dropColumn('failure_code').dropColumn('settle_deadline').dropColumn('hold').execute();
  await sql`alter table transactions drop constraint transactions_state_check`.execute(db);
  await sql`alter table transactions add constraint transactions_state_check check (state in ('pending', 'settled', 'failed', 'expired'))`.execute(db);
  await sql`alter table transactions drop constraint transactions_amount_check`.execute(db);
  await sql`alter table transactions add constraint transactions_amount_msat_check check (amount_msat > 0)`.execute(db);
}
