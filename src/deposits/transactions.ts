import { sql } from 'kysely';
import type { TransactionRow, TransactionType } from '../db/schema.ts';
import type { Msat } from '../protocol/amounts.ts';
import { Nip47Error } from '../protocol/nip47-error.ts';
import type { WalletContext } from './context.ts';
import { refreshIncoming } from './invoices.ts';
import { refreshOutgoing } from './payments.ts';

/** What a set of deposit rows holds that can be spent: confirmed minus what is reserved for payments in flight. */
export const availableMsatSum = sql<bigint>`coalesce(sum(deposits.confirmed_msat - deposits.reserved_msat), 0)::bigint`;

/**
 * The user's spendable balance (`availableMsatSum` over their deposits). A get_balance reads it
 * with its grant check (`ConnectionCache.stillHolds`); this is the read on its own.
 */
export async function availableBalance(ctx: WalletContext, userPubkey: string): Promise<Msat> {
  const row = await ctx.db.selectFrom('deposits').select(availableMsatSum.as('available')).where('user_pubkey', '=', userPubkey).executeTakeFirstOrThrow();
  return row.available;
}

/**
 * One of the user's transactions by payment hash or invoice; a pending one is first refreshed
 * from its vault. When a hash was paid more than once, the settled attempt wins, then the newest.
 */
export async function lookupTransaction(ctx: WalletContext, userPubkey: string, by: { paymentHash?: string | undefined; invoice?: string | undefined }): Promise<TransactionRow> {
  if (by.paymentHash === undefined && by.invoice === undefined) throw new Nip47Error('BAD_REQUEST', 'one of payment_hash or invoice is required');
  await expireOverdueInvoices(ctx, userPubkey);
  const find = () => {
    let q = ctx.db.selectFrom('transactions').selectAll().where('user_pubkey', '=', userPubkey);
    if (by.paymentHash !== undefined) q = q.where('payment_hash', '=', by.paymentHash);
    if (by.invoice !== undefined) q = q.where('invoice', '=', by.invoice.trim().toLowerCase());
    return q
      .orderBy(sql`case when state = 'settled' then 0 else 1 end`)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .executeTakeFirst();
  };
  const tx = await find();
  if (!tx) throw new Nip47Error('NOT_FOUND', 'no invoice or payment with that payment hash or invoice');
  if (tx.state !== 'pending') return tx;
  if (tx.type === 'incoming') await refreshIncoming(ctx, tx);
  else await refreshOutgoing(ctx, tx.id);
  return (await find()) ?? tx;
}

export interface TransactionFilter {
  from?: number | undefined;
  until?: number | undefined;
  limit?: number | undefined;
  offset?: number | undefined;
  /** Include pending, failed and expired ones; by default only settled ones are listed. */
  unpaid?: boolean | undefined;
  type?: TransactionType | undefined;
}

/** The largest page list_transactions returns, whatever the client asks. */
export const MAX_LIST_LIMIT = 1000;

/** The user's transactions, newest first (NIP-47 list_transactions). */
export async function listTransactions(ctx: WalletContext, userPubkey: string, filter: TransactionFilter): Promise<TransactionRow[]> {
  const now = ctx.now();
  await expireOverdueInvoices(ctx, userPubkey);
  let q = ctx.db
    .selectFrom('transactions')
    .selectAll()
    .where('user_pubkey', '=', userPubkey)
    .where('created_at', '>=', BigInt(filter.from ?? 0))
    .where('created_at', '<=', BigInt(filter.until ?? now));
  if (!filter.unpaid) q = q.where('state', '=', 'settled');
  if (filter.type) q = q.where('type', '=', filter.type);
  return q
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(Math.min(filter.limit ?? MAX_LIST_LIMIT, MAX_LIST_LIMIT))
    .offset(filter.offset ?? 0)
    .execute();
}

/**
 * Marks the user's unpaid invoices past their expiry as expired, whether or not a vault said so
 * yet. Only the state changes; a settlement that arrives later still credits (invoices.ts).
 */
async function expireOverdueInvoices(ctx: WalletContext, userPubkey: string): Promise<void> {
  await ctx.db
    .updateTable('transactions')
    .set({ state: 'expired', updated_at: new Date() })
    .where('user_pubkey', '=', userPubkey)
    .where('type', '=', 'incoming')
    .where('state', '=', 'pending')
    .where('expires_at', '<', BigInt(ctx.now()))
    .execute();
}
