import { sql } from 'kysely';
import { compiledOnce } from '../db/compiled-once.ts';
import type { Event } from 'nostr-tools/pure';
import type { TransactionRow } from '../db/schema.ts';
import { feeLimitFor, type Msat } from '../protocol/amounts.ts';
import { buildAuthorization, REQUEST_MAX_AGE_SECONDS, REQUEST_MAX_SKEW_SECONDS, type SignedPayment } from '../protocol/authorization.ts';
import { checkSpendLimits } from '../protocol/grant.ts';
import { decodePayableInvoice, type BitcoinNetwork } from '../protocol/invoice.ts';
import { bytesToHex, hexToBytes } from '../protocol/hex.ts';
import type { TlvRecord } from '../protocol/nwc-request.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { Nip47Error, NIP47_CODE_FOR_VAULT_ERROR } from '../protocol/nip47-error.ts';
import type { NwcEncryption } from '../protocol/nwc-encryption.ts';
import type { VaultErrorCode } from '../protocol/result.ts';
import type { VaultPayment } from '../protocol/vault-api.ts';
import { verifyBalanceUpdate } from '../protocol/vault-proof.ts';
import { VaultError, type PayParams } from '../vault-client/vault-client.ts';
import { payingDepositsInOrder, type DepositCandidate } from './allocation.ts';
import type { Connection } from './connections.ts';
import { BridgeStopping, type WalletContext } from './context.ts';
import { depositCandidates } from './deposit-candidates.ts';
import { userPolicy } from './policy.ts';
import { recordIncident } from './incidents.ts';
import { queueNotifications, queueSettledNotifications } from './notification-outbox.ts';
import { changeDepositMoney, inTransaction, journalEntry, type Trx } from './journal.ts';
import { admitPayment, lockConnection, readAdmission, type ReservedDeposit } from './admission.ts';
import { fillDepositFor } from './transfers.ts';
import { newestBalanceSet, recordBalanceUpdate, verifiedBalanceUpdate } from './vault-records.ts';

/** A paying NIP-47 request (pay_invoice, pay_keysend, NWC-321 pay), with what a vault needs to verify it was the app's. */
export interface PaymentRequest {
  connection: Connection;
  /** The kind 23194 event exactly as the app signed it. */
  request: Event;
  encryption: NwcEncryption;
  /** The shared key of (connection, wallet service) that decrypts `request`. */
  key: Uint8Array;
  /** What the app signed, read with the very function vaults use (`parseSignedPayment`). */
  signed: SignedPayment;
  /**
   * The request was claimed for the first time just now, so no attempt of it can exist yet and
   * none is looked for. Absent or false (a request taken over after a crash): looked for first.
   */
  firstAttempt?: boolean;
}

export interface PaymentOutcome {
  transactionId: bigint;
  paymentHash: string;
  preimage: string;
  amountMsat: Msat;
  feesPaidMsat: Msat;
  createdAt: number;
  settledAt: number;
}

/** Vault refusals that say nothing about the request itself: another deposit may pay it. */
const OPERATOR_SIDE_REFUSALS: ReadonlySet<VaultErrorCode> = new Set(['UNAVAILABLE', 'INTERNAL', 'INSUFFICIENT_BALANCE']);

/**
 * Pays what the app signed (an invoice, a keysend, a lightning address the vault resolves)
 * from one of the user's deposits. Admission (lock, grant limits, budget, velocity, balance)
 * and the reservation of amount + fee limit happen in one database transaction under a lock
 * on the connection row; then the vault is called with the user-rooted authorization. Never
 * pays twice: the request id is the idempotency key end to end, and an invoice already paid or
 * in flight for this user answers with that attempt's outcome instead of a second payment.
 */
export async function pay(ctx: WalletContext, req: PaymentRequest): Promise<PaymentOutcome> {
  if (!req.firstAttempt) {
    const own = await ctx.db.selectFrom('transactions').selectAll().where('request_event_id', '=', req.request.id).executeTakeFirst();
    if (own) {
      if (await hasParts(ctx, own.id)) return driveParts(ctx, req, own.id);
      return drive(ctx, req, own, new Set());
    }
  }

  const network = ctx.operators.network();
  if (!network) throw new Nip47Error('INTERNAL', 'no vault operator is reachable');
  const target = payTarget(req, network, ctx.now());
  let admitted: Admitted;
  try {
    admitted = await admit(ctx, req, target, new Set());
  } catch (error) {
    // No one deposit covers it: several pay it together (basic_mpp), or one is filled first.
    if (error instanceof Nip47Error && error.code === 'INSUFFICIENT_BALANCE' && req.signed.target === 'invoice') {
      const spread = await payFromSeveral(ctx, req, target, req.signed.invoice.basicMpp);
      if (spread) return spread;
    }
    // Another request for the same invoice won the race to the unique index: share its outcome.
    const raced = isUniqueViolation(error) && target.paymentHash ? await liveAttempt(ctx, req.connection.userPubkey, target.paymentHash) : undefined;
    if (raced) return awaitOutcome(ctx, raced.id);
    throw error;
  }
  // The user pays this invoice already, or paid it: this request shares that attempt's outcome.
  if ('live' in admitted) return awaitOutcome(ctx, admitted.live);
  return drive(ctx, req, admitted.tx, new Set(), admitted.reservedOn);
}

/** What a payment's row records before the vault has paid: what is known of its target. */
interface PayTarget {
  /** Known up front for an invoice or a keysend with the app's preimage; else learnt from the vault. */
  paymentHash: string | null;
  invoice: string;
  description: string | null;
  descriptionHash: string | null;
  expiresAt: number | null;
  metadata: Record<string, unknown> | null;
}

/** TLV records as NIP-47 metadata shows them: types as JSON numbers (as strings past 2^53, to stay exact). */
function nip47TlvRecords(records: readonly TlvRecord[]): { type: number | string; value: string }[] {
  return records.map((r) => ({ type: r.type <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(r.type) : r.type.toString(), value: r.value }));
}

function payTarget(req: PaymentRequest, network: BitcoinNetwork, nowSec: number): PayTarget {
  const signed = req.signed;
  const metadata = signed.metadata ?? null;
  switch (signed.target) {
    case 'invoice': {
      const decoded = decodePayableInvoice(signed.invoice.paymentRequest, network, nowSec);
      if (!decoded.ok) {
        // NWC-321 names its own code for an instruction of another network.
        const code = signed.method === 'pay' && decoded.error.code === 'WRONG_NETWORK' ? 'UNSUPPORTED_NETWORK' : 'BAD_REQUEST';
        throw new Nip47Error(code, decoded.error.message);
      }
      const invoice = decoded.value;
      return { paymentHash: invoice.paymentHash, invoice: invoice.paymentRequest, description: invoice.description, descriptionHash: invoice.descriptionHash, expiresAt: invoice.expiresAt, metadata };
    }
    case 'keysend':
      return {
        paymentHash: signed.preimage === null ? null : bytesToHex(sha256(hexToBytes(signed.preimage))),
        invoice: '',
        description: null,
        descriptionHash: null,
        expiresAt: null,
        metadata: { ...(metadata ?? {}), keysend: { destination: signed.destination }, ...(signed.tlvRecords.length > 0 ? { tlv_records: nip47TlvRecords(signed.tlvRecords) } : {}) },
      };
    case 'lightning_address':
      return {
        paymentHash: null,
        invoice: '',
        description: null,
        descriptionHash: null,
        expiresAt: null,
        metadata: { ...(metadata ?? {}), recipient_data: { identifier: `${signed.address.name}@${signed.address.host}` } },
      };
  }
}

