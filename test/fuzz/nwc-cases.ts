/**
 * Generated NIP-47 request events and what the bridge must do with each, per docs/nwc.md.
 *
 * A case is plain data (who signs, kind, tags, how the content is made, the request inside),
 * so a failing one prints as something a person can read and replay; `materialize` turns it
 * into a signed event, and `expectationFor` says, from the documented rules alone, whether a
 * response must come and which NIP-47 codes (or a result) it may carry.
 */
import fc from 'fast-check';
import bolt11 from 'bolt11';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, randomBytes } from '@noble/hashes/utils.js';
import { bech32 } from '@scure/base';
import type { Event } from 'nostr-tools/pure';
import { encryptFor, type ClientKeys } from './harness.ts';
import { fastFinalizeEvent } from './fast-sign.ts';
import { isStorable } from '../../src/protocol/storable.ts';

export type Scheme = 'nip44_v2' | 'nip04';
export type KnownActor = 'full' | 'limited' | 'poor' | 'revoked' | 'expiring';
export type Actor = KnownActor | 'stranger';

/** Methods the limited connection's grant allows (see the suite's setup). */
export const LIMITED_METHODS = ['get_info', 'pay_invoice'];
/** Its per-payment maximum, msat. */
export const LIMITED_MAX_MSAT = 1_000_000;

/** The error codes docs/nwc.md lists, plus NIP-47's own RATE_LIMITED and OTHER. */
export const DOCUMENTED_CODES = new Set([
  'BAD_REQUEST',
  'NOT_IMPLEMENTED',
  'RESTRICTED',
  'UNAUTHORIZED',
  'EXPIRED',
  'QUOTA_EXCEEDED',
  'INSUFFICIENT_BALANCE',
  'PAYMENT_FAILED',
  'NOT_FOUND',
  'UNSUPPORTED_ENCRYPTION',
  'INTERNAL',
  'RATE_LIMITED',
  'OTHER',
]);

// ---------------------------------------------------------------------------------------------
// Case shapes

/** What a valid-typed request of a method should lead to. */
export type Outcome =
  | 'info'
  | 'balance'
  | 'invoice-made'
  | 'lookup'
  | 'list'
  | 'bad-invoice'
  | 'payable-looking'
  | 'maybe-payable'
  | 'simple'
  | 'lenient';

export interface RequestSpec {
  /** The decrypted JSON text. */
  json: string;
  /** How the generator built the params: spec-valid, spec-invalid, or either is defensible. */
  params: 'valid' | 'invalid' | 'ambiguous';
  /** For valid params: what kind of answer is right. */
  outcome: Outcome;
  /** For payments: the amount that would leave the wallet, when known. */
  amountMsat?: number;
}

export type Plain = { t: 'text'; text: string } | { t: 'request'; request: RequestSpec };

export type Content =
  | { t: 'raw'; text: string }
  | { t: 'sealed'; scheme: Scheme; wrongKey: boolean; plain: Plain }
  | { t: 'oversized'; length: number; sealed: boolean };

export interface EventCase {
  category: string;
  actor: Actor;
  /** Which stranger key, for actor `stranger`. */
  stranger: number;
  kind: number;
  p: 'service' | 'missing' | 'other' | 'empty' | 'uppercase';
  /** The `encryption` tag's value, or null for no tag. */
  encryption: string | null;
  /** Seconds from now (negative: past), or a string that is not a unix time, or none. */
  expiration: number | string | null;
  /** created_at, seconds from now; far values make the request stale. */
  createdAt: number;
  extraTags: string[][];
  content: Content;
}

// ---------------------------------------------------------------------------------------------
// Invoices, made once per suite

export interface InvoicePools {
  /** Regtest, unexpired, signed by a node nobody routes to: decodes, cannot be paid. */
  unknownPayee: { invoice: string; amountMsat: number | null }[];
  otherNetwork: string[];
  expired: string[];
  /** Signature bytes replaced, checksum recomputed: decodes to another payee, or not at all. */
  corruptedSignature: string[];
  /** One character substituted (the checksum no longer holds): real devnet invoices among them. */
  corruptedChecksum: string[];
}

const NETWORKS = {
  regtest: { bech32: 'bcrt', pubKeyHash: 111, scriptHash: 196, validWitnessVersions: [0, 1] },
  mainnet: { bech32: 'bc', pubKeyHash: 0x00, scriptHash: 0x05, validWitnessVersions: [0, 1] },
  testnet: { bech32: 'tb', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] },
  signet: { bech32: 'tbs', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] },
};

function makeInvoice(network: keyof typeof NETWORKS, amountMsat: number | null, timestamp: number, expirySeconds: number): string {
  const encoded = bolt11.encode({
    network: NETWORKS[network],
    ...(amountMsat === null ? {} : { millisatoshis: String(amountMsat) }),
    timestamp,
    tags: [
      { tagName: 'payment_hash', data: bytesToHex(randomBytes(32)) },
      { tagName: 'payment_secret', data: bytesToHex(randomBytes(32)) },
      { tagName: 'description', data: 'fuzz' },
      { tagName: 'expire_time', data: expirySeconds },
    ],
  });
  const signed = bolt11.sign(encoded, Buffer.from(secp256k1.utils.randomSecretKey())).paymentRequest;
  if (!signed) throw new Error('bolt11 did not sign');
  return signed;
}

const BECH32_CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';

