/**
 * Rebuilding a user's deposits, balances and history at the bridge from what the vault operators
 * know (docs/deploy.md, "Losing the database"). The vault's own history is read once per
 * deposit (`GET /v0/deposits/:id/history`) and written as it is: the balance both channel peers
 * signed, and every past invoice, payment and maintenance charge as a final transaction that
 * moves no money (the signed balance already holds its effect). Nothing is replayed, so no old
 * invoice is credited again; every row is recorded under the key its vault events carry, so an
 * event the bridge's follower delivers again finds its transaction final and changes nothing.
 */
import type { Event } from 'nostr-tools/pure';
import { z } from 'zod';
import { ApiRefusal } from '../deposits/api-refusal.ts';
import type { WalletContext } from '../deposits/context.ts';
import { changeDepositMoney, inTransaction, type Trx } from '../deposits/journal.ts';
import { insertDepositRow } from '../deposits/connections.ts';
import { MAINTENANCE_KIND, maintenanceChargeId } from '../deposits/maintenance.ts';
import type { KnownOperator } from '../deposits/operators.ts';
import type { TransactionState } from '../db/schema.ts';
import type { Msat } from '../protocol/amounts.ts';
import { decodeInvoice } from '../protocol/invoice.ts';
import { httpAuthHeader } from '../protocol/nip98.ts';
import { nostrEventSchema } from '../protocol/nostr-event.ts';
import { signDepositOpen, verifyDepositOpen } from '../protocol/user-statements.ts';
import type { VaultDeposit, VaultDepositHistory, VaultHistoryPayment, VaultInvoice } from '../protocol/vault-api.ts';
import { verifyBalanceUpdate } from '../protocol/vault-proof.ts';

/** What restoring at one vault operator did, or why it did not. */
export interface OperatorRestore {
  operator: string;
  nodePubkey: string;
  /** The deposit at the operator; null when it could not be opened. */
  depositId: string | null;
  /** The balance both channel peers signed, now the deposit's balance at the bridge; null when not restored. */
  balanceMsat: Msat | null;
  /** What the journal entry moved to bring the bridge's balance to the signed one (0: it agreed already). */
  balanceChangeMsat: Msat;
  /** The deposit row was created (it was unknown to the bridge). */
  created: boolean;
  /** History rows written now, and rows the bridge had already. */
  transactionsAdded: number;
  transactionsKnown: number;
  /** The newest event seq of the operator the history reflects. */
  eventsSeq: number | null;
  /** Why nothing was restored at this operator; absent when it was. */
  error?: string;
}

/** The same name for a maintenance charge as `src/deposits/maintenance.ts` gives it (the payment-hash column), so a replayed charge is known. */
/** A refusal found inside the database transaction: rolls it back and is reported for the operator. */
class RestoreRefused extends Error {}

/** The reason recorded on an invoice the vault took a payment for without a signed credit (as `src/deposits/invoices.ts` records it). */
const UNCREDITED = 'paid at the vault but not credited: no balance update signed by both channel peers';

/**
 * Restores a user's deposits at every vault operator the bridge works with, from each
 * operator's history of the deposit (`POST /api/restore`). `depositOpen` is the user's signed
 * deposit-open statement: it opens the deposit again (idempotent: the same one) and makes the
 * bridge its watcher. Per operator, after checking the history (the balance update verifies for
 * both channel peers and is the deposit's, the history adds up to it, nothing is in flight), one
 * database transaction: the deposit row is created if missing, the history is written as final
 * transactions (deduplicated by payment hash, idempotency key or charge), and the balance is set
 * to the signed one with one journal entry (none when it agrees). Running it again changes
 * nothing. An operator that cannot be reached, or whose history does not check, is reported and
 * nothing is written for it. Throws `ApiRefusal` when the statement is not the user's.
 */