/** The user's pending or settled payment of this hash, if any. */
function liveAttempt(ctx: WalletContext, userPubkey: string, paymentHash: string) {
  return ctx.db
    .selectFrom('transactions')
    .select('id')
    .where('user_pubkey', '=', userPubkey)
    .where('payment_hash', '=', paymentHash)
    .where('type', '=', 'outgoing')
    .where('state', 'in', ['pending', 'settled'])
    .executeTakeFirst();
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && error.code === '23505';
}

/** An admitted payment and the deposit its money is reserved on, or the user's live attempt at the same payment hash. */
type Admitted = { tx: TransactionRow; reservedOn: ReservedDeposit } | { live: bigint };

/** How many times an admission is read and decided again after losing a race, before it gives up. */
const ADMISSION_ATTEMPTS = 50;

/**
 * Admission (src/deposits/admission.ts): everything the decision needs read at once, the
 * owner's lock and the grant's limits checked, then the transaction inserted with its
 * reservation on the best deposit that has amount + fee limit available, only if no other
 * admission of the connection came in between; otherwise read and decided again. The row is
 * inserted as `sent`: the vault is called right after, and after a crash a `sent` payment is
 * asked about before it is sent, which is right whether or not it was.
 */
async function admit(ctx: WalletContext, req: PaymentRequest, target: PayTarget, excluded: ReadonlySet<string>): Promise<Admitted> {
  const amount = req.signed.amountMsat;
  if (amount <= 0n) throw new Nip47Error('BAD_REQUEST', 'amount must be positive');
  const grant = req.connection.grant;
  const maxFee = feeLimitOfRequest(req);
  const need = amount + maxFee;
  const allowed = grant.vaultOperators;

  for (let attempt = 1; ; attempt++) {
    const state = await readAdmission(ctx, ctx.db, req.connection, target.paymentHash);
    if (state.liveTransactionId !== null) return { live: state.liveTransactionId };
    if (state.locked) throw new Nip47Error('RESTRICTED', 'the owner has locked their deposits: no payment leaves them until unlocked');
    const limits = checkSpendLimits(grant, amount, maxFee, state.usage);
    if (!limits.ok) throw new Nip47Error(NIP47_CODE_FOR_VAULT_ERROR[limits.error.code], limits.error.message);
    const candidates = state.candidates.filter((c) => !excluded.has(c.operatorPubkey) && (allowed === null || allowed.includes(c.operatorPubkey)));
    const best = payingDepositsInOrder(candidates, need, state.policy)[0];
    if (!best) throw new Nip47Error('INSUFFICIENT_BALANCE', `no deposit holds ${amount} msat plus a fee reserve of ${maxFee} msat`);
    const admitted = await admitPayment(
      ctx.db,
      state,
      {
        user_pubkey: req.connection.userPubkey,
        deposit_id: best.depositId,
        connection_pubkey: req.connection.pubkey,
        // Until the vault says, a payment whose hash is not known yet is named by its request id.
        payment_hash: target.paymentHash ?? req.request.id,
        invoice: target.invoice,
        description: target.description,
        description_hash: target.descriptionHash,
        amount_msat: amount,
        fee_reserve_msat: maxFee,
        request_event_id: req.request.id,
        idempotency_key: req.request.id,
        metadata: JSON.stringify(target.metadata),
        created_at: BigInt(ctx.now()),
        expires_at: target.expiresAt === null ? null : BigInt(target.expiresAt),
      },
      need,
    );
    if (admitted !== 'conflict') return admitted;
    if (attempt >= ADMISSION_ATTEMPTS) throw new Nip47Error('INTERNAL', 'too many payments of this connection at once; send this one again');
  }
}

/** The fee limit a payment reserves and sends: the grant's for the amount, or the app's own `max_fee` when lower. */
export function feeLimitOfRequest(req: PaymentRequest): Msat {
  const grantFee = feeLimitFor(req.signed.amountMsat, req.connection.grant.feeLimit);
  return req.signed.maxFeeMsat !== null && req.signed.maxFeeMsat < grantFee ? req.signed.maxFeeMsat : grantFee;
}

/** Healthy deposits of the user at operators the grant allows, that cover `need`, best first. */
async function payableDeposits(ctx: WalletContext, trx: Trx, req: PaymentRequest, need: Msat, excluded: ReadonlySet<string>) {
  const allowed = req.connection.grant.vaultOperators;
  const candidates = (await depositCandidates(ctx, trx, req.connection.userPubkey)).filter(
    (c) => !excluded.has(c.operatorPubkey) && (allowed === null || allowed.includes(c.operatorPubkey)),
  );
  return payingDepositsInOrder(candidates, need, await userPolicy(trx, req.connection.userPubkey));
}

/**
 * Reserves `need` on the first deposit of `order` that still has it; the conditional update is
 * the real check, since another request may have taken the money since the read.
 */
async function reserveOnFirst(trx: Trx, order: readonly { depositId: bigint }[], txId: bigint, need: Msat): Promise<bigint | null> {
  for (const candidate of order) {
    const reserved = await changeDepositMoney(trx, {
      depositId: candidate.depositId,
      transactionId: txId,
      kind: 'reserve',
      confirmedDeltaMsat: 0n,
      reservedDeltaMsat: need,
      requireAvailableMsat: need,
    });
    if (reserved) return candidate.depositId;
  }
  return null;
}

/**
 * Takes a payment from wherever it stands to a final state. `tried` holds operators that
 * refused it; `admitted` is the deposit of a payment admitted just now, which its vault
 * cannot have seen yet.
 */
