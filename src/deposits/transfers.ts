/**
 * Moving money between one user's own deposits (docs/multi-vault.md): the destination vault
 * issues an invoice with its vault proof and owner attestation, the bridge checks both, then
 * the source vault checks them again and pays it. On the bridge's side a transfer is an
 * outgoing transaction on the source (reserved, sent and finished like a payment, under the
 * idempotency key `transfer:<id>`) and an incoming one on the destination (credited when the
 * destination vault reports the invoice settled), tied together by a `transfers` row.
 */
import type { Event } from 'nostr-tools/pure';
import { feeLimitFor, type Msat } from '../protocol/amounts.ts';
import type { Authorization } from '../protocol/authorization.ts';
import { buildAuthorization } from '../protocol/authorization.ts';
import { verifyTransferDestination, type TransferDestination } from '../protocol/transfer.ts';
import type { VaultEvent } from '../protocol/vault-api.ts';
import { verifyBalanceUpdate } from '../protocol/vault-proof.ts';
import { VaultError } from '../vault-client/vault-client.ts';
import { payingDepositsInOrder } from './allocation.ts';
import { BridgeStopping, type WalletContext } from './context.ts';
import { depositCandidates } from './deposit-candidates.ts';
import { recordIncident } from './incidents.ts';
import { applyInvoiceStatus } from './invoices.ts';
import { userPolicy } from './policy.ts';
import { changeDepositMoney, inTransaction } from './journal.ts';
import { applyPaymentState, failOutgoing, refreshOutgoing, type PaymentRequest } from './payments.ts';
import { recordBalanceUpdate } from './vault-records.ts';

/** What a transfer is for: the grant's `rebalance`, draining a collapsed operator (also `rebalance` at the vault), or one payment. */
export type TransferKind = 'rebalance' | 'drain' | 'payment';

export interface TransferSpec {
  userPubkey: string;
  fromDepositId: bigint;
  toDepositId: bigint;
  amountMsat: Msat;
  maxFeeMsat: Msat;
  kind: TransferKind;
  /** The owner's grant the vault checks (for `payment`, the paying connection's). */
  grantEvent: Event;
  /** For `payment`: the app's request the transfer prepares. */
  payment?: { invoice: string; authorization: Authorization; requestId: string };
  /** Wait until the source vault reports a final state (and the destination is credited). */
  wait: boolean;
}

export type TransferResult =
  | { state: 'settled' | 'failed' | 'pending'; transferId: bigint; reason?: string }
  /** Not started: another transfer of the user is in flight, the source no longer covers it, or a vault refused. */
  | { state: 'busy' | 'insufficient' | 'refused'; reason: string };

/** Thrown inside a transaction to roll back a transfer whose reservation lost a race. */
class NotCovered extends Error {}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && error.code === '23505';
}

/**
 * Moves `amountMsat` from one deposit of the user to another. Journaled (a reservation, then a
 * debit or a release on the source; a credit on the destination when its vault signs it),
 * idempotent at the vault on `transfer:<id>`, at most one in flight per user, and the fee
 * bounded by `maxFeeMsat`, which is reserved with the amount.
 */