export async function restoreUser(ctx: WalletContext, userPubkey: string, depositOpen: Event): Promise<OperatorRestore[]> {
  const owner = verifyDepositOpen(depositOpen);
  if (!owner.ok) throw new ApiRefusal('BAD_REQUEST', owner.error.message);
  if (owner.value !== userPubkey) throw new ApiRefusal('FORBIDDEN', 'the deposit-open statement must be signed by the user');
  await ctx.db
    .insertInto('users')
    .values({ pubkey: userPubkey, deposit_open_event: JSON.stringify(depositOpen) })
    .onConflict((oc) => oc.column('pubkey').doNothing())
    .execute();
  // Histories are fetched in parallel, written one after the other: parts of one multi-part
  // payment at several operators meet in one transaction row.
  const fetched = await Promise.all(ctx.operators.all().map(async (op) => ({ op, got: await fetchHistory(op, userPubkey, depositOpen) })));
  const results: OperatorRestore[] = [];
  for (const { op, got } of fetched) {
    const base = { operator: op.name, nodePubkey: op.nodePubkey, depositId: null, balanceMsat: null, balanceChangeMsat: 0n, created: false, transactionsAdded: 0, transactionsKnown: 0, eventsSeq: null };
    if ('error' in got) {
      results.push({ ...base, depositId: got.depositId ?? null, error: got.error });
      continue;
    }
    let outcome: Awaited<ReturnType<typeof applyHistory>>;
    try {
      outcome = await applyHistory(ctx, op, userPubkey, got.deposit, got.history);
      // The bridge applied a newer signed balance between the read and the write: read again, once.
      if ('stale' in outcome) {
        const again = await fetchHistory(op, userPubkey, depositOpen);
        outcome = 'error' in again ? { error: again.error } : await applyHistory(ctx, op, userPubkey, again.deposit, again.history);
      }
      if ('stale' in outcome) outcome = { error: 'the deposit changed while it was being restored: run restore again' };
    } catch (error) {
      // One operator's failure to be written leaves the others' outcomes standing.
      ctx.logger.error({ operator: op.name, err: error }, 'could not write a restored deposit');
      outcome = { error: 'the bridge could not write it (its log says why): run restore again' };
    }
    results.push('error' in outcome ? { ...base, depositId: got.deposit.deposit_id, error: outcome.error } : { ...base, ...outcome });
  }
  for (const r of results) {
    if (r.error) ctx.logger.warn({ operator: r.operator, user: userPubkey, reason: r.error }, 'deposit not restored');
    else ctx.logger.info({ operator: r.operator, user: userPubkey, change_msat: r.balanceChangeMsat.toString(), added: r.transactionsAdded }, 'deposit restored');
  }
  return results;
}

type Fetched = { deposit: VaultDeposit; history: VaultDepositHistory } | { error: string; depositId?: string };

