import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import bolt11 from 'bolt11';
import { finalizeEvent } from 'nostr-tools/pure';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, randomBytes } from '@noble/hashes/utils.js';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw, fund, vaultPaymentActivity } from '../helpers/wallet.ts';
import { startWorld, type World } from '../helpers/world.ts';

const MAINNET = { bech32: 'bc', pubKeyHash: 0x00, scriptHash: 0x05, validWitnessVersions: [0, 1] };
const REGTEST = { bech32: 'bcrt', pubKeyHash: 111, scriptHash: 196, validWitnessVersions: [0, 1] };

function foreignInvoice(network: typeof MAINNET, timestamp: number, expireSeconds: number): string {
  const encoded = bolt11.encode({
    network,
    millisatoshis: '1000000',
    timestamp,
    tags: [
      { tagName: 'payment_hash', data: bytesToHex(randomBytes(32)) },
      { tagName: 'payment_secret', data: bytesToHex(randomBytes(32)) },
      { tagName: 'description', data: 'test' },
      { tagName: 'expire_time', data: expireSeconds },
    ],
  });
  return bolt11.sign(encoded, Buffer.from(secp256k1.utils.randomSecretKey())).paymentRequest ?? '';
}

describe('bad input gets a clear NIP-47 error, never silence or a crash', () => {
  let world: World;
  let client: RawNwcClient;
  let limited: RawNwcClient;
  let userKey: string;

  beforeAll(async () => {
    world = await startWorld('pglite');
    const user = await connectRaw(world, 'nip44_v2');
    client = user.client;
    userKey = user.userKey ?? '';
    // The same user's second connection: shares the balance, has its own limits.
    limited = (
      await connectRaw(world, 'nip44_v2', ['--user-key', user.userKey ?? '', '--methods', 'get_info,pay_invoice', '--max-amount-sat', '1000', '--budget-sat', '1500', '--renewal', 'daily'])
    ).client;
    await fund(world, client, 50_000_000);
  });

  afterAll(async () => {
    client?.close();
    limited?.close();
    await world?.stop();
  });

  const cases: Array<[string, (c: RawNwcClient) => ReturnType<RawNwcClient['send']>, string, RegExp]> = [
    ['content that does not decrypt', (c) => c.send(c.signRequest('not-a-ciphertext')), 'BAD_REQUEST', /decrypt/],
    ['content that is not JSON', (c) => c.send(c.signRequest(c.encrypt('{not json'))), 'BAD_REQUEST', /JSON/],
    ['JSON without a method', (c) => c.send(c.signRequest(c.encrypt('{"params":{}}'))), 'BAD_REQUEST', /method/],
    ['an unknown method', (c) => c.request('frobnicate'), 'NOT_IMPLEMENTED', /frobnicate/],
    ['an amount that is not a number', (c) => c.request('make_invoice', { amount: 'lots' }), 'BAD_REQUEST', /amount/],
    ['a fractional amount', (c) => c.request('make_invoice', { amount: 1.5 }), 'BAD_REQUEST', /amount/],
    ['a negative amount', (c) => c.request('make_invoice', { amount: -5 }), 'BAD_REQUEST', /amount/],
    ['an unparseable invoice', (c) => c.request('pay_invoice', { invoice: 'lnbcrt1qqqqgarbage' }), 'BAD_REQUEST', /invoice/],
    ['an invoice for mainnet', (c) => c.request('pay_invoice', { invoice: foreignInvoice(MAINNET, Math.floor(Date.now() / 1000), 3600) }), 'BAD_REQUEST', /mainnet/],
    ['an expired invoice', (c) => c.request('pay_invoice', { invoice: foreignInvoice(REGTEST, Math.floor(Date.now() / 1000) - 7200, 60) }), 'BAD_REQUEST', /expired/],
    ['a lookup of nothing', (c) => c.request('lookup_invoice', { payment_hash: bytesToHex(randomBytes(32)) }), 'NOT_FOUND', /payment hash/],
    ['a lookup without hash or invoice', (c) => c.request('lookup_invoice', {}), 'BAD_REQUEST', /payment_hash or invoice/],
  ];

  it.each(cases)('answers %s', async (_name, send, code, message) => {
    const response = await send(client);
    expect(response.result).toBeNull();
    expect(response.error?.code).toBe(code);
    expect(response.error?.message).toMatch(message);
  });

  it('answers a method the grant does not allow with RESTRICTED', async () => {
    const response = await limited.request('get_balance');
    expect(response.error?.code).toBe('RESTRICTED');
    expect(response.result_type).toBe('get_balance');
  });

  it('refuses a payment above the balance with INSUFFICIENT_BALANCE, without calling any vault', async () => {
    const before = await vaultPaymentActivity(world);
    const invoice = (await world.devnet.createPayeeInvoice(60_000_000n)).invoice;
    const response = await client.request('pay_invoice', { invoice });
    expect(response.error?.code).toBe('INSUFFICIENT_BALANCE');
    // Covers amount but not amount + fee reserve: still refused before any vault sees it.
    const edge = (await world.devnet.createPayeeInvoice(49_999_000n)).invoice;
    expect((await client.request('pay_invoice', { invoice: edge })).error?.code).toBe('INSUFFICIENT_BALANCE');
    expect(await vaultPaymentActivity(world)).toBe(before);
    expect((await client.request('get_balance')).result.balance).toBe(50_000_000);
  });

  it('pays an amountless invoice only with an amount', async () => {
    const invoice = (await world.devnet.createPayeeInvoice(null)).invoice;
    const without = await client.request('pay_invoice', { invoice });
    expect(without.error?.code).toBe('BAD_REQUEST');
    expect(without.error?.message).toMatch(/amount/);
    const withAmount = await client.request('pay_invoice', { invoice, amount: 2_000_000 });
    expect(withAmount.error).toBeNull();
    expect(withAmount.result.preimage).toMatch(/^[0-9a-f]{64}$/);
  });

  it("enforces the grant's per-payment maximum and budget with QUOTA_EXCEEDED", async () => {
    const over = (await world.devnet.createPayeeInvoice(2_000_000n)).invoice;
    const tooBig = await limited.request('pay_invoice', { invoice: over });
    expect(tooBig.error?.code).toBe('QUOTA_EXCEEDED');
    expect(tooBig.error?.message).toMatch(/maximum/);
    // 1000 sat + a 10 sat fee reserve fits a 1500 sat budget once, not twice.
    const first = await limited.request('pay_invoice', { invoice: (await world.devnet.createPayeeInvoice(1_000_000n)).invoice });
    expect(first.error).toBeNull();
    const second = await limited.request('pay_invoice', { invoice: (await world.devnet.createPayeeInvoice(1_000_000n)).invoice });
    expect(second.error?.code).toBe('QUOTA_EXCEEDED');
    expect(second.error?.message).toMatch(/budget/);
  });

  it('enforces a payment velocity with QUOTA_EXCEEDED', async () => {
    const throttled = (await connectRaw(world, 'nip44_v2', ['--user-key', userKey, '--max-payments-per-hour', '1'])).client;
    try {
      const first = await throttled.request('pay_invoice', { invoice: (await world.devnet.createPayeeInvoice(1_000_000n)).invoice });
      expect(first.error).toBeNull();
      const second = await throttled.request('pay_invoice', { invoice: (await world.devnet.createPayeeInvoice(1_000_000n)).invoice });
      expect(second.error?.code).toBe('QUOTA_EXCEEDED');
      expect(second.error?.message).toMatch(/velocity/);
    } finally {
      throttled.close();
    }
  });

  it('answers an unknown connection key with UNAUTHORIZED', async () => {
    const stranger = RawNwcClient.withNewKey(client.walletPubkey, client.relayUrl);
    try {
      const response = await stranger.request('get_balance');
      expect(response.error?.code).toBe('UNAUTHORIZED');
      expect(response.result_type).toBe('get_balance');
    } finally {
      stranger.close();
    }
  });

  it('answers an unsupported encryption with UNSUPPORTED_ENCRYPTION', async () => {
    const content = client.encrypt(JSON.stringify({ method: 'get_info', params: {} }));
    const event = finalizeEvent(
      { kind: 23194, created_at: Math.floor(Date.now() / 1000), tags: [['p', client.walletPubkey], ['encryption', 'nip99']], content },
      client.secret,
    );
    const response = await client.send(event);
    expect(response.error?.code).toBe('UNSUPPORTED_ENCRYPTION');
  });

  it('ignores a request past its expiration tag', async () => {
    const event = client.signRequest(client.encrypt(JSON.stringify({ method: 'get_info', params: {} })), [['expiration', String(Math.floor(Date.now() / 1000) - 1)]]);
    expect(await client.silentFor(event, 1500)).toBe(true);
  });
});
