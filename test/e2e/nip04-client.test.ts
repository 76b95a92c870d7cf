import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

describe('a client built only on nostr-tools, NIP-04, no encryption tag', () => {
  let world: World;
  let client: RawNwcClient;

  beforeAll(async () => {
    world = await startWorld('pglite');
    const connected = await runCli(['connect', '--url', world.bridge.url, '--name', 'btcpay']);
    client = new RawNwcClient(connected.lastLine, 'nip04');
  });

  afterAll(async () => {
    client?.close();
    await world?.stop();
  });

  it('gets info, receives, pays, looks up and lists over NIP-04', async () => {
    const info = await client.request('get_info');
    expect(info.error).toBeNull();
    expect(info.result.network).toBe('regtest');

    const made = await client.request('make_invoice', { amount: 21_000_000, description: 'nip04' });
    expect(made.error).toBeNull();
    expect(made.result).toMatchObject({ type: 'incoming', state: 'pending', amount: 21_000_000 });
    await runCli(['devnet', 'pay', made.result.invoice, '--url', world.bridge.url]);
    await waitFor(async () => (await client.request('get_balance')).result.balance === 21_000_000, 'balance over nip04');

    const looked = await client.request('lookup_invoice', { payment_hash: made.result.payment_hash });
    expect(looked.result.state).toBe('settled');

    const payee = await runCli(['devnet', 'invoice', '1000', '--url', world.bridge.url]);
    const paid = await client.request('pay_invoice', { invoice: payee.lastLine });
    expect(paid.error).toBeNull();
    expect(paid.result.preimage).toMatch(/^[0-9a-f]{64}$/);

    const incoming = await client.request('list_transactions', { limit: 300, type: 'incoming' });
    expect(incoming.result.transactions.map((t: { amount: number; state: string }) => [t.amount, t.state])).toEqual([[21_000_000, 'settled']]);
    const all = await client.request('list_transactions', { unpaid: true });
    expect(all.result.transactions).toHaveLength(2);
    for (const t of all.result.transactions) {
      expect(typeof t.invoice).toBe('string');
      expect(['settled', 'pending', 'failed', 'expired']).toContain(t.state);
    }
  });
});