/** Opens the deposit (idempotent) and reads its history; an operator that fails is an error, not a throw. */
async function fetchHistory(op: KnownOperator, userPubkey: string, depositOpen: Event): Promise<Fetched> {
  const client = op.client;
  if (!client.depositHistory) return { error: 'the operator does not serve deposit histories (GET /v0/deposits/:id/history)' };
  let deposit: VaultDeposit;
  try {
    deposit = await client.openDeposit(depositOpen);
  } catch (error) {
    return { error: `not reached: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (deposit.owner !== userPubkey) return { error: 'the operator opened a deposit of another owner', depositId: deposit.deposit_id };
  try {
    return { deposit, history: await client.depositHistory(deposit.deposit_id) };
  } catch (error) {
    return { error: `history not read: ${error instanceof Error ? error.message : String(error)}`, depositId: deposit.deposit_id };
  }
}

/** Why a history cannot be restored, or null when it checks out. */
function checkHistory(op: KnownOperator, deposit: VaultDeposit, history: VaultDepositHistory, userPubkey: string): string | null {
  if (history.owner !== userPubkey) return 'the history is of a deposit of another owner';
  const update = history.balance_update;
  if (update === null) {
    if (history.balance_msat !== 0n) return 'a balance without any signed balance update';
  } else {
    if (update.deposit_id !== deposit.deposit_id || update.vault_id !== deposit.vault_id || update.channel_id !== deposit.channel_id) return 'the balance update is of another deposit';
    if (!verifyBalanceUpdate(update, op.nodePubkey, op.peerNodePubkey).ok) return 'the balance update does not verify for both channel peers';
    if (history.balance_msat !== update.balance_msat) return `the operator reports ${history.balance_msat} msat but signed ${update.balance_msat} msat`;
  }
  const inFlight = history.payments.filter((p) => p.state === 'pending').length;
  if (inFlight > 0 || history.reserved_msat !== 0n) return `${inFlight} payment(s) in flight at the vault: run restore again once they have ended`;
  // The history must explain the balance: what came in, less what went out and the charges.
  let sum = 0n;
  for (const i of history.invoices) if (i.state === 'settled' && i.balance_update !== null) sum += i.amount_msat;
  for (const p of history.payments) if (p.state === 'settled') sum -= p.amount_msat + p.fee_msat;
  for (const m of history.maintenance) sum -= m.fee_msat;
  const signed = update?.balance_msat ?? 0n;
  if (sum !== signed) return `the history adds up to ${sum} msat but the signed balance is ${signed} msat`;
  return null;
}

type Applied = Omit<OperatorRestore, 'operator' | 'nodePubkey' | 'error'>;

/** Writes one checked history in one database transaction. */
async function applyHistory(ctx: WalletContext, op: KnownOperator, userPubkey: string, deposit: VaultDeposit, history: VaultDepositHistory): Promise<Applied | { error: string } | { stale: true }> {
  const refused = checkHistory(op, deposit, history, userPubkey);
  if (refused !== null) return { error: refused };
  const update = history.balance_update;
  const signed = update?.balance_msat ?? 0n;
  try {
    return await inTransaction(ctx.db, async (trx): Promise<Applied | { stale: true }> => {
      const inserted = await insertDepositRow(trx, userPubkey, op.nodePubkey, deposit);
      // The row lock orders this against the event follower crediting the same deposit.
      const row = await trx.selectFrom('deposits').selectAll().where('user_pubkey', '=', userPubkey).where('operator_pubkey', '=', op.nodePubkey).forNoKeyUpdate().executeTakeFirstOrThrow();
      if (row.remote_deposit_id !== deposit.deposit_id) throw new RestoreRefused(`the bridge knows another deposit at this operator (${row.remote_deposit_id})`);
      if (row.reserved_msat !== 0n) throw new RestoreRefused('payments in flight at the bridge: run restore again once they have ended');
      if (update !== null && row.vault_balance_seq !== null && row.vault_balance_seq > update.seq) return { stale: true };

      const counts = { added: 0, known: 0 };
      const tally = (added: boolean) => (added ? counts.added++ : counts.known++);
      for (const invoice of history.invoices) {
        const state = invoiceState(invoice);
        if (state !== null) tally(await restoreInvoice(trx, row.id, userPubkey, invoice, state));
      }
      for (const payment of history.payments) tally(await restorePayment(trx, op, row.id, userPubkey, payment));
      for (const charge of history.maintenance) {
        const paymentHash = maintenanceChargeId(op.nodePubkey, deposit.deposit_id, charge.from_height, charge.to_height);
        const known = await trx.selectFrom('transactions').select('id').where('deposit_id', '=', row.id).where('payment_hash', '=', paymentHash).executeTakeFirst();
        if (known || charge.fee_msat <= 0n) {
          tally(false);
          continue;
        }
        await trx
          .insertInto('transactions')
          .values({
            ...finalRow(userPubkey, row.id),
            type: 'outgoing',
            state: 'settled',
            payment_hash: paymentHash,
            invoice: '',
            description: `maintenance fee to ${op.name} for blocks ${charge.from_height}–${charge.to_height}`,
            amount_msat: charge.fee_msat,
            metadata: JSON.stringify({ kind: MAINTENANCE_KIND, operator: op.nodePubkey, from_height: charge.from_height, to_height: charge.to_height }),
            created_at: charge.charged_at,
            settled_at: charge.charged_at,
          })
          .execute();
        tally(true);
      }

      const change = signed - row.confirmed_msat;
      if (change !== 0n) {
        // No money row changes without a journal entry; it belongs to no transaction.
        await changeDepositMoney(trx, { depositId: row.id, transactionId: null, kind: change > 0n ? 'credit' : 'debit', confirmedDeltaMsat: change, reservedDeltaMsat: 0n });
      }
      if (update !== null) {
        await trx
          .updateTable('deposits')
          .set({ vault_balance_msat: update.balance_msat, vault_balance_seq: update.seq })
          .where('id', '=', row.id)
          .where((eb) => eb.or([eb('vault_balance_seq', 'is', null), eb('vault_balance_seq', '<', update.seq)]))
          .execute();
      }
      return {
        depositId: deposit.deposit_id,
        balanceMsat: signed,
        balanceChangeMsat: change,
        created: inserted !== undefined,
        transactionsAdded: counts.added,
        transactionsKnown: counts.known,
        eventsSeq: history.events_seq,
      };
    });
  } catch (error) {
    if (error instanceof RestoreRefused) return { error: error.message };
    throw error;
  }
}

/** The columns every restored row shares: final, no connection, no request, nothing reserved. */
function finalRow(userPubkey: string, depositId: bigint) {
  return {
    user_pubkey: userPubkey,
    deposit_id: depositId,
    connection_pubkey: null,
    step: 'final' as const,
    description_hash: null,
    preimage: null,
    fee_msat: 0n,
    fee_reserve_msat: 0n,
    request_event_id: null,
    idempotency_key: null,
    failure_reason: null,
    // JSON null: no request's metadata survives at the vault.
    metadata: 'null',
    expires_at: null,
    settled_at: null,
  };
}

/** The final state an invoice is restored in; null for one still open (pending, or a held payment). */
function invoiceState(invoice: VaultInvoice): TransactionState | null {
  switch (invoice.state) {
    case 'settled':
      return 'settled';
    case 'canceled':
      return 'failed';
    case 'expired':
      // An amountless invoice never paid has no amount to show.
      return invoice.amount_msat > 0n ? 'expired' : null;
    default:
      return null;
  }
}

/** Records an incoming invoice as final; true when a row was written. A row the bridge had still open is closed (no money: the signed balance holds it). */
async function restoreInvoice(trx: Trx, depositId: bigint, userPubkey: string, invoice: VaultInvoice, state: TransactionState): Promise<boolean> {
  const uncredited = invoice.state === 'settled' && invoice.balance_update === null;
  const outcome = {
    state,
    preimage: invoice.state === 'settled' ? invoice.preimage : null,
    settled_at: invoice.state === 'settled' ? invoice.settled_at : null,
    failure_reason: uncredited ? UNCREDITED : invoice.state === 'canceled' ? 'hold invoice canceled' : null,
  };
  const known = await trx.selectFrom('transactions').select(['id', 'state']).where('deposit_id', '=', depositId).where('type', '=', 'incoming').where('payment_hash', '=', invoice.payment_hash).executeTakeFirst();
  if (known) {
    if (known.state === 'pending' || known.state === 'accepted') {
      await trx.updateTable('transactions').set({ ...outcome, ...(invoice.amount_msat > 0n ? { amount_msat: invoice.amount_msat } : {}), updated_at: new Date() }).where('id', '=', known.id).execute();
    }
    return false;
  }
  if (invoice.amount_msat <= 0n) return false;
  const added = await trx
    .insertInto('transactions')
    .values({
      ...finalRow(userPubkey, depositId),
      ...outcome,
      type: 'incoming',
      payment_hash: invoice.payment_hash,
      invoice: invoice.invoice,
      description: invoice.description,
      description_hash: invoice.description_hash,
      amount_msat: invoice.amount_msat,
      hold: invoice.hold === true,
      created_at: invoice.created_at,
      expires_at: invoice.expires_at,
    })
    .onConflict((oc) => oc.doNothing())
    .returning('id')
    .executeTakeFirst();
  return added !== undefined;
}

/**
 * Records a final payment; true when a row was written. Under the key its events carry: the
 * vault's idempotency key, or `deposit_moved:<hash>` for a move on the operator's initiative. A
 * settled share of a multi-part payment becomes a part of the user's one transaction for that
 * payment hash (created by the first share restored, with the payment's total).
 */
async function restorePayment(trx: Trx, op: KnownOperator, depositId: bigint, userPubkey: string, payment: VaultHistoryPayment): Promise<boolean> {
  if (payment.state === 'pending' || payment.amount_msat <= 0n) return false;
  const part = await trx.selectFrom('payment_parts').select('id').where('deposit_id', '=', depositId).where('idempotency_key', '=', payment.idempotency_key).executeTakeFirst();
  if (part) return false;
  const key = payment.transfer_purpose === 'operator' ? `deposit_moved:${payment.payment_hash}` : payment.idempotency_key;
  const known = await trx.selectFrom('transactions').select('id').where('deposit_id', '=', depositId).where('type', '=', 'outgoing').where('idempotency_key', '=', key).executeTakeFirst();
  if (known) return false;
  const decoded = payment.invoice ? decodeInvoice(payment.invoice) : null;
  const terms = decoded?.ok ? decoded.value : null;
  const settled = payment.state === 'settled';
  const common = {
    ...finalRow(userPubkey, depositId),
    type: 'outgoing' as const,
    state: payment.state,
    payment_hash: payment.payment_hash,
    invoice: payment.invoice ?? '',
    description: terms?.description ?? null,
    description_hash: terms?.descriptionHash ?? null,
    preimage: settled ? payment.preimage : null,
    failure_reason: payment.state === 'failed' ? (payment.failure_reason ?? 'payment failed') : null,
    failure_code: payment.state === 'failed' ? (payment.failure_code ?? null) : null,
    created_at: payment.created_at,
    expires_at: terms?.expiresAt ?? null,
    settled_at: settled ? (payment.settled_at ?? payment.finished_at) : null,
  };
  const mppTotal = payment.mpp_total_msat ?? null;
  if (settled && mppTotal !== null) {
    let tx = await trx
      .selectFrom('transactions')
      .select('id')
      .where('user_pubkey', '=', userPubkey)
      .where('type', '=', 'outgoing')
      .where('state', '=', 'settled')
      .where('payment_hash', '=', payment.payment_hash)
      .executeTakeFirst();
    if (tx) {
      await trx.updateTable('transactions').set((eb) => ({ fee_msat: eb('fee_msat', '+', payment.fee_msat), updated_at: new Date() })).where('id', '=', tx!.id).execute();
    } else {
      tx = await trx.insertInto('transactions').values({ ...common, amount_msat: mppTotal, fee_msat: payment.fee_msat }).returning('id').executeTakeFirstOrThrow();
    }
    await trx
      .insertInto('payment_parts')
      .values({
        transaction_id: tx.id,
        deposit_id: depositId,
        amount_msat: payment.amount_msat,
        fee_reserve_msat: payment.max_fee_msat,
        fee_msat: payment.fee_msat,
        idempotency_key: payment.idempotency_key,
        state: 'settled',
        step: 'final',
        preimage: payment.preimage,
        failure_reason: null,
        failure_code: null,
      })
      .execute();
    // This deposit's entry is restored, whether it made the transaction or joined it.
    return true;
  }
  const metadata =
    payment.transfer_purpose === 'operator'
      ? { deposit_moved: { by_operator: op.name } }
      : payment.transfer_purpose
        ? { transfer: payment.transfer_purpose }
        : null;
  const added = await trx
    .insertInto('transactions')
    .values({ ...common, idempotency_key: key, amount_msat: payment.amount_msat, fee_msat: payment.fee_msat, fee_reserve_msat: payment.max_fee_msat, metadata: JSON.stringify(metadata) })
    // Another settled payment of the same hash by this user (the partial unique index): kept as it is.
    .onConflict((oc) => oc.doNothing())
    .returning('id')
    .executeTakeFirst();
  return added !== undefined;
}

// ---------------------------------------------------------------- the CLI's side

const restoreAnswerSchema = z.object({
  operators: z.array(
    z.object({
      name: z.string(),
      node_pubkey: z.string(),
      ok: z.boolean(),
      deposit_id: z.string().nullable(),
      balance_msat: z.string().nullable(),
      balance_change_msat: z.string(),
      created: z.boolean(),
      transactions_added: z.number().int(),
      transactions_known: z.number().int(),
      events_seq: z.number().int().nullable(),
      error: z.string().optional(),
    }),
  ),
});
export type RestoreAnswer = z.output<typeof restoreAnswerSchema>;

/** `POST /api/restore`'s body for one operator's outcome (amounts as decimal strings). */
export function restoreToJson(r: OperatorRestore): RestoreAnswer['operators'][number] {
  return {
    name: r.operator,
    node_pubkey: r.nodePubkey,
    ok: r.error === undefined,
    deposit_id: r.depositId,
    balance_msat: r.balanceMsat === null ? null : r.balanceMsat.toString(),
    balance_change_msat: r.balanceChangeMsat.toString(),
    created: r.created,
    transactions_added: r.transactionsAdded,
    transactions_known: r.transactionsKnown,
    events_seq: r.eventsSeq,
    ...(r.error !== undefined ? { error: r.error } : {}),
  };
}

export const restoreBodySchema = z.object({ deposit_open: nostrEventSchema });

/**
 * `deposit-bridge restore`: asks a bridge (NIP-98 signed with the user's key) to rebuild the
 * user's deposits and history from the vault operators. Throws when the bridge cannot be
 * reached or refuses; an operator that failed is in the answer.
 */
export async function requestRestore(baseUrl: string, userKey: Uint8Array): Promise<RestoreAnswer['operators']> {
  const url = `${baseUrl}/api/restore`;
  const body = JSON.stringify({ deposit_open: signDepositOpen(userKey) });
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: httpAuthHeader(userKey, url, 'POST', body) }, body });
  } catch (error) {
    throw new Error(`cannot reach ${url}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const json: unknown = await response.json().catch(() => null);
  if (response.status !== 200) {
    const refusal = z.object({ error: z.object({ code: z.string(), message: z.string() }) }).safeParse(json);
    throw new Error(`the bridge refused the restore: ${refusal.success ? `${refusal.data.error.code}: ${refusal.data.error.message}` : `HTTP ${response.status}`}`);
  }
  const answer = restoreAnswerSchema.safeParse(json);
  if (!answer.success) throw new Error(`the bridge answered the restore with an unexpected body: ${answer.error.issues[0]?.path.join('.') ?? ''}`);
  return answer.data.operators;
}
