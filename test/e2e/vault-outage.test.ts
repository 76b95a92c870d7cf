import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw, fund } from '../helpers/wallet.ts';
import { startWorld, waitFor, type World } from '../helpers/world.ts';

describe('a vault that goes away while it holds a payment', () => {
  let world: World;
  let client: RawNwcClient;

  beforeAll(async () => {
    world = await startWorld('pglite');
    client = (await connectRaw(world, 'nip44_v2')).client;
    await fund(world, client, 30_000_000);
  });

  afterAll(async () => {
    client?.close();
    await world?.stop();
  });

  it('keeps the payment pending and its money reserved, never failed on a guess, then settles it once', async () => {
    const { invoice, paymentHash } = await world.devnet.createPayeeInvoice(10_000_000n);
    for (const op of world.devnet.operators) op.faults.holdPayments = true;
    const event = client.signRequest(client.encrypt(JSON.stringify({ method: 'pay_invoice', params: { invoice } })));
    const answered = client.send(event, 60_000);
    const tx = async () => world.bridge.wallet.db.selectFrom('transactions').selectAll().where('request_event_id', '=', event.id).executeTakeFirst();
    await waitFor(async () => (await tx())?.step === 'sent', 'payment sent to the vault');
    // 'sent' is written before the call: wait until the vault really holds it.
    const sent = (await tx())!;
    const holding = await world.bridge.wallet.db.selectFrom('deposits').selectAll().where('id', '=', sent.deposit_id).executeTakeFirstOrThrow();
    const vault = world.bridge.wallet.operators.get(holding.operator_pubkey)!.client;
    await waitFor(async () => (await vault.paymentStatus(holding.remote_deposit_id, event.id))?.state === 'pending', 'payment held by the vault');

    // The bridge restarts while the vault holding the payment is unreachable.
    for (const op of world.devnet.operators) op.faults.down = true;
    world.bridge = await world.restartBridge();
    await new Promise((r) => setTimeout(r, 1_500));
    const during = await tx();
    expect(during?.state, during?.failure_reason ?? '').toBe('pending');
    const deposit = await world.bridge.wallet.db.selectFrom('deposits').selectAll().where('id', '=', during!.deposit_id).executeTakeFirstOrThrow();
    expect(deposit.reserved_msat).toBe(during!.amount_msat + during!.fee_reserve_msat);

    for (const op of world.devnet.operators) {
      op.faults.down = false;
      op.faults.holdPayments = false;
      op.releasePayments();
    }
    const response = await answered;
    expect(response.error).toBeNull();
    expect((await tx())?.state).toBe('settled');
    expect((await world.devnet.payeeInvoiceStatus(paymentHash))?.state).toBe('settled');
    expect((await client.request('get_balance')).result.balance).toBe(30_000_000 - 10_000_000 - response.result.fees_paid);
  });
});
