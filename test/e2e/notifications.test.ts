import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NWCClient } from '@getalby/sdk';
import { Relay } from 'nostr-tools/relay';
import type { Event } from 'nostr-tools/pure';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

/** Every notification event the relay carries to `client`, decrypted, with its kind and id. */
async function watchNotifications(relayUrl: string, client: RawNwcClient) {
  const relay = await Relay.connect(relayUrl);
  const seen: { id: string; kind: number; type: string; paymentHash: string }[] = [];
  relay.subscribe([{ kinds: [23196, 23197], '#p': [client.pubkey] }], {
    onevent: (event: Event) => {
      const decrypt = event.kind === 23196 ? new RawNwcClient(uriOf(client), 'nip04') : new RawNwcClient(uriOf(client), 'nip44_v2');
      const body = JSON.parse(decrypt.decrypt(event.content)) as { notification_type: string; notification: { payment_hash: string } };
      seen.push({ id: event.id, kind: event.kind, type: body.notification_type, paymentHash: body.notification.payment_hash });
    },
  });
  return { seen, close: () => relay.close() };
}

function uriOf(client: RawNwcClient): string {
  return `nostr+walletconnect://${client.walletPubkey}?relay=${encodeURIComponent(client.relayUrl)}&secret=${Buffer.from(client.secret).toString('hex')}`;
}

describe('notifications', () => {
  let world: World;
  let uri: string;
  let sdk: NWCClient;

  beforeAll(async () => {
    world = await startWorld('pglite');
    uri = (await runCli(['connect', '--url', world.bridge.url, '--methods', 'get_info,get_balance,make_invoice,pay_invoice,lookup_invoice,list_transactions,notifications'])).lastLine;
    sdk = new NWCClient({ nostrWalletConnectUrl: uri });
  });

  afterAll(async () => {
    sdk?.close();
    await world?.stop();
  });

  it("advertises them in the connection's own info event and in get_info", async () => {
    const info = await sdk.getWalletServiceInfo();
    expect(info.capabilities).toContain('notifications');
    expect(info.notifications.sort()).toEqual(['hold_invoice_accepted', 'payment_received', 'payment_sent']);
    expect(info.encryptions).toEqual(['nip44_v2', 'nip04']);
    expect((await sdk.getInfo()).notifications?.sort()).toEqual(['hold_invoice_accepted', 'payment_received', 'payment_sent']);
  });

  it('tells the SDK client of a payment received and a payment sent, on both kinds, once each, also across a restart', async () => {
    const raw = new RawNwcClient(uri, 'nip44_v2');
    const watcher = await watchNotifications(world.devnet.relayUrl, raw);
    const received: { type: string; hash: string }[] = [];
    const unsubscribe = await sdk.subscribeNotifications((n) => received.push({ type: n.notification_type, hash: n.notification.payment_hash }));
    try {
      const invoice = await sdk.makeInvoice({ amount: 30_000_000 });
      await world.devnet.payInvoice(invoice.invoice);
      await waitFor(() => received.some((n) => n.type === 'payment_received' && n.hash === invoice.payment_hash), 'payment_received');
      const payee = world.devnet.createPayeeInvoice(5_000_000n);
      await sdk.payInvoice({ invoice: payee.invoice });
      await waitFor(() => received.some((n) => n.type === 'payment_sent' && n.hash === payee.paymentHash), 'payment_sent');

      await waitFor(() => watcher.seen.length === 4, 'both kinds of both notifications');
      world.bridge = await world.restartBridge();
      await new Promise((r) => setTimeout(r, 2_000));
      // Two kinds (23197 NIP-44, 23196 NIP-04) of two notifications, and nothing again after the restart.
      expect(new Set(watcher.seen.map((s) => s.id)).size).toBe(4);
      expect(watcher.seen.map((s) => `${s.kind} ${s.type}`).sort()).toEqual(['23196 payment_received', '23196 payment_sent', '23197 payment_received', '23197 payment_sent']);
      expect(received.filter((n) => n.hash === invoice.payment_hash)).toHaveLength(1);
    } finally {
      unsubscribe();
      watcher.close();
      raw.close();
    }
  });

  it('does not notify a connection not granted notifications', async () => {
    const quiet = new RawNwcClient((await runCli(['connect', '--url', world.bridge.url, '--methods', 'get_info,make_invoice'])).lastLine, 'nip44_v2');
    const watcher = await watchNotifications(world.devnet.relayUrl, quiet);
    try {
      const made = await quiet.request('make_invoice', { amount: 1_000_000 });
      await world.devnet.payInvoice(made.result.invoice);
      await waitFor(async () => (await quiet.request('get_info')).error === null, 'bridge answering');
      await new Promise((r) => setTimeout(r, 1_500));
      expect(watcher.seen).toEqual([]);
    } finally {
      watcher.close();
      quiet.close();
    }
  });
});

describe('other NWC behaviour', () => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld('pglite', { rateLimit: { perSecond: 1, burst: 5 } });
  });
  afterAll(async () => {
    await world?.stop();
  });

  it('limits the rate of one connection with RATE_LIMITED, and not of another', async () => {
    const busy = new RawNwcClient((await runCli(['connect', '--url', world.bridge.url])).lastLine, 'nip44_v2');
    const calm = new RawNwcClient((await runCli(['connect', '--url', world.bridge.url])).lastLine, 'nip44_v2');
    try {
      const answers = await Promise.all(Array.from({ length: 12 }, () => busy.request('get_info')));
      const limited = answers.filter((a) => a.error?.code === 'RATE_LIMITED');
      expect(limited.length).toBeGreaterThanOrEqual(5);
      expect(limited[0]?.result_type).toBe('get_info');
      expect((await calm.request('get_info')).error).toBeNull();
    } finally {
      busy.close();
      calm.close();
    }
  });

  it('prints the connection string BTCPay Server takes', async () => {
    const out = await runCli(['connect', '--url', world.bridge.url, '--format', 'btcpay']);
    expect(out.lastLine).toMatch(/^type=nwc;key=nostr\+walletconnect:\/\/[0-9a-f]{64}\?relay=.+&secret=[0-9a-f]{64}$/);
  });

  it('answers the multi-payment methods removed from NIP-47 with NOT_IMPLEMENTED', async () => {
    const client = new RawNwcClient((await runCli(['connect', '--url', world.bridge.url])).lastLine, 'nip44_v2');
    try {
      for (const method of ['multi_pay_invoice', 'multi_pay_keysend']) {
        const answer = await client.request(method, { invoices: [] });
        expect(answer.error?.code).toBe('NOT_IMPLEMENTED');
        expect(answer.result_type).toBe(method);
      }
    } finally {
      client.close();
    }
  });
});
