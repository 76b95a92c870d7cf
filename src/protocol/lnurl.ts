/**
 * Paying a lightning address (LUD-16 over LUD-06): the payRequest at
 * `https://<host>/.well-known/lnurlp/<name>`, its callback with `amount` (msats) and an optional
 * LUD-12 `comment`, and the checks on the invoice it returns (amount, description hash =
 * SHA-256 of the metadata string). A vault resolves a lightning address itself, so a bridge
 * cannot substitute an invoice of its own for the address the app signed.
 */
import { z } from 'zod';
import { sha256 } from '@noble/hashes/sha2.js';
import type { Msat } from './amounts.ts';
import { bytesToHex } from './hex.ts';
import { decodePayableInvoice, type BitcoinNetwork, type DecodedInvoice } from './invoice.ts';
import { isLoopbackHost, type LightningAddress } from './payment-target.ts';
import { fail, ok, type Result } from './result.ts';

/** LUD-06 payRequest (LUD-12 `commentAllowed` optional). Amounts are msats. */
export const lnurlPayRequestSchema = z.object({
  tag: z.literal('payRequest'),
  callback: z.string().min(1).max(2048),
  minSendable: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  maxSendable: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  /** A JSON array of [mime, content] pairs, as a string: the invoice commits to its SHA-256. */
  metadata: z.string().min(2).max(65_536),
  commentAllowed: z.number().int().nonnegative().optional(),
});
export type LnurlPayRequest = z.infer<typeof lnurlPayRequestSchema>;

/** LUD-06 callback answer. */
export const lnurlInvoiceResponseSchema = z.object({ pr: z.string().min(1).max(8192), routes: z.array(z.unknown()).optional() });

/** LUD-06 error answer. */
export const lnurlErrorSchema = z.object({ status: z.literal('ERROR'), reason: z.string() });

/**
 * The scheme a URL on this host must use: plain http only for loopback hosts (a local devnet),
 * https everywhere else.
 */
function schemeFor(hostname: string): 'http:' | 'https:' {
  return isLoopbackHost(hostname) ? 'http:' : 'https:';
}

/** LUD-16: the payRequest URL of a lightning address. */
export function lightningAddressUrl(address: LightningAddress): string {
  const hostname = new URL(`http://${address.host}`).hostname;
  // LUD-16 names (a-z 0-9 - _ . +) are safe in a path as they are.
  return `${schemeFor(hostname)}//${address.host}/.well-known/lnurlp/${address.name}`;
}

/**
 * The callback URL for `amountMsat` (and a LUD-12 comment), checked: https, or http on a
 * loopback host; no credentials in it.
 */
export function lnurlCallbackUrl(callback: string, amountMsat: Msat, comment: string | null): Result<string> {
  let url: URL;
  try {
    url = new URL(callback);
  } catch {
    return fail('BAD_REQUEST', 'lightning address callback is not a URL');
  }
  if (url.protocol !== schemeFor(url.hostname)) return fail('BAD_REQUEST', 'lightning address callback must be https (http only on loopback)');
  if (url.username !== '' || url.password !== '') return fail('BAD_REQUEST', 'lightning address callback must not carry credentials');
  url.searchParams.set('amount', amountMsat.toString());
  if (comment !== null && comment.length > 0) url.searchParams.set('comment', comment);
  return ok(url.toString());
}

/** The payRequest's limits: the amount lies within them, and a comment fits `commentAllowed`. */
export function checkLnurlPayRequest(payRequest: LnurlPayRequest, amountMsat: Msat, comment: string | null): Result<void> {
  if (amountMsat < BigInt(payRequest.minSendable) || amountMsat > BigInt(payRequest.maxSendable)) {
    return fail('BAD_REQUEST', `lightning address takes ${payRequest.minSendable} to ${payRequest.maxSendable} msat, not ${amountMsat}`);
  }
  if (comment !== null && comment.length > 0 && comment.length > (payRequest.commentAllowed ?? 0)) {
    return fail('BAD_REQUEST', `lightning address takes a payer note of at most ${payRequest.commentAllowed ?? 0} characters`);
  }
  return ok(undefined);
}

