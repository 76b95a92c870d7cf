import type { TransactionRow } from '../db/schema.ts';
import { msatToNip47 } from '../protocol/amounts.ts';

/** A transaction as NIP-47 shows it (make_invoice, lookup_invoice, list_transactions, notifications). */
export function nip47Transaction(tx: TransactionRow): Record<string, unknown> {
  return {
    type: tx.type,
    state: tx.state,
    invoice: tx.invoice,
    description: tx.description ?? '',
    description_hash: tx.description_hash ?? '',
    preimage: tx.preimage ?? '',
    payment_hash: tx.payment_hash,
    amount: msatToNip47(tx.amount_msat),
    fees_paid: msatToNip47(tx.fee_msat),
    created_at: Number(tx.created_at),
    // Always present (some clients require it): a keysend has no invoice to expire, so its creation time.
    expires_at: Number(tx.expires_at ?? tx.created_at),
    ...(tx.settled_at !== null ? { settled_at: Number(tx.settled_at) } : {}),
    ...(tx.settle_deadline !== null ? { settle_deadline: Number(tx.settle_deadline) } : {}),
    ...(tx.metadata !== null ? { metadata: tx.metadata } : {}),
  };
}
