import { z } from 'zod';
import { msatToNip47 } from '../../protocol/amounts.ts';
import { budgetStatus } from '../../deposits/spending.ts';
import { defineMethod } from './method.ts';

/** Alby's get_budget extension: used and total budget in msats, the period, when it renews. */
export const getBudget = defineMethod({
  name: 'get_budget',
  params: z.object({}),
  async handle(ctx) {
    const status = await budgetStatus(ctx.wallet.db, ctx.connection, ctx.wallet.now());
    if (!status) return {};
    return {
      used_budget: msatToNip47(status.usedMsat),
      total_budget: msatToNip47(status.totalMsat),
      renewal_period: status.renewal,
      ...(status.renewsAt !== null ? { renews_at: status.renewsAt } : {}),
    };
  },
});
