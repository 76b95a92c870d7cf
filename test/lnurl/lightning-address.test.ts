/**
 * Lightning addresses over real HTTP against the devnet: the owner sets a name (NIP-98 or the
 * CLI), a payer's wallet fetches the pay request and an invoice made by one of the owner's
 * vaults, pays it from the devnet's outside payer, and the owner sees it over NWC; zaps get a
 * receipt on the relay their request named.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { nip19 } from 'nostr-tools';
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent, type Event } from 'nostr-tools/pure';
import { Relay } from 'nostr-tools/relay';
import { bytesToHex, hexToBytes } from '../../src/protocol/hex.ts';
import { LnurlService } from '../../src/lnurl/pay.ts';
import { decodeInvoice } from '../../src/protocol/invoice.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import type { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw } from '../helpers/wallet.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

const utf8 = new TextEncoder();
const sha256hex = (text: string) => bytesToHex(sha256(utf8.encode(text)));

interface Owner {
  client: RawNwcClient;
  key: Uint8Array;
  pubkey: string;
}

describe('lightning addresses and LNURL-pay', () => {
  let world: World;
  let alice: Owner;
  let carol: Owner;
  let host: string;

  const newOwner = async (): Promise<Owner> => {
    const { client, userKey } = await connectRaw(world, 'nip44_v2');
    const decoded = nip19.decode(userKey ?? '');
    if (decoded.type !== 'nsec') throw new Error('no user key');
    return { client, key: decoded.data, pubkey: getPublicKey(decoded.data) };
  };

  /** A call to /api/address signed (NIP-98) with `key`, or unsigned without one. */
  const addressCall = async (method: 'GET' | 'PUT' | 'DELETE', key: Uint8Array | null, body?: unknown) => {
    const url = `${world.bridge.url}/api/address`;
    const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const response = await fetch(url, {
      method,
      headers: { ...(text !== undefined ? { 'content-type': 'application/json' } : {}), ...(key ? { authorization: httpAuthHeader(key, url, method, text) } : {}) },
      ...(text !== undefined ? { body: text } : {}),
    });
    return { status: response.status, json: (await response.json()) as any, cors: response.headers.get('access-control-allow-origin') };
  };

  const get = async (path: string) => {
    const response = await fetch(`${world.bridge.url}${path}`);
    return { status: response.status, json: (await response.json()) as any, cors: response.headers.get('access-control-allow-origin') };
  };

  const callback = (name: string, params: Record<string, string>) => get(`/lnurlp/${name}/callback?${new URLSearchParams(params).toString()}`);

  beforeAll(async () => {
    world = await startWorld('pglite');
    host = new URL(world.bridge.url).host;
    alice = await newOwner();
    carol = await newOwner();
  });

  afterAll(async () => {
    alice?.client.close();
    carol?.client.close();
    await world?.stop();
  });

  describe('choosing a name', () => {
    it('sets, reads and changes the address with NIP-98 signed calls', async () => {
      const set = await addressCall('PUT', alice.key, { name: 'alice-old' });
      expect(set.status).toBe(200);
      expect(set.json).toEqual({ name: 'alice-old', address: `alice-old@${host}`, lnurlp: `${world.bridge.url}/.well-known/lnurlp/alice-old` });
      expect((await get('/.well-known/lnurlp/alice-old')).status).toBe(200);

      expect((await addressCall('PUT', alice.key, { name: 'alice' })).json.address).toBe(`alice@${host}`);
      expect((await addressCall('GET', alice.key)).json.name).toBe('alice');
      // One name per user: the old one is free again.
      expect((await get('/.well-known/lnurlp/alice-old')).json).toEqual({ status: 'ERROR', reason: expect.stringMatching(/no lightning address/) });
      // Setting the same name again changes nothing.
      expect((await addressCall('PUT', alice.key, { name: 'alice' })).status).toBe(200);
      // No CORS on the owner's API.
      expect(set.cors).toBeNull();
    });

    it.each([
      ['Alice', /lowercase/],
      ['al ice', /a-z 0-9/],
      ['-alice', /begin and end/],
      ['alice.', /begin and end/],
      ['a..b', /two dots/],
      ['al@ice', /a-z 0-9/],
      ['é', /a-z 0-9/],
      ['x'.repeat(65), /longer than 64/],
      ['', /empty/],
      ['admin', /reserved/],
      ['postmaster', /reserved/],
    ])('refuses the name %j', async (name, reason) => {
      const refused = await addressCall('PUT', carol.key, { name });
      expect(refused.status).toBe(400);
      expect(refused.json.error).toEqual({ code: 'BAD_REQUEST', message: expect.stringMatching(reason) });
    });

    it('refuses a name another user holds, unsigned calls, bad bodies and keys without deposits', async () => {
      expect(await addressCall('PUT', carol.key, { name: 'alice' })).toMatchObject({ status: 409, json: { error: { code: 'CONFLICT' } } });
      expect(await addressCall('PUT', null, { name: 'carol' })).toMatchObject({ status: 401, json: { error: { code: 'UNAUTHORIZED' } } });
      expect(await addressCall('PUT', carol.key, '{"name": 5}')).toMatchObject({ status: 400, json: { error: { code: 'BAD_REQUEST' } } });
      expect(await addressCall('PUT', carol.key, 'not json')).toMatchObject({ status: 400, json: { error: { code: 'BAD_REQUEST' } } });
      expect(await addressCall('PUT', carol.key, { name: 'carol', extra: 1 })).toMatchObject({ status: 400 });
      expect(await addressCall('PUT', generateSecretKey(), { name: 'stranger' })).toMatchObject({ status: 404, json: { error: { code: 'NOT_FOUND' } } });
      expect(await addressCall('GET', carol.key)).toMatchObject({ status: 404 });
      // A NIP-98 token signed for another body does not set anything.
      const url = `${world.bridge.url}/api/address`;
      const forged = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: httpAuthHeader(carol.key, url, 'PUT', '{"name":"carol"}') }, body: '{"name":"mallory"}' });
      expect(forged.status).toBe(401);
    });

    it('is set, shown and removed with the CLI, which signs with the user key', async () => {
      const nsec = nip19.nsecEncode(carol.key);
      expect((await runCli(['address', 'carol', '--user-key', nsec, '--url', world.bridge.url])).lastLine).toBe(`carol@${host}`);
      expect((await runCli(['address', '--user-key', nsec, '--url', world.bridge.url])).lastLine).toBe(`carol@${host}`);
      expect((await addressCall('GET', carol.key)).json.name).toBe('carol');
      expect((await runCli(['address', '--remove', '--user-key', nsec, '--url', world.bridge.url])).lastLine).toBe('removed');
      expect((await get('/.well-known/lnurlp/carol')).status).toBe(404);
      const refused = await runCli(['address', 'alice', '--user-key', nsec, '--url', world.bridge.url]).catch((e: { stderr: string }) => e);
      expect(refused).toMatchObject({ stderr: expect.stringMatching(/409: CONFLICT: the name "alice" is taken/) });
      expect((await runCli(['address', 'carol', '--user-key', nsec, '--url', world.bridge.url])).lastLine).toBe(`carol@${host}`);
    });
  });

  describe('paying an address', () => {
    it('answers the LUD-06/16 pay request, with CORS', async () => {
      const answer = await get('/.well-known/lnurlp/alice');
      expect(answer.status).toBe(200);
      expect(answer.cors).toBe('*');
      const limits = world.bridge.wallet.operators.all()[0]!.info.limits;
      expect(answer.json).toEqual({
        tag: 'payRequest',
        callback: `${world.bridge.url}/lnurlp/alice/callback`,
        minSendable: Number(limits.min_invoice_msat),
        // The devnet's deposits have more room than one invoice may carry.
        maxSendable: Number(limits.max_invoice_msat),
        metadata: JSON.stringify([
          ['text/plain', `Payment to alice@${host}`],
          ['text/identifier', `alice@${host}`],
        ]),
        commentAllowed: 255,
        allowsNostr: true,
        nostrPubkey: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
      expect((await get('/api/info')).cors).toBeNull();
      // Names are looked up as LUD-16 writes them, lowercase.
      expect((await get('/.well-known/lnurlp/ALICE')).status).toBe(200);
      expect(await get('/.well-known/lnurlp/nobody')).toMatchObject({ status: 404, cors: '*', json: { status: 'ERROR' } });
      const preflight = await fetch(`${world.bridge.url}/lnurlp/alice/callback`, { method: 'OPTIONS' });
      expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    });

    it('returns a vault invoice committing to the metadata, keeps the comment, verifies before and after payment, and the owner sees it over NWC', async () => {
      const payRequest = (await get('/.well-known/lnurlp/alice')).json;
      const watcher = await watchNotifications(world.devnet.relayUrl, alice.client);
      try {
        const answer = await callback('alice', { amount: '21000', comment: 'for the coffee ☕' });
        expect(answer.status).toBe(200);
        expect(answer.cors).toBe('*');
        expect(answer.json).toMatchObject({ status: 'OK', routes: [], pr: expect.any(String), verify: expect.any(String) });
        const invoice = decodeInvoice(answer.json.pr);
        if (!invoice.ok) throw new Error(invoice.error.message);
        expect(invoice.value.amountMsat).toBe(21_000n);
        expect(invoice.value.descriptionHash).toBe(sha256hex(payRequest.metadata));
        expect(invoice.value.network).toBe('regtest');
        // Made by one of alice's vault operators, for one of her deposits.
        const operators = world.bridge.wallet.operators.all().map((op) => op.nodePubkey);
        expect(operators).toContain(invoice.value.payeeNodeKey);
        expect(answer.json.verify).toBe(`${world.bridge.url}/lnurlp/alice/verify/${invoice.value.paymentHash}`);

        const before = await fetch(answer.json.verify);
        expect(before.headers.get('access-control-allow-origin')).toBe('*');
        expect(await before.json()).toEqual({ status: 'OK', settled: false, preimage: null, pr: answer.json.pr });

        const balance = (await alice.client.request('get_balance')).result.balance as number;
        const paid = await world.devnet.payInvoice(answer.json.pr);
        expect(paid.state).toBe('settled');

        const after = (await (await fetch(answer.json.verify)).json()) as any;
        expect(after).toMatchObject({ status: 'OK', settled: true, pr: answer.json.pr });
        expect(bytesToHex(sha256(hexToBytes(after.preimage)))).toBe(invoice.value.paymentHash);

        await waitFor(async () => (await alice.client.request('get_balance')).result.balance === balance + 21_000, 'credit');
        const listed = (await alice.client.request('list_transactions', { type: 'incoming' })).result.transactions as any[];
        const tx = listed.find((t) => t.payment_hash === invoice.value.paymentHash);
        expect(tx).toMatchObject({ state: 'settled', amount: 21_000, metadata: { comment: 'for the coffee ☕', lightning_address: `alice@${host}` } });
        await waitFor(() => watcher.seen.some((n) => n.type === 'payment_received' && n.paymentHash === invoice.value.paymentHash), 'payment_received notification');
      } finally {
        watcher.close();
      }
    });

    it.each<[string, Record<string, string>, RegExp]>([
      ['an amount below minSendable', { amount: '999' }, /between 1000 and/],
      ['an amount above maxSendable', { amount: '100000000001' }, /between 1000 and 100000000000/],
      ['an amount that is not a number', { amount: '12abc' }, /positive whole number/],
      ['a negative amount', { amount: '-5000' }, /positive whole number/],
      ['no amount', {}, /amount \(msat\) is required/],
      ['a comment over commentAllowed', { amount: '5000', comment: 'x'.repeat(256) }, /longer than 255/],
    ])('refuses %s, making no invoice', async (_what, params, reason) => {
      const before = await lnurlInvoiceCount();
      const refused = await callback('alice', params);
      expect(refused).toMatchObject({ status: 400, cors: '*', json: { status: 'ERROR', reason: expect.stringMatching(reason) } });
      expect(await lnurlInvoiceCount()).toBe(before);
    });

    it('refuses a repeated amount and an unknown address', async () => {
      expect(await get('/lnurlp/alice/callback?amount=5000&amount=6000')).toMatchObject({ status: 400, json: { status: 'ERROR' } });
      expect(await callback('nobody', { amount: '5000' })).toMatchObject({ status: 404, json: { status: 'ERROR' } });
      expect(await get('/lnurlp/alice/callback?amount=%zz')).toMatchObject({ status: 400, cors: '*' });
    });

    it('verifies only invoices made for the address', async () => {
      expect(await get(`/lnurlp/alice/verify/${'0'.repeat(64)}`)).toMatchObject({ status: 404, json: { status: 'ERROR', reason: 'Not found' } });
      expect(await get('/lnurlp/alice/verify/not-a-hash')).toMatchObject({ status: 404, json: { status: 'ERROR' } });
      const made = await alice.client.request('make_invoice', { amount: 5_000 });
      expect(await get(`/lnurlp/alice/verify/${made.result.payment_hash}`)).toMatchObject({ status: 404 });
      const forAlice = await callback('alice', { amount: '5000' });
      const hash = forAlice.json.verify.split('/').pop();
      expect(await get(`/lnurlp/carol/verify/${hash}`)).toMatchObject({ status: 404 });
    });
  });

  describe('zaps (NIP-57)', () => {
    const sender = generateSecretKey();
    const zapRequest = (amountMsat: number, overrides: { kind?: number; tags?: string[][]; content?: string } = {}, key = sender): Event =>
      finalizeEvent(
        {
          kind: overrides.kind ?? 9734,
          created_at: Math.floor(Date.now() / 1000),
          content: overrides.content ?? 'Zap!',
          tags: overrides.tags ?? [
            ['relays', world.devnet.relayUrl],
            ['amount', String(amountMsat)],
            ['p', alice.pubkey],
            ['e', 'ab'.repeat(32)],
            ['k', '1'],
          ],
        },
        key,
      );

    it('makes an invoice committing to the zap request, and publishes a signed receipt to its relays once paid', async () => {
      const nostrPubkey = (await get('/.well-known/lnurlp/alice')).json.nostrPubkey as string;
      const request = zapRequest(42_000);
      const raw = JSON.stringify(request);
      const relay = await Relay.connect(world.devnet.relayUrl);
      const receipts: Event[] = [];
      relay.subscribe([{ kinds: [9735], '#p': [alice.pubkey] }], { onevent: (e) => receipts.push(e) });
      try {
        const answer = await callback('alice', { amount: '42000', nostr: raw });
        expect(answer.status).toBe(200);
        const invoice = decodeInvoice(answer.json.pr);
        if (!invoice.ok) throw new Error(invoice.error.message);
        expect(invoice.value.descriptionHash).toBe(sha256hex(raw));
        expect(invoice.value.amountMsat).toBe(42_000n);
        expect(receipts).toEqual([]);

        await world.devnet.payInvoice(answer.json.pr);
        await waitFor(() => receipts.length > 0, 'zap receipt on the relay');
        const receipt = receipts[0]!;
        expect(verifyEvent(receipt)).toBe(true);
        expect(receipt.pubkey).toBe(nostrPubkey);
        expect(receipt.kind).toBe(9735);
        expect(receipt.content).toBe('');
        const tag = (name: string) => receipt.tags.find((t) => t[0] === name)?.[1];
        expect(tag('p')).toBe(alice.pubkey);
        expect(tag('P')).toBe(getPublicKey(sender));
        expect(tag('e')).toBe('ab'.repeat(32));
        expect(tag('k')).toBe('1');
        expect(tag('bolt11')).toBe(answer.json.pr);
        expect(tag('description')).toBe(raw);
        expect(sha256hex(tag('description') ?? '')).toBe(invoice.value.descriptionHash);
        expect(bytesToHex(sha256(hexToBytes(tag('preimage') ?? '')))).toBe(invoice.value.paymentHash);

        const listed = (await alice.client.request('list_transactions', { type: 'incoming' })).result.transactions as any[];
        expect(listed.find((t) => t.payment_hash === invoice.value.paymentHash)).toMatchObject({ state: 'settled', amount: 42_000, metadata: { nostr: { id: request.id, content: 'Zap!' } } });
        // Published once: the receipt is recorded as published, and not sent again.
        const row = await world.bridge.wallet.db.selectFrom('lnurl_invoices').selectAll().where('payment_hash', '=', invoice.value.paymentHash).executeTakeFirstOrThrow();
        expect(row.zap_published_at).not.toBeNull();
        expect(row.zap_receipt?.id).toBe(receipt.id);
      } finally {
        relay.close();
      }
    });

    const otherKey = generateSecretKey();
    const badRequests: [string, () => string, RegExp][] = [
      ['not JSON', () => 'zap!', /not JSON/],
      ['not an event', () => JSON.stringify({ kind: 9734 }), /not a Nostr event/],
      [
        'a bad signature',
        () => {
          const event = zapRequest(5000);
          return JSON.stringify({ ...event, content: 'changed' });
        },
        /signature is invalid/,
      ],
      ['another kind', () => JSON.stringify(zapRequest(5000, { kind: 1 })), /must be kind 9734/],
      ['no tags', () => JSON.stringify(zapRequest(5000, { tags: [] })), /no tags/],
      ['an amount tag other than the amount', () => JSON.stringify(zapRequest(6000)), /amount tag \(6000\) is not the amount asked \(5000 msat\)/],
      ['no relays tag', () => JSON.stringify(zapRequest(5000, { tags: [['p', alice.pubkey], ['amount', '5000']] })), /one relays tag/],
      ['an empty relays tag', () => JSON.stringify(zapRequest(5000, { tags: [['p', alice.pubkey], ['relays']] })), /names no relay/],
      ['a relay that is not a websocket URL', () => JSON.stringify(zapRequest(5000, { tags: [['p', alice.pubkey], ['relays', 'https://example.com']] })), /not a ws/],
      ['no p tag', () => JSON.stringify(zapRequest(5000, { tags: [['relays', 'wss://r.example']] })), /exactly one p tag, not 0/],
      ['two p tags', () => JSON.stringify(zapRequest(5000, { tags: [['relays', 'wss://r.example'], ['p', alice.pubkey], ['p', carol.pubkey]] })), /exactly one p tag, not 2/],
      ['a p tag of someone else', () => JSON.stringify(zapRequest(5000, { tags: [['relays', 'wss://r.example'], ['p', carol.pubkey]] })), /not the key of this lightning address's owner/],
      [
        'two e tags',
        () => JSON.stringify(zapRequest(5000, { tags: [['relays', 'wss://r.example'], ['p', alice.pubkey], ['e', 'ab'.repeat(32)], ['e', 'cd'.repeat(32)]] })),
        /at most one e tag/,
      ],
      ['an e tag that is not an id', () => JSON.stringify(zapRequest(5000, { tags: [['relays', 'wss://r.example'], ['p', alice.pubkey], ['e', 'xyz']] })), /not an event id/],
      ['an a tag that is not a coordinate', () => JSON.stringify(zapRequest(5000, { tags: [['relays', 'wss://r.example'], ['p', alice.pubkey], ['a', 'nope']] })), /not an event coordinate/],
      [
        'a P tag other than the sender',
        () => JSON.stringify(zapRequest(5000, { tags: [['relays', 'wss://r.example'], ['p', alice.pubkey], ['P', getPublicKey(otherKey)]] })),
        /P tag is not its sender's key/,
      ],
    ];

    it.each(badRequests)('refuses a zap request with %s, making no invoice', async (_what, make, reason) => {
      const before = await lnurlInvoiceCount();
      const refused = await callback('alice', { amount: '5000', nostr: make() });
      expect(refused).toMatchObject({ status: 400, cors: '*', json: { status: 'ERROR', reason: expect.stringMatching(reason) } });
      expect(await lnurlInvoiceCount()).toBe(before);
    });

    it('takes a zap request without an amount tag, with an a tag and the sender as P', async () => {
      const request = zapRequest(0, {
        tags: [
          ['relays', 'wss://r.example'],
          ['p', alice.pubkey],
          ['a', `30023:${alice.pubkey}:my-article`],
          ['P', getPublicKey(sender)],
        ],
      });
      expect((await callback('alice', { amount: '7000', nostr: JSON.stringify(request) })).status).toBe(200);
    });
  });

  describe('a long zap request', () => {
    it('is kept whole for its receipt, with only its id and sender in the transaction metadata', async () => {
      const sender = generateSecretKey();
      const request = finalizeEvent(
        { kind: 9734, created_at: Math.floor(Date.now() / 1000), content: 'z'.repeat(5_000), tags: [['relays', 'wss://r.example'], ['p', alice.pubkey]] },
        sender,
      );
      const raw = JSON.stringify(request);
      const answer = await callback('alice', { amount: '8000', nostr: raw });
      expect(answer.status).toBe(200);
      const hash = answer.json.verify.split('/').pop();
      const listed = (await alice.client.request('list_transactions', { unpaid: true, type: 'incoming' })).result.transactions as any[];
      expect(listed.find((t) => t.payment_hash === hash)?.metadata).toEqual({ lightning_address: `alice@${host}`, nostr_zap: { id: request.id, pubkey: getPublicKey(sender) } });
      const row = await world.bridge.wallet.db.selectFrom('lnurl_invoices').select('zap_request').where('payment_hash', '=', hash).executeTakeFirstOrThrow();
      expect(row.zap_request).toBe(raw);
    });
  });

  describe('limits from the vaults', () => {
    it('never hands out an invoice whose vault proof fails', async () => {
      try {
        for (const op of world.devnet.operators) op.faults.invalidProof = true;
        const before = await lnurlInvoiceCount();
        const refused = await callback('alice', { amount: '5000' });
        expect(refused).toMatchObject({ status: 503, json: { status: 'ERROR', reason: expect.stringMatching(/fails verification/) } });
        expect(await lnurlInvoiceCount()).toBe(before);
      } finally {
        for (const op of world.devnet.operators) op.faults.invalidProof = false;
      }
    });

    it('limits the invoices one address hands out (per address, per instance)', async () => {
      const service = new LnurlService({ wallet: world.bridge.wallet, publicUrl: () => world.bridge.url, zapSecret: generateSecretKey(), rateLimit: { perSecond: 0.001, burst: 2 } });
      expect(await service.callback('alice', { amount: '5000' })).toMatchObject({ ok: true });
      expect(await service.callback('alice', { amount: '5000' })).toMatchObject({ ok: true });
      expect(await service.callback('alice', { amount: '5000' })).toMatchObject({ ok: false, error: { code: 'QUOTA_EXCEEDED' } });
      // Another address has its own bucket.
      expect(await service.callback('carol', { amount: '5000' })).toMatchObject({ ok: true });
    });

    it("lowers maxSendable as the deposits' room is promised to open invoices", async () => {
      const maxInvoice = world.bridge.wallet.operators.all()[0]!.info.limits.max_invoice_msat;
      const maxDeposit = world.bridge.wallet.operators.all()[0]!.info.limits.max_deposit_msat;
      let max = BigInt((await get('/.well-known/lnurlp/carol')).json.maxSendable);
      expect(max).toBe(maxInvoice);
      // Open invoices count against each operator's deposit limit: one of half an invoice's worth,
      // then whole ones until no deposit has room for a whole one (one is left with half).
      expect((await callback('carol', { amount: (maxInvoice / 2n).toString() })).status).toBe(200);
      for (let i = 0; i < 40 && max === maxInvoice; i++) {
        expect((await callback('carol', { amount: max.toString() })).status).toBe(200);
        max = BigInt((await get('/.well-known/lnurlp/carol')).json.maxSendable);
      }
      expect(max).toBeLessThan(maxInvoice);
      // maxSendable is the room of the roomiest deposit: its limit less its balance and open invoices.
      const deposits = await world.bridge.wallet.db.selectFrom('deposits').select(['id', 'confirmed_msat']).where('user_pubkey', '=', carol.pubkey).execute();
      const rooms = await Promise.all(
        deposits.map(async (d) => {
          const open = await world.bridge.wallet.db
            .selectFrom('transactions')
            .select((eb) => eb.fn.sum<string>('amount_msat').as('open'))
            .where('deposit_id', '=', d.id)
            .where('state', '=', 'pending')
            .executeTakeFirstOrThrow();
          return maxDeposit - d.confirmed_msat - BigInt(open.open ?? 0);
        }),
      );
      expect(max).toBe(rooms.reduce((a, b) => (a > b ? a : b)));
      expect(await callback('carol', { amount: (max + 1n).toString() })).toMatchObject({ status: 400, json: { status: 'ERROR', reason: expect.stringMatching(/between/) } });
      expect((await callback('carol', { amount: max.toString() })).status).toBe(200);
    });
  });

  async function lnurlInvoiceCount(): Promise<number> {
    const row = await world.bridge.wallet.db.selectFrom('lnurl_invoices').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }
});

/** Notifications the relay carries to `client`, decrypted. */
async function watchNotifications(relayUrl: string, client: RawNwcClient) {
  const relay = await Relay.connect(relayUrl);
  const seen: { type: string; paymentHash: string }[] = [];
  relay.subscribe([{ kinds: [23197], '#p': [client.pubkey] }], {
    onevent: (event: Event) => {
      const body = JSON.parse(client.decrypt(event.content)) as { notification_type: string; notification: { payment_hash: string } };
      seen.push({ type: body.notification_type, paymentHash: body.notification.payment_hash });
    },
  });
  return { seen, close: () => relay.close() };
}
