import { z } from 'zod';
import { msatToNip47 } from '../../protocol/amounts.ts';
import { availableBalance } from '../../deposits/transactions.ts';
import { defineMethod } from './method.ts';

export const getBalance = defineMethod({
  name: 'get_balance',
  params: z.object({}),
  async handle(ctx) {
    return { balance: msatToNip47(await availableBalance(ctx.wallet, ctx.connection.userPubkey)) };
  },
});
