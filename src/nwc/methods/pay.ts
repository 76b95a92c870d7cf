import { msatToNip47 } from '../../protocol/amounts.ts';
import { Nip47Error } from '../../protocol/nip47-error.ts';
import { payParamsSchema } from '../../protocol/nwc-request.ts';
import { parsePaymentInstruction } from '../../protocol/payment-target.ts';
import { defineMethod } from './method.ts';
import { payAsSigned } from './paying.ts';

/** NWC-321 `pay`: a BIP-321 URI with a BOLT 11, a bare BOLT 11, or a lightning address. */
export const payBip321 = defineMethod({
  name: 'pay',
  params: payParamsSchema,
  async handle(ctx, params) {
    const instruction = parsePaymentInstruction(params.payment);
    if (!instruction.ok) throw new Nip47Error(instruction.error.nwcCode, instruction.error.message);
    const outcome = await payAsSigned(ctx, 'pay', ctx.rawParams);
    return {
      transaction_id: outcome.transactionId.toString(),
      state: 'settled',
      instruction_type: 'bolt11',
      amount: msatToNip47(outcome.amountMsat),
      fees_paid: msatToNip47(outcome.feesPaidMsat),
      payment_hash: outcome.paymentHash,
      preimage: outcome.preimage,
      created_at: outcome.createdAt,
      settled_at: outcome.settledAt,
    };
  },
});