/** Replaces the 104 signature words (65 bytes) with random ones and recomputes the checksum. */
function corruptSignature(invoice: string): string {
  const { prefix, words } = bech32.decode(invoice as `${string}1${string}`, 10_000);
  const mutated = [...words];
  for (let i = mutated.length - 104; i < mutated.length; i++) mutated[i] = Math.floor(Math.random() * 32);
  return bech32.encode(prefix, mutated, 10_000);
}

/** Substitutes one data character with another bech32 character: the checksum catches it. */
function corruptChecksum(invoice: string, position: number): string {
  const start = invoice.lastIndexOf('1') + 1;
  const i = start + (position % (invoice.length - start));
  const current = invoice[i] ?? 'q';
  const replacement = BECH32_CHARSET[(BECH32_CHARSET.indexOf(current) + 1 + (position % 31)) % 32] ?? 'q';
  return invoice.slice(0, i) + replacement + invoice.slice(i + 1);
}

export const PAYABLE_LOOKING_AMOUNTS = [1_000, 21_000, 100_000, 999_000, 1_000_000, 5_000_000, 49_000_000, 60_000_000, 1_000_000_000, 100_000_000_000, 2_100_000_000_000_000];

export function makeInvoicePools(realInvoices: string[]): InvoicePools {
  const now = Math.floor(Date.now() / 1000);
  const unknownPayee = [
    ...PAYABLE_LOOKING_AMOUNTS.flatMap((a) => [a, a]).map((amountMsat) => ({ invoice: makeInvoice('regtest', amountMsat, now, 86_400), amountMsat })),
    ...Array.from({ length: 8 }, () => ({ invoice: makeInvoice('regtest', null, now, 86_400), amountMsat: null })),
  ];
  const otherNetwork = (['mainnet', 'testnet', 'signet'] as const).flatMap((n) => [makeInvoice(n, 1_000_000, now, 86_400), makeInvoice(n, null, now, 86_400), makeInvoice(n, 5_000, now, 60)]);
  const expired = [makeInvoice('regtest', 1_000_000, now - 7_200, 60), makeInvoice('regtest', null, now - 100_000, 3_600), makeInvoice('regtest', 5_000, 1_000_000_000, 1)];
  const corruptedSignature = unknownPayee.slice(0, 12).map((i) => corruptSignature(i.invoice));
  const corruptedChecksum = [...realInvoices, ...unknownPayee.slice(0, 6).map((i) => i.invoice)].flatMap((inv) => [corruptChecksum(inv, 7), corruptChecksum(inv, 101), corruptChecksum(inv, 333)]);
  return { unknownPayee, otherNetwork, expired, corruptedSignature, corruptedChecksum };
}

// ---------------------------------------------------------------------------------------------
// Text PostgreSQL cannot store

/**
 * Text PostgreSQL's jsonb and text columns take: no U+0000, no lone surrogate. The bridge must
 * refuse the rest at the edge (BAD_REQUEST), never half-store it: these inputs found that bug.
 */
export function storable(text: string): boolean {
  return !text.includes('\u0000') && text.isWellFormed();
}

// ---------------------------------------------------------------------------------------------
// Values of every wrong type

const hexChar = fc.constantFrom(...'0123456789abcdef');
const hex = (min: number, max: number) => fc.string({ unit: hexChar, minLength: min, maxLength: max });
const hex32 = hex(64, 64);
const anyUnicode = (maxLength: number) => fc.string({ unit: 'binary', maxLength });
/** Any text a param may carry, U+0000 and lone surrogates included. */
const paramText = (maxLength: number) => anyUnicode(maxLength);
/** Strings with lone surrogates, control characters and other UTF-16 oddities. */
const utf16 = (maxLength: number) => fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength });

/** Anything JSON can carry that is not a number: strings, booleans, null, arrays, objects. */
const notANumber = fc.oneof(
  fc.constantFrom('1000', '', '1e3', '0x10', 'lots', '-1', 'NaN', 'Infinity', '21000000000000000000000', ' 5'),
  anyUnicode(20),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);

/** Numbers that are not non-negative safe integers: negative, fractional, too large. */
const badNumber = fc.oneof(
  fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: -1 }),
  fc.constantFrom(-0.5, 0.1, 1.5, 999.999, 1e-7, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e21, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, Number.MIN_VALUE),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isSafeInteger(d) || d < 0),
);

/** A valid msat amount for NIP-47: positive safe integer (most of them small). */
const goodAmount = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 100_000_000 }), weight: 4 },
  { arbitrary: fc.constantFrom(1, 999, 1_000, Number.MAX_SAFE_INTEGER, 2 ** 52), weight: 1 },
  { arbitrary: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), weight: 1 },
);

const badAmount = fc.oneof(notANumber, badNumber);

const request = (method: unknown, params: unknown, rest: Record<string, unknown> = {}): string => JSON.stringify({ method, params, ...rest });

/** Extra keys a client may add to params (NIP-47 clients do: metadata, ids); never a known param. */
const extraKey = fc.constantFrom('foo', 'id', '__proto__', 'constructor', 'prototype', 'toString', '', ' ', 'x'.repeat(300));
const extraParams = fc.dictionary(extraKey, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 });

// ---------------------------------------------------------------------------------------------
// Requests, method by method

