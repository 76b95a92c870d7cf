import { msatToNip47 } from '../../protocol/amounts.ts';
import { payInvoiceParamsSchema } from '../../protocol/nwc-request.ts';
import { payInvoice as payFromDeposits } from '../../deposits/payments.ts';
import { defineMethod } from './method.ts';

export const payInvoice = defineMethod({
  name: 'pay_invoice',
  // The very schema vaults parse the signed plaintext with.
  params: payInvoiceParamsSchema,
  async handle(ctx, params) {
    const outcome = await payFromDeposits(ctx.wallet, {
      connection: ctx.connection,
      request: ctx.request,
      encryption: ctx.encryption,
      key: ctx.key,
      invoice: params.invoice,
      amountMsat: params.amount,
      metadata: params.metadata,
    });
    return { preimage: outcome.preimage, fees_paid: msatToNip47(outcome.feesPaidMsat) };
  },
});
