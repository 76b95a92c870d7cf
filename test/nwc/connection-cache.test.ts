import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PGlite } from '@electric-sql/pglite';
import { openDatabase, soleWriterClock } from '../../src/db/database.ts';
import type { Connection } from '../../src/deposits/connections.ts';
import { ConnectionCache } from '../../src/nwc/connection-cache.ts';
import { BACKENDS, openTestDatabase } from '../helpers/database.ts';
import { insertConnection, insertDeposit, insertOperator, insertUser } from '../helpers/deposit-rows.ts';

/** A connection as read into memory: `stillHolds` looks at its key and the grant's time only. */
const read = (pubkey: string, grantCreatedAt: number) => ({ pubkey, grant: { createdAt: grantCreatedAt } }) as unknown as Connection;

describe.each(BACKENDS)('connections kept in memory, checked against their rows, on %s', (backend) => {
  let handle: Awaited<ReturnType<typeof openTestDatabase>>;

  beforeAll(async () => {
    handle = await openTestDatabase(backend);
    const user = await insertUser(handle.db);
    await insertConnection(handle.db, user, 'a', { createdAt: 100, methods: ['get_balance'] });
    await insertConnection(handle.db, user, 'b', { createdAt: 200, methods: ['get_balance'] });
    await insertDeposit(handle.db, user, await insertOperator(handle.db, 'one'), { confirmedMsat: 5_000n, reservedMsat: 1_200n });
    await insertDeposit(handle.db, user, await insertOperator(handle.db, 'two'), { confirmedMsat: 700n });
    // Another user's deposit is none of theirs; a user with no deposit has nothing to spend.
    const other = await insertUser(handle.db);
    await insertDeposit(handle.db, other, await insertOperator(handle.db, 'three'), { confirmedMsat: 90_000n });
    await insertConnection(handle.db, await insertUser(handle.db), 'empty', { createdAt: 300, methods: ['get_balance'] });
  });

  afterAll(async () => {
    await handle?.close();
  });

  it("answers each check of one batch on its own, with the user's available balance: a stale grant fails beside a current one of the same connection", async () => {
    const cache = new ConnectionCache(handle.db);
    const checks = [
      cache.stillHolds(read('a', 100), false),
      cache.stillHolds(read('a', 99), false),
      cache.stillHolds(read('b', 200), false),
      cache.stillHolds(read('gone', 1), false),
      cache.stillHolds(read('b', 5), true),
      cache.stillHolds(read('gone', 1), true),
      cache.stillHolds(read('empty', 300), false),
      cache.stillHolds(read('a', 100), false),
    ];
    // 5 000 confirmed − 1 200 reserved + 700.
    const held = { availableMsat: 4_500n };
    expect(await Promise.all(checks)).toEqual([held, null, held, null, held, null, { availableMsat: 0n }, held]);
  });

  it("writes a connection's last use once a minute at most", async () => {
    const cache = new ConnectionCache(handle.db);
    const lastUsed = async () => (await handle.db.selectFrom('connections').select('last_used_at').where('pubkey', '=', 'a').executeTakeFirstOrThrow()).last_used_at;
    expect(await lastUsed()).toBeNull();
    await cache.noteUse('a');
    const first = await lastUsed();
    expect(first).toBeInstanceOf(Date);
    expect(Math.abs(first!.getTime() - Date.now())).toBeLessThan(60_000);
    const marker = new Date('2026-01-01T00:00:00Z');
    await handle.db.updateTable('connections').set({ last_used_at: marker }).where('pubkey', '=', 'a').execute();
    await cache.noteUse('a');
    expect(await lastUsed()).toEqual(marker);
    // Another instance, with a cache of its own, writes it anew.
    await new ConnectionCache(handle.db).noteUse('a');
    expect((await lastUsed())!.getTime()).toBeGreaterThan(marker.getTime());
  });
});

