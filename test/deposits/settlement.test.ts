import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { Db } from '../../src/db/database.ts';
import { FinalityNotifier, type WalletContext } from '../../src/deposits/context.ts';
import { applyInvoiceSettled } from '../../src/deposits/invoices.ts';
import { changeDepositMoney } from '../../src/deposits/journal.ts';
import { applyPaymentState } from '../../src/deposits/payments.ts';
import { listTransactions } from '../../src/deposits/transactions.ts';
import { silentLogger } from '../../src/log.ts';
import type { VaultPayment } from '../../src/protocol/vault-api.ts';
import { BACKENDS, openTestDatabase } from '../helpers/database.ts';
import { insertDeposit, insertUser, randomHex32, transactionRow } from '../helpers/deposit-rows.ts';
import { standInOperator } from '../helpers/stand-in-operator.ts';

const NOW = 1_700_000_000;


function vaultPayment(fields: Partial<VaultPayment>): VaultPayment {
  return {
    idempotency_key: randomHex32(),
    payment_hash: randomHex32(),
    state: 'settled',
    amount_msat: 10_000n,
    max_fee_msat: 100n,
    fee_msat: 0n,
    preimage: randomHex32(),
    failure_reason: null,
    created_at: NOW,
    settled_at: NOW,
    balance_update: null,
    ...fields,
  };
}

