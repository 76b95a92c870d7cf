/**
 * What a paying request names as its payee, parsed the same way by the bridge and by vaults:
 * the `payment` of an NWC-321 `pay` request (a BIP-321 URI, a bare BOLT 11 or `lightning:`
 * URI, or a lightning address), and the lightning addresses a vault resolves itself (LUD-16).
 */
import type { Msat } from './amounts.ts';
import { decodeInvoice, type DecodedInvoice } from './invoice.ts';
import type { ProtocolError } from './result.ts';

/**
 * Why a payment instruction was refused. `code` is the Vault API code (always BAD_REQUEST);
 * `nwcCode` is what an NWC-321 wallet answers: UNSUPPORTED_PAYMENT_INSTRUCTION when the URI
 * holds nothing this wallet can pay (only on-chain, `lno`, …), BAD_REQUEST otherwise.
 */
export interface PaymentInstructionError extends ProtocolError {
  nwcCode: 'BAD_REQUEST' | 'UNSUPPORTED_PAYMENT_INSTRUCTION';
}

/** A lightning address (LUD-16) `name@host`, lowercased; `host` may carry a port. */
export interface LightningAddress {
  name: string;
  host: string;
  /** `name@host` */
  address: string;
}

export type PaymentInstruction =
  | {
      type: 'bolt11';
      /** How it was written: a BIP-321 URI, a bare invoice, or a `lightning:` URI. */
      form: 'bip321' | 'bolt11' | 'lightning_uri';
      invoice: DecodedInvoice;
      /** The BIP-321 `amount` (decimal BTC) in msats, or null when the URI gives none. */
      uriAmountMsat: Msat | null;
    }
  | { type: 'lightning_address'; address: LightningAddress };

export type PaymentInstructionResult = { ok: true; value: PaymentInstruction } | { ok: false; error: PaymentInstructionError };

function refuse(message: string, nwcCode: PaymentInstructionError['nwcCode'] = 'BAD_REQUEST'): { ok: false; error: PaymentInstructionError } {
  return { ok: false, error: { code: 'BAD_REQUEST', message, nwcCode } };
}

/** BIP-321 keys that may appear at most once (`pop` and `req-pop` count as one). */
const SINGLE_KEYS = new Set(['amount', 'label', 'message', 'pop']);

/** Msats per BTC: 10^8 sat × 10^3. */
const MSAT_PER_BTC = 100_000_000_000n;

/** A BIP-321 `amount` (decimal BTC, a period, no commas) in msats; null if not exact in msats. */
export function btcAmountToMsat(amount: string): Msat | null {
  const match = /^([0-9]{1,8})(?:\.([0-9]{0,11}))?$|^\.([0-9]{1,11})$/.exec(amount);
  if (!match) return null;
  const whole = match[1] ?? '0';
  const fraction = (match[2] ?? match[3] ?? '').padEnd(11, '0');
  return BigInt(whole) * MSAT_PER_BTC + BigInt(fraction);
}

/**
 * Parses the `payment` of an NWC-321 `pay` request. Forms:
 *
 * - a BIP-321 URI (`bitcoin:` in any case, keys case-insensitive): the first `lightning`
 *   parameter is the instruction paid; a `req-` parameter other than `req-pop` is unknown and
 *   makes the URI invalid (BIP-321, "Forward compatibility"); `req-pop` is refused too, since a
 *   wallet service cannot open a proof-of-payment URI on the payer's device; `amount`, `label`,
 *   `message` and `pop` at most once; an `amount` must agree with the invoice's;
 * - a bare BOLT 11 invoice, or `lightning:<bolt11>`;
 * - a lightning address `name@host` (optionally `lightning:name@host`).
 *
 * The invoice's signature is checked here; its network and expiry are the payer's to check.
 */
export function parsePaymentInstruction(payment: string): PaymentInstructionResult {
  const text = payment.trim();
  if (/^bitcoin:/i.test(text)) return parseBip321(text.slice('bitcoin:'.length));
  const body = /^lightning:/i.test(text) ? text.slice('lightning:'.length) : text;
  const form = body === text ? 'bolt11' : 'lightning_uri';
  if (body.includes('@')) {
    const address = parseLightningAddress(body);
    return address.ok ? { ok: true, value: { type: 'lightning_address', address: address.value } } : address;
  }
  if (!/^ln/i.test(body)) return refuse('payment is not a BIP-321 URI, a BOLT 11 invoice or a lightning address', 'UNSUPPORTED_PAYMENT_INSTRUCTION');
  const invoice = decodeInvoice(body);
  if (!invoice.ok) return refuse(invoice.error.message);
  return { ok: true, value: { type: 'bolt11', form, invoice: invoice.value, uriAmountMsat: null } };
}