async function drive(ctx: WalletContext, req: PaymentRequest, tx: TransactionRow, tried: Set<string>, admitted?: ReservedDeposit): Promise<PaymentOutcome> {
  // Another request's attempt at the same invoice is that request's to drive; this one only waits.
  if (tx.request_event_id !== req.request.id) return awaitOutcome(ctx, tx.id);
  if (tx.state !== 'pending' || tx.step === 'final') return awaitOutcome(ctx, tx.id);

  const deposit = admitted ?? (await ctx.db.selectFrom('deposits').select(['id', 'operator_pubkey', 'remote_deposit_id', 'confirmed_msat']).where('id', '=', tx.deposit_id).executeTakeFirstOrThrow());
  const op = ctx.operators.get(deposit.operator_pubkey);
  const unsent = admitted !== undefined || tx.step === 'reserved';
  if (!op && unsent) return retryElsewhere(ctx, req, tx, tried, deposit.operator_pubkey, 'the vault operator is not connected', 'UNAVAILABLE');
  // A payment the vault may hold waits for it to come back, its money still reserved.
  if (!op) return awaitOutcome(ctx, tx.id, { req, tried });

  let known: VaultPayment | null = null;
  let mustSend = unsent;
  if (!unsent) {
    // The vault may have it from before a crash or timeout: ask before sending again. Only a
    // definite "not found" allows sending; an unreachable vault leaves the payment pending.
    try {
      known = await op.client.paymentStatus(deposit.remote_deposit_id, tx.idempotency_key ?? req.request.id);
      mustSend = known === null;
    } catch (error) {
      ctx.logger.warn({ txId: tx.id.toString(), operator: op.name, err: error }, 'vault unreachable; payment stays pending');
    }
  }
  const idempotencyKey = tx.idempotency_key ?? req.request.id;
  if (mustSend) {
    if (tx.step === 'reserved') await ctx.db.updateTable('transactions').set({ step: 'sent', updated_at: new Date() }).where('id', '=', tx.id).execute();
    try {
      // The answer carries the outcome: the vault's event of it, often sooner, is left to the answer.
      const answered = await ctx.finality.answering(deposit.operator_pubkey, deposit.remote_deposit_id, idempotencyKey, async () => {
        const payment = await op.client.pay(deposit.remote_deposit_id, vaultPayParams(req, tx));
        return { payment, settled: await applyPaymentState(ctx, deposit.operator_pubkey, tx.id, payment, tx.fee_reserve_msat) };
      });
      ctx.operators.observe(op.nodePubkey, true);
      if (answered.settled || answered.payment.state === 'failed') ctx.finality.remember(deposit.operator_pubkey, deposit.remote_deposit_id, idempotencyKey);
      if (answered.settled) return answered.settled;
      if (answered.payment.state === 'failed') return awaitOutcome(ctx, tx.id, { req, tried });
      known = null;
    } catch (error) {
      if (!(error instanceof VaultError)) throw error;
      if (error.code === 'UNAVAILABLE') ctx.operators.observe(op.nodePubkey, false);
      if (error.outcomeUnknown) {
        ctx.logger.warn({ txId: tx.id.toString(), operator: op.name }, 'vault outcome unknown; payment stays pending');
      } else if (OPERATOR_SIDE_REFUSALS.has(error.code)) {
        if (error.code !== 'UNAVAILABLE') {
          await recordIncident(ctx, {
            operatorPubkey: op.nodePubkey,
            userPubkey: tx.user_pubkey,
            kind: error.code === 'INSUFFICIENT_BALANCE' ? 'balance_mismatch' : 'refused',
            message: `refused a payment the journal covers: ${error.code}: ${error.message}`,
            evidence: { deposit: deposit.remote_deposit_id, idempotency_key: tx.idempotency_key, confirmed_msat: deposit.confirmed_msat },
          });
        }
        return retryElsewhere(ctx, req, tx, tried, op.nodePubkey, `vault refused: ${error.message}`, error.code);
      } else {
        await failOutgoing(ctx, tx.id, `vault refused: ${error.message}`);
        throw new Nip47Error(NIP47_CODE_FOR_VAULT_ERROR[error.code], error.message);
      }
    }
  }
  if (known) {
    const settled = await applyPaymentState(ctx, deposit.operator_pubkey, tx.id, known, tx.fee_reserve_msat);
    if (settled || known.state === 'failed') ctx.finality.remember(deposit.operator_pubkey, deposit.remote_deposit_id, idempotencyKey);
    if (settled) return settled;
  }
  return awaitOutcome(ctx, tx.id, { req, tried });
}

/** The Vault API call for a payment: its target as the app signed it, the amount, the reserved fee limit. */
function vaultPayParams(req: PaymentRequest, tx: TransactionRow): PayParams {
  const base = {
    amountMsat: tx.amount_msat,
    maxFeeMsat: tx.fee_reserve_msat,
    idempotencyKey: tx.idempotency_key ?? req.request.id,
    authorization: buildAuthorization(req.connection.grantEvent, req.request, req.encryption, req.key),
  };
  const signed = req.signed;
  switch (signed.target) {
    case 'invoice':
      return { ...base, invoice: signed.invoice.paymentRequest };
    case 'keysend':
      return {
        ...base,
        keysend: { destination: signed.destination, ...(signed.preimage !== null ? { preimage: signed.preimage } : {}), ...(signed.tlvRecords.length > 0 ? { tlvRecords: signed.tlvRecords } : {}) },
      };
    case 'lightning_address':
      return { ...base, lightningAddress: `${signed.address.name}@${signed.address.host}` };
  }
}

/**
 * After a vault refused a payment for its own reasons (down, failing, or disagreeing about the
 * balance), moves the reservation to another of the user's deposits and pays from there; with
 * none left, the payment fails and its reservation is released.
 */
async function retryElsewhere(
  ctx: WalletContext,
  req: PaymentRequest,
  tx: TransactionRow,
  tried: Set<string>,
  operatorPubkey: string,
  reason: string,
  code: VaultErrorCode,
): Promise<PaymentOutcome> {
  tried.add(operatorPubkey);
  const need = tx.amount_msat + tx.fee_reserve_msat;
  const moved = await inTransaction(ctx.db, async (trx) => {
    const current = await trx.selectFrom('transactions').selectAll().where('id', '=', tx.id).forNoKeyUpdate().executeTakeFirstOrThrow();
    if (current.state !== 'pending' || current.step === 'final') return null;
    const order = await payableDeposits(ctx, trx, req, need, tried);
    if (order.length === 0) return null;
    await changeDepositMoney(trx, { depositId: current.deposit_id, transactionId: current.id, kind: 'release', confirmedDeltaMsat: 0n, reservedDeltaMsat: -need });
    const reservedOn = await reserveOnFirst(trx, order, current.id, need);
    if (reservedOn === null) throw new RetryAbandoned();
    return trx.updateTable('transactions').set({ deposit_id: reservedOn, step: 'reserved', updated_at: new Date() }).where('id', '=', current.id).returningAll().executeTakeFirstOrThrow();
  }).catch((error: unknown) => {
    if (error instanceof RetryAbandoned) return null;
    throw error;
  });
  if (moved) {
    ctx.logger.warn({ txId: tx.id.toString(), reason }, 'payment moved to another deposit');
    return drive(ctx, req, moved, tried);
  }
  await failOutgoing(ctx, tx.id, reason);
  throw new Nip47Error(code === 'UNAVAILABLE' || code === 'INTERNAL' ? 'PAYMENT_FAILED' : NIP47_CODE_FOR_VAULT_ERROR[code], reason);
}

/** Thrown inside a transaction to roll back a move whose new reservation lost a race. */
class RetryAbandoned extends Error {}

/**
 * Records a vault's report of a payment. Idempotent: a final payment never changes again.
 * Returns the outcome when this call settled it. `feeReserveMsat`: the payment's fee reserve,
 * when the caller has it.
 */
