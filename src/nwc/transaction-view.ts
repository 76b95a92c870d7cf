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
    ...(tx.expires_at !== null ? { expires_at: Number(tx.expires_at) } : {}),
    ...(tx.settled_at !== null ? { settled_at: Number(tx.settled_at) } : {}),
    ...(tx.metadata !== null ? { metadata: tx.metadata } : {}),
  };
}
