import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NWCClient } from '@getalby/sdk';
import { sql } from 'kysely';
import { SERVED_METHODS } from '../../src/nwc/methods/registry.ts';
import { BACKENDS } from '../helpers/database.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

const SAT = 1000;

/** What the devnet charges a payment leaving `operator` (its routing policy), as it publishes it. */
function routingFee(world: World, operatorPubkey: string, amountMsat: bigint): bigint {
  const op = world.bridge.wallet.operators.get(operatorPubkey);
  if (!op) throw new Error('unknown operator');
  return op.info.fees.routing_base_msat + (amountMsat * BigInt(op.info.fees.routing_ppm)) / 1_000_000n;
}

async function payingOperator(world: World, paymentHash: string): Promise<string> {
  const row = await world.bridge.wallet.db
    .selectFrom('transactions')
    .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
    .select('deposits.operator_pubkey')
    .where('transactions.payment_hash', '=', paymentHash)
    .where('transactions.type', '=', 'outgoing')
    .executeTakeFirstOrThrow();
  return row.operator_pubkey;
}

describe.each(BACKENDS)('a real NWC wallet over the relay, bridge on %s', (backend) => {
  let world: World;
  let alice: NWCClient;
  let bob: NWCClient;
  let aliceService: string;

  beforeAll(async () => {
    world = await startWorld(backend);
    const a = await runCli(['connect', '--url', world.bridge.url, '--name', 'alice-wallet']);
    const b = await runCli(['connect', '--url', world.bridge.url, '--name', 'bob-wallet', '--methods', 'get_info,get_balance,make_invoice,lookup_invoice']);
    expect(a.stderr).toMatch(/nsec1/); // a new user key was generated and shown
    alice = new NWCClient({ nostrWalletConnectUrl: a.lastLine });
    bob = new NWCClient({ nostrWalletConnectUrl: b.lastLine });
    aliceService = new URL(a.lastLine.replace('nostr+walletconnect://', 'http://')).hostname;
  });

  afterAll(async () => {
    alice?.close();
    bob?.close();
    await world?.stop();
  });

  it('describes the wallet: regtest network and the methods granted', async () => {
    const info = await alice.getInfo();
    expect(info.network).toBe('regtest');
    // Each connection has its own wallet service key, derived from the bridge's master key.
    expect(info.pubkey).toBe(aliceService);
    expect(aliceService).not.toBe(world.bridge.keys.servicePubkey);
    expect(aliceService).toBe(world.bridge.keys.forConnection(alice.publicKey).pubkey);
    expect([...info.methods].sort()).toEqual([...SERVED_METHODS].sort());
    const bobInfo = await bob.getInfo();
    expect([...bobInfo.methods].sort()).toEqual(['get_balance', 'get_info', 'lookup_invoice', 'make_invoice']);
    expect((await alice.getBalance()).balance).toBe(0);
  });

  it('receives: an invoice from a vault, paid by an outside payer, shows in the balance', async () => {
    const invoice = await alice.makeInvoice({ amount: 100_000 * SAT, description: 'first deposit' });
    expect(invoice.type).toBe('incoming');
    expect(invoice.state).toBe('pending');
    expect(invoice.invoice).toMatch(/^lnbcrt1m1/);
    const paid = await runCli(['devnet', 'pay', invoice.invoice, '--url', world.bridge.url]);
    expect(paid.lastLine).toMatch(/^[0-9a-f]{64}$/);
    await waitFor(async () => (await alice.getBalance()).balance === 100_000 * SAT, 'alice balance after deposit');
    const looked = await alice.lookupInvoice({ payment_hash: invoice.payment_hash });
    expect(looked).toMatchObject({ type: 'incoming', state: 'settled', amount: 100_000 * SAT, preimage: paid.lastLine, description: 'first deposit' });
    expect(looked.settled_at).toBeGreaterThanOrEqual(looked.created_at);
  });

  it("pays another user's invoice, with the routing fee charged exactly", async () => {
    const bobInvoice = await bob.makeInvoice({ amount: 20_000 * SAT, description: 'from alice' });
    const result = await alice.payInvoice({ invoice: bobInvoice.invoice });
    const looked = await bob.lookupInvoice({ payment_hash: bobInvoice.payment_hash });
    expect(looked.preimage).toBe(result.preimage);
    const aliceDeposit = await payingOperator(world, bobInvoice.payment_hash);
    const bobDeposit = (
      await world.bridge.wallet.db
        .selectFrom('transactions')
        .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
        .select('deposits.operator_pubkey')
        .where('transactions.payment_hash', '=', bobInvoice.payment_hash)
        .where('transactions.type', '=', 'incoming')
        .executeTakeFirstOrThrow()
    ).operator_pubkey;
    const expectedFee = aliceDeposit === bobDeposit ? 0n : routingFee(world, aliceDeposit, 20_000_000n);
    expect(BigInt(result.fees_paid ?? -1)).toBe(expectedFee);
    await waitFor(async () => (await bob.getBalance()).balance === 20_000 * SAT, 'bob balance');
    expect((await alice.getBalance()).balance).toBe(100_000 * SAT - 20_000 * SAT - Number(expectedFee));
  });

  it('pays an outside payee made with `devnet invoice`', async () => {
    const made = await runCli(['devnet', 'invoice', '5000', '--url', world.bridge.url]);
    const before = (await alice.getBalance()).balance;
    const result = await alice.payInvoice({ invoice: made.lastLine });
    expect(result.preimage).toMatch(/^[0-9a-f]{64}$/);
    const paymentHash = (await alice.lookupInvoice({ invoice: made.lastLine })).payment_hash;
    const fee = routingFee(world, await payingOperator(world, paymentHash), 5_000_000n);
    expect(BigInt(result.fees_paid ?? -1)).toBe(fee);
    expect((await alice.getBalance()).balance).toBe(before - 5_000 * SAT - Number(fee));
  });

  it('lists exactly what happened, newest first, fees included', async () => {
    const { transactions } = await alice.listTransactions({});
    expect(transactions.map((t) => [t.type, t.state, t.amount])).toEqual([
      ['outgoing', 'settled', 5_000 * SAT],
      ['outgoing', 'settled', 20_000 * SAT],
      ['incoming', 'settled', 100_000 * SAT],
    ]);
    const fees = transactions.reduce((sum, t) => sum + t.fees_paid, 0);
    expect((await alice.getBalance()).balance).toBe(100_000 * SAT - 25_000 * SAT - fees);
    for (const t of transactions) expect(t.invoice).toMatch(/^lnbcrt/);
    const incoming = await alice.listTransactions({ type: 'incoming' });
    expect(incoming.transactions).toHaveLength(1);
    const page = await alice.listTransactions({ limit: 1, offset: 1 });
    expect(page.transactions.map((t) => t.amount)).toEqual([20_000 * SAT]);
  });

  it('keeps the journal and every deposit in agreement, and matches what the vaults signed', async () => {
    const db = world.bridge.wallet.db;
    const rows = await db
      .selectFrom('deposits')
      .leftJoin('journal_entries', 'journal_entries.deposit_id', 'deposits.id')
      .select([
        'deposits.id',
        'deposits.confirmed_msat',
        'deposits.reserved_msat',
        'deposits.vault_balance_msat',
        sql<bigint>`coalesce(sum(journal_entries.confirmed_delta_msat), 0)::bigint`.as('journal_confirmed'),
        sql<bigint>`coalesce(sum(journal_entries.reserved_delta_msat), 0)::bigint`.as('journal_reserved'),
      ])
      .groupBy(['deposits.id', 'deposits.confirmed_msat', 'deposits.reserved_msat', 'deposits.vault_balance_msat'])
      .execute();
    expect(rows.length).toBeGreaterThanOrEqual(3);
    for (const row of rows) {
      expect(row.confirmed_msat).toBe(row.journal_confirmed);
      expect(row.reserved_msat).toBe(row.journal_reserved);
      expect(row.reserved_msat).toBe(0n);
      if (row.vault_balance_msat !== null) expect(row.vault_balance_msat).toBe(row.confirmed_msat);
    }
  });
});