export async function applyPaymentState(ctx: WalletContext, operatorPubkey: string, txId: bigint, payment: VaultPayment, feeReserveMsat?: Msat): Promise<PaymentOutcome | null> {
  if (payment.state === 'pending') return null;
  if (payment.state === 'failed') {
    await failOutgoing(
      ctx,
      txId,
      payment.failure_reason ?? 'payment failed',
      async (trx, depositId) => recordBalanceUpdate(ctx, trx, depositId, operatorPubkey, payment.balance_update),
      payment.failure_code ?? null,
    );
    return null;
  }
  const preimage = payment.preimage;
  if (!preimage) {
    ctx.logger.error({ txId: txId.toString() }, 'vault reported a settled payment without a preimage; left pending');
    return null;
  }
  // With the payment's fee reserve known and the fee within it, nothing changed means it was final already.
  const withinKnownLimit = feeReserveMsat !== undefined && payment.fee_msat <= feeReserveMsat;
  const settled = (await settleWithinFeeLimit(ctx, operatorPubkey, txId, payment, preimage)) ?? (withinKnownLimit ? null : await settleAboveFeeLimit(ctx, operatorPubkey, txId, payment, preimage));
  if (!settled) return null;
  ctx.finality.notify(txId);
  if (settled.queued > 0) ctx.notifications?.poke();
  if (settled.violation) {
    await recordIncident(ctx, {
      operatorPubkey,
      userPubkey: settled.tx.user_pubkey,
      kind: 'fee_violation',
      message: settled.violation,
      evidence: { payment, idempotency_key: settled.tx.idempotency_key },
    });
  }
  return outcomeOf(settled.tx);
}

interface Settled {
  tx: TransactionRow;
  violation: string | null;
  /** Notifications queued with it. */
  queued: number;
}

function outcomeOf(tx: TransactionRow): PaymentOutcome {
  return {
    transactionId: tx.id,
    paymentHash: tx.payment_hash,
    preimage: tx.preimage ?? '',
    amountMsat: tx.amount_msat,
    feesPaidMsat: tx.fee_msat,
    createdAt: Number(tx.created_at),
    settledAt: Number(tx.settled_at ?? tx.created_at),
  };
}

/**
 * The usual settlement, in one statement: the payment marked settled if it is still pending
 * and its fee within the limit reserved for it, the deposit debited (amount and fee charged,
 * the reservation released; the database journals it) with its newest signed balance, and the
 * notifications queued. Undefined when nothing was changed: the payment was not pending, or
 * the vault reports a fee above the limit, which `settleAboveFeeLimit` then judges.
 */
async function settleWithinFeeLimit(ctx: WalletContext, operatorPubkey: string, txId: bigint, payment: VaultPayment, preimage: string): Promise<Settled | undefined> {
  const update = verifiedBalanceUpdate(ctx, operatorPubkey, payment.balance_update);
  const { rows } = await settleStatement(ctx.db, {
    txId,
    fee: payment.fee_msat,
    preimage,
    settledAt: BigInt(payment.settled_at ?? ctx.now()),
    paymentHash: payment.payment_hash,
    invoice: payment.invoice ?? '',
    now: new Date(),
    balanceSeq: update?.seq ?? null,
    balanceMsat: update?.balance_msat ?? null,
  });
  const row = rows[0];
  if (!row) return undefined;
  const { queued, ...tx } = row;
  return { tx, violation: null, queued: Number(queued ?? 0n) };
}

const settleStatement = compiledOnce(
  ['txId', 'fee', 'preimage', 'settledAt', 'paymentHash', 'invoice', 'now', 'balanceSeq', 'balanceMsat'],
  (
    db,
    a: { txId: bigint; fee: bigint; preimage: string; settledAt: bigint; paymentHash: string; invoice: string; now: Date; balanceSeq: number | null; balanceMsat: bigint | null },
  ) =>
    db
      .with('settled', (qb) =>
        qb
          .updateTable('transactions')
          .set((eb) => ({
            state: 'settled',
            step: 'final',
            preimage: a.preimage,
            fee_msat: a.fee,
            settled_at: a.settledAt,
            // A keysend without the app's preimage, or a lightning address: now the hash (and invoice) are known.
            payment_hash: a.paymentHash,
            invoice: eb.case().when('invoice', '=', '').then(eb.val(a.invoice)).else(eb.ref('invoice')).end(),
            updated_at: a.now,
          }))
          .where('id', '=', a.txId)
          .where('state', '=', 'pending')
          .where('fee_reserve_msat', '>=', a.fee)
          .returningAll(),
      )
      .with('debited', (qb) =>
        qb
          .updateTable('deposits')
          .from('settled')
          .set((eb) => ({
            confirmed_msat: eb('deposits.confirmed_msat', '-', eb.parens('settled.amount_msat', '+', a.fee)),
            reserved_msat: eb('deposits.reserved_msat', '-', eb.parens('settled.amount_msat', '+', eb.ref('settled.fee_reserve_msat'))),
            ...journalEntry('debit', eb.ref('settled.id')),
            updated_at: a.now,
            ...newestBalanceSet(eb, a.balanceSeq, a.balanceMsat),
          }))
          .whereRef('deposits.id', '=', 'settled.deposit_id')
          .returning('deposits.id'),
      )
      // A transfer between the user's own deposits is no payment an app made.
      .with('queued', (qb) => queueSettledNotifications(qb, 'payment_sent', sql<boolean>`coalesce(settled.metadata ? 'transfer', false)`))
      .selectFrom('settled')
      .selectAll('settled')
      .select((eb) => eb.selectFrom('queued').select(eb.fn.countAll<bigint>().as('n')).as('queued')),
);

/**
 * A fee above the limit the vault was given is charged only as far as a balance signed by both
 * channel peers proves the vault took it, and never into what other payments in flight hold; the
 * violation is recorded either way. Also the path of a payment no longer pending (null).
 */
async function settleAboveFeeLimit(ctx: WalletContext, operatorPubkey: string, txId: bigint, payment: VaultPayment, preimage: string): Promise<Settled | null> {
  const op = ctx.operators.get(operatorPubkey);
  return inTransaction(ctx.db, async (trx) => {
    const tx = await trx.selectFrom('transactions').selectAll().where('id', '=', txId).forNoKeyUpdate().executeTakeFirstOrThrow();
    if (tx.state !== 'pending') return null;
    const deposit = await trx.selectFrom('deposits').select('confirmed_msat').where('id', '=', tx.deposit_id).forNoKeyUpdate().executeTakeFirstOrThrow();
    let charged = payment.fee_msat;
    let violation: string | null = null;
    if (payment.fee_msat > tx.fee_reserve_msat) {
      const update = payment.balance_update;
      const proven =
        op !== undefined &&
        update !== null &&
        verifyBalanceUpdate(update, op.nodePubkey, op.peerNodePubkey).ok &&
        update.balance_msat === deposit.confirmed_msat - tx.amount_msat - payment.fee_msat;
      charged = proven ? payment.fee_msat : tx.fee_reserve_msat;
      violation = `vault reported fee ${payment.fee_msat} msat above the limit of ${tx.fee_reserve_msat} msat; ${charged} msat charged${proven ? ' (its signed balance shows it took the excess)' : ''}`;
    }
    const debit = (fee: Msat) =>
      changeDepositMoney(trx, {
        depositId: tx.deposit_id,
        transactionId: tx.id,
        kind: 'debit',
        confirmedDeltaMsat: -(tx.amount_msat + fee),
        reservedDeltaMsat: -(tx.amount_msat + tx.fee_reserve_msat),
        // Charging beyond the reservation must still leave other reservations covered.
        requireAvailableMsat: fee > tx.fee_reserve_msat ? fee - tx.fee_reserve_msat : undefined,
      });
    if (!(await debit(charged))) {
      charged = tx.fee_reserve_msat;
      violation = `${violation ?? ''}; the excess is not charged: it would not leave other payments in flight covered`;
      await debit(charged);
    }
    const settled = await trx
      .updateTable('transactions')
      .set({
        state: 'settled',
        step: 'final',
        preimage,
        fee_msat: charged,
        settled_at: payment.settled_at ?? ctx.now(),
        failure_reason: violation,
        payment_hash: payment.payment_hash,
        ...(tx.invoice === '' && payment.invoice ? { invoice: payment.invoice } : {}),
        updated_at: new Date(),
      })
      .where('id', '=', txId)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordBalanceUpdate(ctx, trx, tx.deposit_id, operatorPubkey, payment.balance_update);
    const queued = tx.metadata !== null && 'transfer' in tx.metadata ? 0 : await queueNotifications(trx, tx.user_pubkey, tx.id, 'payment_sent');
    return { tx: settled, violation, queued };
  });
}

