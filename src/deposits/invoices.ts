import { sql } from 'kysely';
import { compiledOnce } from '../db/compiled-once.ts';
import type { TransactionRow } from '../db/schema.ts';
import type { Msat } from '../protocol/amounts.ts';
import { decodeInvoice } from '../protocol/invoice.ts';
import { Nip47Error, NIP47_CODE_FOR_VAULT_ERROR } from '../protocol/nip47-error.ts';
import { bytesToHex, hexToBytes } from '../protocol/hex.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import type { VaultInvoice } from '../protocol/vault-api.ts';
import { verifyVaultProof, type BalanceUpdate } from '../protocol/vault-proof.ts';
import { VaultError } from '../vault-client/vault-client.ts';
import { chooseReceiveDeposit } from './allocation.ts';
import type { WalletContext } from './context.ts';
import { depositCandidatesWithRows } from './deposit-candidates.ts';
import { userPolicy } from './policy.ts';
import { recordIncident } from './incidents.ts';
import { queueNotifications, queueSettledNotifications } from './notification-outbox.ts';
import { inTransaction, journalEntry } from './journal.ts';
import type { KnownOperator } from './operators.ts';
import { newestBalanceSet, verifiedBalanceUpdate } from './vault-records.ts';

export interface InvoiceRequest {
  userPubkey: string;
  connectionPubkey: string | null;
  /** Null for an amountless invoice: the payer chooses, the deposit gets what arrives. */
  amountMsat: Msat | null;
  description?: string | undefined;
  descriptionHash?: string | undefined;
  expirySeconds?: number | undefined;
  metadata?: Record<string, unknown> | undefined;
  /** A hold invoice: the app keeps the preimage of this hash and settles or cancels. */
  hold?: { paymentHash: string; minCltvExpiryDelta?: number | undefined } | undefined;
}

/**
 * Makes an invoice paying into one of the user's deposits, chosen by the allocation rule, and
 * hands it out only after its vault proof checks out against the bridge's own record of the
 * operator: a vault cannot make the bridge advertise an invoice that pays someone else.
 */