/** A method without params; `modeled` when this suite knows it takes none (others may need some). */
const simpleMethod = (method: string, modeled: boolean): fc.Arbitrary<RequestSpec> => {
  const outcome: Outcome = method === 'get_info' ? 'info' : method === 'get_balance' ? 'balance' : 'simple';
  const params = modeled ? 'valid' : 'ambiguous';
  return fc.oneof(
    fc.constant<RequestSpec>({ json: request(method, {}), params, outcome }),
    fc.constant<RequestSpec>({ json: JSON.stringify({ method }), params, outcome }),
    extraParams.map((p): RequestSpec => ({ json: request(method, p), params: 'ambiguous', outcome: 'lenient' })),
  );
};

const makeInvoiceRequest: fc.Arbitrary<RequestSpec> = fc.oneof(
  // Valid: each reaches a vault, so they are a small share.
  {
    weight: 2,
    arbitrary: fc
      .record(
        {
          amount: fc.integer({ min: 1_000, max: 50_000_000 }),
          description: fc.option(paramText(100), { nil: undefined }),
          expiry: fc.option(fc.integer({ min: 60, max: 86_400 }), { nil: undefined }),
          metadata: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), { nil: undefined }),
        },
        { requiredKeys: ['amount'] },
      )
      .map((p): RequestSpec => ({ json: request('make_invoice', p), params: 'valid', outcome: 'invoice-made' })),
  },
  // Valid types at the edges: tiny, huge, metadata too long (dropped), description_hash.
  {
    weight: 1,
    arbitrary: fc
      .record({
        amount: fc.oneof(fc.constantFrom(1, 999, Number.MAX_SAFE_INTEGER, 2 ** 40), goodAmount),
        description_hash: fc.option(hex32, { nil: undefined }),
        expiry: fc.option(fc.integer({ min: 31_536_001, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }),
        metadata: fc.option(fc.constant({ big: 'm'.repeat(5_000) }), { nil: undefined }),
      })
      .map((p): RequestSpec => ({ json: request('make_invoice', p), params: 'ambiguous', outcome: 'invoice-made' })),
  },
  // Invalid: every param of a wrong type or out of range.
  {
    weight: 10,
    arbitrary: fc.oneof(
      badAmount.map((amount) => request('make_invoice', { amount })),
      fc.constant(request('make_invoice', { amount: 0 })),
      fc.constant(request('make_invoice', {})),
      fc.tuple(goodAmount, fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string()), fc.string({ minLength: 640, maxLength: 2_000 }))).map(([amount, description]) => request('make_invoice', { amount, description })),
      fc.tuple(goodAmount, fc.oneof(hex(0, 63), hex(65, 80), fc.string({ minLength: 64, maxLength: 64 }).filter((s) => !/^[0-9a-f]{64}$/.test(s)), fc.integer())).map(([amount, description_hash]) => request('make_invoice', { amount, description_hash })),
      fc.tuple(goodAmount, fc.oneof(badAmount, fc.constant(0))).map(([amount, expiry]) => request('make_invoice', { amount, expiry })),
      fc.tuple(goodAmount, fc.oneof(fc.string(), fc.integer(), fc.array(fc.integer()), fc.boolean())).map(([amount, metadata]) => request('make_invoice', { amount, metadata })),
    ).map((json): RequestSpec => ({ json, params: 'invalid', outcome: 'simple' })),
  },
);

/** A pay_invoice request built from the invoice pools and a random source of garbage. */
function payInvoiceRequest(pools: InvoicePools): fc.Arbitrary<RequestSpec> {
  const pick = <T>(list: readonly T[]) => fc.nat({ max: list.length - 1 }).map((i) => list[i] as T);
  const bad = (json: string): RequestSpec => ({ json, params: 'valid', outcome: 'bad-invoice' });
  const randomBech32ish = fc
    .tuple(
      fc.constantFrom('lnbcrt', 'lnbc', 'lntb', 'lntbs', 'lnsb', 'ln', 'lnbcrt1000n', 'lnbcrt10u', 'lightning:lnbcrt', 'LNBCRT', 'lnbcrt-1', 'lnbcrt99999999999999999999m', ''),
      fc.string({ unit: fc.constantFrom(...BECH32_CHARSET), minLength: 0, maxLength: 700 }),
    )
    .map(([prefix, data]) => `${prefix}1${data}`);
  const payable = pick(pools.unknownPayee);
  return fc.oneof(
    // Bogus invoices of the right type.
    { weight: 3, arbitrary: randomBech32ish.map((invoice) => bad(request('pay_invoice', { invoice }))) },
    { weight: 2, arbitrary: pick(pools.otherNetwork).map((invoice) => bad(request('pay_invoice', { invoice }))) },
    { weight: 2, arbitrary: pick(pools.expired).map((invoice) => bad(request('pay_invoice', { invoice, amount: 1_000_000 }))) },
    { weight: 2, arbitrary: pick(pools.corruptedChecksum).map((invoice) => bad(request('pay_invoice', { invoice }))) },
    { weight: 1, arbitrary: paramText(300).filter((s) => s.length > 0).map((invoice) => bad(request('pay_invoice', { invoice }))) },
    {
      weight: 1,
      arbitrary: pick(pools.unknownPayee.filter((i) => i.amountMsat === null)).map((i) => bad(request('pay_invoice', { invoice: i.invoice }))),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(pick(pools.unknownPayee.filter((i) => i.amountMsat !== null)), fc.integer({ min: 1, max: 10 ** 12 })).map(([i, delta]) =>
        bad(request('pay_invoice', { invoice: i.invoice, amount: (i.amountMsat ?? 0) + delta })),
      ),
    },
    { weight: 1, arbitrary: pick(pools.unknownPayee.filter((i) => i.amountMsat === null)).map((i) => bad(request('pay_invoice', { invoice: i.invoice, amount: 0 }))) },
    // Decodable regtest invoices of nobody: the bridge may reserve and a vault may try; it must fail and release.
    {
      weight: 2,
      arbitrary: fc
        .tuple(payable, fc.constantFrom('plain', 'upper', 'lightning:', 'padded', 'amount'), goodAmount)
        .map(([i, form, amount]): RequestSpec => {
          const invoice = form === 'upper' ? i.invoice.toUpperCase() : form === 'lightning:' ? `lightning:${i.invoice}` : form === 'padded' ? ` ${i.invoice}\n` : i.invoice;
          const params = i.amountMsat === null ? { invoice, amount: Math.min(amount, 60_000_000) } : form === 'amount' ? { invoice, amount: i.amountMsat } : { invoice };
          return { json: request('pay_invoice', params), params: 'valid', outcome: 'payable-looking', amountMsat: i.amountMsat ?? params.amount };
        }),
    },
    { weight: 1, arbitrary: pick(pools.corruptedSignature).map((invoice): RequestSpec => ({ json: request('pay_invoice', { invoice }), params: 'valid', outcome: 'maybe-payable' })) },
    // Wrong types and sizes of the params themselves.
    {
      weight: 4,
      arbitrary: fc
        .oneof(
          notANumber.filter((v) => typeof v !== 'string').map((invoice) => request('pay_invoice', { invoice })),
          fc.integer().map((invoice) => request('pay_invoice', { invoice })),
          fc.constant(request('pay_invoice', { invoice: '' })),
          fc.constant(request('pay_invoice', {})),
          fc.constant(request('pay_invoice', { amount: 1000 })),
          fc.integer({ min: 8_193, max: 20_000 }).map((n) => request('pay_invoice', { invoice: `lnbcrt1${'q'.repeat(n)}` })),
          fc.tuple(payable, badAmount).map(([i, amount]) => request('pay_invoice', { invoice: i.invoice, amount })),
          fc.tuple(payable, fc.oneof(fc.string(), fc.integer(), fc.array(fc.integer()), fc.constant(null))).map(([i, metadata]) => request('pay_invoice', { invoice: i.invoice, metadata })),
        )
        .map((json): RequestSpec => ({ json, params: 'invalid', outcome: 'simple' })),
    },
  );
}

