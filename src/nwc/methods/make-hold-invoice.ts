import { z } from 'zod';
import { nip47Msat } from '../../protocol/amounts.ts';
import { hex32 } from '../../protocol/hex.ts';
import { nip47Metadata } from '../../protocol/nwc-request.ts';
import { makeInvoice } from '../../deposits/invoices.ts';
import { nip47Transaction } from '../transaction-view.ts';
import { defineMethod } from './method.ts';

export const makeHoldInvoice = defineMethod({
  name: 'make_hold_invoice',
  params: z.object({
    amount: nip47Msat.refine((a) => a > 0n, 'amount must be positive'),
    payment_hash: hex32,
    description: z.string().max(639).optional(),
    description_hash: hex32.optional(),
    expiry: z.number().int().positive().max(31_536_000).optional(),
    min_cltv_expiry_delta: z.number().int().min(1).max(2016).optional(),
    metadata: nip47Metadata,
  }),
  async handle(ctx, params) {
    const tx = await makeInvoice(ctx.wallet, {
      userPubkey: ctx.connection.userPubkey,
      connectionPubkey: ctx.connection.pubkey,
      amountMsat: params.amount,
      description: params.description,
      descriptionHash: params.description_hash,
      expirySeconds: params.expiry,
      metadata: params.metadata,
      hold: { paymentHash: params.payment_hash, minCltvExpiryDelta: params.min_cltv_expiry_delta },
    });
    return nip47Transaction(tx);
  },
});