/** Fails a pending payment and releases its reservation (once). */
export async function failOutgoing(
  ctx: WalletContext,
  txId: bigint,
  reason: string,
  alsoInTransaction?: (trx: Trx, depositId: bigint) => Promise<void>,
  failureCode: string | null = null,
): Promise<void> {
  const failed = await inTransaction(ctx.db, async (trx) => {
    const tx = await trx.selectFrom('transactions').selectAll().where('id', '=', txId).forNoKeyUpdate().executeTakeFirstOrThrow();
    if (tx.state !== 'pending') return false;
    await changeDepositMoney(trx, {
      depositId: tx.deposit_id,
      transactionId: tx.id,
      kind: 'release',
      confirmedDeltaMsat: 0n,
      reservedDeltaMsat: -(tx.amount_msat + tx.fee_reserve_msat),
    });
    await trx
      .updateTable('transactions')
      .set({ state: 'failed', step: 'final', failure_reason: reason.slice(0, 500), failure_code: failureCode, updated_at: new Date() })
      .where('id', '=', txId)
      .execute();
    if (alsoInTransaction) await alsoInTransaction(trx, tx.deposit_id);
    return true;
  });
  if (failed) ctx.finality.notify(txId);
}

/**
 * Waits until the payment is final, asking its vault now and then (events from the vault's
 * stream wake it sooner). A payment whose vault cannot be reached stays pending: its money is
 * reserved, never released on a guess. With the request at hand (`resume`), a payment the vault
 * says it never received is sent again.
 */
async function awaitOutcome(ctx: WalletContext, txId: bigint, resume?: { req: PaymentRequest; tried: Set<string> }): Promise<PaymentOutcome> {
  let delayMs = 200;
  for (;;) {
    const tx = await ctx.db.selectFrom('transactions').selectAll().where('id', '=', txId).executeTakeFirstOrThrow();
    if (tx.state === 'settled') return outcomeOf(tx);
    if (tx.state === 'failed') {
      // A route dearer than the app's (or grant's) fee limit is reported as such (NWC max_fee).
      throw new Nip47Error(tx.failure_code === 'FEE_LIMIT_EXCEEDED' ? 'FEE_LIMIT_EXCEEDED' : 'PAYMENT_FAILED', tx.failure_reason ?? 'payment failed');
    }
    if (ctx.stopping.aborted) throw new BridgeStopping();
    await ctx.finality.wait(txId, delayMs, ctx.stopping);
    if (ctx.stopping.aborted) throw new BridgeStopping();
    delayMs = Math.min(delayMs * 2, 5_000);
    if ((await refreshOutgoing(ctx, txId)) === 'absent' && resume) {
      const current = await ctx.db.selectFrom('transactions').selectAll().where('id', '=', txId).executeTakeFirstOrThrow();
      return drive(ctx, resume.req, current, resume.tried);
    }
  }
}

/**
 * How long after its request a payment the vault never received may still be accepted by it:
 * the vaults' freshness window plus clock skew, with a margin. After that it never will be.
 */
const NEVER_ACCEPTED_AFTER_SECONDS = REQUEST_MAX_AGE_SECONDS + REQUEST_MAX_SKEW_SECONDS + 60;

/**
 * Asks the vault for a sent payment's state and records it. Returns `absent` when the vault
 * says it never received the payment (which, once the request is too old for any vault to
 * accept, fails it and releases its reservation), `unreachable` when it could not be asked.
 */
export async function refreshOutgoing(ctx: WalletContext, txId: bigint): Promise<'known' | 'absent' | 'unreachable'> {
  const row = await ctx.db
    .selectFrom('transactions')
    .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
    .select(['transactions.state', 'transactions.step', 'transactions.idempotency_key', 'transactions.created_at', 'deposits.operator_pubkey', 'deposits.remote_deposit_id'])
    .where('transactions.id', '=', txId)
    .executeTakeFirstOrThrow();
  if (row.state !== 'pending' || row.step !== 'sent' || !row.idempotency_key) return 'known';
  const op = ctx.operators.get(row.operator_pubkey);
  if (!op) return 'unreachable';
  try {
    const payment = await op.client.paymentStatus(row.remote_deposit_id, row.idempotency_key);
    ctx.operators.observe(op.nodePubkey, true);
    if (payment) {
      await applyPaymentState(ctx, row.operator_pubkey, txId, payment);
      return 'known';
    }
    if (row.created_at < BigInt(ctx.now() - NEVER_ACCEPTED_AFTER_SECONDS)) {
      await failOutgoing(ctx, txId, 'the vault never received the payment, and the request is now too old for it to accept');
    }
    return 'absent';
  } catch (error) {
    if (error instanceof VaultError && error.code === 'UNAVAILABLE') ctx.operators.observe(op.nodePubkey, false);
    ctx.logger.warn({ txId: txId.toString(), err: error }, 'could not learn a payment outcome; will ask again');
    return 'unreachable';
  }
}

/** Asks the vaults about every payment left pending (after a restart, or a missed event). */
export async function refreshPendingOutgoing(ctx: WalletContext): Promise<void> {
  const pending = await ctx.db.selectFrom('transactions').select('id').where('type', '=', 'outgoing').where('state', '=', 'pending').where('step', '=', 'sent').execute();
  for (const { id } of pending) await refreshOutgoing(ctx, id);
  await refreshPendingParts(ctx);
}

/**
 * Applies a payment_settled / payment_failed event from a vault's stream. The event is a hint:
 * the payment's own record at the vault (`fetchPayment`) is what gets applied, and it is asked
 * for only while this bridge still has the payment (or part) pending under that key at that
 * vault. One already final here, usually from the vault's answer to the payment call itself,
 * costs no call (and no query, when this instance finalized it lately); so does one whose
 * payment call is still out, since that answer carries the outcome (and a payment it leaves
 * pending is asked about again by `awaitOutcome`).
 */
