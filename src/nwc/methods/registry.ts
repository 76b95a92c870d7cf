import { getBalance } from './get-balance.ts';
import { getBudget } from './get-budget.ts';
import { getInfo } from './get-info.ts';
import { listTransactions } from './list-transactions.ts';
import { lookupInvoice } from './lookup-invoice.ts';
import { makeInvoice } from './make-invoice.ts';
import type { Method } from './method.ts';
import { payInvoice } from './pay-invoice.ts';
import { payKeysend } from './pay-keysend.ts';
import { payBip321 } from './pay.ts';
import { receive } from './receive.ts';
import { makeHoldInvoice } from './make-hold-invoice.ts';
import { settleHoldInvoice } from './settle-hold-invoice.ts';
import { cancelHoldInvoice } from './cancel-hold-invoice.ts';

/** Every NIP-47 method the bridge answers; any other answers NOT_IMPLEMENTED. */
export const METHODS: ReadonlyMap<string, Method> = new Map(
  [
    getInfo,
    getBalance,
    getBudget,
    makeInvoice,
    payInvoice,
    payKeysend,
    payBip321,
    receive,
    makeHoldInvoice,
    settleHoldInvoice,
    cancelHoldInvoice,
    lookupInvoice,
    listTransactions,
  ].map((m) => [m.name, m]),
);

export const SERVED_METHODS: readonly string[] = [...METHODS.keys()];
