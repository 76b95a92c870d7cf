import type { TransactionRow } from '../db/schema.ts';
import type { Msat } from '../protocol/amounts.ts';
import { decodeInvoice } from '../protocol/invoice.ts';
import { Nip47Error } from '../protocol/nip47-error.ts';
import type { VaultInvoice } from '../protocol/vault-api.ts';
import { verifyBalanceUpdate, verifyVaultProof } from '../protocol/vault-proof.ts';
import { VaultError } from '../vault-client/vault-client.ts';
import { chooseReceiveDeposit } from './allocation.ts';
import type { WalletContext } from './context.ts';
import { depositCandidates } from './deposit-candidates.ts';
import { recordIncident } from './incidents.ts';
import { queueNotifications } from './notification-outbox.ts';
import { changeDepositMoney, inTransaction } from './journal.ts';
import type { KnownOperator } from './operators.ts';
import { recordBalanceUpdate } from './vault-records.ts';

export interface InvoiceRequest {
  userPubkey: string;
  connectionPubkey: string | null;
  amountMsat: Msat;
  description?: string | undefined;
  descriptionHash?: string | undefined;
  expirySeconds?: number | undefined;
  metadata?: Record<string, unknown> | undefined;
}

/**
 * Makes an invoice paying into one of the user's deposits, chosen by the allocation rule, and
 * hands it out only after its vault proof checks out against the bridge's own record of the
 * operator: a vault cannot make the bridge advertise an invoice that pays someone else.
 */
export async function makeInvoice(ctx: WalletContext, req: InvoiceRequest): Promise<TransactionRow> {
  if (req.amountMsat <= 0n) throw new Nip47Error('BAD_REQUEST', 'amount must be positive');
  const candidates = await depositCandidates(ctx, ctx.db, req.userPubkey);
  const tried = new Set<string>();
  let lastFailure = 'no vault operator can receive right now';
  // An operator that fails or hands out an invoice that does not verify is skipped for the next best.
  for (;;) {
    const choice = chooseReceiveDeposit(
      candidates.filter((c) => !tried.has(c.operatorPubkey)),
      req.amountMsat,
    );
    if (!choice) throw new Nip47Error('INTERNAL', lastFailure);
    tried.add(choice.candidate.operatorPubkey);
    const deposit = await ctx.db.selectFrom('deposits').selectAll().where('id', '=', choice.candidate.depositId).executeTakeFirstOrThrow();
    const op = ctx.operators.get(deposit.operator_pubkey);
    if (!op) continue;
    let issued: VaultInvoice;
    try {
      issued = await op.client.createInvoice(deposit.remote_deposit_id, {
        amountMsat: req.amountMsat,
        ...(req.description !== undefined ? { description: req.description } : {}),
        ...(req.descriptionHash !== undefined ? { descriptionHash: req.descriptionHash } : {}),
        ...(req.expirySeconds !== undefined ? { expirySeconds: req.expirySeconds } : {}),
      });
      ctx.operators.observe(op.nodePubkey, true);
    } catch (error) {
      if (!(error instanceof VaultError)) throw error;
      if (error.code === 'UNAVAILABLE') ctx.operators.observe(op.nodePubkey, false);
      // A refusal of the request itself (bad description, amount out of limits) would repeat anywhere.
      if (error.code === 'BAD_REQUEST') throw new Nip47Error('BAD_REQUEST', `vault operator could not make an invoice: ${error.message}`);
      lastFailure = `vault operator ${op.name} could not make an invoice: ${error.message}`;
      continue;
    }
    const problem = issuedInvoiceProblem(op, deposit, issued, req.amountMsat);
    if (problem) {
      await recordIncident(ctx, {
        operatorPubkey: op.nodePubkey,
        userPubkey: req.userPubkey,
        kind: 'invalid_invoice',
        message: `handed out an invoice that fails verification (${problem}); it was not given to the user`,
        evidence: { invoice: issued.invoice, proof: issued.proof },
      });
      lastFailure = `vault operator ${op.name} returned an invoice that fails verification`;
      continue;
    }
    return recordIssuedInvoice(ctx, req, deposit.id, issued, choice.overCap);
  }
}