export async function applyPaymentEvent(
  ctx: WalletContext,
  operatorPubkey: string,
  remoteDepositId: string,
  idempotencyKey: string,
  fetchPayment: () => Promise<VaultPayment | null>,
): Promise<void> {
  if (ctx.finality.isKnownFinal(operatorPubkey, remoteDepositId, idempotencyKey)) return;
  const tx = await ctx.db
    .selectFrom('transactions')
    .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
    .select(['transactions.id', 'transactions.state'])
    .where('deposits.operator_pubkey', '=', operatorPubkey)
    .where('deposits.remote_deposit_id', '=', remoteDepositId)
    .where('transactions.idempotency_key', '=', idempotencyKey)
    // A literal, so that a generic plan uses the partial index of outgoing keys.
    .where('transactions.type', '=', sql.lit('outgoing'))
    .executeTakeFirst();
  if (tx) {
    if (tx.state !== 'pending') return;
    const payment = await fetchPayment();
    if (payment) await applyPaymentState(ctx, operatorPubkey, tx.id, payment);
    return;
  }
  const part = await ctx.db
    .selectFrom('payment_parts')
    .innerJoin('deposits', 'deposits.id', 'payment_parts.deposit_id')
    .select(['payment_parts.id', 'payment_parts.state'])
    .where('deposits.operator_pubkey', '=', operatorPubkey)
    .where('deposits.remote_deposit_id', '=', remoteDepositId)
    .where('payment_parts.idempotency_key', '=', idempotencyKey)
    .executeTakeFirst();
  if (!part || part.state !== 'pending') return;
  const payment = await fetchPayment();
  if (payment) await applyPartState(ctx, operatorPubkey, part.id, payment);
}

// ---------------------------------------------------------------- multi-part payments

/** At most this many deposits pay one invoice together. */
export const MAX_PAYMENT_PARTS = 8;

/** One deposit's share of a multi-part payment. */
export interface PartPlan {
  depositId: bigint;
  amountMsat: Msat;
  /** The part's share of the payment's fee limit: floor(fee limit × part / total), so the shares never add up past it. */
  feeReserveMsat: Msat;
}

/**
 * The smallest fee share a part may carry: the grant's base fee limit (what the user allows any
 * one payment to cost), or an eighth of the fee limit when the app's `max_fee` is lower. Every
 * part is a route of its own paying a base fee, so a sliver of a part with a sliver of the fee
 * limit would only fail on its fee and hold the other parts until the payee gives up.
 */
export function minimumPartFeeShare(feeLimitMsat: Msat, grantBaseFeeMsat: Msat, maxParts = MAX_PAYMENT_PARTS): Msat {
  const eighth = feeLimitMsat / BigInt(maxParts);
  return grantBaseFeeMsat < eighth ? grantBaseFeeMsat : eighth;
}

/**
 * Splits `totalMsat` over deposits in the given order (the one furthest above its target
 * first), each part as large as its deposit's available balance allows once its share of the
 * fee limit is counted: part + floor(F × part / T) ≤ available, i.e. part ≤ available × T / (T + F).
 * No part carries less than `minFeeShareMsat` of the fee limit: a deposit that cannot hold such a
 * part is passed over, and a part is shortened when it would leave a smaller remainder.
 * Null when the deposits cannot hold the total within `maxParts` parts, or one deposit would do.
 */
export function planParts(
  order: readonly DepositCandidate[],
  totalMsat: Msat,
  feeLimitMsat: Msat,
  minFeeShareMsat: Msat = 0n,
  maxParts = MAX_PAYMENT_PARTS,
): PartPlan[] | null {
  if (totalMsat <= 0n) return null;
  // The smallest part whose share floor(F × part / T) reaches the minimum share.
  const minPart = feeLimitMsat === 0n || minFeeShareMsat === 0n ? 1n : (minFeeShareMsat * totalMsat + feeLimitMsat - 1n) / feeLimitMsat;
  const parts: PartPlan[] = [];
  let remaining = totalMsat;
  for (const c of order) {
    if (remaining === 0n || parts.length >= maxParts) break;
    if (c.availableMsat <= 0n) continue;
    let part = (c.availableMsat * totalMsat) / (totalMsat + feeLimitMsat);
    if (part > remaining) part = remaining;
    if (part < remaining && remaining - part < minPart) part = remaining - minPart;
    if (part < minPart) continue;
    parts.push({ depositId: c.depositId, amountMsat: part, feeReserveMsat: (feeLimitMsat * part) / totalMsat });
    remaining -= part;
  }
  return remaining === 0n && parts.length >= 2 ? parts : null;
}

async function hasParts(ctx: WalletContext, txId: bigint): Promise<boolean> {
  return (await ctx.db.selectFrom('payment_parts').select('id').where('transaction_id', '=', txId).limit(1).executeTakeFirst()) !== undefined;
}

/**
 * When no single deposit covers amount + fee limit: with `basic_mpp`, several deposits pay the
 * invoice together (one NWC payment, one transaction with its parts); without, one deposit is
 * filled from another of the user's own first (`fillDepositFor`), then pays alone. Null when
 * neither can be done (the caller answers INSUFFICIENT_BALANCE).
 */
async function payFromSeveral(ctx: WalletContext, req: PaymentRequest, target: PayTarget, mpp: boolean): Promise<PaymentOutcome | null> {
  if (!mpp) {
    if (!(await fillDepositFor(ctx, req, req.signed.amountMsat + feeLimitOfRequest(req)))) return null;
    const admitted = await admit(ctx, req, target, new Set());
    if ('live' in admitted) return awaitOutcome(ctx, admitted.live);
    return drive(ctx, req, admitted.tx, new Set(), admitted.reservedOn);
  }
  let txId: bigint | null;
  try {
    txId = await admitParts(ctx, req, target);
  } catch (error) {
    const raced = isUniqueViolation(error) && target.paymentHash ? await liveAttempt(ctx, req.connection.userPubkey, target.paymentHash) : undefined;
    if (raced) return awaitOutcome(ctx, raced.id);
    throw error;
  }
  if (txId === null) return null;
  return driveParts(ctx, req, txId);
}

/** Thrown inside a transaction to roll back parts whose reservation lost a race. */
class PartsRaced extends Error {}

/**
 * Admission of a multi-part payment, one database transaction as for one deposit: the
 * connection locked, lock and grant limits checked for the whole amount and fee limit, the
 * transaction inserted (with the payment hash's live-attempt index), then every part reserved
 * on its deposit with a conditional update. Null, nothing written, when the deposits cannot hold it.
 */
