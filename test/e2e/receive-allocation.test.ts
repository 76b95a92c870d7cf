import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw } from '../helpers/wallet.ts';
import { startWorld, type World } from '../helpers/world.ts';

const BTC = 100_000_000_000; // msat

describe('where invoices are made', () => {
  let world: World;
  let client: RawNwcClient;

  beforeAll(async () => {
    world = await startWorld('pglite');
    client = (await connectRaw(world, 'nip44_v2')).client;
  });

  afterAll(async () => {
    client?.close();
    await world?.stop();
  });

  it("counts open invoices against an operator's room: none is promised more than its deposit limit", async () => {
    const operatorOf = async (paymentHash: string) =>
      (
        await world.bridge.wallet.db
          .selectFrom('transactions')
          .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
          .select('deposits.operator_pubkey')
          .where('transactions.payment_hash', '=', paymentHash)
          .executeTakeFirstOrThrow()
      ).operator_pubkey;
    const limit = world.bridge.wallet.operators.all()[0]!.info.limits.max_deposit_msat;
    expect(limit).toBe(10n * BigInt(BTC));
    const operators: string[] = [];
    for (let i = 0; i < 11; i++) {
      const made = await client.request('make_invoice', { amount: BTC });
      expect(made.error).toBeNull();
      operators.push(await operatorOf(made.result.payment_hash));
    }
    // Equal scores: the first operator takes invoices until its room is promised away.
    expect(new Set(operators.slice(0, 10)).size).toBe(1);
    expect(operators[10]).not.toBe(operators[0]);
  });
});