async function recordIssuedInvoice(ctx: WalletContext, req: InvoiceRequest, depositId: bigint, issued: VaultInvoice, overCap: boolean): Promise<TransactionRow> {
  const metadata = { ...(req.metadata ?? {}), ...(overCap ? { allocation: 'every operator was at its cap; the best-scored one took it' } : {}) };
  return ctx.db
    .insertInto('transactions')
    .values({
      user_pubkey: req.userPubkey,
      deposit_id: depositId,
      connection_pubkey: req.connectionPubkey,
      type: 'incoming',
      state: 'pending',
      step: 'final',
      payment_hash: issued.payment_hash,
      invoice: issued.invoice,
      description: issued.description,
      description_hash: issued.description_hash,
      preimage: null,
      amount_msat: issued.amount_msat,
      fee_msat: 0n,
      fee_reserve_msat: 0n,
      request_event_id: null,
      idempotency_key: null,
      failure_reason: null,
      metadata: JSON.stringify(Object.keys(metadata).length > 0 ? metadata : null),
      // The bridge's clock, not the vault's: list_transactions windows are the bridge's.
      created_at: ctx.now(),
      expires_at: issued.expires_at,
      settled_at: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Why an invoice a vault issued must not be handed out, or null when it verifies. */
function issuedInvoiceProblem(
  op: KnownOperator,
  deposit: { remote_deposit_id: string; vault_id: string; channel_id: string; multisig_pubkey: string },
  issued: VaultInvoice,
  amountMsat: Msat,
): string | null {
  const decoded = decodeInvoice(issued.invoice);
  if (!decoded.ok) return decoded.error.message;
  if (decoded.value.paymentHash !== issued.payment_hash) return 'payment hash differs from the invoice';
  if (decoded.value.amountMsat !== amountMsat || issued.amount_msat !== amountMsat) return 'amount differs from the one asked for';
  if (decoded.value.network !== op.network) return 'invoice for another network';
  const proof = issued.proof;
  if (proof.vault_id !== deposit.vault_id || proof.channel_id !== deposit.channel_id || proof.multisig_pubkey !== deposit.multisig_pubkey) {
    return 'vault proof names another vault than the deposit';
  }
  const verified = verifyVaultProof(proof, {
    depositId: deposit.remote_deposit_id,
    operatorNodePubkey: op.nodePubkey,
    peerNodePubkey: op.peerNodePubkey,
    paymentHash: issued.payment_hash,
    amountMsat,
    invoicePayeeNodeKey: decoded.value.payeeNodeKey,
  });
  return verified.ok ? null : verified.error.message;
}

export interface SettledInvoice {
  remoteDepositId: string;
  paymentHash: string;
  amountMsat: Msat;
  preimage: string;
  settledAt: number;
  balanceUpdate: VaultInvoice['balance_update'];
}

/**
 * Credits a settled invoice to its deposit, once. An invoice the bridge did not issue (made at
 * the vault some other way) is fetched from the vault and recorded, so no credit goes unseen.
 */
export async function applyInvoiceSettled(ctx: WalletContext, operatorPubkey: string, settled: SettledInvoice): Promise<boolean> {
  const deposit = await ctx.db
    .selectFrom('deposits')
    .selectAll()
    .where('operator_pubkey', '=', operatorPubkey)
    .where('remote_deposit_id', '=', settled.remoteDepositId)
    .executeTakeFirst();
  if (!deposit) return false;
  const known = await ctx.db.selectFrom('transactions').select('id').where('deposit_id', '=', deposit.id).where('type', '=', 'incoming').where('payment_hash', '=', settled.paymentHash).executeTakeFirst();
  if (!known) await recordForeignInvoice(ctx, operatorPubkey, deposit.id, deposit.user_pubkey, settled);

  const op = ctx.operators.get(operatorPubkey);
  if (!op) return false;
  const update = settled.balanceUpdate;
  const credited = update !== null && verifyBalanceUpdate(update, op.nodePubkey, op.peerNodePubkey).ok && update.deposit_id === settled.remoteDepositId;

  const outcome = await inTransaction(ctx.db, async (trx) => {
    const tx = await trx
      .selectFrom('transactions')
      .selectAll()
      .where('deposit_id', '=', deposit.id)
      .where('type', '=', 'incoming')
      .where('payment_hash', '=', settled.paymentHash)
      .forNoKeyUpdate()
      .executeTakeFirst();
    if (!tx || tx.state === 'settled') return null;
    if (!credited) {
      // Paid (the payer holds the preimage) but no balance both peers signed says the deposit
      // got it: the selective-payment attack. Nothing is credited that the vault did not sign.
      await trx
        .updateTable('transactions')
        .set({
          state: 'settled',
          preimage: settled.preimage,
          settled_at: settled.settledAt,
          failure_reason: 'paid at the vault but not credited: no balance update signed by both channel peers',
          updated_at: new Date(),
        })
        .where('id', '=', tx.id)
        .execute();
      return 'uncredited';
    }
    await changeDepositMoney(trx, {
      depositId: deposit.id,
      transactionId: tx.id,
      kind: 'credit',
      confirmedDeltaMsat: settled.amountMsat,
      reservedDeltaMsat: 0n,
    });
    await trx
      .updateTable('transactions')
      .set({ state: 'settled', preimage: settled.preimage, amount_msat: settled.amountMsat, settled_at: settled.settledAt, updated_at: new Date() })
      .where('id', '=', tx.id)
      .execute();
    await recordBalanceUpdate(ctx, trx, deposit.id, operatorPubkey, settled.balanceUpdate);
    await queueNotifications(trx, deposit.user_pubkey, tx.id, 'payment_received');
    return 'credited';
  });
  if (outcome === 'credited') ctx.notifications?.poke();
  if (outcome === 'uncredited') {
    await recordIncident(ctx, {
      operatorPubkey,
      userPubkey: deposit.user_pubkey,
      kind: 'uncredited_payment',
      message: `an invoice of ${settled.amountMsat} msat was paid into the vault without a balance update signed by both channel peers`,
      evidence: { deposit: settled.remoteDepositId, payment_hash: settled.paymentHash, preimage: settled.preimage, balance_update: update },
    });
  }
  return outcome === 'credited';
}

async function recordForeignInvoice(ctx: WalletContext, operatorPubkey: string, depositId: bigint, userPubkey: string, settled: SettledInvoice): Promise<void> {
  const op = ctx.operators.get(operatorPubkey);
  const issued = op ? await op.client.invoiceStatus(settled.remoteDepositId, settled.paymentHash).catch(() => null) : null;
  await ctx.db
    .insertInto('transactions')
    .values({
      user_pubkey: userPubkey,
      deposit_id: depositId,
      connection_pubkey: null,
      type: 'incoming',
      state: 'pending',
      step: 'final',
      payment_hash: settled.paymentHash,
      invoice: issued?.invoice ?? '',
      description: issued?.description ?? null,
      description_hash: issued?.description_hash ?? null,
      preimage: null,
      amount_msat: settled.amountMsat,
      fee_msat: 0n,
      fee_reserve_msat: 0n,
      request_event_id: null,
      idempotency_key: null,
      failure_reason: null,
      metadata: JSON.stringify({ source: 'invoice issued at the vault, not through this bridge' }),
      created_at: issued?.created_at ?? settled.settledAt,
      expires_at: issued?.expires_at ?? null,
      settled_at: null,
    })
    .onConflict((oc) => oc.doNothing())
    .execute();
}

/** Asks the vault about a pending incoming invoice and records a settlement or expiry. */
export async function refreshIncoming(ctx: WalletContext, tx: TransactionRow): Promise<void> {
  if (tx.type !== 'incoming' || tx.state !== 'pending') return;
  const deposit = await ctx.db.selectFrom('deposits').selectAll().where('id', '=', tx.deposit_id).executeTakeFirstOrThrow();
  const op = ctx.operators.get(deposit.operator_pubkey);
  if (!op) return;
  let status: VaultInvoice;
  try {
    status = await op.client.invoiceStatus(deposit.remote_deposit_id, tx.payment_hash);
  } catch (error) {
    ctx.logger.warn({ operator: op.name, err: error }, 'could not refresh an invoice');
    return;
  }
  if (status.state === 'settled' && status.preimage && status.settled_at !== null) {
    await applyInvoiceSettled(ctx, op.nodePubkey, {
      remoteDepositId: deposit.remote_deposit_id,
      paymentHash: tx.payment_hash,
      amountMsat: status.amount_msat,
      preimage: status.preimage,
      settledAt: status.settled_at,
      balanceUpdate: status.balance_update,
    });
  } else if (status.state === 'expired') {
    await ctx.db.updateTable('transactions').set({ state: 'expired', updated_at: new Date() }).where('id', '=', tx.id).where('state', '=', 'pending').execute();
  }
}
