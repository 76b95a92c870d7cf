import { z } from 'zod';
import { hex32 } from '../../protocol/hex.ts';
import { lookupTransaction } from '../../deposits/transactions.ts';
import { nip47Transaction } from '../transaction-view.ts';
import { defineMethod } from './method.ts';

export const lookupInvoice = defineMethod({
  name: 'lookup_invoice',
  params: z
    .object({ payment_hash: hex32.optional(), invoice: z.string().min(1).max(8192).optional() })
    .refine((p) => p.payment_hash !== undefined || p.invoice !== undefined, 'one of payment_hash or invoice is required'),
  async handle(ctx, params) {
    const tx = await lookupTransaction(ctx.wallet, ctx.connection.userPubkey, { paymentHash: params.payment_hash, invoice: params.invoice });
    return nip47Transaction(tx);
  },
});