describe.each(BACKENDS)('finalizing money movements (%s)', (backend) => {
  let db: Db;
  let close: () => Promise<void>;
  let ctx: WalletContext;
  let operator: string;
  let signBalance: Awaited<ReturnType<typeof standInOperator>>['signBalance'];

  beforeAll(async () => {
    ({ db, close } = await openTestDatabase(backend));
    const standIn = await standInOperator(db);
    ({ nodePubkey: operator, signBalance } = standIn);
    ctx = { db, operators: standIn.operators, logger: silentLogger, finality: new FinalityNotifier(), stopping: new AbortController().signal, now: () => NOW };
  });
  afterAll(async () => {
    await close();
  });

  async function deposit(confirmedMsat = 0n) {
    const user = await insertUser(db);
    const id = await insertDeposit(db, user, operator, { confirmedMsat });
    const row = await db.selectFrom('deposits').select('remote_deposit_id').where('id', '=', id).executeTakeFirstOrThrow();
    return { user, id, remoteId: row.remote_deposit_id };
  }

  async function money(id: bigint) {
    const row = await db.selectFrom('deposits').select(['confirmed_msat', 'reserved_msat']).where('id', '=', id).executeTakeFirstOrThrow();
    const journal = await db.selectFrom('journal_entries').select(['kind', 'confirmed_delta_msat', 'reserved_delta_msat']).where('deposit_id', '=', id).orderBy('id').execute();
    return { confirmed: row.confirmed_msat, reserved: row.reserved_msat, journal: journal.map((j) => `${j.kind} ${j.confirmed_delta_msat} ${j.reserved_delta_msat}`) };
  }

  describe('applyInvoiceSettled', () => {
    async function pendingInvoice(d: { user: string; id: bigint }, fields: Parameters<typeof transactionRow>[2] = {}) {
      return db
        .insertInto('transactions')
        .values(transactionRow(d.user, d.id, { type: 'incoming', state: 'pending', amount_msat: 5_000n, created_at: NOW - 100, expires_at: NOW + 3_600, ...fields }))
        .returningAll()
        .executeTakeFirstOrThrow();
    }
    /** A settlement as a vault reports it, with the balance after the credit signed by both peers. */
    const settlement = (d: { remoteId: string }, paymentHash: string, amountMsat = 5_000n) => ({
      remoteDepositId: d.remoteId,
      paymentHash,
      amountMsat,
      preimage: randomHex32(),
      settledAt: NOW - 1,
      balanceUpdate: signBalance(d.remoteId, amountMsat),
    });

    it('credits a settled invoice once, however often the settlement is reported', async () => {
      const d = await deposit();
      const tx = await pendingInvoice(d);
      const report = settlement(d, tx.payment_hash);
      expect(await applyInvoiceSettled(ctx, operator, report)).toBe(true);
      expect(await applyInvoiceSettled(ctx, operator, report)).toBe(false);
      expect(await money(d.id)).toEqual({ confirmed: 5_000n, reserved: 0n, journal: ['credit 5000 0'] });
      const row = await db.selectFrom('transactions').selectAll().where('id', '=', tx.id).executeTakeFirstOrThrow();
      expect(row).toMatchObject({ state: 'settled', preimage: report.preimage, settled_at: BigInt(NOW - 1) });
    });

    it('credits once when the same settlement arrives on several paths at the same time', async () => {
      for (let round = 0; round < 5; round++) {
        const d = await deposit();
        const tx = await pendingInvoice(d);
        const report = settlement(d, tx.payment_hash);
        const results = await Promise.all(Array.from({ length: 6 }, () => applyInvoiceSettled(ctx, operator, report)));
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await money(d.id)).toEqual({ confirmed: 5_000n, reserved: 0n, journal: ['credit 5000 0'] });
      }
    });

    it('still credits an invoice that a listing already marked expired when its settlement arrives late', async () => {
      const d = await deposit();
      const tx = await pendingInvoice(d, { expires_at: NOW - 10 });
      expect((await listTransactions(ctx, d.user, { unpaid: true })).map((r) => r.state)).toEqual(['expired']);
      expect(await applyInvoiceSettled(ctx, operator, settlement(d, tx.payment_hash))).toBe(true);
      expect(await money(d.id)).toMatchObject({ confirmed: 5_000n });
      expect((await db.selectFrom('transactions').select('state').where('id', '=', tx.id).executeTakeFirstOrThrow()).state).toBe('settled');
    });

    it('records and credits, once, a payment to an invoice the bridge never issued', async () => {
      const d = await deposit();
      const paymentHash = randomHex32();
      const results = await Promise.all(Array.from({ length: 4 }, () => applyInvoiceSettled(ctx, operator, settlement(d, paymentHash, 7_000n))));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await money(d.id)).toEqual({ confirmed: 7_000n, reserved: 0n, journal: ['credit 7000 0'] });
      const rows = await db.selectFrom('transactions').selectAll().where('payment_hash', '=', paymentHash).execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ type: 'incoming', state: 'settled', amount_msat: 7_000n, user_pubkey: d.user, deposit_id: d.id });
    });

    it('ignores a settlement for a deposit it does not know', async () => {
      const d = await deposit();
      const before = await db.selectFrom('journal_entries').select(sql<bigint>`count(*)::bigint`.as('n')).executeTakeFirstOrThrow();
      expect(await applyInvoiceSettled(ctx, operator, settlement({ remoteId: 'no-such-deposit' }, randomHex32()))).toBe(false);
      expect(await applyInvoiceSettled(ctx, randomHex32(), settlement(d, randomHex32()))).toBe(false);
      expect(await db.selectFrom('journal_entries').select(sql<bigint>`count(*)::bigint`.as('n')).executeTakeFirstOrThrow()).toEqual(before);
      expect(await money(d.id)).toEqual({ confirmed: 0n, reserved: 0n, journal: [] });
    });
  });

  describe('a settlement without a signed credit (the selective-payment attack)', () => {
    it('credits nothing, marks the invoice paid-but-uncredited, records an integrity incident and tells the user', async () => {
      const d = await deposit();
      const tx = await db
        .insertInto('transactions')
        .values(transactionRow(d.user, d.id, { type: 'incoming', state: 'pending', amount_msat: 5_000n, created_at: NOW - 100, expires_at: NOW + 3_600 }))
        .returningAll()
        .executeTakeFirstOrThrow();
      const forged = { ...signBalance(d.remoteId, 5_000n), peer_sig: signBalance(d.remoteId, 1n).peer_sig };
      for (const balanceUpdate of [null, forged]) {
        const credited = await applyInvoiceSettled(ctx, operator, { remoteDepositId: d.remoteId, paymentHash: tx.payment_hash, amountMsat: 5_000n, preimage: randomHex32(), settledAt: NOW - 1, balanceUpdate });
        expect(credited).toBe(false);
      }
      expect(await money(d.id)).toEqual({ confirmed: 0n, reserved: 0n, journal: [] });
      const row = await db.selectFrom('transactions').select(['state', 'failure_reason']).where('id', '=', tx.id).executeTakeFirstOrThrow();
      expect(row.state).toBe('settled');
      expect(row.failure_reason).toMatch(/not credited/);
      const incidents = await db.selectFrom('operator_incidents').select(['kind', 'user_pubkey']).where('operator_pubkey', '=', operator).where('kind', '=', 'uncredited_payment').execute();
      expect(incidents).toEqual([{ kind: 'uncredited_payment', user_pubkey: d.user }]);
      const audit = await db.selectFrom('audit_log').select('code').where('user_pubkey', '=', d.user).execute();
      expect(audit).toEqual([{ code: 'OPERATOR_INCIDENT' }]);
      expect(ctx.operators.get(operator)?.score).toBe(0);
    });
  });

  describe('applyPaymentState', () => {
    /** A payment in flight as admission leaves it: a pending row and its reservation. */
    async function paymentInFlight(amount = 10_000n, feeReserve = 100n) {
      const d = await deposit(50_000n);
      const tx = await db
        .insertInto('transactions')
        .values(
          transactionRow(d.user, d.id, {
            type: 'outgoing',
            state: 'pending',
            step: 'sent',
            amount_msat: amount,
            fee_reserve_msat: feeReserve,
            idempotency_key: randomHex32(),
            request_event_id: randomHex32(),
            created_at: NOW - 5,
          }),
        )
        .returningAll()
        .executeTakeFirstOrThrow();
      const reserved = await changeDepositMoney(db, {
        depositId: d.id,
        transactionId: tx.id,
        kind: 'reserve',
        confirmedDeltaMsat: 0n,
        reservedDeltaMsat: amount + feeReserve,
        requireAvailableMsat: amount + feeReserve,
      });
      expect(reserved).not.toBeNull();
      return { ...d, tx };
    }

    const stateOf = async (id: bigint) => db.selectFrom('transactions').select(['state', 'step', 'fee_msat', 'preimage']).where('id', '=', id).executeTakeFirstOrThrow();

    it('debits amount and fee and frees the whole reservation when the vault reports it settled', async () => {
      const p = await paymentInFlight();
      const payment = vaultPayment({ fee_msat: 40n });
      await applyPaymentState(ctx, operator, p.tx.id, payment);
      expect(await money(p.id)).toEqual({ confirmed: 39_960n, reserved: 0n, journal: ['reserve 0 10100', 'debit -10040 -10100'] });
      expect(await stateOf(p.tx.id)).toEqual({ state: 'settled', step: 'final', fee_msat: 40n, preimage: payment.preimage });
    });

    it('charges at most the fee limit when a vault reports a higher fee', async () => {
      const p = await paymentInFlight();
      await applyPaymentState(ctx, operator, p.tx.id, vaultPayment({ fee_msat: 5_000n }));
      expect(await money(p.id)).toMatchObject({ confirmed: 39_900n, reserved: 0n });
      expect(await stateOf(p.tx.id)).toMatchObject({ state: 'settled', fee_msat: 100n });
    });

    it('releases the reservation, and debits nothing, when the vault reports it failed', async () => {
      const p = await paymentInFlight();
      await applyPaymentState(ctx, operator, p.tx.id, vaultPayment({ state: 'failed', preimage: null, failure_reason: 'no route' }));
      expect(await money(p.id)).toEqual({ confirmed: 50_000n, reserved: 0n, journal: ['reserve 0 10100', 'release 0 -10100'] });
      expect(await stateOf(p.tx.id)).toMatchObject({ state: 'failed', step: 'final' });
    });

    it('changes nothing for a pending report or a settled one without a preimage', async () => {
      const p = await paymentInFlight();
      await applyPaymentState(ctx, operator, p.tx.id, vaultPayment({ state: 'pending', preimage: null }));
      await applyPaymentState(ctx, operator, p.tx.id, vaultPayment({ state: 'settled', preimage: null }));
      expect(await money(p.id)).toEqual({ confirmed: 50_000n, reserved: 10_100n, journal: ['reserve 0 10100'] });
      expect(await stateOf(p.tx.id)).toMatchObject({ state: 'pending', step: 'sent' });
    });

    it('keeps the newest balance both peers signed: a newer one replaces it, an older or forged one does not', async () => {
      const p = await paymentInFlight();
      const signedBalance = async () =>
        db.selectFrom('deposits').select(['vault_balance_msat', 'vault_balance_seq']).where('id', '=', p.id).executeTakeFirstOrThrow();
      const newer = signBalance(p.remoteId, 39_960n, 1_000_000);
      await applyPaymentState(ctx, operator, p.tx.id, vaultPayment({ fee_msat: 40n, balance_update: newer }));
      expect(await signedBalance()).toEqual({ vault_balance_msat: 39_960n, vault_balance_seq: 1_000_000 });

      const second = await paymentInFlight();
      const older = signBalance(second.remoteId, 1n, 1);
      await applyPaymentState(ctx, operator, second.tx.id, vaultPayment({ balance_update: signBalance(second.remoteId, 7n, 500) }));
      const olderPayment = await db
        .insertInto('transactions')
        .values(transactionRow(second.user, second.id, { type: 'outgoing', state: 'pending', step: 'sent', amount_msat: 1n, fee_reserve_msat: 0n, created_at: NOW - 1 }))
        .returningAll()
        .executeTakeFirstOrThrow();
      await changeDepositMoney(db, { depositId: second.id, transactionId: olderPayment.id, kind: 'reserve', confirmedDeltaMsat: 0n, reservedDeltaMsat: 1n });
      await applyPaymentState(ctx, operator, olderPayment.id, vaultPayment({ balance_update: older }));
      const forged = { ...signBalance(second.remoteId, 9n, 900), peer_sig: older.peer_sig };
      const forgedPayment = await db
        .insertInto('transactions')
        .values(transactionRow(second.user, second.id, { type: 'outgoing', state: 'pending', step: 'sent', amount_msat: 1n, fee_reserve_msat: 0n, created_at: NOW - 1 }))
        .returningAll()
        .executeTakeFirstOrThrow();
      await changeDepositMoney(db, { depositId: second.id, transactionId: forgedPayment.id, kind: 'reserve', confirmedDeltaMsat: 0n, reservedDeltaMsat: 1n });
      await applyPaymentState(ctx, operator, forgedPayment.id, vaultPayment({ balance_update: forged }));
      expect(await db.selectFrom('deposits').select(['vault_balance_msat', 'vault_balance_seq']).where('id', '=', second.id).executeTakeFirstOrThrow()).toEqual({
        vault_balance_msat: 7n,
        vault_balance_seq: 500,
      });
      // Both payments settled all the same: the balance update is evidence, not the condition of a debit.
      expect((await stateOf(olderPayment.id)).state).toBe('settled');
      expect((await stateOf(forgedPayment.id)).state).toBe('settled');
    });

    it('finalizes once when reports race: the money is either debited or released, never both', async () => {
      for (let round = 0; round < 5; round++) {
        const p = await paymentInFlight();
        const reports = [
          vaultPayment({ fee_msat: 10n }),
          vaultPayment({ state: 'failed', preimage: null, failure_reason: 'no route' }),
          vaultPayment({ fee_msat: 10n }),
          vaultPayment({ state: 'failed', preimage: null, failure_reason: 'no route' }),
        ];
        await Promise.all(reports.map((r) => applyPaymentState(ctx, operator, p.tx.id, r)));
        const { state } = await stateOf(p.tx.id);
        const m = await money(p.id);
        if (state === 'settled') expect(m).toEqual({ confirmed: 39_990n, reserved: 0n, journal: ['reserve 0 10100', 'debit -10010 -10100'] });
        else expect(m).toEqual({ confirmed: 50_000n, reserved: 0n, journal: ['reserve 0 10100', 'release 0 -10100'] });
        // A final payment does not change again.
        await applyPaymentState(ctx, operator, p.tx.id, vaultPayment({ state: state === 'settled' ? 'failed' : 'settled', fee_msat: 0n }));
        expect(await money(p.id)).toEqual(m);
        expect((await stateOf(p.tx.id)).state).toBe(state);
      }
    });
  });
});
