import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