export async function transferBetween(ctx: WalletContext, spec: TransferSpec): Promise<TransferResult> {
  const [from, to] = await Promise.all([
    ctx.db.selectFrom('deposits').selectAll().where('id', '=', spec.fromDepositId).executeTakeFirstOrThrow(),
    ctx.db.selectFrom('deposits').selectAll().where('id', '=', spec.toDepositId).executeTakeFirstOrThrow(),
  ]);
  if (from.user_pubkey !== spec.userPubkey || to.user_pubkey !== spec.userPubkey) throw new Error('a transfer between deposits of different users');
  const fromOp = ctx.operators.get(from.operator_pubkey);
  const toOp = ctx.operators.get(to.operator_pubkey);
  const network = ctx.operators.network();
  if (!fromOp?.client.transfer || !toOp || !network) return { state: 'refused', reason: 'an operator of the transfer is not connected or cannot transfer' };

  let destination: TransferDestination;
  try {
    const issued = await toOp.client.createInvoice(to.remote_deposit_id, { amountMsat: spec.amountMsat, description: `transfer from ${fromOp.name}`, expirySeconds: 900 });
    if (issued.owner === undefined || issued.owner_sig === undefined) return { state: 'refused', reason: `${toOp.name} gives no owner attestation with its invoices` };
    destination = { invoice: issued.invoice, proof: issued.proof, owner: issued.owner, owner_sig: issued.owner_sig };
  } catch (error) {
    return { state: 'refused', reason: `the destination vault issued no invoice: ${error instanceof Error ? error.message : String(error)}` };
  }
  // The bridge checks the destination as the source vault will: the right deposit, the same owner.
  const checked = verifyTransferDestination(destination, {
    owner: spec.userPubkey,
    amountMsat: spec.amountMsat,
    network,
    nowSec: ctx.now(),
    operatorNodePubkey: toOp.nodePubkey,
    peerNodePubkey: toOp.peerNodePubkey,
  });
  const wrongDeposit = checked.ok && (checked.value.proof.deposit_id !== to.remote_deposit_id || checked.value.proof.vault_id !== to.vault_id);
  if (!checked.ok || wrongDeposit) {
    const message = checked.ok ? 'the destination proof names another deposit' : checked.error.message;
    await recordIncident(ctx, {
      operatorPubkey: toOp.nodePubkey,
      userPubkey: spec.userPubkey,
      kind: 'invalid_invoice',
      message: `a transfer destination failed its check: ${message}`,
      evidence: { deposit: to.remote_deposit_id, destination },
    });
    return { state: 'refused', reason: message };
  }
  const invoice = checked.value.invoice;
  const metadata = (direction: 'from' | 'to', transferId: bigint) =>
    JSON.stringify({ transfer: { id: transferId.toString(), kind: spec.kind, [direction === 'from' ? 'to_operator' : 'from_operator']: direction === 'from' ? toOp.name : fromOp.name } });

  let started: { transferId: bigint; outgoingId: bigint };
  try {
    started = await inTransaction(ctx.db, async (trx) => {
      const transfer = await trx
        .insertInto('transfers')
        .values({
          user_pubkey: spec.userPubkey,
          purpose: spec.kind,
          from_deposit_id: from.id,
          to_deposit_id: to.id,
          amount_msat: spec.amountMsat,
          max_fee_msat: spec.maxFeeMsat,
          outgoing_transaction_id: null,
          incoming_transaction_id: null,
          request_event_id: spec.payment?.requestId ?? null,
          state: 'pending',
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const common = {
        user_pubkey: spec.userPubkey,
        connection_pubkey: null,
        state: 'pending' as const,
        payment_hash: invoice.paymentHash,
        invoice: invoice.paymentRequest,
        description: invoice.description,
        description_hash: invoice.descriptionHash,
        preimage: null,
        amount_msat: spec.amountMsat,
        fee_msat: 0n,
        request_event_id: null,
        failure_reason: null,
        created_at: ctx.now(),
        expires_at: invoice.expiresAt,
        settled_at: null,
      };
      const incoming = await trx
        .insertInto('transactions')
        .values({ ...common, deposit_id: to.id, type: 'incoming', step: 'final', fee_reserve_msat: 0n, idempotency_key: null, metadata: metadata('to', transfer.id) })
        .returning('id')
        .executeTakeFirstOrThrow();
      const outgoing = await trx
        .insertInto('transactions')
        .values({
          ...common,
          deposit_id: from.id,
          type: 'outgoing',
          step: 'reserved',
          fee_reserve_msat: spec.maxFeeMsat,
          idempotency_key: `transfer:${transfer.id}`,
          metadata: metadata('from', transfer.id),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const need = spec.amountMsat + spec.maxFeeMsat;
      const reserved = await changeDepositMoney(trx, { depositId: from.id, transactionId: outgoing.id, kind: 'reserve', confirmedDeltaMsat: 0n, reservedDeltaMsat: need, requireAvailableMsat: need });
      if (!reserved) throw new NotCovered();
      await trx.updateTable('transfers').set({ outgoing_transaction_id: outgoing.id, incoming_transaction_id: incoming.id }).where('id', '=', transfer.id).execute();
      return { transferId: transfer.id, outgoingId: outgoing.id };
    });
  } catch (error) {
    if (error instanceof NotCovered) return { state: 'insufficient', reason: 'the source deposit no longer covers the transfer and its fee limit' };
    if (isUniqueViolation(error)) return { state: 'busy', reason: 'another transfer of this user is in flight' };
    throw error;
  }

  await ctx.db.updateTable('transactions').set({ step: 'sent', updated_at: new Date() }).where('id', '=', started.outgoingId).execute();
  try {
    const payment = await fromOp.client.transfer(from.remote_deposit_id, {
      destination,
      amountMsat: spec.amountMsat,
      maxFeeMsat: spec.maxFeeMsat,
      idempotencyKey: `transfer:${started.transferId}`,
      grant: spec.grantEvent,
      purpose: spec.payment ? { type: 'payment', invoice: spec.payment.invoice, authorization: spec.payment.authorization } : { type: 'rebalance' },
    });
    ctx.operators.observe(fromOp.nodePubkey, true);
    await applyPaymentState(ctx, fromOp.nodePubkey, started.outgoingId, payment);
  } catch (error) {
    if (!(error instanceof VaultError)) throw error;
    if (error.code === 'UNAVAILABLE') ctx.operators.observe(fromOp.nodePubkey, false);
    if (!error.outcomeUnknown) await failOutgoing(ctx, started.outgoingId, `vault refused the transfer: ${error.code}: ${error.message}`);
    else ctx.logger.warn({ transfer: started.transferId.toString() }, 'transfer outcome unknown; it stays pending');
  }
  if (spec.wait) await awaitFinal(ctx, started.outgoingId);
  return syncTransfer(ctx, started.transferId);
}

/** Waits until the transfer's outgoing side is final, asking its vault now and then. */
async function awaitFinal(ctx: WalletContext, outgoingId: bigint): Promise<void> {
  let delayMs = 200;
  for (;;) {
    const tx = await ctx.db.selectFrom('transactions').select(['state']).where('id', '=', outgoingId).executeTakeFirstOrThrow();
    if (tx.state !== 'pending') return;
    if (ctx.stopping.aborted) throw new BridgeStopping();
    await ctx.finality.wait(outgoingId, delayMs, ctx.stopping);
    delayMs = Math.min(delayMs * 2, 5_000);
    await refreshOutgoing(ctx, outgoingId);
  }
}

/**
 * Brings a transfer's row up to date with its outgoing transaction; once that settled, asks the
 * destination vault for its invoice, so the credit lands without waiting for its event stream.
 */
export async function syncTransfer(ctx: WalletContext, transferId: bigint): Promise<TransferResult> {
  const row = await ctx.db.selectFrom('transfers').selectAll().where('id', '=', transferId).executeTakeFirstOrThrow();
  const outgoing = row.outgoing_transaction_id === null ? undefined : await ctx.db.selectFrom('transactions').selectAll().where('id', '=', row.outgoing_transaction_id).executeTakeFirst();
  if (!outgoing || outgoing.state === 'pending') return { state: 'pending', transferId };
  if (outgoing.state === 'settled' && row.incoming_transaction_id !== null && row.to_deposit_id !== null) {
    const incoming = await ctx.db.selectFrom('transactions').select(['state', 'payment_hash']).where('id', '=', row.incoming_transaction_id).executeTakeFirstOrThrow();
    const to = await ctx.db.selectFrom('deposits').selectAll().where('id', '=', row.to_deposit_id).executeTakeFirstOrThrow();
    const toOp = ctx.operators.get(to.operator_pubkey);
    if (incoming.state !== 'settled' && toOp) {
      try {
        await applyInvoiceStatus(ctx, toOp.nodePubkey, to.remote_deposit_id, await toOp.client.invoiceStatus(to.remote_deposit_id, incoming.payment_hash));
      } catch (error) {
        ctx.logger.warn({ transfer: transferId.toString(), err: error }, 'could not ask the destination vault about a transfer; its event will credit it');
      }
    }
  }
  const state = outgoing.state === 'settled' ? 'settled' : 'failed';
  await ctx.db.updateTable('transfers').set({ state, updated_at: new Date() }).where('id', '=', transferId).where('state', '=', 'pending').execute();
  return { state, transferId, ...(outgoing.failure_reason ? { reason: outgoing.failure_reason } : {}) };
}

/** Brings every pending transfer up to date (after a restart, or a missed event). */
export async function syncPendingTransfers(ctx: WalletContext): Promise<void> {
  const pending = await ctx.db.selectFrom('transfers').select(['id', 'outgoing_transaction_id']).where('state', '=', 'pending').execute();
  for (const t of pending) {
    if (t.outgoing_transaction_id !== null) await refreshOutgoing(ctx, t.outgoing_transaction_id);
    await syncTransfer(ctx, t.id);
  }
}

/**
 * For an invoice without `basic_mpp` that no single deposit covers: fills the deposit holding
 * the most from another of the user's deposits (the one furthest above its target that can),
 * authorized by the app's own signed request (the vault bounds the transfer by its amount and
 * fee limit), and waits until the money arrived. True when the deposit now holds `need`.
 */
export async function fillDepositFor(ctx: WalletContext, req: PaymentRequest, need: Msat): Promise<boolean> {
  if (req.signed.target !== 'invoice' || req.signed.invoice.amountMsat === null) return false;
  // A request resumed after a restart finds its transfer (at most one per request) and waits for it.
  const earlier = await ctx.db.selectFrom('transfers').selectAll().where('request_event_id', '=', req.request.id).executeTakeFirst();
  if (earlier) {
    if (earlier.outgoing_transaction_id !== null) await awaitFinal(ctx, earlier.outgoing_transaction_id);
    const synced = await syncTransfer(ctx, earlier.id);
    return synced.state === 'settled' && (await creditedBy(ctx, earlier.id));
  }
  const grant = req.connection.grant;
  const allowed = grant.vaultOperators;
  const candidates = (await depositCandidates(ctx, ctx.db, req.connection.userPubkey)).filter(
    (c) => c.healthy && (allowed === null || allowed.includes(c.operatorPubkey)),
  );
  // Money moves only into an operator still trusted to receive (a removed or collapsed one scores 0).
  const destination = candidates
    .filter((c) => c.score > 0)
    .sort((a, b) => (a.availableMsat === b.availableMsat ? 0 : a.availableMsat > b.availableMsat ? -1 : 1))[0];
  if (!destination || destination.availableMsat >= need) return false;
  const toOp = ctx.operators.get(destination.operatorPubkey);
  const minInvoice = toOp?.info.limits.min_invoice_msat ?? 1n;
  const shortfall = need - destination.availableMsat;
  const amount = shortfall > minInvoice ? shortfall : minInvoice;
  const maxFee = feeLimitFor(amount, grant.feeLimit);
  const source = payingDepositsInOrder(
    candidates.filter((c) => c.depositId !== destination.depositId),
    amount + maxFee,
    await userPolicy(ctx.db, req.connection.userPubkey),
  )[0];
  if (!source) return false;
  const result = await transferBetween(ctx, {
    userPubkey: req.connection.userPubkey,
    fromDepositId: source.depositId,
    toDepositId: destination.depositId,
    amountMsat: amount,
    maxFeeMsat: maxFee,
    kind: 'payment',
    grantEvent: req.connection.grantEvent,
    payment: { invoice: req.signed.invoice.paymentRequest, authorization: buildAuthorization(req.connection.grantEvent, req.request, req.encryption, req.key), requestId: req.request.id },
    wait: true,
  });
  if (result.state !== 'settled') {
    ctx.logger.info({ request: req.request.id, result }, 'could not fill a deposit for a payment');
    return false;
  }
  return creditedBy(ctx, result.transferId);
}

/** Whether the transfer's destination was credited: that, not the debit, is what a payment needs. */
async function creditedBy(ctx: WalletContext, transferId: bigint): Promise<boolean> {
  const credited = await ctx.db
    .selectFrom('transfers')
    .innerJoin('transactions', 'transactions.id', 'transfers.incoming_transaction_id')
    .select('transactions.state')
    .where('transfers.id', '=', transferId)
    .executeTakeFirst();
  return credited?.state === 'settled';
}

type DepositMovedEvent = Extract<VaultEvent, { type: 'deposit_moved' }>;

/**
 * A vault moved (part of) a deposit to another vault on its own initiative: recorded once (by
 * payment hash) as a settled outgoing transaction of amount and fee with `deposit_moved`
 * metadata, debited from the deposit only when both channel peers signed the new balance, and
 * tied to the user's destination deposit when the bridge knows it (whose own vault credits it).
 */
export async function applyDepositMoved(ctx: WalletContext, operatorPubkey: string, event: DepositMovedEvent): Promise<void> {
  const deposit = await ctx.db.selectFrom('deposits').selectAll().where('operator_pubkey', '=', operatorPubkey).where('remote_deposit_id', '=', event.deposit_id).executeTakeFirst();
  const op = ctx.operators.get(operatorPubkey);
  if (!deposit || !op) return;
  const signed = verifyBalanceUpdate(event.balance_update, op.nodePubkey, op.peerNodePubkey).ok && event.balance_update.deposit_id === event.deposit_id;
  const toOp = ctx.operators.get(event.destination.operator_node_pubkey);
  const recorded = await inTransaction(ctx.db, async (trx) => {
    await trx.selectFrom('deposits').select('id').where('id', '=', deposit.id).forNoKeyUpdate().executeTakeFirstOrThrow();
    const known = await trx.selectFrom('transactions').select('id').where('deposit_id', '=', deposit.id).where('idempotency_key', '=', `deposit_moved:${event.payment_hash}`).executeTakeFirst();
    if (known) return false;
    const to = await trx
      .selectFrom('deposits')
      .select('id')
      .where('user_pubkey', '=', deposit.user_pubkey)
      .where('operator_pubkey', '=', event.destination.operator_node_pubkey)
      .where('remote_deposit_id', '=', event.destination.deposit_id)
      .executeTakeFirst();
    const now = ctx.now();
    const tx = await trx
      .insertInto('transactions')
      .values({
        user_pubkey: deposit.user_pubkey,
        deposit_id: deposit.id,
        connection_pubkey: null,
        type: 'outgoing',
        state: signed ? 'settled' : 'pending',
        step: 'final',
        payment_hash: event.payment_hash,
        invoice: event.invoice,
        description: null,
        description_hash: null,
        preimage: null,
        amount_msat: event.amount_msat,
        fee_msat: event.fee_msat,
        fee_reserve_msat: 0n,
        request_event_id: null,
        idempotency_key: `deposit_moved:${event.payment_hash}`,
        failure_reason: signed ? null : 'the operator reports moving the deposit, without a balance both channel peers signed: not debited',
        metadata: JSON.stringify({
          deposit_moved: {
            by_operator: op.name,
            to_operator: toOp?.name ?? event.destination.operator_node_pubkey,
            to_deposit: event.destination.deposit_id,
            to_known_deposit: to !== undefined,
          },
        }),
        created_at: now,
        expires_at: null,
        settled_at: signed ? now : null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    if (!signed) return true;
    await changeDepositMoney(trx, { depositId: deposit.id, transactionId: tx.id, kind: 'debit', confirmedDeltaMsat: -(event.amount_msat + event.fee_msat), reservedDeltaMsat: 0n });
    await trx
      .insertInto('transfers')
      .values({
        user_pubkey: deposit.user_pubkey,
        purpose: 'operator',
        from_deposit_id: deposit.id,
        to_deposit_id: to?.id ?? null,
        amount_msat: event.amount_msat,
        max_fee_msat: event.fee_msat,
        outgoing_transaction_id: tx.id,
        incoming_transaction_id: null,
        request_event_id: null,
        state: 'settled',
      })
      .execute();
    await recordBalanceUpdate(ctx, trx, deposit.id, operatorPubkey, event.balance_update);
    return true;
  });
  if (recorded) ctx.logger.warn({ operator: op.name, deposit: event.deposit_id, amount_msat: event.amount_msat.toString() }, 'the operator moved a deposit to another vault');
}
