import { z } from 'zod';
import { listTransactions as listDepositTransactions } from '../../deposits/transactions.ts';
import { nip47Transaction } from '../transaction-view.ts';
import { defineMethod } from './method.ts';

const unixSeconds = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const listTransactions = defineMethod({
  name: 'list_transactions',
  params: z.object({
    from: unixSeconds.optional(),
    until: unixSeconds.optional(),
    limit: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
    offset: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
    unpaid: z.boolean().optional(),
    type: z.enum(['incoming', 'outgoing']).optional(),
  }),
  async handle(ctx, params) {
    const rows = await listDepositTransactions(ctx.wallet, ctx.connection.userPubkey, params);
    return { transactions: rows.map(nip47Transaction) };
  },
});