const lookupInvoiceRequest: fc.Arbitrary<RequestSpec> = fc.oneof(
  hex32.map((payment_hash): RequestSpec => ({ json: request('lookup_invoice', { payment_hash }), params: 'valid', outcome: 'lookup' })),
  paramText(300)
    .filter((s) => s.length > 0)
    .map((invoice): RequestSpec => ({ json: request('lookup_invoice', { invoice }), params: 'valid', outcome: 'lookup' })),
  fc.tuple(hex32, fc.string({ minLength: 1 })).map(([payment_hash, invoice]): RequestSpec => ({ json: request('lookup_invoice', { payment_hash, invoice }), params: 'valid', outcome: 'lookup' })),
  fc
    .oneof(
      fc.constant(request('lookup_invoice', {})),
      fc.oneof(hex(0, 63), hex(65, 70), fc.string({ maxLength: 64 }).map((s) => s.padEnd(64, 'Z')), fc.integer(), fc.constant(null), fc.array(hex32, { maxLength: 2 })).map((payment_hash) => request('lookup_invoice', { payment_hash })),
      fc.oneof(fc.integer(), fc.constant(''), fc.constant(null), fc.boolean(), fc.string({ minLength: 8_193, maxLength: 9_000 })).map((invoice) => request('lookup_invoice', { invoice })),
    )
    .map((json): RequestSpec => ({ json, params: 'invalid', outcome: 'simple' })),
);

const listTransactionsRequest: fc.Arbitrary<RequestSpec> = fc.oneof(
  fc
    .record(
      {
        from: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        until: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        limit: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
        offset: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
        unpaid: fc.boolean(),
        type: fc.constantFrom('incoming', 'outgoing'),
      },
      { requiredKeys: [] },
    )
    .map((p): RequestSpec => ({ json: request('list_transactions', p), params: 'valid', outcome: 'list' })),
  fc
    .tuple(fc.constantFrom('from', 'until', 'limit', 'offset', 'unpaid', 'type'), fc.oneof(badAmount, fc.constantFrom('both', 'INCOMING', '', 'incoming ', 1, 0)))
    .filter(([key, value]) => !(key === 'unpaid' ? typeof value === 'boolean' : key === 'type' ? value === 'incoming' || value === 'outgoing' : false))
    .filter(([key, value]) => key === 'unpaid' || key === 'type' || !(typeof value === 'number' && Number.isSafeInteger(value) && value >= 0))
    .map(([key, value]): RequestSpec => ({ json: request('list_transactions', { [key]: value }), params: 'invalid', outcome: 'simple' })),
);

/** NIP-47 methods this bridge does not serve, names of prototype members, and noise. */
function unknownMethodRequest(served: readonly string[]): fc.Arbitrary<RequestSpec> {
  const names = fc.oneof(
    fc.constantFrom('pay_keysend', 'multi_pay_invoice', 'multi_pay_keysend', 'make_hold_invoice', 'cancel_hold_invoice', 'settle_hold_invoice', 'sign_message', 'get_budget', 'create_connection', 'GET_INFO', 'get_info ', ' get_balance', 'get-info', 'getInfo', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'then'),
    fc.string({ minLength: 1, maxLength: 64 }),
    fc.constantFrom('get_info\u0000', '\u0000', 'pay_keysend\u0000x'),
  );
  return fc
    .tuple(names.filter((m) => !served.includes(m)), fc.oneof(fc.constant({}), extraParams))
    .map(([method, params]): RequestSpec => ({ json: request(method, params), params: 'valid', outcome: 'simple' }));
}

