import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Db } from '../../src/db/database.ts';
import type { TransactionRow, TransactionState, TransactionType } from '../../src/db/schema.ts';
import { FinalityNotifier, type WalletContext } from '../../src/deposits/context.ts';
import { OperatorDirectory } from '../../src/deposits/operators.ts';
import { listTransactions, lookupTransaction, MAX_LIST_LIMIT, type TransactionFilter } from '../../src/deposits/transactions.ts';
import { silentLogger } from '../../src/log.ts';
import { Nip47Error } from '../../src/protocol/nip47-error.ts';
import { BACKENDS, openTestDatabase } from '../helpers/database.ts';
import { insertDeposit, insertOperator, insertUser, randomHex32, transactionRow } from '../helpers/deposit-rows.ts';

const NOW = 1_700_000_000;

/** A wallet context as src/app.ts builds it, with no vault operator connected and a fixed clock. */
function walletContext(db: Db): WalletContext {
  const operators = new OperatorDirectory(
    db,
    () => {
      throw new Error('no vault operator in these tests');
    },
    silentLogger,
  );
  return { db, operators, logger: silentLogger, finality: new FinalityNotifier(), stopping: new AbortController().signal, now: () => NOW };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

interface RowSpec {
  createdOffset: number;
  type: TransactionType;
  state: TransactionState;
  expiresOffset: number | null;
}

const rowSpec: fc.Arbitrary<RowSpec> = fc.record({
  // Around NOW, with ties, and some rows "from the future" (a clock ahead at the vault).
  createdOffset: fc.integer({ min: -8, max: 3 }),
  type: fc.constantFrom<TransactionType>('incoming', 'outgoing'),
  state: fc.constantFrom<TransactionState>('pending', 'settled', 'failed', 'expired'),
  expiresOffset: fc.option(fc.integer({ min: -5, max: 5 }), { nil: null }),
});

const filterSpec: fc.Arbitrary<TransactionFilter> = fc.record(
  {
    from: fc.integer({ min: NOW - 9, max: NOW + 4 }),
    until: fc.integer({ min: NOW - 9, max: NOW + 4 }),
    limit: fc.nat({ max: 20 }),
    offset: fc.nat({ max: 8 }),
    unpaid: fc.boolean(),
    type: fc.constantFrom<TransactionType>('incoming', 'outgoing'),
  },
  { requiredKeys: [] },
);

/** What listTransactions must return, computed the slow, obvious way. */
function expectedList(rows: readonly TransactionRow[], filter: TransactionFilter): bigint[] {
  const from = BigInt(filter.from ?? 0);
  const until = BigInt(filter.until ?? NOW);
  const kept = rows
    .map((r) => ({ ...r, state: r.type === 'incoming' && r.state === 'pending' && r.expires_at !== null && r.expires_at < BigInt(NOW) ? 'expired' : r.state }))
    .filter((r) => r.created_at >= from && r.created_at <= until)
    .filter((r) => filter.unpaid || r.state === 'settled')
    .filter((r) => !filter.type || r.type === filter.type)
    .sort((a, b) => (a.created_at !== b.created_at ? (a.created_at > b.created_at ? -1 : 1) : a.id > b.id ? -1 : 1));
  const offset = filter.offset ?? 0;
  return kept.slice(offset, offset + Math.min(filter.limit ?? MAX_LIST_LIMIT, MAX_LIST_LIMIT)).map((r) => r.id);
}

describe.each(BACKENDS)('transactions (%s)', (backend) => {
  let db: Db;
  let close: () => Promise<void>;
  let ctx: WalletContext;
  let operator: string;

  beforeAll(async () => {
    ({ db, close } = await openTestDatabase(backend));
    ctx = walletContext(db);
    operator = await insertOperator(db);
  });
  afterAll(async () => {
    await close();
  });

  async function newUser(): Promise<{ user: string; depositId: bigint }> {
    const user = await insertUser(db);
    return { user, depositId: await insertDeposit(db, user, operator) };
  }

  describe('listTransactions', () => {
    it('matches a plain reading of the filter for any rows and any filter', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(rowSpec, { maxLength: 30 }), filterSpec, async (specs, filter) => {
          const { user, depositId } = await newUser();
          const rows =
            specs.length === 0
              ? []
              : await db
                  .insertInto('transactions')
                  .values(
                    specs.map((s) =>
                      transactionRow(user, depositId, {
                        type: s.type,
                        state: s.state,
                        step: s.type === 'outgoing' && s.state === 'pending' ? 'sent' : 'final',
                        created_at: NOW + s.createdOffset,
                        expires_at: s.expiresOffset === null ? null : NOW + s.createdOffset + s.expiresOffset,
                      }),
                    ),
                  )
                  .returningAll()
                  .execute();
          const listed = await listTransactions(ctx, user, filter);
          expect(listed.map((r) => r.id)).toEqual(expectedList(rows, filter));
          for (const r of listed) expect(r.user_pubkey).toBe(user);
        }),
        { numRuns: 40 },
      );
    });

    it('lists only settled ones unless unpaid is asked for, newest first', async () => {
      const { user, depositId } = await newUser();
      const ids: Record<string, bigint> = {};
      for (const [name, fields] of [
        ['old settled', { state: 'settled', created_at: NOW - 30 }],
        ['failed', { state: 'failed', type: 'outgoing', created_at: NOW - 20 }],
        ['new settled', { state: 'settled', type: 'outgoing', created_at: NOW - 10 }],
        ['pending', { state: 'pending', created_at: NOW - 5, expires_at: NOW + 100 }],
      ] as const) {
        ids[name] = (await db.insertInto('transactions').values(transactionRow(user, depositId, fields)).returning('id').executeTakeFirstOrThrow()).id;
      }
      expect((await listTransactions(ctx, user, {})).map((r) => r.id)).toEqual([ids['new settled'], ids['old settled']]);
      expect((await listTransactions(ctx, user, { unpaid: true })).map((r) => r.id)).toEqual([ids.pending, ids['new settled'], ids.failed, ids['old settled']]);
      expect((await listTransactions(ctx, user, { unpaid: true, type: 'outgoing' })).map((r) => r.id)).toEqual([ids['new settled'], ids.failed]);
      expect((await listTransactions(ctx, user, { type: 'incoming' })).map((r) => r.id)).toEqual([ids['old settled']]);
    });

    it('treats from and until as inclusive bounds and leaves out rows after now by default', async () => {
      const { user, depositId } = await newUser();
      const at = async (created_at: number) => (await db.insertInto('transactions').values(transactionRow(user, depositId, { created_at })).returning('id').executeTakeFirstOrThrow()).id;
      const [a, b, c, future] = [await at(NOW - 3), await at(NOW - 2), await at(NOW - 1), await at(NOW + 60)];
      expect((await listTransactions(ctx, user, { from: NOW - 2, until: NOW - 1 })).map((r) => r.id)).toEqual([c, b]);
      expect((await listTransactions(ctx, user, { until: NOW - 3 })).map((r) => r.id)).toEqual([a]);
      expect((await listTransactions(ctx, user, {})).map((r) => r.id)).toEqual([c, b, a]);
      expect((await listTransactions(ctx, user, { until: NOW + 60 })).map((r) => r.id)).toEqual([future, c, b, a]);
    });

    it('pages with limit and offset, breaking created_at ties by insertion order', async () => {
      const { user, depositId } = await newUser();
      const rows = await db
        .insertInto('transactions')
        .values(Array.from({ length: 7 }, () => transactionRow(user, depositId, { created_at: NOW - 1 })))
        .returning('id')
        .execute();
      const newestFirst = rows.map((r) => r.id).reverse();
      expect((await listTransactions(ctx, user, { limit: 3 })).map((r) => r.id)).toEqual(newestFirst.slice(0, 3));
      expect((await listTransactions(ctx, user, { limit: 3, offset: 3 })).map((r) => r.id)).toEqual(newestFirst.slice(3, 6));
      expect((await listTransactions(ctx, user, { limit: 3, offset: 6 })).map((r) => r.id)).toEqual(newestFirst.slice(6));
      expect(await listTransactions(ctx, user, { offset: 7 })).toEqual([]);
    });

    it(`returns at most ${MAX_LIST_LIMIT} rows, whatever limit is asked for`, async () => {
      const { user, depositId } = await newUser();
      const total = MAX_LIST_LIMIT + 3;
      await db
        .insertInto('transactions')
        .values(Array.from({ length: total }, (_, i) => transactionRow(user, depositId, { created_at: NOW - total + i })))
        .execute();
      for (const filter of [{}, { limit: MAX_LIST_LIMIT + 1 }, { limit: 1_000_000 }]) {
        const listed = await listTransactions(ctx, user, filter);
        expect(listed).toHaveLength(MAX_LIST_LIMIT);
        // The newest ones: the three oldest fall off the page.
        expect(listed[0]!.created_at).toBe(BigInt(NOW - 1));
        expect(listed.at(-1)!.created_at).toBe(BigInt(NOW - MAX_LIST_LIMIT));
      }
    });

    it('marks pending invoices past their expiry as expired, and nothing else', async () => {
      const { user, depositId } = await newUser();
      const insert = async (fields: Parameters<typeof transactionRow>[2]) =>
        (await db.insertInto('transactions').values(transactionRow(user, depositId, { state: 'pending', created_at: NOW - 100, ...fields })).returning('id').executeTakeFirstOrThrow()).id;
      const expired = await insert({ expires_at: NOW - 1 });
      const atExpiry = await insert({ expires_at: NOW });
      const noExpiry = await insert({ expires_at: null });
      const outgoing = await insert({ type: 'outgoing', step: 'sent', expires_at: NOW - 1 });
      const other = await newUser();
      const othersExpired = (
        await db.insertInto('transactions').values(transactionRow(other.user, other.depositId, { state: 'pending', created_at: NOW - 100, expires_at: NOW - 1 })).returning('id').executeTakeFirstOrThrow()
      ).id;

      const listed = new Map((await listTransactions(ctx, user, { unpaid: true })).map((r) => [r.id, r.state]));
      expect(Object.fromEntries([expired, atExpiry, noExpiry, outgoing].map((id) => [id.toString(), listed.get(id)]))).toEqual({
        [expired.toString()]: 'expired',
        [atExpiry.toString()]: 'pending',
        [noExpiry.toString()]: 'pending',
        [outgoing.toString()]: 'pending',
      });
      // Another user's rows are not touched by this user's listing.
      expect((await db.selectFrom('transactions').select('state').where('id', '=', othersExpired).executeTakeFirstOrThrow()).state).toBe('pending');
    });

    it("never lists another user's transactions", async () => {
      const a = await newUser();
      const b = await newUser();
      await db.insertInto('transactions').values(transactionRow(a.user, a.depositId, { created_at: NOW - 1 })).execute();
      expect(await listTransactions(ctx, b.user, { unpaid: true })).toEqual([]);
    });
  });

  describe('lookupTransaction', () => {
    it('reports an invoice past its expiry as expired, as list_transactions does, even when its vault cannot be asked', async () => {
      const { user, depositId } = await newUser();
      const paymentHash = randomHex32();
      await db
        .insertInto('transactions')
        .values(transactionRow(user, depositId, { type: 'incoming', state: 'pending', payment_hash: paymentHash, created_at: NOW - 7200, expires_at: NOW - 3600 }))
        .execute();
      expect((await lookupTransaction(ctx, user, { paymentHash })).state).toBe('expired');
    });

    it('refuses a lookup by neither payment hash nor invoice instead of returning some transaction', async () => {
      const { user, depositId } = await newUser();
      await db.insertInto('transactions').values(transactionRow(user, depositId, { created_at: NOW - 1 })).execute();
      const error = await rejection(lookupTransaction(ctx, user, {}));
      expect((error as Nip47Error).code).toBe('BAD_REQUEST');
    });

    it('answers NOT_FOUND for an unknown payment hash or invoice', async () => {
      const { user } = await newUser();
      for (const by of [{ paymentHash: randomHex32() }, { invoice: 'lnbcrt1nothing' }]) {
        const error = await rejection(lookupTransaction(ctx, user, by));
        expect(error).toBeInstanceOf(Nip47Error);
        expect((error as Nip47Error).code).toBe('NOT_FOUND');
      }
    });

    it("answers NOT_FOUND for another user's payment hash", async () => {
      const owner = await newUser();
      const stranger = await newUser();
      const paymentHash = randomHex32();
      await db.insertInto('transactions').values(transactionRow(owner.user, owner.depositId, { payment_hash: paymentHash })).execute();
      const error = await rejection(lookupTransaction(ctx, stranger.user, { paymentHash }));
      expect((error as Nip47Error).code).toBe('NOT_FOUND');
      expect((await lookupTransaction(ctx, owner.user, { paymentHash })).payment_hash).toBe(paymentHash);
    });

    it('prefers the settled attempt over a failed one for the same payment hash, even a newer failed one', async () => {
      const { user, depositId } = await newUser();
      const paymentHash = randomHex32();
      const attempt = (state: TransactionState, created_at: number) =>
        transactionRow(user, depositId, { type: 'outgoing', state, payment_hash: paymentHash, created_at, request_event_id: randomHex32() });
      await db.insertInto('transactions').values(attempt('failed', NOW - 30)).execute();
      const settled = await db.insertInto('transactions').values(attempt('settled', NOW - 20)).returning('id').executeTakeFirstOrThrow();
      await db.insertInto('transactions').values(attempt('failed', NOW - 10)).execute();
      await db.insertInto('transactions').values(attempt('failed', NOW - 10)).execute();
      expect((await lookupTransaction(ctx, user, { paymentHash })).id).toBe(settled.id);
    });

    it('without a settled attempt, returns the newest one', async () => {
      const { user, depositId } = await newUser();
      const paymentHash = randomHex32();
      const ids: bigint[] = [];
      for (const created_at of [NOW - 10, NOW - 5, NOW - 5]) {
        const row = await db
          .insertInto('transactions')
          .values(transactionRow(user, depositId, { type: 'outgoing', state: 'failed', payment_hash: paymentHash, created_at }))
          .returning('id')
          .executeTakeFirstOrThrow();
        ids.push(row.id);
      }
      expect((await lookupTransaction(ctx, user, { paymentHash })).id).toBe(ids[2]);
    });

    it('finds a transaction by its invoice, whatever its case or surrounding space', async () => {
      const { user, depositId } = await newUser();
      const row = await db.insertInto('transactions').values(transactionRow(user, depositId, { invoice: 'lnbcrt10n1pexample' })).returning('id').executeTakeFirstOrThrow();
      expect((await lookupTransaction(ctx, user, { invoice: '  LNBCRT10N1PEXAMPLE\n' })).id).toBe(row.id);
    });

    it('needs both the hash and the invoice to match when both are given', async () => {
      const { user, depositId } = await newUser();
      const paymentHash = randomHex32();
      await db.insertInto('transactions').values(transactionRow(user, depositId, { payment_hash: paymentHash, invoice: 'lnbcrt1pone' })).execute();
      expect((await lookupTransaction(ctx, user, { paymentHash, invoice: 'lnbcrt1pone' })).payment_hash).toBe(paymentHash);
      expect(((await rejection(lookupTransaction(ctx, user, { paymentHash, invoice: 'lnbcrt1ptwo' }))) as Nip47Error).code).toBe('NOT_FOUND');
    });

    it('returns a pending payment as pending when its vault operator is not connected', async () => {
      const { user, depositId } = await newUser();
      const paymentHash = randomHex32();
      const row = await db
        .insertInto('transactions')
        .values(transactionRow(user, depositId, { type: 'outgoing', state: 'pending', step: 'sent', payment_hash: paymentHash, idempotency_key: randomHex32() }))
        .returning('id')
        .executeTakeFirstOrThrow();
      const found = await lookupTransaction(ctx, user, { paymentHash });
      expect(found).toMatchObject({ id: row.id, state: 'pending', step: 'sent' });
    });
  });
});
