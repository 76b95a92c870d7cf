import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionViews } from '../../src/deposits/account-view.ts';
import { connectRaw, fund, vaultPaymentActivity } from '../helpers/wallet.ts';
import type { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { startWorld, waitFor, type World } from '../helpers/world.ts';

describe('the same request event delivered twice', () => {
  let world: World;
  let client: RawNwcClient;

  beforeAll(async () => {
    world = await startWorld('postgres');
    client = (await connectRaw(world, 'nip44_v2')).client;
    await fund(world, client, 20_000_000);
  });

  afterAll(async () => {
    client?.close();
    await world?.stop();
  });

  it('pays once, answers the repeat with the stored response, also after a restart', async () => {
    const { invoice, paymentHash } = await world.devnet.createPayeeInvoice(3_000_000n);
    const event = client.signRequest(client.encrypt(JSON.stringify({ method: 'pay_invoice', params: { invoice } })));
    const first = await client.send(event);
    expect(first.error).toBeNull();
    const balanceAfterFirst = (await client.request('get_balance')).result.balance as number;
    const activity = await vaultPaymentActivity(world);

    const second = await client.send(event);
    expect(second).toEqual(first); // the very same signed response event, republished

    world.bridge = await world.restartBridge();
    await waitFor(async () => (await fetch(`${world.bridge.url}/health`)).status === 200, 'bridge back');
    const third = await client.send(event);
    expect(third).toEqual(first);

    expect(await vaultPaymentActivity(world)).toBe(activity);
    expect((await client.request('get_balance')).result.balance).toBe(balanceAfterFirst);
    expect((await world.devnet.payeeInvoiceStatus(paymentHash))?.state).toBe('settled');
    const rows = await world.bridge.wallet.db.selectFrom('transactions').select('id').where('payment_hash', '=', paymentHash).execute();
    expect(rows).toHaveLength(1);
  });

  it("answers a repeated read-only request with the same response, keeps no row of it, and notes the connection's use", async () => {
    const { client: reader } = await connectRaw(world, 'nip44_v2');
    try {
      const db = world.bridge.wallet.db;
      const lastUsed = async () => (await db.selectFrom('connections').select('last_used_at').where('pubkey', '=', reader.pubkey).executeTakeFirstOrThrow()).last_used_at;
      expect(await lastUsed()).toBeNull();

      const event = reader.signRequest(reader.encrypt(JSON.stringify({ method: 'get_balance', params: {} })));
      const first = await reader.send(event);
      expect(first).toMatchObject({ result_type: 'get_balance', result: { balance: 0 }, error: null });
      const second = await reader.send(event);
      expect(second).toEqual(first); // the very same signed response event, republished

      expect(await db.selectFrom('nwc_requests').select('event_id').where('connection_pubkey', '=', reader.pubkey).execute()).toEqual([]);
      await waitFor(async () => (await lastUsed()) !== null, 'last use noted');
      const user = await db.selectFrom('connections').select('user_pubkey').where('pubkey', '=', reader.pubkey).executeTakeFirstOrThrow();
      const [view] = await connectionViews(world.bridge.wallet, user.user_pubkey);
      expect(view?.lastUsedAt?.getTime()).toBe((await lastUsed())?.getTime());
    } finally {
      reader.close();
    }
  });

  it('answers a get_balance claimed by an earlier version and left in flight, once its claim lapsed', async () => {
    // Read-only requests are no longer claimed; a row of one may remain from before that.
    const event = client.signRequest(client.encrypt(JSON.stringify({ method: 'get_balance', params: {} })));
    const db = () => world.bridge.wallet.db;
    await db()
      .insertInto('nwc_requests')
      .values({ event_id: event.id, connection_pubkey: client.pubkey, event: JSON.stringify(event), method: 'get_balance', state: 'processing', claimed_by: 'an earlier instance', lease_until: new Date(Date.now() - 60_000) })
      .execute();
    const answered = client.responseTo(event, 60_000);
    // A bridge takes over lapsed claims when it starts.
    world.bridge = await world.restartBridge();
    const answer = await answered;
    expect(answer.error).toBeNull();
    expect(answer.result.balance).toBeGreaterThan(0);
    expect(answer.result.balance).toBe((await client.request('get_balance')).result.balance);
    const row = await db().selectFrom('nwc_requests').select(['state', 'response_event']).where('event_id', '=', event.id).executeTakeFirstOrThrow();
    expect(row.state).toBe('done');
    expect((row.response_event as { id: string }).id).toBe(answer.responseId);
  });

  it('finishes a payment left in flight by a restart, answers the waiting app, and pays once', async () => {
    const { invoice, paymentHash } = await world.devnet.createPayeeInvoice(2_000_000n);
    for (const op of world.devnet.operators) op.faults.holdPayments = true;
    const event = client.signRequest(client.encrypt(JSON.stringify({ method: 'pay_invoice', params: { invoice } })));
    const answered = client.send(event, 60_000);
    const db = () => world.bridge.wallet.db;
    await waitFor(async () => (await db().selectFrom('transactions').select('step').where('request_event_id', '=', event.id).executeTakeFirst())?.step === 'sent', 'payment sent to the vault');

    world.bridge = await world.restartBridge();
    for (const op of world.devnet.operators) {
      op.faults.holdPayments = false;
      op.releasePayments();
    }
    const response = await answered;
    expect(response.error).toBeNull();
    expect(response.result.preimage).toMatch(/^[0-9a-f]{64}$/);
    expect(await client.send(event)).toEqual(response);
    expect((await world.devnet.payeeInvoiceStatus(paymentHash))?.state).toBe('settled');
    const rows = await db().selectFrom('transactions').select(['state']).where('payment_hash', '=', paymentHash).execute();
    expect(rows).toEqual([{ state: 'settled' }]);
  });
});