export async function makeInvoice(ctx: WalletContext, req: InvoiceRequest): Promise<TransactionRow> {
  if (req.amountMsat !== null && req.amountMsat <= 0n) throw new Nip47Error('BAD_REQUEST', 'amount must be positive');
  if (req.hold && req.amountMsat === null) throw new Nip47Error('BAD_REQUEST', 'a hold invoice needs an amount');
  const [deposits, policy] = await Promise.all([depositCandidatesWithRows(ctx, ctx.db, req.userPubkey), userPolicy(ctx.db, req.userPubkey)]);
  const candidates = deposits.map((d) => d.candidate);
  const tried = new Set<string>();
  let lastFailure = 'no vault operator can receive right now';
  // An operator that fails or hands out an invoice that does not verify is skipped for the next best.
  for (;;) {
    const choice = chooseReceiveDeposit(
      candidates.filter((c) => !tried.has(c.operatorPubkey)),
      req.amountMsat ?? 0n,
      policy,
    );
    if (!choice) throw new Nip47Error('INTERNAL', lastFailure);
    tried.add(choice.candidate.operatorPubkey);
    // Read with the candidates: the fields an invoice needs never change for a deposit.
    const deposit = deposits.find((d) => d.row.id === choice.candidate.depositId)!.row;
    const op = ctx.operators.get(deposit.operator_pubkey);
    if (!op) continue;
    let issued: VaultInvoice;
    try {
      const terms = {
        ...(req.description !== undefined ? { description: req.description } : {}),
        ...(req.descriptionHash !== undefined ? { descriptionHash: req.descriptionHash } : {}),
        ...(req.expirySeconds !== undefined ? { expirySeconds: req.expirySeconds } : {}),
      };
      issued =
        req.hold && req.amountMsat !== null
          ? await op.client.createHoldInvoice(deposit.remote_deposit_id, {
              ...terms,
              amountMsat: req.amountMsat,
              paymentHash: req.hold.paymentHash,
              ...(req.hold.minCltvExpiryDelta !== undefined ? { minCltvExpiryDelta: req.hold.minCltvExpiryDelta } : {}),
            })
          : await op.client.createInvoice(deposit.remote_deposit_id, { ...terms, ...(req.amountMsat !== null ? { amountMsat: req.amountMsat } : {}) });
      ctx.operators.observe(op.nodePubkey, true);
    } catch (error) {
      if (!(error instanceof VaultError)) throw error;
      if (error.code === 'UNAVAILABLE') ctx.operators.observe(op.nodePubkey, false);
      // A refusal of the request itself (bad description, amount out of limits) would repeat anywhere.
      if (error.code === 'BAD_REQUEST') throw new Nip47Error('BAD_REQUEST', `vault operator could not make an invoice: ${error.message}`);
      lastFailure = `vault operator ${op.name} could not make an invoice: ${error.message}`;
      continue;
    }
    const problem = issuedInvoiceProblem(op, deposit, issued, req.amountMsat ?? 0n) ?? (req.hold && issued.payment_hash !== req.hold.paymentHash ? 'a hold invoice for another payment hash' : null);
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
      hold: req.hold !== undefined,
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
  // An amountless invoice (asked for with 0): none in the BOLT 11, "any amount" (0) in the record and proof.
  if ((decoded.value.amountMsat ?? 0n) !== amountMsat || issued.amount_msat !== amountMsat) return 'amount differs from the one asked for';
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
    invoiceAmountMsat: decoded.value.amountMsat,
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
  if (!ctx.operators.get(operatorPubkey)) return false;
  const update = verifiedBalanceUpdate(ctx, operatorPubkey, settled.balanceUpdate);
  // Paid (the payer holds the preimage) but no balance both peers signed for this deposit says
  // it got it: the selective-payment attack. Nothing is credited that the vault did not sign.
  if (!update || update.deposit_id !== settled.remoteDepositId) return markUncredited(ctx, operatorPubkey, settled);
  let credit = await creditSettledInvoice(ctx, operatorPubkey, settled, update);
  if (credit === undefined) {
    const deposit = await depositAt(ctx, operatorPubkey, settled.remoteDepositId);
    if (!deposit) return false;
    const known = await ctx.db.selectFrom('transactions').select('id').where('deposit_id', '=', deposit.id).where('type', '=', 'incoming').where('payment_hash', '=', settled.paymentHash).executeTakeFirst();
    if (known) return false;
    await recordForeignInvoice(ctx, operatorPubkey, deposit.id, deposit.user_pubkey, settled);
    credit = await creditSettledInvoice(ctx, operatorPubkey, settled, update);
    if (credit === undefined) return false;
  }
  if (credit.queued > 0) ctx.notifications?.poke();
  if (credit.zap) ctx.zapReceipts?.poke();
  return true;
}

function depositAt(ctx: WalletContext, operatorPubkey: string, remoteDepositId: string) {
  return ctx.db.selectFrom('deposits').select(['id', 'user_pubkey']).where('operator_pubkey', '=', operatorPubkey).where('remote_deposit_id', '=', remoteDepositId).executeTakeFirst();
}

/**
 * The credit of a settled invoice, in one statement: the invoice marked settled if it is not
 * yet, the deposit credited (the database journals it) with its newest signed balance, and the user's
 * connections notified (not for money moved between the user's own deposits). Undefined when
 * nothing was changed: no such invoice here, or it is settled already.
 */
async function creditSettledInvoice(ctx: WalletContext, operatorPubkey: string, settled: SettledInvoice, update: BalanceUpdate): Promise<{ queued: number; zap: boolean } | undefined> {
  const { rows } = await creditStatement(ctx.db, {
    operatorPubkey,
    remoteDepositId: settled.remoteDepositId,
    paymentHash: settled.paymentHash,
    preimage: settled.preimage,
    amount: settled.amountMsat,
    settledAt: BigInt(settled.settledAt),
    now: new Date(),
    balanceSeq: update.seq,
    balanceMsat: update.balance_msat,
  });
  const row = rows[0];
  if (!row) return undefined;
  const metadata = row.metadata;
  return { queued: Number(row.queued ?? 0n), zap: metadata !== null && ('nostr' in metadata || 'nostr_zap' in metadata) };
}

const creditStatement = compiledOnce(
  ['operatorPubkey', 'remoteDepositId', 'paymentHash', 'preimage', 'amount', 'settledAt', 'now', 'balanceSeq', 'balanceMsat'],
  (
    db,
    a: { operatorPubkey: string; remoteDepositId: string; paymentHash: string; preimage: string; amount: bigint; settledAt: bigint; now: Date; balanceSeq: number; balanceMsat: bigint },
  ) =>
    db
      .with('settled', (qb) =>
        qb
          .updateTable('transactions')
          .from('deposits')
          .set({ state: 'settled', preimage: a.preimage, amount_msat: a.amount, settled_at: a.settledAt, updated_at: a.now })
          .whereRef('transactions.deposit_id', '=', 'deposits.id')
          .where('deposits.operator_pubkey', '=', a.operatorPubkey)
          .where('deposits.remote_deposit_id', '=', a.remoteDepositId)
          // A literal, so that a generic plan uses the partial unique index of invoices.
          .where('transactions.type', '=', sql.lit('incoming'))
          .where('transactions.payment_hash', '=', a.paymentHash)
          .where('transactions.state', '!=', 'settled')
          .returning(['transactions.id', 'transactions.deposit_id', 'transactions.user_pubkey', 'transactions.metadata']),
      )
      .with('credited', (qb) =>
        qb
          .updateTable('deposits')
          .from('settled')
          .set((eb) => ({
            confirmed_msat: eb('deposits.confirmed_msat', '+', a.amount),
            ...journalEntry('credit', eb.ref('settled.id')),
            updated_at: a.now,
            ...newestBalanceSet(eb, a.balanceSeq, a.balanceMsat),
          }))
          .whereRef('deposits.id', '=', 'settled.deposit_id')
          .returning('deposits.id'),
      )
      // Money moved between the user's own deposits is not a payment received.
      .with('queued', (qb) =>
        queueSettledNotifications(qb, 'payment_received', sql<boolean>`exists (select 1 from transfers where transfers.incoming_transaction_id = settled.id)`),
      )
      .selectFrom('settled')
      .select(['settled.metadata'])
      .select((eb) => eb.selectFrom('queued').select(eb.fn.countAll<bigint>().as('n')).as('queued')),
);

/** A settlement without a balance both channel peers signed for the deposit: recorded as paid but not credited, once, as an integrity incident. */
async function markUncredited(ctx: WalletContext, operatorPubkey: string, settled: SettledInvoice): Promise<false> {
  const deposit = await depositAt(ctx, operatorPubkey, settled.remoteDepositId);
  if (!deposit) return false;
  const known = await ctx.db.selectFrom('transactions').select('id').where('deposit_id', '=', deposit.id).where('type', '=', 'incoming').where('payment_hash', '=', settled.paymentHash).executeTakeFirst();
  if (!known) await recordForeignInvoice(ctx, operatorPubkey, deposit.id, deposit.user_pubkey, settled);
  const marked = await ctx.db
    .updateTable('transactions')
    .set({
      state: 'settled',
      preimage: settled.preimage,
      settled_at: settled.settledAt,
      failure_reason: 'paid at the vault but not credited: no balance update signed by both channel peers',
      updated_at: new Date(),
    })
    .where('deposit_id', '=', deposit.id)
    .where('type', '=', 'incoming')
    .where('payment_hash', '=', settled.paymentHash)
    .where('state', '!=', 'settled')
    .returning('id')
    .executeTakeFirst();
  if (marked) {
    await recordIncident(ctx, {
      operatorPubkey,
      userPubkey: deposit.user_pubkey,
      kind: 'uncredited_payment',
      message: `an invoice of ${settled.amountMsat} msat was paid into the vault without a balance update signed by both channel peers`,
      evidence: { deposit: settled.remoteDepositId, payment_hash: settled.paymentHash, preimage: settled.preimage, balance_update: settled.balanceUpdate },
    });
  }
  return false;
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
  if (tx.type !== 'incoming' || (tx.state !== 'pending' && tx.state !== 'accepted')) return;
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
  await applyInvoiceStatus(ctx, op.nodePubkey, deposit.remote_deposit_id, status);
}

/** Records what a vault says of an invoice: settled (credited once), held, canceled or expired. */
export async function applyInvoiceStatus(ctx: WalletContext, operatorPubkey: string, remoteDepositId: string, status: VaultInvoice): Promise<void> {
  if (status.state === 'settled' && status.preimage && status.settled_at !== null) {
    await applyInvoiceSettled(ctx, operatorPubkey, {
      remoteDepositId,
      paymentHash: status.payment_hash,
      amountMsat: status.amount_msat,
      preimage: status.preimage,
      settledAt: status.settled_at,
      balanceUpdate: status.balance_update,
    });
  } else if (status.state === 'accepted') {
    await applyHoldAccepted(ctx, operatorPubkey, remoteDepositId, status.payment_hash, status.settle_deadline ?? null);
  } else if (status.state === 'canceled' || status.state === 'expired') {
    await ctx.db
      .updateTable('transactions')
      .set({ state: status.state === 'canceled' ? 'failed' : 'expired', ...(status.state === 'canceled' ? { failure_reason: 'hold invoice canceled' } : {}), updated_at: new Date() })
      .where('deposit_id', '=', (eb) => eb.selectFrom('deposits').select('id').where('operator_pubkey', '=', operatorPubkey).where('remote_deposit_id', '=', remoteDepositId))
      .where('type', '=', 'incoming')
      .where('payment_hash', '=', status.payment_hash)
      .where('state', 'in', ['pending', 'accepted'])
      .execute();
  }
}

/**
 * A payer's HTLC to a hold invoice is held at the vault: the invoice is `accepted`, nothing is
 * credited, and connections granted notifications hear `hold_invoice_accepted` (once).
 */
export async function applyHoldAccepted(ctx: WalletContext, operatorPubkey: string, remoteDepositId: string, paymentHash: string, settleDeadline: number | null): Promise<void> {
  const accepted = await inTransaction(ctx.db, async (trx) => {
    const tx = await trx
      .updateTable('transactions')
      .set({ state: 'accepted', settle_deadline: settleDeadline, updated_at: new Date() })
      .where('deposit_id', '=', (eb) => eb.selectFrom('deposits').select('id').where('operator_pubkey', '=', operatorPubkey).where('remote_deposit_id', '=', remoteDepositId))
      .where('type', '=', 'incoming')
      .where('payment_hash', '=', paymentHash)
      .where('state', '=', 'pending')
      .returning(['id', 'user_pubkey'])
      .executeTakeFirst();
    return tx ? queueNotifications(trx, tx.user_pubkey, tx.id, 'hold_invoice_accepted') : 0;
  });
  if (accepted > 0) ctx.notifications?.poke();
}

/** The user's hold invoice with this payment hash, or NOT_FOUND. */
async function holdInvoiceOf(ctx: WalletContext, userPubkey: string, paymentHash: string) {
  const tx = await ctx.db
    .selectFrom('transactions')
    .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
    .selectAll('transactions')
    .select(['deposits.operator_pubkey', 'deposits.remote_deposit_id'])
    .where('transactions.user_pubkey', '=', userPubkey)
    .where('transactions.type', '=', 'incoming')
    .where('transactions.hold', '=', true)
    .where('transactions.payment_hash', '=', paymentHash)
    .executeTakeFirst();
  if (!tx) throw new Nip47Error('NOT_FOUND', 'no hold invoice with that payment hash');
  const op = ctx.operators.get(tx.operator_pubkey);
  if (!op) throw new Nip47Error('INTERNAL', 'the vault operator of this hold invoice is not reachable');
  return { tx, op };
}

/** settle_hold_invoice: the preimage releases the held payment; the deposit is credited when both peers sign it. */
export async function settleHoldInvoice(ctx: WalletContext, userPubkey: string, preimage: string): Promise<void> {
  const paymentHash = bytesToHex(sha256(hexToBytes(preimage)));
  const { tx, op } = await holdInvoiceOf(ctx, userPubkey, paymentHash);
  if (tx.state === 'settled') return;
  let settled: VaultInvoice;
  try {
    settled = await op.client.settleHoldInvoice(tx.remote_deposit_id, paymentHash, preimage);
  } catch (error) {
    if (!(error instanceof VaultError)) throw error;
    throw new Nip47Error(NIP47_CODE_FOR_VAULT_ERROR[error.code], `could not settle: ${error.message}`);
  }
  await applyInvoiceStatus(ctx, op.nodePubkey, tx.remote_deposit_id, settled);
}

/** cancel_hold_invoice: the held payment fails back to its payer; nothing is credited. */
export async function cancelHoldInvoice(ctx: WalletContext, userPubkey: string, paymentHash: string): Promise<void> {
  const { tx, op } = await holdInvoiceOf(ctx, userPubkey, paymentHash);
  if (tx.state === 'settled') throw new Nip47Error('BAD_REQUEST', 'the hold invoice is already settled');
  let canceled: VaultInvoice;
  try {
    canceled = await op.client.cancelHoldInvoice(tx.remote_deposit_id, paymentHash);
  } catch (error) {
    if (!(error instanceof VaultError)) throw error;
    throw new Nip47Error(NIP47_CODE_FOR_VAULT_ERROR[error.code], `could not cancel: ${error.message}`);
  }
  await applyInvoiceStatus(ctx, op.nodePubkey, tx.remote_deposit_id, canceled);
}