/** JSON that is not a NIP-47 request body. */
const badBody: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', '{', '{"method":"get_info"', 'null', 'true', '0', '[]', '""', '{}', '{"params":{}}', '{"method":""}', '{"method":null,"params":{}}', '{"method":"get_info","params":null}', '{"method":"get_info","params":[]}', '{"method":"get_info","params":"x"}', '{"method":["get_info"]}', '{"method":{"name":"get_info"}}', '{"METHOD":"get_info"}', '\u0000{"method":"get_info"}', '{"method":"get_info","params":{}}garbage'),
  fc.jsonValue().filter((v) => typeof v !== 'object' || v === null || Array.isArray(v) || !('method' in v)).map((v) => JSON.stringify(v) ?? 'null'),
  fc.tuple(fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string())), fc.jsonValue()).map(([method, params]) => JSON.stringify({ method, params })),
  fc.tuple(fc.constantFrom('get_info', 'get_balance', 'pay_invoice'), fc.oneof(fc.array(fc.jsonValue()), fc.string(), fc.integer(), fc.boolean(), fc.constant(null))).map(([method, params]) => JSON.stringify({ method, params })),
  fc.string({ minLength: 65, maxLength: 300 }).map((method) => JSON.stringify({ method, params: {} })),
  fc.integer({ min: 100, max: 1_000 }).map((depth) => `${'{"method":"get_info","params":'.repeat(1)}${'['.repeat(depth)}${']'.repeat(depth)}}`),
  fc.integer({ min: 100, max: 2_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
);

export function requestArb(pools: InvoicePools, served: readonly string[]): fc.Arbitrary<RequestSpec> {
  const modeled = new Set(['get_info', 'get_balance', 'make_invoice', 'pay_invoice', 'lookup_invoice', 'list_transactions']);
  const others = served.filter((m) => !modeled.has(m));
  return fc.oneof(
    { weight: 2, arbitrary: simpleMethod('get_info', true) },
    { weight: 2, arbitrary: simpleMethod('get_balance', true) },
    ...others.map((m) => ({ weight: 1, arbitrary: simpleMethod(m, false) })),
    { weight: 6, arbitrary: makeInvoiceRequest },
    { weight: 10, arbitrary: payInvoiceRequest(pools) },
    { weight: 5, arbitrary: lookupInvoiceRequest },
    { weight: 5, arbitrary: listTransactionsRequest },
    { weight: 6, arbitrary: unknownMethodRequest(served) },
    { weight: 6, arbitrary: badBody.map((json): RequestSpec => ({ json, params: 'invalid', outcome: 'simple' })) },
  );
}

// ---------------------------------------------------------------------------------------------
// Events

const UNSUPPORTED_ENCRYPTIONS = ['nip44', 'NIP44_V2', 'nip44_v1', 'nip44_v3', 'nip4', 'NIP04', '', ' ', 'nip99', 'aes', 'nip44_v2,nip04', 'nip44-v2', 'none', 'nip44_v2\u0000'];
const SUPPORTED_ENCRYPTIONS = ['nip44_v2', 'nip04', 'nip44_v2 nip04', 'nip04 nip44_v2', ' nip44_v2 ', 'nip99 nip44_v2', 'nip44 nip04'];

/** The scheme an `encryption` tag names (docs/nwc.md): the first supported token, NIP-04 without a tag. */
export function schemeOf(tag: string | null): Scheme | 'unsupported' {
  if (tag === null) return 'nip04';
  for (const token of tag.split(/\s+/)) if (token === 'nip44_v2' || token === 'nip04') return token;
  return 'unsupported';
}

const extraTag = fc.oneof<fc.Arbitrary<string[]>[]>(
  fc.tuple(fc.constantFrom('e', 'd', 't', 'a', 'client', 'r', 'alt', 'relay'), fc.string({ maxLength: 80 })).map(([n, v]) => [n, v]),
  fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }).filter((t) => !['p', 'encryption', 'expiration'].includes(t[0] ?? '')),
  fc.constant<string[]>([]),
);

const wrongKinds = fc.oneof(fc.constantFrom(0, 1, 4, 7, 13194, 23195, 23196, 23197, 24133, 27235, 31347, 22242), fc.integer({ min: 0, max: 65535 }).filter((k) => k !== 23194));

const rawContent = fc.oneof(
  anyUnicode(300),
  utf16(100),
  fc.uint8Array({ minLength: 0, maxLength: 400 }).map((b) => Buffer.from(b).toString('base64')),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ minLength: 98, maxLength: 300 })).map(([v, b]) => Buffer.concat([Buffer.from([v]), Buffer.from(b)]).toString('base64')),
  fc.tuple(fc.uint8Array({ minLength: 0, maxLength: 64 }), fc.uint8Array({ minLength: 0, maxLength: 20 })).map(([c, iv]) => `${Buffer.from(c).toString('base64')}?iv=${Buffer.from(iv).toString('base64')}`),
  fc.constantFrom('', '?iv=', 'abc?iv=', '#', '#AgAAAA', '?iv=?iv=', 'AA==?iv=AAAAAAAAAAAAAAAAAAAAAA==', '{"method":"get_info","params":{}}'),
);

