import { z } from 'zod';
import { msatToNip47 } from '../../protocol/amounts.ts';
import { StaleConnection } from '../../deposits/connections.ts';
import { availableBalance } from '../../deposits/transactions.ts';
import { defineMethod } from './method.ts';

export const getBalance = defineMethod({
  name: 'get_balance',
  params: z.object({}),
  async handle(ctx) {
    // The balance comes with the grant check; a request resumed from an older claim has none.
    if (!ctx.grantCheck) return { balance: msatToNip47(await availableBalance(ctx.wallet, ctx.connection.userPubkey)) };
    const held = await ctx.grantCheck;
    if (!held) throw new StaleConnection(ctx.connection.pubkey);
    return { balance: msatToNip47(held.availableMsat) };
  },
});
