import { z } from 'zod';
import { nip47Msat } from '../../protocol/amounts.ts';
import { nip47Metadata } from '../../protocol/nwc-request.ts';
import { makeInvoice } from '../../deposits/invoices.ts';
import { defineMethod } from './method.ts';

/** NWC-321 `receive`: a BIP-321 URI holding a vault invoice (amountless when no amount is asked). */
export const receive = defineMethod({
  name: 'receive',
  params: z.object({
    amount: nip47Msat.refine((a) => a > 0n, 'amount must be positive').nullable().optional(),
    description: z.string().max(639).optional(),
    metadata: nip47Metadata,
  }),
  async handle(ctx, params) {
    const tx = await makeInvoice(ctx.wallet, {
      userPubkey: ctx.connection.userPubkey,
      connectionPubkey: ctx.connection.pubkey,
      amountMsat: params.amount ?? null,
      description: params.description,
      metadata: params.metadata,
    });
    return { bip321: `bitcoin:?lightning=${tx.invoice}`, transaction_id: tx.id.toString() };
  },
});
