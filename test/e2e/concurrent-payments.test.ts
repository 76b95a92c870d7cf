import { afterAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { BACKENDS } from '../helpers/database.ts';
import { connectRaw, fund } from '../helpers/wallet.ts';
import { startWorld, type World } from '../helpers/world.ts';

describe.each(BACKENDS)('20 concurrent payments that together exceed the balance (%s)', (backend) => {
  let world: World | undefined;
  afterAll(async () => {
    await world?.stop();
  });

  it('lets exactly the affordable ones through and never overdraws a deposit', async () => {
    world = await startWorld(backend);
    const { client } = await connectRaw(world, 'nip44_v2');
    await fund(world, client, 100_000_000); // 100 000 sat, in one deposit
    // Each payment needs 10 000 sat + a 100 sat fee reserve: 9 fit, a 10th never does,
    // whatever the order, because a settled one costs at least 10 000 sat + its fee.
    const invoices = await Promise.all(Array.from({ length: 20 }, () => world!.devnet.createPayeeInvoice(10_000_000n)));
    const responses = await Promise.all(invoices.map(({ invoice }) => client.request('pay_invoice', { invoice })));
    const paid = responses.filter((r) => r.error === null);
    const refused = responses.filter((r) => r.error !== null);
    expect(paid).toHaveLength(9);
    expect(refused.map((r) => r.error?.code)).toEqual(Array(11).fill('INSUFFICIENT_BALANCE'));
    const fees = paid.reduce((sum, r) => sum + (r.result.fees_paid as number), 0);
    expect((await client.request('get_balance')).result.balance).toBe(100_000_000 - 9 * 10_000_000 - fees);

    const deposits = await world.bridge.wallet.db.selectFrom('deposits').select(['confirmed_msat', 'reserved_msat', 'vault_balance_msat']).execute();
    for (const d of deposits) {
      expect(d.confirmed_msat >= 0n).toBe(true);
      expect(d.reserved_msat).toBe(0n);
      if (d.vault_balance_msat !== null) expect(d.vault_balance_msat).toBe(d.confirmed_msat);
    }
    const settledPayees = await Promise.all(invoices.map(({ paymentHash }) => world!.devnet.payeeInvoiceStatus(paymentHash)));
    expect(settledPayees.filter((s) => s?.state === 'settled')).toHaveLength(9);
    const outgoing = await sql<{ n: bigint }>`select count(*)::bigint as n from transactions where type = 'outgoing' and state = 'settled'`.execute(world.bridge.wallet.db);
    expect(outgoing.rows[0]?.n).toBe(9n);
  });
});
