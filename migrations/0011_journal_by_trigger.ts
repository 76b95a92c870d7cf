import { sql, type Kysely } from 'kysely';

// Frozen in time: imports nothing from the application.

export async function up(db: Kysely<any>): Promise<void> {
  // Every change of a deposit's money columns writes its journal entry, by the database itself
  // and from the row's own change (new minus old), so no code path can change money without an
  // entry or write an entry that differs from the change. An UPDATE names the entry's kind and
  // transaction in two columns that the trigger reads and clears (they never keep a value); one
  // that changes money without naming a kind is refused.
  await db.schema.alterTable('deposits').addColumn('journal_kind', 'text').addColumn('journal_transaction_id', 'bigint').execute();
  await sql`
    create function deposits_journal() returns trigger language plpgsql as $$
    begin
      if new.confirmed_msat <> old.confirmed_msat or new.reserved_msat <> old.reserved_msat then
        if new.journal_kind is null then
          raise exception 'deposit % money changed without a journal entry kind', new.id using errcode = 'check_violation';
        end if;
        insert into journal_entries (deposit_id, transaction_id, kind, confirmed_delta_msat, reserved_delta_msat)
        values (new.id, new.journal_transaction_id, new.journal_kind, new.confirmed_msat - old.confirmed_msat, new.reserved_msat - old.reserved_msat);
      end if;
      new.journal_kind := null;
      new.journal_transaction_id := null;
      return new;
    end
    $$
  `.execute(db);
  await sql`create trigger deposits_journal before update on deposits for each row execute function deposits_journal()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger deposits_journal on deposits`.execute(db);
  await sql`drop function deposits_journal()`.execute(db);
  await db.schema.alterTable('deposits').dropColumn('journal_kind').dropColumn('journal_transaction_id').execute();
}