const knownActor: fc.Arbitrary<KnownActor> = fc.oneof(
  { weight: 10, arbitrary: fc.constant<KnownActor>('full') },
  { weight: 3, arbitrary: fc.constant<KnownActor>('limited') },
  { weight: 2, arbitrary: fc.constant<KnownActor>('poor') },
  { weight: 2, arbitrary: fc.constant<KnownActor>('revoked') },
  { weight: 2, arbitrary: fc.constant<KnownActor>('expiring') },
);

/** created_at offsets: mostly now, sometimes a little off, sometimes far outside any window. */
const createdAt = fc.oneof(
  { weight: 20, arbitrary: fc.constant(0) },
  { weight: 4, arbitrary: fc.integer({ min: -30, max: 30 }) },
  { weight: 1, arbitrary: fc.oneof(fc.integer({ min: -100_000_000, max: -400 }), fc.integer({ min: 200, max: 100_000_000 }), fc.constant(-Math.floor(Date.now() / 1000))) },
);

export const STALE_BEFORE = -300;
export const STALE_AFTER = 60;
export const STRANGERS = 16;

export function eventCaseArb(pools: InvoicePools, served: readonly string[]): fc.Arbitrary<EventCase> {
  const req = requestArb(pools, served);
  const base = {
    category: fc.constant('request'),
    actor: knownActor as fc.Arbitrary<Actor>,
    stranger: fc.nat({ max: STRANGERS - 1 }),
    kind: fc.constant(23194),
    p: fc.constant<EventCase['p']>('service'),
    encryption: fc.oneof({ weight: 3, arbitrary: fc.constant<string | null>('nip44_v2') }, { weight: 2, arbitrary: fc.constant<string | null>(null) }, { weight: 1, arbitrary: fc.constantFrom<string | null>(...SUPPORTED_ENCRYPTIONS) }),
    expiration: fc.oneof({ weight: 10, arbitrary: fc.constant<number | string | null>(null) }, { weight: 1, arbitrary: fc.integer({ min: 120, max: 100_000_000 }) as fc.Arbitrary<number | string | null> }),
    createdAt,
    extraTags: fc.oneof({ weight: 6, arbitrary: fc.constant<string[][]>([]) }, { weight: 1, arbitrary: fc.array(extraTag, { maxLength: 4 }) }),
  };
  const sealedRequest = (scheme: Scheme) => req.map((request): Content => ({ t: 'sealed', scheme, wrongKey: false, plain: { t: 'request', request } }));
  /** The content sealed with the scheme the tag names (NIP-04 without one). */
  const withRequest = (overrides: Partial<{ [K in keyof typeof base]: fc.Arbitrary<unknown> }> = {}, category = 'request') =>
    fc.record({ ...base, ...overrides, category: fc.constant(category), content: fc.constant(null) }).chain((c) => {
      const scheme = schemeOf(c.encryption as string | null);
      return sealedRequest(scheme === 'unsupported' ? 'nip44_v2' : scheme).map((content) => ({ ...c, content }) as EventCase);
    });

  return fc.oneof(
    // Requests of every method with good and bad params, from every kind of connection.
    { weight: 40, arbitrary: withRequest() },
    // Unknown keys: UNAUTHORIZED whatever they send.
    { weight: 6, arbitrary: withRequest({ actor: fc.constant<Actor>('stranger') }, 'stranger') },
    // Content that is not what the tag says: garbage, the other scheme, another key.
    {
      weight: 8,
      arbitrary: fc.record({ ...base, category: fc.constant('garbage-content'), actor: fc.oneof(knownActor, fc.constant<Actor>('stranger')), content: rawContent.map((text): Content => ({ t: 'raw', text })) }),
    },
    {
      weight: 5,
      arbitrary: fc
        .record({ ...base, category: fc.constant('wrong-key-or-scheme'), content: fc.constant(null) })
        .chain((c) =>
          fc
            .tuple(fc.constantFrom<Scheme>('nip44_v2', 'nip04'), fc.boolean(), req)
            // Another key than the pair's, or the scheme the tag does not name, or both.
            .map(([scheme, wrongKey, request]) => ({ ...c, content: { t: 'sealed', scheme, wrongKey: wrongKey || scheme === schemeOf(c.encryption), plain: { t: 'request', request } } }) as EventCase),
        ),
    },
    // Decrypts fine, but is not JSON or not a request.
    {
      weight: 6,
      arbitrary: fc.record({ ...base, category: fc.constant('not-json'), content: fc.constant(null) }).chain((c) => {
        const scheme = schemeOf(c.encryption);
        return fc
          .oneof(anyUnicode(200), utf16(60), fc.constantFrom('', ' ', 'null', '{"method":"get_info"', '\u0000'))
          .filter((text) => !isRequestBody(text))
          .map((text) => ({ ...c, content: { t: 'sealed', scheme: scheme === 'unsupported' ? 'nip44_v2' : scheme, wrongKey: false, plain: { t: 'text', text } } }) as EventCase);
      }),
    },
    // Over 64 KiB.
    {
      weight: 1,
      arbitrary: fc.record({
        ...base,
        category: fc.constant('oversized'),
        actor: fc.oneof(knownActor, fc.constant<Actor>('stranger')),
        content: fc.oneof(fc.integer({ min: 64 * 1024 + 1, max: 80 * 1024 }).map((length): Content => ({ t: 'oversized', length, sealed: false })), fc.constant<Content>({ t: 'oversized', length: 65_000, sealed: true })),
      }),
    },
    // Encryption tags naming no supported scheme.
    {
      weight: 3,
      arbitrary: withRequest({ encryption: fc.constantFrom(...UNSUPPORTED_ENCRYPTIONS), actor: fc.oneof(knownActor, fc.constant<Actor>('stranger')) }, 'unsupported-encryption'),
    },
    // To be ignored: expired, not for us, not a request.
    { weight: 3, arbitrary: withRequest({ expiration: fc.oneof(fc.integer({ min: -100_000_000, max: -5 }), fc.constantFrom('', 'soon', '-5', '1.5', '1e10', '0x10', ' 1700000000', 'NaN', 'Infinity', '１２３', '9'.repeat(16))) }, 'expired') },
    { weight: 3, arbitrary: withRequest({ p: fc.constantFrom<EventCase['p']>('missing', 'other', 'empty', 'uppercase') }, 'not-for-us') },
    { weight: 3, arbitrary: withRequest({ kind: wrongKinds }, 'wrong-kind') },
  );
}