function parseBip321(rest: string): PaymentInstructionResult {
  const queryAt = rest.indexOf('?');
  const address = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const query = queryAt === -1 ? '' : rest.slice(queryAt + 1);
  if (address.includes('#') || query.includes('#')) return refuse('BIP-321 URI must not have a fragment');
  if (!/^[0-9A-Za-z]*$/.test(address)) return refuse('BIP-321 address is not a base58 or bech32 string');
  const seen = new Set<string>();
  const lightning: string[] = [];
  const otherInstructions: string[] = [];
  let amountMsat: Msat | null = null;
  for (const part of query === '' ? [] : query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(eq === -1 ? part : part.slice(0, eq)).toLowerCase();
      value = eq === -1 ? '' : decodeURIComponent(part.slice(eq + 1));
    } catch {
      return refuse('BIP-321 URI has an invalid percent-encoding');
    }
    const single = key === 'req-pop' ? 'pop' : key;
    if (SINGLE_KEYS.has(single)) {
      if (seen.has(single)) return refuse(`BIP-321 parameter ${single} appears more than once`);
      seen.add(single);
    }
    if (key === 'req-pop') return refuse('BIP-321 req-pop: this wallet cannot return proof of payment to the payer, so it does not pay');
    if (key.startsWith('req-')) return refuse(`BIP-321 URI has an unknown required parameter ${key}`);
    if (key === 'amount') {
      amountMsat = btcAmountToMsat(value);
      if (amountMsat === null) return refuse('BIP-321 amount must be decimal BTC with at most 11 decimals');
    } else if (key === 'lightning') {
      lightning.push(value);
    } else if (key === 'lno' || key === 'sp' || key === 'pay' || key === 'bc' || key === 'tb' || key === 'bcrt') {
      otherInstructions.push(key);
    }
  }
  const selected = lightning[0];
  if (selected === undefined) {
    const what = otherInstructions.length > 0 ? `only ${[...new Set(otherInstructions)].join(', ')} instructions` : 'no lightning instruction';
    return refuse(`BIP-321 URI has ${what}; this wallet pays BOLT 11 invoices`, 'UNSUPPORTED_PAYMENT_INSTRUCTION');
  }
  const invoice = decodeInvoice(selected);
  if (!invoice.ok) return refuse(`BIP-321 lightning parameter: ${invoice.error.message}`);
  if (amountMsat !== null && invoice.value.amountMsat !== null && amountMsat !== invoice.value.amountMsat) {
    return refuse('BIP-321 amount conflicts with the invoice amount');
  }
  return { ok: true, value: { type: 'bolt11', form: 'bip321', invoice: invoice.value, uriAmountMsat: amountMsat } };
}

/** LUD-16 user names: a-z, 0-9, `-`, `_`, `.`, `+` (lowercased first). */
const NAME = /^[a-z0-9\-_.+]{1,64}$/;

/** Parses `name@host` (LUD-16), lowercased; the host may have a port (the devnet's does). */
export function parseLightningAddress(text: string): { ok: true; value: LightningAddress } | { ok: false; error: PaymentInstructionError } {
  const lower = text.trim().toLowerCase();
  const at = lower.lastIndexOf('@');
  const name = lower.slice(0, at);
  const host = lower.slice(at + 1);
  if (at <= 0 || !NAME.test(name)) return refuse('lightning address name must be 1-64 of a-z 0-9 - _ . +');
  let parsed: URL;
  try {
    parsed = new URL(`https://${host}`);
  } catch {
    return refuse('lightning address host is not a host name');
  }
  // Whatever URL parsing normalized away (userinfo, a path, odd escapes) is refused.
  if (parsed.host !== host || host.length > 253 || parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '') {
    return refuse('lightning address host is not a host name');
  }
  if (!parsed.hostname.includes('.') && !isLoopbackHost(parsed.hostname)) return refuse('lightning address host must be a domain name');
  return { ok: true, value: { name, host, address: `${name}@${host}` } };
}

/** True for `localhost`, 127.0.0.0/8 and `[::1]`: the only hosts reached over plain http. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === 'localhost' || h === '[::1]' || h === '::1' || /^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/.test(h);
}
