import { msatToNip47 } from '../../protocol/amounts.ts';
import { payInvoiceParamsSchema } from '../../protocol/nwc-request.ts';
import { defineMethod } from './method.ts';
import { payAsSigned } from './paying.ts';

export const payInvoice = defineMethod({
  name: 'pay_invoice',
  // The very schema vaults parse the signed plaintext with.
  params: payInvoiceParamsSchema,
  async handle(ctx, _params) {
    const outcome = await payAsSigned(ctx, 'pay_invoice', ctx.rawParams);
    return { preimage: outcome.preimage, fees_paid: msatToNip47(outcome.feesPaidMsat) };
  },
});
