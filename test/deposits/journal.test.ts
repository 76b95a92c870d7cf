import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sql } from 'kysely';
import type { Db } from '../../src/db/database.ts';
import { changeDepositMoney, type MoneyChange } from '../../src/deposits/journal.ts';
import { BACKENDS, openTestDatabase } from '../helpers/database.ts';
import { insertDeposit, insertOperator, insertUser } from '../helpers/deposit-rows.ts';

async function depositRow(db: Db, id: bigint) {
  return db.selectFrom('deposits').select(['confirmed_msat', 'reserved_msat']).where('id', '=', id).executeTakeFirstOrThrow();
}

async function journalOf(db: Db, id: bigint) {
  return db.selectFrom('journal_entries').select(['kind', 'transaction_id', 'confirmed_delta_msat', 'reserved_delta_msat']).where('deposit_id', '=', id).orderBy('id').execute();
}

/** Each of `ids` with its balances and the sums of its journal entries. */
async function balancesAndJournalSums(db: Db, ids: readonly bigint[]) {
  const rows = await db
    .selectFrom('deposits')
    .leftJoin('journal_entries', 'journal_entries.deposit_id', 'deposits.id')
    .select([
      'deposits.id',
      'deposits.confirmed_msat',
      'deposits.reserved_msat',
      sql<bigint>`coalesce(sum(journal_entries.confirmed_delta_msat), 0)::bigint`.as('journal_confirmed'),
      sql<bigint>`coalesce(sum(journal_entries.reserved_delta_msat), 0)::bigint`.as('journal_reserved'),
      sql<bigint>`count(journal_entries.id)::bigint`.as('entries'),
    ])
    .where('deposits.id', 'in', [...ids])
    .groupBy(['deposits.id', 'deposits.confirmed_msat', 'deposits.reserved_msat'])
    .orderBy('deposits.id')
    .execute();
  expect(rows).toHaveLength(ids.length);
  return rows;
}

const credit = (depositId: bigint, amount: bigint): MoneyChange => ({ depositId, transactionId: null, kind: 'credit', confirmedDeltaMsat: amount, reservedDeltaMsat: 0n });
const reserve = (depositId: bigint, amount: bigint): MoneyChange => ({
  depositId,
  transactionId: null,
  kind: 'reserve',
  confirmedDeltaMsat: 0n,
  reservedDeltaMsat: amount,
  requireAvailableMsat: amount,
});

// Operations of the property test. Releases and debits settle a reservation that succeeded
// earlier (the way payments do), chosen by `pick` among the ones still open on that deposit.
type Op =
  | { kind: 'credit'; deposit: number; amount: bigint }
  | { kind: 'reserve'; deposit: number; amount: bigint }
  | { kind: 'release'; deposit: number; pick: number }
  | { kind: 'debit'; deposit: number; pick: number; feeShare: number }
  | { kind: 'rolled-back credit'; deposit: number; amount: bigint };

const DEPOSITS = 3;
const deposit = fc.nat({ max: DEPOSITS - 1 });
const amount = fc.bigInt({ min: 1n, max: 5_000n });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('credit' as const), deposit, amount }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('reserve' as const), deposit, amount }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), deposit, pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('debit' as const), deposit, pick: fc.nat(), feeShare: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rolled-back credit' as const), deposit, amount }) },
);
/** A step is one operation, or several run at once, each in its own database transaction. */
const steps = fc.array(fc.array(op, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 12 });

class RolledBack extends Error {}

