/**
 * Lightning address resolution (LUD-16 / LUD-06 / LUD-12) as vaults run it, against a scripted
 * fetch: every answer a hostile or broken server could give is refused before anything is paid.
 */
import { describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey } from 'nostr-tools/pure';
import { checkLnurlInvoice, lnurlCallbackUrl, resolveLightningAddress } from '../../src/protocol/lnurl.ts';
import { decodeInvoice } from '../../src/protocol/invoice.ts';
import { parseLightningAddress, type LightningAddress } from '../../src/protocol/payment-target.ts';
import { makeInvoice } from '../vectors/generate.ts';

const METADATA = JSON.stringify([['text/plain', 'pay alice']]);
const metadataHash = bytesToHex(sha256(new TextEncoder().encode(METADATA)));
const payee = generateSecretKey();
const now = Math.floor(Date.now() / 1000);

function invoice(o: { amountMsat?: bigint | null; descriptionHash?: string; network?: 'regtest' | 'mainnet'; timestamp?: number } = {}): string {
  return makeInvoice({
    network: o.network ?? 'regtest',
    nodeSecret: payee,
    ...(o.amountMsat === null ? {} : { amountMsat: o.amountMsat ?? 21_000n }),
    paymentHash: bytesToHex(generateSecretKey()),
    paymentSecret: bytesToHex(generateSecretKey()),
    timestamp: o.timestamp ?? now,
    descriptionHash: o.descriptionHash ?? metadataHash,
  });
}

function address(text = 'alice@wallet.example.com'): LightningAddress {
  const parsed = parseLightningAddress(text);
  if (!parsed.ok) throw new Error(parsed.error.message);
  return parsed.value;
}

const payRequest = {
  tag: 'payRequest',
  callback: 'https://wallet.example.com/lnurlp/alice/callback?token=1',
  minSendable: 1_000,
  maxSendable: 1_000_000,
  metadata: METADATA,
  commentAllowed: 10,
};

/** A fetch that answers each URL prefix with a JSON body (or throws), and records what was asked. */
function scriptedFetch(answers: { prefix: string; status?: number; body: unknown }[]) {
  const asked: string[] = [];
  const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input);
    asked.push(url);
    expect(init?.redirect).toBe('error');
    const answer = answers.find((a) => url.startsWith(a.prefix));
    if (!answer) throw new TypeError('fetch failed');
    return new Response(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body), { status: answer.status ?? 200 });
  }) as typeof globalThis.fetch;
  return { fetch, asked };
}

const resolve = (fetch: typeof globalThis.fetch, amountMsat = 21_000n, comment: string | null = null, who = address()) =>
  resolveLightningAddress(who, amountMsat, { network: 'regtest', nowSec: now, comment, fetch });

describe('resolveLightningAddress', () => {
  it('fetches the payRequest, calls back with the amount and a comment, and returns the checked invoice', async () => {
    const pr = invoice();
    const { fetch, asked } = scriptedFetch([
      { prefix: 'https://wallet.example.com/.well-known/lnurlp/alice', body: payRequest },
      { prefix: 'https://wallet.example.com/lnurlp/alice/callback', body: { pr, routes: [] } },
    ]);
    const result = await resolve(fetch, 21_000n, 'thanks!');
    if (!result.ok) throw new Error(result.error.message);
    expect(result.value.invoice.paymentRequest).toBe(pr);
    expect(asked).toEqual([
      'https://wallet.example.com/.well-known/lnurlp/alice',
      'https://wallet.example.com/lnurlp/alice/callback?token=1&amount=21000&comment=thanks%21',
    ]);
  });

  it.each<[string, { first?: unknown; second?: unknown; firstStatus?: number; amount?: bigint; comment?: string }, RegExp]>([
    ['a server that is not a payRequest', { first: { ...payRequest, tag: 'withdrawRequest' } }, /did not answer a payRequest/],
    ['an LNURL error', { first: { status: 'ERROR', reason: 'no such user' } }, /refused: no such user/],
    ['an HTTP error page', { first: 'not found', firstStatus: 404 }, /did not answer JSON \(HTTP 404\)/],
    ['an amount below minSendable', { amount: 999n }, /takes 1000 to 1000000 msat/],
    ['an amount above maxSendable', { amount: 1_000_001n }, /takes 1000 to 1000000 msat/],
    ['a payer note longer than commentAllowed', { comment: 'x'.repeat(11) }, /payer note of at most 10/],
    ['a callback over plain http to a public host', { first: { ...payRequest, callback: 'http://wallet.example.com/cb' } }, /must be https/],
    ['a callback with credentials', { first: { ...payRequest, callback: 'https://u:p@wallet.example.com/cb' } }, /credentials/],
    ['an invoice for another amount', { second: { pr: invoice({ amountMsat: 21_001n }) } }, /another amount/],
    ['an amountless invoice', { second: { pr: invoice({ amountMsat: null }) } }, /another amount/],
    ['an invoice not committing to the metadata', { second: { pr: invoice({ descriptionHash: bytesToHex(generateSecretKey()) }) } }, /description hash/],
    ['an invoice of another network', { second: { pr: invoice({ network: 'mainnet' }) } }, /unpayable invoice: invoice is for mainnet/],
    ['an expired invoice', { second: { pr: invoice({ timestamp: now - 7200 }) } }, /unpayable invoice: invoice has expired/],
    ['a callback answer without pr', { second: { routes: [] } }, /did not answer an invoice/],
  ])('refuses %s', async (_, o, reason) => {
    const { fetch } = scriptedFetch([
      { prefix: 'https://wallet.example.com/.well-known/', status: o.firstStatus ?? 200, body: o.first ?? payRequest },
      { prefix: 'https://wallet.example.com/lnurlp/alice/callback', body: o.second ?? { pr: invoice() } },
    ]);
    const result = await resolve(fetch, o.amount ?? 21_000n, o.comment ?? null);
    expect(result.ok ? 'resolved' : result.error).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(reason) });
  });

  it('refuses an unreachable server without throwing', async () => {
    const { fetch } = scriptedFetch([]);
    const result = await resolve(fetch);
    expect(result.ok ? 'resolved' : result.error).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/unreachable/) });
  });
});

describe('LUD-06 checks', () => {
  it('the callback URL keeps its query, adds amount and a comment, and needs https off loopback', () => {
    expect(lnurlCallbackUrl('https://a.example/cb?x=1', 5n, null)).toEqual({ ok: true, value: 'https://a.example/cb?x=1&amount=5' });
    expect(lnurlCallbackUrl('http://127.0.0.1:9/cb', 5n, 'hi')).toEqual({ ok: true, value: 'http://127.0.0.1:9/cb?amount=5&comment=hi' });
    expect(lnurlCallbackUrl('https://127.0.0.1:9/cb', 5n, null).ok).toBe(false);
    expect(lnurlCallbackUrl('ftp://a.example/cb', 5n, null).ok).toBe(false);
    expect(lnurlCallbackUrl('not a url', 5n, null).ok).toBe(false);
  });

  it('the invoice must be for the amount and commit to the metadata', () => {
    const decoded = decodeInvoice(invoice());
    if (!decoded.ok) throw new Error(decoded.error.message);
    expect(checkLnurlInvoice(decoded.value, { amountMsat: 21_000n, metadata: METADATA }).ok).toBe(true);
    expect(checkLnurlInvoice(decoded.value, { amountMsat: 21_000n, metadata: METADATA + ' ' }).ok).toBe(false);
    expect(checkLnurlInvoice(decoded.value, { amountMsat: 20_999n, metadata: METADATA }).ok).toBe(false);
  });
});
