import { z } from 'zod';
import { NOTIFICATION_TYPES } from '../notification-types.ts';
import { defineMethod } from './method.ts';

export const getInfo = defineMethod({
  name: 'get_info',
  params: z.object({}),
  async handle(ctx) {
    const operators = ctx.wallet.operators.all();
    const blockHeight = operators.reduce((h, op) => Math.max(h, op.info.block_height), 0);
    return {
      alias: ctx.bridge.alias,
      color: '#f7931a',
      pubkey: ctx.servicePubkey,
      network: ctx.wallet.operators.network() ?? 'regtest',
      block_height: blockHeight,
      block_hash: '',
      methods: ctx.bridge.servedMethods.filter((m) => ctx.connection.grant.methods.includes(m)),
      notifications: ctx.connection.grant.methods.includes('notifications') ? [...NOTIFICATION_TYPES] : [],
    };
  },
});
