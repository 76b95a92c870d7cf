import { sql, type Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  // Admissions of one connection are serialized by this counter instead of a row lock held
  // across the decision: a payment is admitted only if no other admission of the connection
  // happened since its spending was read (compare and increment, in the statement that inserts
  // the payment and reserves its money).
  await db.schema.alterTable('connections').addColumn('admission_seq', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
  // Refuses the statement it is evaluated in (which is then rolled back entirely) unless the
  // condition holds: one statement that writes several rows can make all of them depend on one check.
  await sql`
    create function deposit_bridge_require(condition boolean, message text) returns boolean language plpgsql as $$
    begin
      if condition is not true then
        raise exception '%', message using errcode = 'BR001';
      end if;
      return true;
    end
    $$
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function deposit_bridge_require(boolean, text)`.execute(db);
  await db.schema.alterTable('connections').dropColumn('admission_seq').execute();
}
