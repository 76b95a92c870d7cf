import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { compiledOnce } from '../../src/db/compiled-once.ts';
import type { Db } from '../../src/db/database.ts';
import { BACKENDS, openTestDatabase } from '../helpers/database.ts';
import { insertOperator } from '../helpers/deposit-rows.ts';

describe.each(BACKENDS)('compiledOnce (%s)', (backend) => {
  let db: Db;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ db, close } = await openTestDatabase(backend));
    for (const name of ['a', 'b', 'c']) await insertOperator(db, name, `${name}-key`);
  });
  afterAll(async () => {
    await close();
  });

  it('runs the statement with each call’s values, as the builder would, null and arrays included', async () => {
    const byName = compiledOnce(['name', 'keys', 'score'], (qb, a: { name: string | null; keys: string[]; score: number }) =>
      qb
        .selectFrom('vault_operators')
        .select(['name', 'node_pubkey'])
        .where((eb) => eb.or([eb('name', '=', a.name), eb('node_pubkey', '=', sql<string>`any(${a.keys}::text[])`)]))
        .where('score', '>=', a.score)
        .orderBy('name'),
    );
    expect((await byName(db, { name: 'a', keys: [], score: 0 })).rows).toEqual([{ name: 'a', node_pubkey: 'a-key' }]);
    expect((await byName(db, { name: null, keys: ['b-key', 'c-key'], score: 0 })).rows.map((r) => r.name)).toEqual(['b', 'c']);
    expect((await byName(db, { name: 'c', keys: ['a-key'], score: 0.9 })).rows).toEqual([]);
    // In a transaction too, on its connection.
    const inTx = await db.transaction().execute((trx) => byName(trx, { name: 'b', keys: [], score: 0 }));
    expect(inTx.rows).toEqual([{ name: 'b', node_pubkey: 'b-key' }]);
  });

  it('refuses at its first run a statement whose text would depend on a value (a stand-in used outside a value place)', async () => {
    const shapeDependsOnValue = compiledOnce(['name'], (qb, a: { name: string | null }) => {
      const query = qb.selectFrom('vault_operators').select('name');
      return a.name === null ? query : query.where('name', '=', 'fixed');
    });
    await expect(shapeDependsOnValue(db, { name: 'a' })).rejects.toThrow(/name did not reach the statement's parameters/);
  });
});