describe.each(BACKENDS)('changeDepositMoney (%s)', (backend) => {
  let db: Db;
  let close: () => Promise<void>;
  const operators: string[] = [];

  beforeAll(async () => {
    ({ db, close } = await openTestDatabase(backend));
    for (let i = 0; i < DEPOSITS; i++) operators.push(await insertOperator(db, `op${i}`));
  });
  afterAll(async () => {
    await close();
  });

  /** A new user with one deposit at each operator, holding `confirmed` each. */
  async function freshDeposits(confirmed = 0n): Promise<bigint[]> {
    const user = await insertUser(db);
    const ids: bigint[] = [];
    for (const op of operators) ids.push(await insertDeposit(db, user, op, { confirmedMsat: confirmed }));
    return ids;
  }

  it('applies the deltas, returns the new row and writes exactly one journal entry with them', async () => {
    const [id] = await freshDeposits(10_000n);
    const tx = await db.transaction().execute((trx) => changeDepositMoney(trx, { ...reserve(id!, 4_000n), confirmedDeltaMsat: 0n }));
    expect(tx).toMatchObject({ id, confirmed_msat: 10_000n, reserved_msat: 4_000n });
    const debited = await changeDepositMoney(db, { depositId: id!, transactionId: null, kind: 'debit', confirmedDeltaMsat: -3_900n, reservedDeltaMsat: -4_000n });
    expect(debited).toMatchObject({ confirmed_msat: 6_100n, reserved_msat: 0n });
    expect(await depositRow(db, id!)).toEqual({ confirmed_msat: 6_100n, reserved_msat: 0n });
    expect(await journalOf(db, id!)).toEqual([
      { kind: 'reserve', transaction_id: null, confirmed_delta_msat: 0n, reserved_delta_msat: 4_000n },
      { kind: 'debit', transaction_id: null, confirmed_delta_msat: -3_900n, reserved_delta_msat: -4_000n },
    ]);
  });

  it('is journaled by the database itself: a change of money naming no entry is refused, and each entry is the change as it happened', async () => {
    const [id] = await freshDeposits(1_000n);
    await expect(db.updateTable('deposits').set({ confirmed_msat: 2_000n }).where('id', '=', id!).execute()).rejects.toThrow(/without a journal entry kind/);
    await db
      .updateTable('deposits')
      .set((eb) => ({ confirmed_msat: eb('confirmed_msat', '+', 500n), reserved_msat: 300n, journal_kind: 'credit' }))
      .where('id', '=', id!)
      .execute();
    expect(await depositRow(db, id!)).toEqual({ confirmed_msat: 1_500n, reserved_msat: 300n });
    expect(await journalOf(db, id!)).toEqual([{ kind: 'credit', transaction_id: null, confirmed_delta_msat: 500n, reserved_delta_msat: 300n }]);
    // The kind is not kept for the next change, which must name its own.
    await expect(db.updateTable('deposits').set({ reserved_msat: 0n }).where('id', '=', id!).execute()).rejects.toThrow(/without a journal entry kind/);
    // An update that leaves the money as it is needs none and writes none.
    await db.updateTable('deposits').set({ vault_balance_msat: 1_500n, vault_balance_seq: 1 }).where('id', '=', id!).execute();
    expect(await journalOf(db, id!)).toHaveLength(1);
    expect(await db.selectFrom('deposits').select(['journal_kind', 'journal_transaction_id']).where('id', '=', id!).executeTakeFirstOrThrow()).toEqual({
      journal_kind: null,
      journal_transaction_id: null,
    });
  });

  it('reserves exactly the available balance', async () => {
    const [id] = await freshDeposits(10_000n);
    expect(await changeDepositMoney(db, reserve(id!, 6_000n))).not.toBeNull();
    expect(await changeDepositMoney(db, reserve(id!, 4_000n))).toMatchObject({ confirmed_msat: 10_000n, reserved_msat: 10_000n });
  });

  it('refuses a reservation above the available balance and changes nothing, not even the journal', async () => {
    const [id, other] = await freshDeposits(10_000n);
    expect(await changeDepositMoney(db, reserve(id!, 7_000n))).not.toBeNull();
    const before = await journalOf(db, id!);
    // 3 000 available: 3 001 is refused although the confirmed balance (10 000) would cover it.
    expect(await db.transaction().execute((trx) => changeDepositMoney(trx, reserve(id!, 3_001n)))).toBeNull();
    expect(await changeDepositMoney(db, { ...credit(id!, 0n), requireAvailableMsat: 3_001n })).toBeNull();
    expect(await depositRow(db, id!)).toEqual({ confirmed_msat: 10_000n, reserved_msat: 7_000n });
    expect(await journalOf(db, id!)).toEqual(before);
    // The other deposit's money is not the refused one's to use.
    expect(await depositRow(db, other!)).toEqual({ confirmed_msat: 10_000n, reserved_msat: 0n });
  });

  it('returns null and writes no journal entry for a deposit that does not exist', async () => {
    const count = () => db.selectFrom('journal_entries').select(sql<bigint>`count(*)::bigint`.as('n')).executeTakeFirstOrThrow();
    const before = await count();
    expect(await changeDepositMoney(db, credit(987_654_321n, 5n))).toBeNull();
    expect(await count()).toEqual(before);
  });

  it('is refused by the database when a change would reserve more than is confirmed, leaving no trace', async () => {
    const [id] = await freshDeposits(1_000n);
    // No requireAvailableMsat: only the CHECK constraint stands in the way.
    await expect(db.transaction().execute((trx) => changeDepositMoney(trx, { ...reserve(id!, 1_001n), requireAvailableMsat: undefined }))).rejects.toThrow(
      /deposits_reserved_within_confirmed/,
    );
    await expect(
      db.transaction().execute((trx) => changeDepositMoney(trx, { depositId: id!, transactionId: null, kind: 'debit', confirmedDeltaMsat: -1_001n, reservedDeltaMsat: 0n })),
    ).rejects.toThrow(/deposits_reserved_within_confirmed/);
    await expect(
      db.transaction().execute((trx) => changeDepositMoney(trx, { depositId: id!, transactionId: null, kind: 'release', confirmedDeltaMsat: 0n, reservedDeltaMsat: -1n })),
    ).rejects.toThrow(/deposits_reserved_within_confirmed/);
    expect(await depositRow(db, id!)).toEqual({ confirmed_msat: 1_000n, reserved_msat: 0n });
    expect(await journalOf(db, id!)).toEqual([]);
  });

  it('writes its journal entry in the caller’s transaction, so a rollback undoes both', async () => {
    const [id] = await freshDeposits(0n);
    await expect(
      db.transaction().execute(async (trx) => {
        expect(await changeDepositMoney(trx, credit(id!, 500n))).not.toBeNull();
        throw new RolledBack();
      }),
    ).rejects.toBeInstanceOf(RolledBack);
    expect(await depositRow(db, id!)).toEqual({ confirmed_msat: 0n, reserved_msat: 0n });
    expect(await journalOf(db, id!)).toEqual([]);
  });

  it('lets exactly as many concurrent reservations through as the balance covers', async () => {
    const [id] = await freshDeposits(10_000n);
    const results = await Promise.all(Array.from({ length: 12 }, () => db.transaction().execute((trx) => changeDepositMoney(trx, reserve(id!, 1_000n)))));
    expect(results.filter((r) => r !== null)).toHaveLength(10);
    expect(await depositRow(db, id!)).toEqual({ confirmed_msat: 10_000n, reserved_msat: 10_000n });
    expect(await journalOf(db, id!)).toHaveLength(10);
  });

  it('keeps balances equal to the journal and never overdraws, under any sequence of concurrent changes', async () => {
    await fc.assert(
      fc.asyncProperty(steps, async (plan) => {
        const ids = await freshDeposits();
        // What the test knows happened: the model every row must agree with.
        const model = ids.map(() => ({ confirmed: 0n, reserved: 0n, entries: 0 }));
        const open: bigint[][] = ids.map(() => []);

        for (const step of plan) {
          // Releases and debits take their reservation before the step runs, so two
          // concurrent operations never settle the same one (as a payment's row lock ensures).
          const changes = step.map((o): { change: MoneyChange; rollback: boolean } | null => {
            const depositId = ids[o.deposit]!;
            switch (o.kind) {
              case 'credit':
                return { change: credit(depositId, o.amount), rollback: false };
              case 'rolled-back credit':
                return { change: credit(depositId, o.amount), rollback: true };
              case 'reserve':
                return { change: reserve(depositId, o.amount), rollback: false };
              case 'release':
              case 'debit': {
                const list = open[o.deposit]!;
                if (list.length === 0) return null;
                const [held] = list.splice(o.pick % list.length, 1) as [bigint];
                if (o.kind === 'release') return { change: { depositId, transactionId: null, kind: 'release', confirmedDeltaMsat: 0n, reservedDeltaMsat: -held }, rollback: false };
                const spent = (held * BigInt(Math.round(o.feeShare * 1000))) / 1000n;
                return { change: { depositId, transactionId: null, kind: 'debit', confirmedDeltaMsat: -spent, reservedDeltaMsat: -held }, rollback: false };
              }
            }
          });
          const outcomes = await Promise.all(
            changes.map(async (c) => {
              if (!c) return null;
              try {
                return await db.transaction().execute(async (trx) => {
                  const row = await changeDepositMoney(trx, c.change);
                  // Holding the row lock a little longer makes the others queue behind it.
                  await sql`select 1`.execute(trx);
                  if (c.rollback) throw new RolledBack();
                  return row;
                });
              } catch (error) {
                if (error instanceof RolledBack) return null;
                throw error;
              }
            }),
          );
          outcomes.forEach((row, i) => {
            const c = changes[i];
            if (!c || row === null) return;
            const index = ids.indexOf(c.change.depositId);
            const m = model[index]!;
            m.confirmed += c.change.confirmedDeltaMsat;
            m.reserved += c.change.reservedDeltaMsat;
            m.entries += 1;
            if (c.change.kind === 'reserve') open[index]!.push(c.change.reservedDeltaMsat);
          });
          // A reservation refused here must really not have fitted: none that fits is turned away
          // when it ran alone.
          if (step.length === 1 && changes[0]?.change.kind === 'reserve') {
            const m = model[ids.indexOf(changes[0].change.depositId)]!;
            const fits = outcomes[0] !== null;
            if (!fits) expect(m.confirmed - m.reserved < changes[0].change.reservedDeltaMsat).toBe(true);
          }

          const rows = await balancesAndJournalSums(db, ids);
          let total = 0n;
          rows.forEach((row, i) => {
            expect(row.confirmed_msat).toBe(row.journal_confirmed);
            expect(row.reserved_msat).toBe(row.journal_reserved);
            expect(row.reserved_msat >= 0n).toBe(true);
            expect(row.confirmed_msat >= row.reserved_msat).toBe(true);
            expect({ confirmed: row.confirmed_msat, reserved: row.reserved_msat, entries: Number(row.entries) }).toEqual(model[i]);
            total += row.confirmed_msat;
          });
          expect(total >= 0n).toBe(true);
        }
      }),
      { numRuns: 30 },
    );
  });
});
