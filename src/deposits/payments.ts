import { sql } from 'kysely';
import type { Event } from 'nostr-tools/pure';
import type { TransactionRow } from '../db/schema.ts';
import { feeLimitFor, type Msat } from '../protocol/amounts.ts';
import { buildAuthorization } from '../protocol/authorization.ts';
import { budgetWindowStart, checkSpendLimits, VELOCITY_WINDOW_SECONDS } from '../protocol/grant.ts';
import { decodePayableInvoice } from '../protocol/invoice.ts';
import { Nip47Error, NIP47_CODE_FOR_VAULT_ERROR } from '../protocol/nip47-error.ts';
import type { NwcEncryption } from '../protocol/nwc-encryption.ts';
import type { VaultPayment } from '../protocol/vault-api.ts';
import { VaultError } from '../vault-client/vault-client.ts';
import { payingDepositsInOrder } from './allocation.ts';
import type { Connection } from './connections.ts';
import type { WalletContext } from './context.ts';
import { depositCandidates } from './deposit-candidates.ts';
import { changeDepositMoney, type Trx } from './journal.ts';
import { recordBalanceUpdate } from './vault-records.ts';

/** A pay_invoice request, with what a vault needs to verify it was the app's. */
export interface PaymentRequest {
  connection: Connection;
  /** The kind 23194 event exactly as the app signed it. */
  request: Event;
  encryption: NwcEncryption;
  /** The shared key of (connection, wallet service) that decrypts `request`. */
  key: Uint8Array;
  invoice: string;
  /** Required for an amountless invoice; must match the invoice's amount otherwise. */
  amountMsat?: Msat | undefined;
  metadata?: Record<string, unknown> | undefined;
}

export interface PaymentOutcome {
  preimage: string;
  feesPaidMsat: Msat;
}

/**
 * Pays an invoice from one of the user's deposits. Admission (grant limits, budget, balance)
 * and the reservation of amount + fee limit happen in one database transaction under a lock
 * on the connection row; then the vault is called with the user-rooted authorization. The
 * request id is the idempotency key end to end: calling this again for the same request
 * resumes that payment and never pays twice.
 */
export async function payInvoice(ctx: WalletContext, req: PaymentRequest): Promise<PaymentOutcome> {
  let tx = await ctx.db.selectFrom('transactions').selectAll().where('request_event_id', '=', req.request.id).executeTakeFirst();
  if (!tx) tx = await admit(ctx, req);
  return drive(ctx, req, tx);
}

