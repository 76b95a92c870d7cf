import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw, fund } from '../helpers/wallet.ts';
import { startWorld, waitFor, type World } from '../helpers/world.ts';

const SAT = 1_000;

describe('maintenance fees charged by block height', () => {
  let world: World;
  let client: RawNwcClient;

  const balance = async () => (await client.request('get_balance')).result.balance as number;
  const db = () => world.bridge.wallet.db;
  const maintenanceRows = () =>
    db()
      .selectFrom('transactions')
      .selectAll()
      .where((eb) => eb(eb.ref('metadata', '->>').key('kind' as never), '=', 'maintenance_fee'))
      .orderBy('id')
      .execute();

  beforeAll(async () => {
    world = await startWorld('pglite');
    client = (await connectRaw(world, 'nip44_v2')).client;
    await fund(world, client, 100_000 * SAT);
  });

  afterAll(async () => {
    client?.close();
    await world?.stop();
  });

  it('publishes the paper’s schedule: 1 000 msat per 144 blocks and 0.27 % per 52 560 blocks', () => {
    for (const op of world.bridge.wallet.operators.all()) {
      expect(op.info.fees.maintenance).toEqual({ unit_fee_msat: 1_000n, period_blocks: 144, rate_fee_ppm: 2_700, rate_period_blocks: 52_560 });
    }
  });

  it('takes nothing before a period ends, then the unit fee plus the pro-rata rate, as a transaction of its own', async () => {
    const before = await balance();
    world.devnet.mineBlocks(143);
    const partial = await client.request('list_transactions', {});
    expect(partial.result.transactions.filter((t: any) => /maintenance/.test(t.description ?? ''))).toHaveLength(0);

    world.devnet.mineBlocks(1);
    // 1 000 + 100 000 000 × 2 700 ppm × 144 / 52 560 blocks = 1 000 + 739 msat.
    const fee = 1_000 + Math.floor((before * 2_700 * 144) / (52_560 * 1_000_000));
    expect(fee).toBe(1_739);
    await waitFor(async () => (await balance()) === before - fee, 'the maintenance fee taken from the balance');

    const listed = await client.request('list_transactions', {});
    const shown = listed.result.transactions.filter((t: any) => /maintenance fee/.test(t.description ?? ''));
    expect(shown).toHaveLength(1);
    expect(shown[0]).toMatchObject({ type: 'outgoing', amount: fee, fees_paid: 0, state: 'settled' });

    // The bridge's balance is what both channel peers signed, and the journal explains it.
    const deposit = await db().selectFrom('deposits').selectAll().where('confirmed_msat', '>', 0n).executeTakeFirstOrThrow();
    expect(deposit.vault_balance_msat).toBe(deposit.confirmed_msat);
    const journal = await db()
      .selectFrom('journal_entries')
      .select((eb) => eb.fn.sum<bigint>('confirmed_delta_msat').as('sum'))
      .where('deposit_id', '=', deposit.id)
      .executeTakeFirstOrThrow();
    expect(BigInt(journal.sum)).toBe(deposit.confirmed_msat);
  });

  it('charges every whole period that passed in one charge', async () => {
    const before = await balance();
    world.devnet.mineBlocks(2 * 144 + 10);
    const fee = 2 * 1_000 + Math.floor((before * 2_700 * 288) / (52_560 * 1_000_000));
    await waitFor(async () => (await balance()) === before - fee, 'two periods charged');
    const rows = await maintenanceRows();
    expect(rows).toHaveLength(2);
    expect(rows[1]!.metadata).toMatchObject({ kind: 'maintenance_fee' });
    expect(Number((rows[1]!.metadata as any).to_height) - Number((rows[1]!.metadata as any).from_height)).toBe(288);
  });

  it('applies each charge once, even when the vault’s events are read again from the start', async () => {
    const before = await balance();
    const rowsBefore = await maintenanceRows();
    const cursors = await db().selectFrom('vault_operators').select(['node_pubkey', 'events_cursor']).execute();
    await db().updateTable('vault_operators').set({ events_cursor: 0n }).execute();
    await world.restartBridge();
    await waitFor(async () => {
      const now = await db().selectFrom('vault_operators').select(['node_pubkey', 'events_cursor']).execute();
      return cursors.every((c) => now.find((n) => n.node_pubkey === c.node_pubkey)!.events_cursor >= c.events_cursor);
    }, 'every vault event read again');
    expect(await maintenanceRows()).toHaveLength(rowsBefore.length);
    expect(await balance()).toBe(before);
  });
});