describe('grant checks passed again from memory', () => {
  it('on embedded PGlite: until any write ends, a passed check asks nothing; after one, it reads the balance and grant anew', async () => {
    const handle = await openTestDatabase('pglite');
    const query = PGlite.prototype.query;
    const statements = vi.spyOn(PGlite.prototype, 'query');
    try {
      const user = await insertUser(handle.db);
      await insertConnection(handle.db, user, 'a', { createdAt: 100, methods: ['get_balance'] });
      const operator = await insertOperator(handle.db, 'one');
      await insertDeposit(handle.db, user, operator, { confirmedMsat: 5_000n });
      const cache = new ConnectionCache(handle.db);
      const counted = async <T>(run: () => Promise<T>) => {
        statements.mockClear();
        const value = await run();
        return { value, statements: statements.mock.calls.length };
      };

      expect(await counted(() => cache.stillHolds(read('a', 100), false))).toEqual({ value: { availableMsat: 5_000n }, statements: 1 });
      expect(await counted(() => cache.stillHolds(read('a', 100), false))).toEqual({ value: { availableMsat: 5_000n }, statements: 0 });
      // A check of another grant, or of any grant, is a check of its own.
      expect(await counted(() => cache.stillHolds(read('a', 99), false))).toEqual({ value: null, statements: 1 });
      expect(await counted(() => cache.stillHolds(read('a', 100), true))).toEqual({ value: { availableMsat: 5_000n }, statements: 1 });

      // Money arrives: the next check sees it.
      await insertDeposit(handle.db, user, await insertOperator(handle.db, 'two'), { confirmedMsat: 700n });
      expect(await counted(() => cache.stillHolds(read('a', 100), false))).toEqual({ value: { availableMsat: 5_700n }, statements: 1 });

      // A write that ends while a check is on its way leaves that check's answer unremembered.
      const inFlight = cache.stillHolds(read('a', 100), true);
      const write = insertDeposit(handle.db, user, await insertOperator(handle.db, 'three'), { confirmedMsat: 10n });
      await Promise.all([inFlight, write]);
      expect(await counted(() => cache.stillHolds(read('a', 100), true))).toEqual({ value: { availableMsat: 5_710n }, statements: 1 });

      // The same when the write ends after the check's statement ran, and another check asked
      // meanwhile (its memory is then of the new count): the first answer may be the old state.
      // The statement is held open here, so the write's end is the clock's alone.
      let ran!: () => void;
      const statementRan = new Promise<void>((resolve) => (ran = resolve));
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      statements.mockImplementationOnce(async function (this: PGlite, ...args: unknown[]) {
        const result: unknown = await Reflect.apply(query, this, args);
        ran();
        await held;
        return result;
      } as PGlite['query']);
      const early = cache.stillHolds(read('a', 100), false);
      await statementRan;
      soleWriterClock(handle.db)!.ended('update deposits set confirmed_msat = 0');
      const meanwhile = cache.stillHolds(read('b', 1), true);
      release();
      expect(await early).toEqual({ availableMsat: 5_710n });
      expect(await meanwhile).toBeNull();
      expect(await counted(() => cache.stillHolds(read('a', 100), false))).toEqual({ value: { availableMsat: 5_710n }, statements: 1 });

      // The grant replaced (a newer one registered): the old one fails at once.
      await handle.db.updateTable('connections').set({ grant_created_at: 300 }).where('pubkey', '=', 'a').execute();
      expect(await counted(() => cache.stillHolds(read('a', 100), false))).toEqual({ value: null, statements: 1 });
      expect(await counted(() => cache.stillHolds(read('a', 300), false))).toEqual({ value: { availableMsat: 5_710n }, statements: 1 });
      expect(await counted(() => cache.stillHolds(read('a', 300), false))).toEqual({ value: { availableMsat: 5_710n }, statements: 0 });
    } finally {
      statements.mockRestore();
      await handle.close();
    }
  });

  it('never on PostgreSQL: a change made by another instance is seen by the very next check', async () => {
    const handle = await openTestDatabase('postgres');
    const { db: otherInstance } = await openDatabase({ databaseUrl: handle.databaseUrl });
    try {
      const user = await insertUser(handle.db);
      await insertConnection(handle.db, user, 'a', { createdAt: 100, methods: ['get_balance'] });
      await insertDeposit(handle.db, user, await insertOperator(handle.db, 'one'), { confirmedMsat: 5_000n });
      const cache = new ConnectionCache(handle.db);
      expect(await cache.stillHolds(read('a', 100), false)).toEqual({ availableMsat: 5_000n });
      await insertDeposit(otherInstance, user, await insertOperator(otherInstance, 'two'), { confirmedMsat: 700n });
      expect(await cache.stillHolds(read('a', 100), false)).toEqual({ availableMsat: 5_700n });
      await otherInstance.updateTable('connections').set({ grant_created_at: 300 }).where('pubkey', '=', 'a').execute();
      expect(await cache.stillHolds(read('a', 100), false)).toBeNull();
    } finally {
      await otherInstance.destroy();
      await handle.close();
    }
  });
});
