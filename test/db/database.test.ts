import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { openDatabase, soleWriterClock } from '../../src/db/database.ts';
import { WriteClock } from '../../src/db/write-clock.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { BACKENDS, openTestDatabase } from '../helpers/database.ts';

const BIG = 2n ** 62n + 7n;

describe.each(BACKENDS)('database on %s', (backend) => {
  let handle: Awaited<ReturnType<typeof openTestDatabase>>;
  beforeAll(async () => {
    handle = await openTestDatabase(backend);
  });
  afterAll(async () => {
    await handle?.close();
  });

  it('reads BIGINT back as bigint without losing precision past 2^53', async () => {
    const row = await sql<{ v: bigint; s: bigint }>`select ${BIG}::bigint as v, sum(x)::bigint as s from (values (${BIG}::bigint), (1::bigint)) as t(x)`.execute(handle.db);
    expect(row.rows[0]).toEqual({ v: BIG, s: BIG + 1n });
  });

  it('runs migrations once: a second run has nothing to do', async () => {
    expect(await migrateToLatest(handle.db)).toEqual([]);
  });

  it('refuses a deposit row that would reserve more than it holds', async () => {
    await handle.db.insertInto('users').values({ pubkey: 'u1', deposit_open_event: '{}' }).execute();
    await handle.db
      .insertInto('vault_operators')
      .values({ node_pubkey: 'op1', name: 'a', url: 'http://x', peer_node_pubkey: 'p', network: 'regtest', info: '{}', score: 0.5, score_reasons: '[]', events_cursor: 0n, available: true, last_seen_at: null })
      .execute();
    await expect(
      handle.db
        .insertInto('deposits')
        .values({ user_pubkey: 'u1', operator_pubkey: 'op1', remote_deposit_id: 'd', vault_id: 'v', channel_id: 'c', multisig_pubkey: 'm', confirmed_msat: 5n, reserved_msat: 6n, vault_balance_msat: null, vault_balance_seq: null })
        .execute(),
    ).rejects.toThrow(/deposits_reserved_within_confirmed/);
  });
});

describe('the PGlite dialect', () => {
  it('runs one transaction at a time: a rollback never leaks into a concurrent commit', async () => {
    const { db } = await openDatabase({});
    try {
      await sql`create table t (v text)`.execute(db);
      let releaseFirst!: () => void;
      const firstMayFinish = new Promise<void>((r) => (releaseFirst = r));
      const first = db.transaction().execute(async (trx) => {
        await sql`insert into t values ('rolled back')`.execute(trx);
        await firstMayFinish;
        throw new Error('abort');
      });
      // Started while the first is open: must neither see nor commit the first's row.
      const second = db.transaction().execute(async (trx) => {
        const seen = await sql<{ v: string }>`select v from t`.execute(trx);
        await sql`insert into t values ('committed')`.execute(trx);
        return seen.rows.map((r) => r.v);
      });
      const lone = sql<{ v: string }>`select v from t`.execute(db);
      releaseFirst();
      await expect(first).rejects.toThrow('abort');
      expect(await second).toEqual([]);
      // Queued behind both transactions (FIFO): sees the commit, never the rolled-back row.
      expect((await lone).rows.map((r) => r.v)).toEqual(['committed']);
      const rows = await sql<{ v: string }>`select v from t order by v`.execute(db);
      expect(rows.rows.map((r) => r.v)).toEqual(['committed']);
    } finally {
      await db.destroy();
    }
  });
});

describe('the write clock of a database only this process changes', () => {
  it('exists for embedded PGlite only: PostgreSQL has other writers', async () => {
    const pglite = await openTestDatabase('pglite');
    const postgres = await openTestDatabase('postgres');
    try {
      expect(soleWriterClock(pglite.db)).toBeInstanceOf(WriteClock);
      expect(soleWriterClock(postgres.db)).toBeUndefined();
    } finally {
      await pglite.close();
      await postgres.close();
    }
  });

  it('moves when any statement but a plain SELECT ends, failed ones and transaction ends included, before its caller goes on', async () => {
    const { db } = await openDatabase({});
    try {
      const clock = soleWriterClock(db)!;
      const moved = async (run: () => Promise<unknown>) => {
        const before = clock.now;
        await run().catch(() => undefined);
        return clock.now - before;
      };
      expect(await moved(() => sql`create table t (v int primary key)`.execute(db))).toBe(1);
      expect(await moved(() => db.insertInto('t' as never).values({ v: 1 } as never).execute())).toBe(1);
      expect(await moved(() => sql`select v from t`.execute(db))).toBe(0);
      expect(await moved(() => sql`  SELECT v from t for update`.execute(db))).toBe(0);
      expect(await moved(() => sql`update t set v = 2`.execute(db))).toBe(1);
      // A CTE may write, whatever its last clause.
      expect(await moved(() => sql`with gone as (delete from t returning v) select v from gone`.execute(db))).toBe(1);
      expect(await moved(() => sql`insert into t values (1), (1)`.execute(db))).toBe(1);
      expect(await moved(() => db.transaction().execute(async (trx) => sql`select 1`.execute(trx)))).toBe(2);
      expect(
        await moved(() =>
          db.transaction().execute(async (trx) => {
            await sql`insert into t values (3)`.execute(trx);
            throw new Error('roll back');
          }),
        ),
      ).toBe(3);
    } finally {
      await db.destroy();
    }
  });
});
