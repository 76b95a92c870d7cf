import { z } from 'zod';
import { hex32 } from '../../protocol/hex.ts';
import { settleHoldInvoice as settle } from '../../deposits/invoices.ts';
import { defineMethod } from './method.ts';

export const settleHoldInvoice = defineMethod({
  name: 'settle_hold_invoice',
  params: z.object({ preimage: hex32 }),
  async handle(ctx, params) {
    await settle(ctx.wallet, ctx.connection.userPubkey, params.preimage);
    return {};
  },
});
