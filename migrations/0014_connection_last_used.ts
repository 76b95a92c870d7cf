import type { Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  // Read-only requests (get_info, get_balance, get_budget) leave no request row since this
  // migration: a connection's last use is kept on its own row, to the minute.
  await db.schema.alterTable('connections').addColumn('last_used_at', 'timestamptz').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('connections').dropColumn('last_used_at').execute();
}
