import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Db } from '../../src/db/database.ts';
import type { Connection } from '../../src/deposits/connections.ts';
import { spendUsage, spendUsageFrom, spendUsageQuery, usageWindows } from '../../src/deposits/spending.ts';
import { budgetWindow } from '../../src/protocol/budget.ts';
import type { Grant, SpendUsage } from '../../src/protocol/grant.ts';
import { BACKENDS, openTestDatabase } from '../helpers/database.ts';
import { insertConnection, insertDeposit, insertOperator, insertUser, randomHex32, transactionRow } from '../helpers/deposit-rows.ts';

const NOW = 1_767_225_600 + 5 * 86_400 + 7_200; // a Tuesday, 02:00 UTC

type Row = { state: 'pending' | 'settled' | 'failed'; ageSeconds: number; amount: bigint; fee: bigint; reserve: bigint; other: boolean };

/** What the grant's limits count (`limited`: only those it sets), from the rows themselves. */
function expected(rows: readonly Row[], grant: Pick<Grant, 'budget' | 'velocity'>, only: 'limited' | 'all'): SpendUsage {
  const live = rows.filter((r) => !r.other && r.state !== 'failed');
  const windowStart = grant.budget ? budgetWindow(grant.budget.renewal, NOW).start : null;
  const inWindow = windowStart === null ? [] : live.filter((r) => NOW - r.ageSeconds >= windowStart);
  const inHour = grant.velocity || only === 'all' ? live.filter((r) => r.ageSeconds <= 3_600) : [];
  return {
    usedMsat: inWindow.reduce((sum, r) => sum + r.amount + (r.state === 'settled' ? r.fee : r.reserve), 0n),
    lastHour: { payments: inHour.length, amountMsat: inHour.reduce((sum, r) => sum + r.amount, 0n) },
  };
}

describe.each(BACKENDS)('spending a connection has committed (%s)', (backend) => {
  let db: Db;
  let close: () => Promise<void>;
  let operator: string;

  beforeAll(async () => {
    ({ db, close } = await openTestDatabase(backend));
    operator = await insertOperator(db);
  });
  afterAll(async () => {
    await close();
  });

  const grants: [string, Pick<Grant, 'budget' | 'velocity'>][] = [
    ['no limit', { budget: null, velocity: null }],
    ['a weekly budget', { budget: { amountMsat: 1n, renewal: 'weekly' }, velocity: null }],
    ['a budget that never renews', { budget: { amountMsat: 1n, renewal: 'never' }, velocity: null }],
    ['an hourly velocity', { budget: null, velocity: { paymentsPerHour: 1, amountMsatPerHour: null } }],
    ['a daily budget and an hourly velocity', { budget: { amountMsat: 1n, renewal: 'daily' }, velocity: { paymentsPerHour: null, amountMsatPerHour: 1n } }],
  ];

  it.each(grants)('counts what %s limits, from the connection’s own pending and settled payments (for admission, only that)', async (_, limits) => {
    const row = fc.record({
      state: fc.constantFrom('pending' as const, 'settled' as const, 'failed' as const),
      ageSeconds: fc.integer({ min: 0, max: 20 * 86_400 }),
      amount: fc.bigInt({ min: 1n, max: 10_000_000n }),
      fee: fc.bigInt({ min: 0n, max: 10_000n }),
      reserve: fc.bigInt({ min: 0n, max: 10_000n }),
      other: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(row, { maxLength: 12 }), async (rows) => {
        const user = await insertUser(db);
        const deposit = await insertDeposit(db, user, operator);
        const mine = randomHex32();
        const theirs = randomHex32();
        await insertConnection(db, user, mine);
        await insertConnection(db, user, theirs);
        for (const r of rows) {
          await db
            .insertInto('transactions')
            .values(
              transactionRow(user, deposit, {
                type: 'outgoing',
                state: r.state,
                connection_pubkey: r.other ? theirs : mine,
                amount_msat: r.amount,
                fee_msat: r.state === 'settled' ? r.fee : 0n,
                fee_reserve_msat: r.reserve,
                created_at: NOW - r.ageSeconds,
              }),
            )
            .execute();
        }
        const connection = { pubkey: mine, grant: limits } as unknown as Connection;
        expect(await spendUsage(db, connection, NOW)).toEqual(expected(rows, limits, 'all'));
        expect(spendUsageFrom(await spendUsageQuery(db, connection.pubkey, usageWindows(connection, NOW, 'limited')).executeTakeFirstOrThrow())).toEqual(expected(rows, limits, 'limited'));
      }),
      { numRuns: 15 },
    );
  });
});
