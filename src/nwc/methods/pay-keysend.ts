import { msatToNip47 } from '../../protocol/amounts.ts';
import { payKeysendParamsSchema } from '../../protocol/nwc-request.ts';
import { defineMethod } from './method.ts';
import { payAsSigned } from './paying.ts';

export const payKeysend = defineMethod({
  name: 'pay_keysend',
  params: payKeysendParamsSchema,
  async handle(ctx, _params) {
    const outcome = await payAsSigned(ctx, 'pay_keysend', ctx.rawParams);
    return { preimage: outcome.preimage, fees_paid: msatToNip47(outcome.feesPaidMsat) };
  },
});