async function admitParts(ctx: WalletContext, req: PaymentRequest, target: PayTarget): Promise<bigint | null> {
  const now = ctx.now();
  const amount = req.signed.amountMsat;
  const maxFee = feeLimitOfRequest(req);
  const grant = req.connection.grant;
  return inTransaction(ctx.db, async (trx) => {
    await lockConnection(trx, req.connection);
    const state = await readAdmission(ctx, trx, req.connection, null);
    if (state.locked) throw new Nip47Error('RESTRICTED', 'the owner has locked their deposits: no payment leaves them until unlocked');
    const limits = checkSpendLimits(grant, amount, maxFee, state.usage);
    if (!limits.ok) throw new Nip47Error(NIP47_CODE_FOR_VAULT_ERROR[limits.error.code], limits.error.message);
    const allowed = grant.vaultOperators;
    const candidates = state.candidates.filter((c) => allowed === null || allowed.includes(c.operatorPubkey));
    const order = payingDepositsInOrder(candidates, 1n, state.policy);
    const plan = planParts(order, amount, maxFee, minimumPartFeeShare(maxFee, grant.feeLimit.baseMsat));
    if (plan === null) return null;
    const feeReserve = plan.reduce((sum, p) => sum + p.feeReserveMsat, 0n);
    const tx = await trx
      .insertInto('transactions')
      .values({
        user_pubkey: req.connection.userPubkey,
        deposit_id: plan[0]!.depositId,
        connection_pubkey: req.connection.pubkey,
        type: 'outgoing',
        state: 'pending',
        // The parts carry the steps; the transaction has no idempotency key of its own, so the
        // one-deposit paths (refresh, events, failing) never act on it.
        step: 'sent',
        payment_hash: target.paymentHash ?? req.request.id,
        invoice: target.invoice,
        description: target.description,
        description_hash: target.descriptionHash,
        preimage: null,
        amount_msat: amount,
        fee_msat: 0n,
        fee_reserve_msat: feeReserve,
        request_event_id: req.request.id,
        idempotency_key: null,
        failure_reason: null,
        metadata: JSON.stringify(target.metadata),
        created_at: now,
        expires_at: target.expiresAt,
        settled_at: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    for (const [i, part] of plan.entries()) {
      await trx
        .insertInto('payment_parts')
        .values({
          transaction_id: tx.id,
          deposit_id: part.depositId,
          amount_msat: part.amountMsat,
          fee_reserve_msat: part.feeReserveMsat,
          idempotency_key: `${req.request.id}.${i + 1}`,
          state: 'pending',
          step: 'reserved',
          preimage: null,
          failure_reason: null,
          failure_code: null,
        })
        .execute();
      const need = part.amountMsat + part.feeReserveMsat;
      const reserved = await changeDepositMoney(trx, { depositId: part.depositId, transactionId: tx.id, kind: 'reserve', confirmedDeltaMsat: 0n, reservedDeltaMsat: need, requireAvailableMsat: need });
      if (!reserved) throw new PartsRaced();
    }
    return tx.id;
  }).catch((error: unknown) => {
    if (error instanceof PartsRaced) return null;
    throw error;
  });
}

interface PartRow {
  id: bigint;
  transaction_id: bigint;
  deposit_id: bigint;
  amount_msat: bigint;
  fee_reserve_msat: bigint;
  idempotency_key: string;
  state: string;
  step: string;
  operator_pubkey: string;
  remote_deposit_id: string;
}

function partsOf(ctx: WalletContext, txId: bigint): Promise<PartRow[]> {
  return ctx.db
    .selectFrom('payment_parts')
    .innerJoin('deposits', 'deposits.id', 'payment_parts.deposit_id')
    .select([
      'payment_parts.id',
      'payment_parts.transaction_id',
      'payment_parts.deposit_id',
      'payment_parts.amount_msat',
      'payment_parts.fee_reserve_msat',
      'payment_parts.idempotency_key',
      'payment_parts.state',
      'payment_parts.step',
      'deposits.operator_pubkey',
      'deposits.remote_deposit_id',
    ])
    .where('payment_parts.transaction_id', '=', txId)
    .orderBy('payment_parts.id')
    .execute();
}

/** Sends every part not sent yet (all at once: the payee holds them until all arrive), then waits for the whole. */
async function driveParts(ctx: WalletContext, req: PaymentRequest, txId: bigint): Promise<PaymentOutcome> {
  const tx = await ctx.db.selectFrom('transactions').selectAll().where('id', '=', txId).executeTakeFirstOrThrow();
  if (tx.request_event_id !== req.request.id || tx.state !== 'pending') return awaitOutcome(ctx, txId);
  const parts = await partsOf(ctx, txId);
  await Promise.all(parts.map((part) => sendPart(ctx, req, tx, part)));
  // Stopping: what the vaults said is asked again when the request is resumed.
  if (ctx.stopping.aborted) throw new BridgeStopping();
  await finalizeParts(ctx, txId);
  return awaitParts(ctx, txId, req);
}

/** One part to its vault: asked first when it may have it (after a crash), sent otherwise. */
async function sendPart(ctx: WalletContext, req: PaymentRequest, tx: TransactionRow, part: PartRow): Promise<void> {
  if (part.state !== 'pending' || ctx.stopping.aborted) return;
  const op = ctx.operators.get(part.operator_pubkey);
  if (!op) {
    if (part.step === 'reserved') await failPart(ctx, part.id, 'the vault operator is not connected', null, null);
    return;
  }
  let known: VaultPayment | null = null;
  let mustSend = part.step === 'reserved';
  if (part.step === 'sent') {
    try {
      known = await op.client.paymentStatus(part.remote_deposit_id, part.idempotency_key);
      mustSend = known === null;
    } catch (error) {
      ctx.logger.warn({ partId: part.id.toString(), operator: op.name, err: error }, 'vault unreachable; part stays pending');
    }
  }
  if (mustSend) {
    await ctx.db.updateTable('payment_parts').set({ step: 'sent', updated_at: new Date() }).where('id', '=', part.id).execute();
    try {
      known = await op.client.pay(part.remote_deposit_id, {
        invoice: tx.invoice,
        amountMsat: part.amount_msat,
        maxFeeMsat: part.fee_reserve_msat,
        idempotencyKey: part.idempotency_key,
        authorization: buildAuthorization(req.connection.grantEvent, req.request, req.encryption, req.key),
        mpp: { totalMsat: tx.amount_msat },
      });
      ctx.operators.observe(op.nodePubkey, true);
    } catch (error) {
      if (!(error instanceof VaultError)) throw error;
      if (error.code === 'UNAVAILABLE') ctx.operators.observe(op.nodePubkey, false);
      if (error.outcomeUnknown) ctx.logger.warn({ partId: part.id.toString(), operator: op.name }, 'vault outcome unknown; part stays pending');
      else if (!ctx.stopping.aborted) await failPart(ctx, part.id, `vault refused: ${error.message}`, null, null);
    }
  }
  if (known && !ctx.stopping.aborted) await applyPartState(ctx, op.nodePubkey, part.id, known);
}

/** Records a vault's report of one part: settled parts are debited at once (the money left), failed ones released. */
async function applyPartState(ctx: WalletContext, operatorPubkey: string, partId: bigint, payment: VaultPayment): Promise<void> {
  if (payment.state === 'pending') return;
  if (payment.state === 'failed') {
    await failPart(ctx, partId, payment.failure_reason ?? 'part failed', payment.failure_code ?? null, (trx, depositId) =>
      recordBalanceUpdate(ctx, trx, depositId, operatorPubkey, payment.balance_update),
    );
    return;
  }
  if (!payment.preimage) {
    ctx.logger.error({ partId: partId.toString() }, 'vault reported a settled part without a preimage; left pending');
    return;
  }
  const preimage = payment.preimage;
  const violation = await inTransaction(ctx.db, async (trx) => {
    const part = await trx.selectFrom('payment_parts').selectAll().where('id', '=', partId).forNoKeyUpdate().executeTakeFirstOrThrow();
    if (part.state !== 'pending') return null;
    // A fee above the part's limit is not charged beyond it here; the excess is an incident.
    const charged = payment.fee_msat > part.fee_reserve_msat ? part.fee_reserve_msat : payment.fee_msat;
    await changeDepositMoney(trx, {
      depositId: part.deposit_id,
      transactionId: part.transaction_id,
      kind: 'debit',
      confirmedDeltaMsat: -(part.amount_msat + charged),
      reservedDeltaMsat: -(part.amount_msat + part.fee_reserve_msat),
    });
    await trx.updateTable('payment_parts').set({ state: 'settled', step: 'final', preimage, fee_msat: charged, updated_at: new Date() }).where('id', '=', partId).execute();
    await recordBalanceUpdate(ctx, trx, part.deposit_id, operatorPubkey, payment.balance_update);
    const user = await trx.selectFrom('deposits').select('user_pubkey').where('id', '=', part.deposit_id).executeTakeFirstOrThrow();
    return payment.fee_msat > part.fee_reserve_msat ? { user: user.user_pubkey, reserve: part.fee_reserve_msat, key: part.idempotency_key } : null;
  });
  if (violation) {
    await recordIncident(ctx, {
      operatorPubkey,
      userPubkey: violation.user,
      kind: 'fee_violation',
      message: `vault reported fee ${payment.fee_msat} msat above the part's limit of ${violation.reserve} msat; the limit was charged`,
      evidence: { payment, idempotency_key: violation.key },
    });
  }
  const part = await ctx.db.selectFrom('payment_parts').select('transaction_id').where('id', '=', partId).executeTakeFirstOrThrow();
  await finalizeParts(ctx, part.transaction_id);
}

/** Fails a pending part and releases its reservation (once), then finishes the payment if every part is final. */
async function failPart(
  ctx: WalletContext,
  partId: bigint,
  reason: string,
  failureCode: string | null,
  alsoInTransaction: ((trx: Trx, depositId: bigint) => Promise<void>) | null,
): Promise<void> {
  const txId = await inTransaction(ctx.db, async (trx) => {
    const part = await trx.selectFrom('payment_parts').selectAll().where('id', '=', partId).forNoKeyUpdate().executeTakeFirstOrThrow();
    if (part.state !== 'pending') return part.transaction_id;
    await changeDepositMoney(trx, {
      depositId: part.deposit_id,
      transactionId: part.transaction_id,
      kind: 'release',
      confirmedDeltaMsat: 0n,
      reservedDeltaMsat: -(part.amount_msat + part.fee_reserve_msat),
    });
    await trx
      .updateTable('payment_parts')
      .set({ state: 'failed', step: 'final', failure_reason: reason.slice(0, 500), failure_code: failureCode, updated_at: new Date() })
      .where('id', '=', partId)
      .execute();
    if (alsoInTransaction) await alsoInTransaction(trx, part.deposit_id);
    return part.transaction_id;
  });
  await finalizeParts(ctx, txId);
}

/**
 * Once every part is final, so is the payment: settled if any part settled (the payee released
 * the preimage, so it was paid; with an honest payee all parts settle together), with the
 * parts' fees as its fee; failed otherwise. Until then it stays pending, whatever one part did.
 */
async function finalizeParts(ctx: WalletContext, txId: bigint): Promise<void> {
  const finished = await inTransaction(ctx.db, async (trx) => {
    const tx = await trx.selectFrom('transactions').selectAll().where('id', '=', txId).forNoKeyUpdate().executeTakeFirstOrThrow();
    if (tx.state !== 'pending') return null;
    const parts = await trx.selectFrom('payment_parts').selectAll().where('transaction_id', '=', txId).orderBy('id').execute();
    if (parts.length === 0 || parts.some((p) => p.state === 'pending')) return null;
    const settled = parts.filter((p) => p.state === 'settled');
    if (settled.length > 0) {
      const failed = parts.length - settled.length;
      await trx
        .updateTable('transactions')
        .set({
          state: 'settled',
          step: 'final',
          preimage: settled[0]!.preimage,
          fee_msat: settled.reduce((sum, p) => sum + p.fee_msat, 0n),
          settled_at: ctx.now(),
          failure_reason: failed > 0 ? `${failed} of ${parts.length} parts failed although the payee released the preimage` : null,
          updated_at: new Date(),
        })
        .where('id', '=', txId)
        .execute();
      return { queued: await queueNotifications(trx, tx.user_pubkey, tx.id, 'payment_sent') };
    } else {
      const code = parts.find((p) => p.failure_code === 'FEE_LIMIT_EXCEEDED')?.failure_code ?? parts.find((p) => p.failure_code !== null)?.failure_code ?? null;
      const reasons = [...new Set(parts.map((p) => p.failure_reason ?? 'failed'))].join('; ');
      await trx
        .updateTable('transactions')
        .set({ state: 'failed', step: 'final', failure_reason: `multi-part payment failed, no part settled: ${reasons}`.slice(0, 500), failure_code: code, updated_at: new Date() })
        .where('id', '=', txId)
        .execute();
      return { queued: 0 };
    }
  });
  if (finished) {
    ctx.finality.notify(txId);
    if (finished.queued > 0) ctx.notifications?.poke();
  }
}

/** Asks the vault about one sent part; one it never received is sent again (with the request at hand) or, once too old, failed. */
async function refreshPart(ctx: WalletContext, part: PartRow, resume: { req: PaymentRequest; tx: TransactionRow } | null): Promise<void> {
  if (part.state !== 'pending' || part.step !== 'sent') return;
  const op = ctx.operators.get(part.operator_pubkey);
  if (!op) return;
  try {
    const payment = await op.client.paymentStatus(part.remote_deposit_id, part.idempotency_key);
    ctx.operators.observe(op.nodePubkey, true);
    if (payment) return applyPartState(ctx, op.nodePubkey, part.id, payment);
    const tx = resume?.tx ?? (await ctx.db.selectFrom('transactions').selectAll().where('id', '=', part.transaction_id).executeTakeFirstOrThrow());
    if (tx.created_at < BigInt(ctx.now() - NEVER_ACCEPTED_AFTER_SECONDS)) {
      await failPart(ctx, part.id, 'the vault never received the part, and the request is now too old for it to accept', null, null);
    } else if (resume) {
      await sendPart(ctx, resume.req, resume.tx, { ...part, step: 'reserved' });
    }
  } catch (error) {
    if (error instanceof VaultError && error.code === 'UNAVAILABLE') ctx.operators.observe(op.nodePubkey, false);
    ctx.logger.warn({ partId: part.id.toString(), err: error }, 'could not learn a part outcome; will ask again');
  }
}

/** Waits until every part is final and answers the payment's outcome; parts are asked about now and then. */
async function awaitParts(ctx: WalletContext, txId: bigint, req: PaymentRequest): Promise<PaymentOutcome> {
  let delayMs = 200;
  for (;;) {
    const tx = await ctx.db.selectFrom('transactions').selectAll().where('id', '=', txId).executeTakeFirstOrThrow();
    if (tx.state !== 'pending') return awaitOutcome(ctx, txId);
    if (ctx.stopping.aborted) throw new BridgeStopping();
    await ctx.finality.wait(txId, delayMs, ctx.stopping);
    if (ctx.stopping.aborted) throw new BridgeStopping();
    delayMs = Math.min(delayMs * 2, 5_000);
    for (const part of await partsOf(ctx, txId)) await refreshPart(ctx, part, { req, tx });
  }
}

/** Asks the vaults about every part left pending (after a restart, or a missed event). */
export async function refreshPendingParts(ctx: WalletContext): Promise<void> {
  const pending = await ctx.db.selectFrom('payment_parts').select('transaction_id').distinct().where('state', '=', 'pending').where('step', '=', 'sent').execute();
  for (const { transaction_id } of pending) {
    for (const part of await partsOf(ctx, transaction_id)) await refreshPart(ctx, part, null);
  }
}
