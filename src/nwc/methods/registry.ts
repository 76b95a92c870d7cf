import { getBalance } from './get-balance.ts';
import { getBudget } from './get-budget.ts';
import { getInfo } from './get-info.ts';
import { listTransactions } from './list-transactions.ts';
import { lookupInvoice } from './lookup-invoice.ts';
import { makeInvoice } from './make-invoice.ts';
import type { Method } from './method.ts';
import { payInvoice } from './pay-invoice.ts';

/** Every NIP-47 method the bridge answers; any other answers NOT_IMPLEMENTED. */
export const METHODS: ReadonlyMap<string, Method> = new Map(
  [getInfo, getBalance, getBudget, makeInvoice, payInvoice, lookupInvoice, listTransactions].map((m) => [m.name, m]),
);

export const SERVED_METHODS: readonly string[] = [...METHODS.keys()];