async function admit(ctx: WalletContext, req: PaymentRequest): Promise<TransactionRow> {
  const network = ctx.operators.network();
  if (!network) throw new Nip47Error('INTERNAL', 'no vault operator is reachable');
  const now = ctx.now();
  const decoded = decodePayableInvoice(req.invoice, network, now);
  if (!decoded.ok) throw new Nip47Error('BAD_REQUEST', decoded.error.message);
  const invoice = decoded.value;
  if (invoice.amountMsat !== null && req.amountMsat !== undefined && req.amountMsat !== invoice.amountMsat) {
    throw new Nip47Error('BAD_REQUEST', 'amount does not match the invoice amount');
  }
  const amount = invoice.amountMsat ?? req.amountMsat;
  if (amount === undefined) throw new Nip47Error('BAD_REQUEST', 'the invoice has no amount: pass `amount` in msats');
  if (amount <= 0n) throw new Nip47Error('BAD_REQUEST', 'amount must be positive');
  const grant = req.connection.grant;
  const maxFee = feeLimitFor(amount, grant.feeLimit);
  const need = amount + maxFee;

  return ctx.db.transaction().execute(async (trx) => {
    // Serializes admissions of one connection across instances, so budget use is read fresh.
    await trx.selectFrom('connections').select('pubkey').where('pubkey', '=', req.connection.pubkey).forUpdate().executeTakeFirstOrThrow();
    const windowStart = budgetWindowStart(grant, now);
    const hourStart = now - VELOCITY_WINDOW_SECONDS;
    const usage = await trx
      .selectFrom('transactions')
      .select([
        sql<bigint>`coalesce(sum(case when created_at >= ${BigInt(windowStart)} then amount_msat + case when state = 'settled' then fee_msat else fee_reserve_msat end end), 0)::bigint`.as('used'),
        sql<bigint>`count(*) filter (where created_at >= ${BigInt(hourStart)})`.as('hour_payments'),
        sql<bigint>`coalesce(sum(amount_msat) filter (where created_at >= ${BigInt(hourStart)}), 0)::bigint`.as('hour_amount'),
      ])
      .where('connection_pubkey', '=', req.connection.pubkey)
      .where('type', '=', 'outgoing')
      .where('state', 'in', ['pending', 'settled'])
      .where('created_at', '>=', BigInt(Math.min(windowStart, hourStart)))
      .executeTakeFirstOrThrow();
    const limits = checkSpendLimits(grant, amount, maxFee, {
      usedMsat: usage.used,
      lastHour: { payments: Number(usage.hour_payments), amountMsat: usage.hour_amount },
    });
    if (!limits.ok) throw new Nip47Error(NIP47_CODE_FOR_VAULT_ERROR[limits.error.code], limits.error.message);

    const allowed = (await depositCandidates(ctx, trx, req.connection.userPubkey)).filter(
      (c) => grant.vaultOperators === null || grant.vaultOperators.includes(c.operatorPubkey),
    );
    const order = payingDepositsInOrder(allowed, need);
    const first = order[0];
    if (first) {
      const inserted = await trx
        .insertInto('transactions')
        .values({
          user_pubkey: req.connection.userPubkey,
          deposit_id: first.depositId,
          connection_pubkey: req.connection.pubkey,
          type: 'outgoing',
          state: 'pending',
          step: 'reserved',
          payment_hash: invoice.paymentHash,
          invoice: invoice.paymentRequest,
          description: invoice.description,
          description_hash: invoice.descriptionHash,
          preimage: null,
          amount_msat: amount,
          fee_msat: 0n,
          fee_reserve_msat: maxFee,
          request_event_id: req.request.id,
          idempotency_key: req.request.id,
          failure_reason: null,
          metadata: JSON.stringify(req.metadata ?? null),
          created_at: now,
          expires_at: invoice.expiresAt,
          settled_at: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      // The conditional update is the real check: another request may have taken the money since the read.
      for (const candidate of order) {
        const reserved = await changeDepositMoney(trx, {
          depositId: candidate.depositId,
          transactionId: inserted.id,
          kind: 'reserve',
          confirmedDeltaMsat: 0n,
          reservedDeltaMsat: need,
          requireAvailableMsat: need,
        });
        if (!reserved) continue;
        if (candidate.depositId === first.depositId) return inserted;
        return trx.updateTable('transactions').set({ deposit_id: candidate.depositId }).where('id', '=', inserted.id).returningAll().executeTakeFirstOrThrow();
      }
    }
    throw new Nip47Error('INSUFFICIENT_BALANCE', `no deposit holds ${amount} msat plus a fee reserve of ${maxFee} msat`);
  });
}

/** Takes a payment from wherever it stands to a final state. */
async function drive(ctx: WalletContext, req: PaymentRequest, tx: TransactionRow): Promise<PaymentOutcome> {
  if (tx.state === 'pending' && tx.step !== 'final') {
    const deposit = await ctx.db.selectFrom('deposits').selectAll().where('id', '=', tx.deposit_id).executeTakeFirstOrThrow();
    const op = ctx.operators.get(deposit.operator_pubkey);
    if (!op && tx.step === 'reserved') {
      await failOutgoing(ctx, tx.id, 'the vault operator is not connected');
      throw new Nip47Error('PAYMENT_FAILED', 'the vault operator holding the funds is not reachable');
    }
    // A payment the vault may hold waits for it to come back, its money still reserved.
    if (!op) return awaitOutcome(ctx, tx.id);
    let known: VaultPayment | null = null;
    let mustSend = tx.step === 'reserved';
    if (tx.step === 'sent') {
      // The vault may have it from before a crash or timeout: ask before sending again. Only a
      // definite "not found" allows sending; an unreachable vault leaves the payment pending.
      try {
        known = await op.client.paymentStatus(deposit.remote_deposit_id, tx.idempotency_key ?? req.request.id);
        mustSend = known === null;
      } catch (error) {
        ctx.logger.warn({ txId: tx.id.toString(), operator: op.name, err: error }, 'vault unreachable; payment stays pending');
      }
    }
    if (mustSend) {
      await ctx.db.updateTable('transactions').set({ step: 'sent', updated_at: new Date() }).where('id', '=', tx.id).execute();
      try {
        known = await op.client.pay(deposit.remote_deposit_id, {
          invoice: tx.invoice,
          amountMsat: tx.amount_msat,
          maxFeeMsat: tx.fee_reserve_msat,
          idempotencyKey: tx.idempotency_key ?? req.request.id,
          authorization: buildAuthorization(req.connection.grantEvent, req.request, req.encryption, req.key),
        });
        ctx.operators.observe(op.nodePubkey, true);
      } catch (error) {
        if (!(error instanceof VaultError)) throw error;
        if (error.code === 'UNAVAILABLE') ctx.operators.observe(op.nodePubkey, false);
        if (!error.outcomeUnknown) {
          await failOutgoing(ctx, tx.id, `vault refused: ${error.message}`);
          throw new Nip47Error(error.code === 'UNAVAILABLE' ? 'PAYMENT_FAILED' : NIP47_CODE_FOR_VAULT_ERROR[error.code], error.message);
        }
        ctx.logger.warn({ txId: tx.id.toString(), operator: op.name }, 'vault outcome unknown; payment stays pending');
      }
    }
    if (known) await applyPaymentState(ctx, deposit.operator_pubkey, tx.id, known);
  }
  return awaitOutcome(ctx, tx.id);
}

/** Records a vault's report of a payment. Idempotent: a final payment never changes again. */
export async function applyPaymentState(ctx: WalletContext, operatorPubkey: string, txId: bigint, payment: VaultPayment): Promise<void> {
  if (payment.state === 'pending') return;
  if (payment.state === 'failed') {
    await failOutgoing(ctx, txId, payment.failure_reason ?? 'payment failed', async (trx, depositId) =>
      recordBalanceUpdate(ctx, trx, depositId, operatorPubkey, payment.balance_update),
    );
    return;
  }
  const preimage = payment.preimage;
  if (!preimage) {
    ctx.logger.error({ txId: txId.toString() }, 'vault reported a settled payment without a preimage; left pending');
    return;
  }
  const settled = await ctx.db.transaction().execute(async (trx) => {
    const tx = await trx.selectFrom('transactions').selectAll().where('id', '=', txId).forUpdate().executeTakeFirstOrThrow();
    if (tx.state !== 'pending') return false;
    // A vault may not charge more than the limit it was given: the excess is its loss, and recorded.
    const charged = payment.fee_msat > tx.fee_reserve_msat ? tx.fee_reserve_msat : payment.fee_msat;
    if (payment.fee_msat > tx.fee_reserve_msat) {
      ctx.logger.error({ txId: txId.toString(), fee: payment.fee_msat.toString(), limit: tx.fee_reserve_msat.toString() }, 'vault reported a fee above the limit');
    }
    await changeDepositMoney(trx, {
      depositId: tx.deposit_id,
      transactionId: tx.id,
      kind: 'debit',
      confirmedDeltaMsat: -(tx.amount_msat + charged),
      reservedDeltaMsat: -(tx.amount_msat + tx.fee_reserve_msat),
    });
    await trx
      .updateTable('transactions')
      .set({
        state: 'settled',
        step: 'final',
        preimage,
        fee_msat: charged,
        settled_at: payment.settled_at ?? ctx.now(),
        failure_reason: payment.fee_msat > tx.fee_reserve_msat ? `vault reported fee ${payment.fee_msat} msat above the limit; ${charged} msat charged` : null,
        updated_at: new Date(),
      })
      .where('id', '=', txId)
      .execute();
    await recordBalanceUpdate(ctx, trx, tx.deposit_id, operatorPubkey, payment.balance_update);
    return true;
  });
  if (settled) ctx.finality.notify(txId);
}

/** Fails a pending payment and releases its reservation (once). */
async function failOutgoing(
  ctx: WalletContext,
  txId: bigint,
  reason: string,
  alsoInTransaction?: (trx: Trx, depositId: bigint) => Promise<void>,
): Promise<void> {
  const failed = await ctx.db.transaction().execute(async (trx) => {
    const tx = await trx.selectFrom('transactions').selectAll().where('id', '=', txId).forUpdate().executeTakeFirstOrThrow();
    if (tx.state !== 'pending') return false;
    await changeDepositMoney(trx, {
      depositId: tx.deposit_id,
      transactionId: tx.id,
      kind: 'release',
      confirmedDeltaMsat: 0n,
      reservedDeltaMsat: -(tx.amount_msat + tx.fee_reserve_msat),
    });
    await trx.updateTable('transactions').set({ state: 'failed', step: 'final', failure_reason: reason.slice(0, 500), updated_at: new Date() }).where('id', '=', txId).execute();
    if (alsoInTransaction) await alsoInTransaction(trx, tx.deposit_id);
    return true;
  });
  if (failed) ctx.finality.notify(txId);
}

/**
 * Waits until the payment is final, asking its vault now and then (events from the vault's
 * stream wake it sooner). A payment whose vault cannot be reached stays pending: its money is
 * reserved, never released on a guess.
 */
async function awaitOutcome(ctx: WalletContext, txId: bigint): Promise<PaymentOutcome> {
  let delayMs = 200;
  for (;;) {
    const tx = await ctx.db.selectFrom('transactions').selectAll().where('id', '=', txId).executeTakeFirstOrThrow();
    if (tx.state === 'settled') return { preimage: tx.preimage ?? '', feesPaidMsat: tx.fee_msat };
    if (tx.state === 'failed') throw new Nip47Error('PAYMENT_FAILED', tx.failure_reason ?? 'payment failed');
    await ctx.finality.wait(txId, delayMs);
    delayMs = Math.min(delayMs * 2, 5_000);
    await refreshOutgoing(ctx, txId);
  }
}

/** Asks the vault for a sent payment's state and records it. */
export async function refreshOutgoing(ctx: WalletContext, txId: bigint): Promise<void> {
  const row = await ctx.db
    .selectFrom('transactions')
    .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
    .select(['transactions.state', 'transactions.step', 'transactions.idempotency_key', 'deposits.operator_pubkey', 'deposits.remote_deposit_id'])
    .where('transactions.id', '=', txId)
    .executeTakeFirstOrThrow();
  if (row.state !== 'pending' || row.step !== 'sent' || !row.idempotency_key) return;
  const op = ctx.operators.get(row.operator_pubkey);
  if (!op) return;
  try {
    const payment = await op.client.paymentStatus(row.remote_deposit_id, row.idempotency_key);
    ctx.operators.observe(op.nodePubkey, true);
    if (payment) await applyPaymentState(ctx, row.operator_pubkey, txId, payment);
  } catch (error) {
    if (error instanceof VaultError && error.code === 'UNAVAILABLE') ctx.operators.observe(op.nodePubkey, false);
    ctx.logger.warn({ txId: txId.toString(), err: error }, 'could not learn a payment outcome; will ask again');
  }
}

/** Asks the vaults about every payment left pending (after a restart, or a missed event). */
export async function refreshPendingOutgoing(ctx: WalletContext): Promise<void> {
  const pending = await ctx.db.selectFrom('transactions').select('id').where('type', '=', 'outgoing').where('state', '=', 'pending').where('step', '=', 'sent').execute();
  for (const { id } of pending) await refreshOutgoing(ctx, id);
}

/** Applies a payment_settled / payment_failed event from a vault's stream. */
export async function applyPaymentEvent(ctx: WalletContext, operatorPubkey: string, remoteDepositId: string, idempotencyKey: string, payment: VaultPayment): Promise<void> {
  const tx = await ctx.db
    .selectFrom('transactions')
    .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
    .select('transactions.id')
    .where('deposits.operator_pubkey', '=', operatorPubkey)
    .where('deposits.remote_deposit_id', '=', remoteDepositId)
    .where('transactions.idempotency_key', '=', idempotencyKey)
    .where('transactions.type', '=', 'outgoing')
    .executeTakeFirst();
  if (tx) await applyPaymentState(ctx, operatorPubkey, tx.id, payment);
}
