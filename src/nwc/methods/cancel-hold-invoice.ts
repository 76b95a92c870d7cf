import { z } from 'zod';
import { hex32 } from '../../protocol/hex.ts';
import { cancelHoldInvoice as cancel } from '../../deposits/invoices.ts';
import { defineMethod } from './method.ts';

export const cancelHoldInvoice = defineMethod({
  name: 'cancel_hold_invoice',
  params: z.object({ payment_hash: hex32 }),
  async handle(ctx, params) {
    await cancel(ctx.wallet, ctx.connection.userPubkey, params.payment_hash);
    return {};
  },
});