/** True when `text` parses to something the bridge reads as a request body. */
export function isRequestBody(text: string): boolean {
  return bodyMethod(text) !== undefined;
}

/** The method of a valid request body (object, method a string of 1–64 characters, params an object if present). */
export function bodyMethod(text: string): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { method, params } = value as { method?: unknown; params?: unknown };
  if (typeof method !== 'string' || method.length < 1 || method.length > 64) return undefined;
  if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) return undefined;
  return method;
}

// ---------------------------------------------------------------------------------------------
// From a case to a signed event

export interface Signers {
  known: Record<KnownActor, ClientKeys>;
  strangers: ClientKeys[];
  /** Keys of nobody, for sealing with the wrong key. */
  wrong: ClientKeys;
}

export function signerOf(c: EventCase, signers: Signers): ClientKeys {
  return c.actor === 'stranger' ? (signers.strangers[c.stranger % signers.strangers.length] as ClientKeys) : signers.known[c.actor];
}

/** The params of a request body, or undefined when it has none to read. */
function paramsOf(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && 'params' in value ? value.params : undefined;
  } catch {
    return undefined;
  }
}

export function plaintextOf(plain: Plain): string {
  return plain.t === 'text' ? plain.text : plain.request.json;
}

/** `salt` adds a tag, to tell apart two cases that would otherwise make the very same event. */
export function materialize(c: EventCase, signers: Signers, now: number, salt?: number): Event {
  const keys = signerOf(c, signers);
  const tags: string[][] = [];
  if (c.p === 'service') tags.push(['p', keys.servicePubkey]);
  else if (c.p === 'other') tags.push(['p', bytesToHex(randomBytes(32))]);
  else if (c.p === 'empty') tags.push(['p']);
  else if (c.p === 'uppercase') tags.push(['p', keys.servicePubkey.toUpperCase()]);
  if (c.encryption !== null) tags.push(['encryption', c.encryption]);
  if (c.expiration !== null) tags.push(['expiration', typeof c.expiration === 'number' ? String(now + c.expiration) : c.expiration]);
  tags.push(...c.extraTags);
  if (salt !== undefined) tags.push(['salt', String(salt)]);
  let content: string;
  switch (c.content.t) {
    case 'raw':
      content = c.content.text;
      break;
    case 'sealed': {
      const plaintext = plaintextOf(c.content.plain);
      // NIP-44 cannot seal nothing: an empty content is what such a client could send.
      content = plaintext === '' && c.content.scheme === 'nip44_v2' ? '' : encryptFor(c.content.wrongKey ? signers.wrong : keys, c.content.scheme, plaintext);
      break;
    }
    case 'oversized':
      content = c.content.sealed ? encryptFor(keys, 'nip44_v2', JSON.stringify({ method: 'get_info', params: { pad: 'p'.repeat(c.content.length - 40) } })) : 'A'.repeat(c.content.length);
      break;
  }
  return fastFinalizeEvent({ kind: c.kind, created_at: Math.max(0, now + c.createdAt), tags, content }, keys.secretKey);
}

// ---------------------------------------------------------------------------------------------
// What the bridge must do (docs/nwc.md, "Requests" and "Errors")

export type Expectation =
  | { respond: false; why: string }
  | {
      respond: true;
      /** The scheme the response is encrypted with. */
      scheme: Scheme;
      /** Codes the error may carry; 'result' when a successful answer is right too. */
      allowed: Set<string>;
      /** What a result must look like. */
      outcome: Outcome | null;
      /** The result_type the response must name, when the request names a method. */
      resultType: string | undefined;
      /** Whether answering may have reached a vault payment (money may be held while in flight). */
      mayPay: boolean;
    };

export interface OracleContext {
  now: number;
  served: readonly string[];
  /** When the expiring connection's grant ends. */
  expiringAt: number;
}