/**
 * LUD-06's checks of the invoice a callback returned: the amount asked for, and a description
 * hash equal to SHA-256 of the payRequest's `metadata` string (UTF-8).
 */
export function checkLnurlInvoice(invoice: DecodedInvoice, expected: { amountMsat: Msat; metadata: string }): Result<void> {
  if (invoice.amountMsat !== expected.amountMsat) return fail('BAD_REQUEST', 'lightning address returned an invoice for another amount');
  const metadataHash = bytesToHex(sha256(new TextEncoder().encode(expected.metadata)));
  if (invoice.descriptionHash !== metadataHash) return fail('BAD_REQUEST', 'lightning address returned an invoice whose description hash is not that of its metadata');
  return ok(undefined);
}

export interface ResolveOptions {
  network: BitcoinNetwork;
  nowSec: number;
  /** A LUD-12 comment (NWC-321 `payer_note`), or null. */
  comment: string | null;
  /** Per HTTP request (default 10 000 ms). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface ResolvedLightningAddress {
  invoice: DecodedInvoice;
  payRequest: LnurlPayRequest;
}

const MAX_RESPONSE_BYTES = 128 * 1024;

async function getJson(url: string, options: ResolveOptions, what: string): Promise<Result<unknown>> {
  let response: Response;
  try {
    response = await (options.fetch ?? fetch)(url, {
      headers: { accept: 'application/json' },
      // A redirect could lead anywhere (plain http, an internal host): not followed.
      redirect: 'error',
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (error) {
    return fail('BAD_REQUEST', `${what} unreachable: ${error instanceof Error ? error.message : 'network error'}`);
  }
  let text: string;
  try {
    text = await response.text();
  } catch {
    return fail('BAD_REQUEST', `${what} unreachable: the answer broke off`);
  }
  if (text.length > MAX_RESPONSE_BYTES) return fail('BAD_REQUEST', `${what} answered too much`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return fail('BAD_REQUEST', `${what} did not answer JSON (HTTP ${response.status})`);
  }
  const error = lnurlErrorSchema.safeParse(json);
  if (error.success) return fail('BAD_REQUEST', `${what} refused: ${error.data.reason.slice(0, 200)}`);
  if (!response.ok) return fail('BAD_REQUEST', `${what} answered HTTP ${response.status}`);
  return ok(json);
}

/**
 * Resolves a lightning address to an invoice for `amountMsat` and checks everything LUD-06
 * asks: tag, limits, comment length, and an invoice for this network, unexpired, of this
 * amount, committing to the metadata. Never throws; every failure is BAD_REQUEST with a reason.
 */
export async function resolveLightningAddress(address: LightningAddress, amountMsat: Msat, options: ResolveOptions): Promise<Result<ResolvedLightningAddress>> {
  const first = await getJson(lightningAddressUrl(address), options, `lightning address ${address.address}`);
  if (!first.ok) return first;
  const payRequest = lnurlPayRequestSchema.safeParse(first.value);
  if (!payRequest.success) return fail('BAD_REQUEST', `lightning address ${address.address} did not answer a payRequest`);
  const limits = checkLnurlPayRequest(payRequest.data, amountMsat, options.comment);
  if (!limits.ok) return limits;
  const callback = lnurlCallbackUrl(payRequest.data.callback, amountMsat, options.comment);
  if (!callback.ok) return callback;
  const second = await getJson(callback.value, options, `lightning address ${address.address} callback`);
  if (!second.ok) return second;
  const answer = lnurlInvoiceResponseSchema.safeParse(second.value);
  if (!answer.success) return fail('BAD_REQUEST', `lightning address ${address.address} callback did not answer an invoice`);
  const invoice = decodePayableInvoice(answer.data.pr, options.network, options.nowSec);
  if (!invoice.ok) return fail('BAD_REQUEST', `lightning address ${address.address} returned an unpayable invoice: ${invoice.error.message}`);
  const checked = checkLnurlInvoice(invoice.value, { amountMsat, metadata: payRequest.data.metadata });
  if (!checked.ok) return checked;
  return ok({ invoice: invoice.value, payRequest: payRequest.data });
}
