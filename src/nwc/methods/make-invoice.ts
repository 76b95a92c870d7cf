import { z } from 'zod';
import { nip47Msat } from '../../protocol/amounts.ts';
import { hex32 } from '../../protocol/hex.ts';
import { nip47Metadata } from '../../protocol/nwc-request.ts';
import { makeInvoice as makeDepositInvoice } from '../../deposits/invoices.ts';
import { nip47Transaction } from '../transaction-view.ts';
import { defineMethod } from './method.ts';

export const makeInvoice = defineMethod({
  name: 'make_invoice',
  params: z.object({
    amount: nip47Msat.refine((a) => a > 0n, 'amount must be positive'),
    description: z.string().max(639).optional(),
    description_hash: hex32.optional(),
    expiry: z.number().int().positive().max(31_536_000).optional(),
    metadata: nip47Metadata,
  }),
  async handle(ctx, params) {
    const tx = await makeDepositInvoice(ctx.wallet, {
      userPubkey: ctx.connection.userPubkey,
      connectionPubkey: ctx.connection.pubkey,
      amountMsat: params.amount,
      description: params.description,
      descriptionHash: params.description_hash,
      expirySeconds: params.expiry,
      metadata: params.metadata,
    });
    return nip47Transaction(tx);
  },
});