export function expectationFor(c: EventCase, ctx: OracleContext): Expectation {
  if (c.kind !== 23194) return { respond: false, why: 'not kind 23194' };
  if (c.p !== 'service') return { respond: false, why: 'not addressed to the service key' };
  if (typeof c.expiration === 'string') return { respond: false, why: 'expiration tag is not a unix time' };
  if (typeof c.expiration === 'number' && c.expiration <= 0) return { respond: false, why: 'past its expiration' };

  const scheme = schemeOf(c.encryption);
  const plain = c.content.t === 'sealed' ? c.content.plain : undefined;
  const decrypts = c.content.t === 'sealed' && !c.content.wrongKey && c.content.scheme === scheme;
  const method = decrypts && plain ? bodyMethod(plaintextOf(plain)) : undefined;
  const answer = (allowed: Iterable<string>, outcome: Outcome | null = null, mayPay = false, resultType = method): Expectation => ({
    respond: true,
    scheme: scheme === 'unsupported' ? 'nip44_v2' : scheme,
    allowed: new Set(allowed),
    outcome,
    resultType,
    mayPay,
  });

  if (scheme === 'unsupported') return answer(['UNSUPPORTED_ENCRYPTION'], null, false, undefined);
  if (c.actor === 'stranger') return answer(['UNAUTHORIZED']);
  // An event PostgreSQL cannot hold is refused whole, whatever it asks.
  const rawContent = c.content.t === 'raw' ? c.content.text : '';
  if (!c.extraTags.every((t) => t.every(storable)) || !storable(rawContent)) return answer(['BAD_REQUEST'], null, false, undefined);

  // Requests outside the freshness window are not executed (EXPIRED); the rules below still hold too.
  const stale = c.createdAt < STALE_BEFORE - 20 || c.createdAt > STALE_AFTER + 20;
  const extra = stale ? ['EXPIRED'] : [];
  if (c.content.t === 'oversized') return answer(['BAD_REQUEST', ...extra], null, false, undefined);
  if (!decrypts || !plain || method === undefined) {
    // A method name over 64 characters may be read as no method or as an unknown one.
    const longMethod = plain?.t === 'request' && decrypts && /"method":"[^"]{65,}"/.test(plain.request.json);
    return answer(['BAD_REQUEST', ...(longMethod ? ['NOT_IMPLEMENTED'] : []), ...extra], null, false, undefined);
  }
  // The grant is checked around validation: a refused grant may be reported before or after
  // bad params, and a revoked or expired one before or after an unknown method.
  const refusal = grantRefusal(c.actor as KnownActor, method, ctx);
  const refusalCode = c.actor === 'revoked' ? 'UNAUTHORIZED' : c.actor === 'expiring' ? 'EXPIRED' : 'RESTRICTED';
  if (!ctx.served.includes(method)) return answer(['NOT_IMPLEMENTED', ...(refusal !== 'none' && refusalCode !== 'RESTRICTED' ? [refusalCode] : []), ...extra]);

  const spec = plain.t === 'request' ? plain.request : { params: 'ambiguous' as const, outcome: 'lenient' as const, amountMsat: undefined };
  if (refusal === 'certain') return answer([refusalCode, ...(spec.params !== 'valid' ? ['BAD_REQUEST'] : []), ...extra]);
  const maybeExpired = refusal === 'boundary' ? ['EXPIRED'] : [];
  if (spec.params === 'invalid') return answer(['BAD_REQUEST', ...maybeExpired, ...extra]);
  if (!isStorable(paramsOf(plaintextOf(plain)))) return answer(['BAD_REQUEST', ...maybeExpired, ...extra]);

  const allowed = new Set<string>([...maybeExpired, ...extra]);
  if (spec.params === 'ambiguous') allowed.add('BAD_REQUEST');
  let mayPay = false;
  switch (spec.outcome) {
    case 'info':
    case 'balance':
    case 'list':
    case 'simple':
    case 'lenient':
      allowed.add('result');
      break;
    case 'invoice-made':
      // A vault may refuse the amount or description; the invoice is made otherwise.
      for (const code of ['result', 'BAD_REQUEST']) allowed.add(code);
      break;
    case 'lookup':
      for (const code of ['result', 'NOT_FOUND']) allowed.add(code);
      break;
    case 'bad-invoice':
      allowed.add('BAD_REQUEST');
      break;
    case 'maybe-payable':
    case 'payable-looking': {
      if (spec.outcome === 'maybe-payable') allowed.add('BAD_REQUEST');
      mayPay = true;
      // Nobody routes to these payees: refused for limits or balance, or tried and failed.
      if (c.actor === 'limited' && spec.amountMsat !== undefined && spec.amountMsat > LIMITED_MAX_MSAT) allowed.add('QUOTA_EXCEEDED');
      else if (c.actor === 'poor') allowed.add('INSUFFICIENT_BALANCE');
      else for (const code of ['PAYMENT_FAILED', 'INSUFFICIENT_BALANCE', ...(c.actor === 'limited' || spec.amountMsat === undefined ? ['QUOTA_EXCEEDED'] : [])]) allowed.add(code);
      if (spec.outcome === 'maybe-payable' && c.actor === 'limited') allowed.add('QUOTA_EXCEEDED');
      break;
    }
  }
  return answer(allowed, spec.outcome, mayPay);
}

/** Whether the actor's grant refuses `method` now: certainly, not at all, or too close to call. */
function grantRefusal(actor: KnownActor, method: string, ctx: OracleContext): 'certain' | 'none' | 'boundary' {
  if (actor === 'revoked') return 'certain';
  if (actor === 'limited') return LIMITED_METHODS.includes(method) ? 'none' : 'certain';
  if (actor === 'expiring') {
    if (ctx.now >= ctx.expiringAt + 2) return 'certain';
    if (ctx.now >= ctx.expiringAt - 3) return 'boundary';
  }
  return 'none';
}
