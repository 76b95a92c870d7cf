import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NWCClient, type Nip47Notification } from '@getalby/sdk';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, randomBytes } from '@noble/hashes/utils.js';
import { SERVED_METHODS } from '../../src/nwc/methods/registry.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

/** Every NIP-47 method this bridge serves, through the real @getalby/sdk client. */
describe('the full NIP-47 surface through NWCClient', () => {
  let world: World;
  let sdk: NWCClient;
  let raw: RawNwcClient;
  const notifications: Nip47Notification[] = [];
  let unsubscribe: () => void;

  beforeAll(async () => {
    world = await startWorld('pglite');
    const uri = (await runCli(['connect', '--url', world.bridge.url])).lastLine;
    sdk = new NWCClient({ nostrWalletConnectUrl: uri });
    raw = new RawNwcClient(uri, 'nip44_v2');
    unsubscribe = await sdk.subscribeNotifications((n) => notifications.push(n));
    const invoice = await sdk.makeInvoice({ amount: 200_000_000 });
    await world.devnet.payInvoice(invoice.invoice);
    await waitFor(async () => (await sdk.getBalance()).balance === 200_000_000, 'funded');
  });

  afterAll(async () => {
    unsubscribe?.();
    sdk?.close();
    raw?.close();
    await world?.stop();
  });

  const balance = async () => (await sdk.getBalance()).balance;

  it('lists every served method in get_info and the info event', async () => {
    expect([...(await sdk.getInfo()).methods].sort()).toEqual([...SERVED_METHODS].sort());
    const info = await sdk.getWalletServiceInfo();
    expect(info.capabilities.sort()).toEqual([...SERVED_METHODS, 'notifications'].sort());
  });

  it('pays a keysend with TLV records and a caller preimage', async () => {
    const preimage = bytesToHex(randomBytes(32));
    const before = await balance();
    const paid = await sdk.payKeysend({ amount: 2_000_000, pubkey: world.devnet.payeeNodePubkey, preimage, tlv_records: [{ type: 7629169, value: 'cafe' }] });
    expect(paid.preimage).toBe(preimage);
    const receipt = world.devnet.payeeKeysend(bytesToHex(sha256(Buffer.from(preimage, 'hex'))));
    expect(receipt?.amountMsat).toBe(2_000_000n);
    expect(receipt?.tlvRecords.map((r) => [r.type, r.value])).toEqual([[7629169n, 'cafe']]);
    expect(await balance()).toBe(before - 2_000_000 - (paid.fees_paid ?? 0));
    // The SDK's lookupInvoice insists on a non-empty `invoice`, which a keysend has not: ask raw.
    const looked = await raw.request('lookup_invoice', { payment_hash: receipt!.paymentHash });
    expect(looked.result).toMatchObject({ type: 'outgoing', state: 'settled', amount: 2_000_000, invoice: '' });
    expect(looked.result.metadata.tlv_records).toEqual([{ type: 7629169, value: 'cafe' }]);
  });

  it('pays a keysend without a preimage (the vault picks it) and records its payment hash', async () => {
    const paid = await sdk.payKeysend({ amount: 1_000_000, pubkey: world.devnet.payeeNodePubkey });
    const paymentHash = bytesToHex(sha256(Buffer.from(paid.preimage, 'hex')));
    expect(world.devnet.payeeKeysend(paymentHash)?.amountMsat).toBe(1_000_000n);
    expect((await raw.request('lookup_invoice', { payment_hash: paymentHash })).result.preimage).toBe(paid.preimage);
  });

  it('pays a BIP-321 URI and a lightning address (NWC-321 pay)', async () => {
    const payee = world.devnet.createPayeeInvoice(3_000_000n);
    const uri = await raw.request('pay', { payment: `bitcoin:?lightning=${payee.invoice}` });
    expect(uri.error).toBeNull();
    expect(uri.result).toMatchObject({ state: 'settled', instruction_type: 'bolt11', amount: 3_000_000, payment_hash: payee.paymentHash });
    expect(world.devnet.payeeInvoiceStatus(payee.paymentHash)?.state).toBe('settled');

    const address = await raw.request('pay', { payment: world.devnet.lightningAddress, amount: 4_000_000 });
    expect(address.error).toBeNull();
    expect(address.result).toMatchObject({ state: 'settled', amount: 4_000_000 });
    expect(world.devnet.payeeInvoiceStatus(address.result.payment_hash)?.state).toBe('settled');

    const unsupported = await raw.request('pay', { payment: 'bitcoin:bcrt1qxyz?amount=0.001' });
    expect(unsupported.error?.code).toBe('UNSUPPORTED_PAYMENT_INSTRUCTION');
  });

  it('receives through a BIP-321 URI, with an amount and without (NWC-321 receive)', async () => {
    const fixed = await raw.request('receive', { amount: 5_000_000, description: 'fixed' });
    expect(fixed.result.bip321).toMatch(/^bitcoin:\?lightning=lnbcrt50u1/);
    const open = await raw.request('receive', {});
    const invoice = String(open.result.bip321).replace('bitcoin:?lightning=', '');
    const before = await balance();
    await world.devnet.payInvoice(invoice, 6_543_000n);
    await waitFor(async () => (await balance()) === before + 6_543_000, 'amountless invoice credited with what was paid');
  });

  it('refuses a route dearer than the app’s max_fee with FEE_LIMIT_EXCEEDED', async () => {
    const payee = world.devnet.createPayeeInvoice(10_000_000n);
    const before = await balance();
    const answer = await raw.request('pay_invoice', { invoice: payee.invoice, max_fee: 1 });
    expect(answer.error?.code).toBe('FEE_LIMIT_EXCEEDED');
    expect(await balance()).toBe(before);
  });

  it('makes a hold invoice, notifies when it is paid, and settles it with the preimage', async () => {
    const preimage = bytesToHex(randomBytes(32));
    const paymentHash = bytesToHex(sha256(Buffer.from(preimage, 'hex')));
    const hold = await sdk.makeHoldInvoice({ amount: 7_000_000, payment_hash: paymentHash, description: 'held' });
    const before = await balance();
    const paying = world.devnet.payInvoice(hold.invoice);
    await waitFor(() => notifications.some((n) => n.notification_type === 'hold_invoice_accepted' && n.notification.payment_hash === paymentHash), 'hold_invoice_accepted');
    expect((await sdk.lookupInvoice({ payment_hash: paymentHash })).state).toBe('accepted');
    expect(await balance()).toBe(before);
    await sdk.settleHoldInvoice({ preimage });
    expect((await paying).state).toBe('settled');
    await waitFor(async () => (await balance()) === before + 7_000_000, 'credited');
    expect((await sdk.lookupInvoice({ payment_hash: paymentHash })).state).toBe('settled');
  });

  it('cancels a hold invoice: the payer gets its money back, nothing is credited', async () => {
    const paymentHash = bytesToHex(sha256(randomBytes(32)));
    const hold = await sdk.makeHoldInvoice({ amount: 8_000_000, payment_hash: paymentHash });
    const before = await balance();
    const paying = world.devnet.payInvoice(hold.invoice);
    await waitFor(async () => (await sdk.lookupInvoice({ payment_hash: paymentHash })).state === 'accepted', 'accepted');
    await sdk.cancelHoldInvoice({ payment_hash: paymentHash });
    expect((await paying).state).toBe('failed');
    expect((await sdk.lookupInvoice({ payment_hash: paymentHash })).state).toBe('failed');
    expect(await balance()).toBe(before);
  });

  it('carries state, invoice, payment_hash, amount, fees_paid, created_at, expires_at (and settled_at once paid) on every transaction', async () => {
    const { transactions } = await sdk.listTransactions({ unpaid: true });
    expect(transactions.length).toBeGreaterThan(8);
    for (const t of transactions) {
      for (const field of ['state', 'invoice', 'payment_hash', 'amount', 'fees_paid', 'created_at', 'expires_at'] as const) expect(t[field], field).not.toBeUndefined();
      if (t.state === 'settled') expect(t.settled_at).toBeGreaterThan(0);
    }
  });
});
