import { bytesToHex } from '@noble/hashes/utils.js';
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import {
  authorizationSchema,
  buildAuthorization,
  REQUEST_MAX_AGE_SECONDS,
  requestExpired,
  REQUEST_MAX_SKEW_SECONDS,
  verifyPaymentAuthorization,
  type Authorization,
  type PaymentToAuthorize,
} from '../../src/protocol/authorization.ts';
import { grantTerms, signGrant } from '../../src/protocol/grant.ts';
import { KIND } from '../../src/protocol/kinds.ts';
import { encryptContent, sharedKey, type NwcEncryption } from '../../src/protocol/nwc-encryption.ts';
import { nwcRequestBodySchema, payInvoiceParamsSchema } from '../../src/protocol/nwc-request.ts';
import type { VaultErrorCode } from '../../src/protocol/result.ts';
import { makeInvoice, readVector } from '../vectors/generate.ts';

type VectorTarget =
  | { type: 'keysend'; destination: string; preimage: string | null; tlv_records: { type: string; value: string }[] }
  | { type: 'lightning_address'; address: string };

interface VectorPayment {
  deposit_owner: string;
  operator_node_pubkey: string;
  invoice: string;
  amount_msat: string;
  max_fee_msat: string;
  now: number;
  target?: VectorTarget;
}

interface AuthorizationVectors {
  valid: {
    name: string;
    authorization: Authorization;
    payment: VectorPayment;
    expected: { ok: true; request_id: string; connection: string; method: string; target: string; payment_hash: string | null; amount_msat: string };
  }[];
  invalid: { name: string; authorization: Authorization; payment: VectorPayment; expected: { ok: false; code: VaultErrorCode } }[];
}

function toPayment(p: VectorPayment): PaymentToAuthorize {
  const base = { depositOwner: p.deposit_owner, operatorNodePubkey: p.operator_node_pubkey, amountMsat: BigInt(p.amount_msat), maxFeeMsat: BigInt(p.max_fee_msat), nowSec: p.now };
  const t = p.target;
  if (t === undefined) return { ...base, invoice: p.invoice };
  if (t.type === 'lightning_address') return { ...base, target: t };
  const tlvRecords = t.tlv_records.map((r) => ({ type: BigInt(r.type), value: r.value }));
  return { ...base, target: { type: 'keysend', destination: t.destination, preimage: t.preimage, tlvRecords } };
}

const vectors = readVector<AuthorizationVectors>('authorizations.json');

describe('verifyPaymentAuthorization on the authorization vectors', () => {
  it.each(vectors.valid)('$name', ({ authorization, payment, expected }) => {
    expect(authorizationSchema.safeParse(authorization).success).toBe(true);
    const result = verifyPaymentAuthorization(authorization, toPayment(payment));
    if (!result.ok) throw new Error(`refused with ${result.error.code}: ${result.error.message}`);
    expect(result.value.requestId).toBe(expected.request_id);
    expect(result.value.connectionPubkey).toBe(expected.connection);
    expect(result.value.method).toBe(expected.method);
    expect(result.value.target).toBe(expected.target);
    expect(result.value.invoice?.paymentHash ?? null).toBe(expected.payment_hash);
    expect(result.value.signed.amountMsat).toBe(BigInt(expected.amount_msat));
    expect(result.value.grant.userPubkey).toBe(payment.deposit_owner);
  });

  it.each(vectors.invalid)('$name', ({ authorization, payment, expected }) => {
    const result = verifyPaymentAuthorization(authorization, toPayment(payment));
    expect(result.ok ? 'accepted' : result.error.code).toBe(expected.code);
  });

  it('the vectors cover every refusal code the check can give', () => {
    const codes = new Set(vectors.invalid.map((c) => c.expected.code));
    expect([...codes].sort()).toEqual(['BAD_REQUEST', 'EXPIRED', 'FEE_LIMIT', 'RESTRICTED', 'UNAUTHORIZED']);
  });

  it('the vectors cover every payment method and target', () => {
    expect(new Set(vectors.valid.map((c) => `${c.expected.method}:${c.expected.target}`))).toEqual(
      new Set(['pay_invoice:invoice', 'pay:invoice', 'pay:lightning_address', 'pay_keysend:keysend']),
    );
  });
});

describe('the freshness window', () => {
  it('is 300 s back and 60 s ahead, as docs/vault-api.md states', () => {
    expect(REQUEST_MAX_AGE_SECONDS).toBe(300);
    expect(REQUEST_MAX_SKEW_SECONDS).toBe(60);
  });
});

describe('requestExpired', () => {
  it.each<[string, string[][], boolean]>([
    ['no expiration tag', [], false],
    ['an expiration one second ahead', [['expiration', '1000001']], false],
    ['an expiration exactly now', [['expiration', '1000000']], true],
    ['an expiration in the past', [['expiration', '999999']], true],
    ['an expiration that is not a unix time', [['expiration', 'soon']], true],
    ['an empty expiration', [['expiration', '']], true],
  ])('with %s: %s', (_, tags, expired) => {
    expect(requestExpired({ tags }, 1_000_000)).toBe(expired);
  });
});

/** A whole payment flow with fresh keys: user U, app C, wallet service S, payee node. */
function scenario(scheme: NwcEncryption, opts: { tagEncryption?: boolean; body?: (invoice: string) => unknown } = {}) {
  const user = generateSecretKey();
  const connection = generateSecretKey();
  const service = generateSecretKey();
  const payee = generateSecretKey();
  const now = Math.floor(Date.now() / 1000);
  const invoice = makeInvoice({
    network: 'regtest',
    nodeSecret: payee,
    amountMsat: 21_000n,
    paymentHash: bytesToHex(generateSecretKey()),
    paymentSecret: bytesToHex(generateSecretKey()),
    timestamp: now - 5,
    description: 'fresh keys',
  });
  const grant = signGrant(grantTerms(getPublicKey(connection), ['get_info', 'pay_invoice'], { maxAmountMsat: 100_000n }), user, now - 60);
  const body = opts.body ? opts.body(invoice) : { method: 'pay_invoice', params: { invoice } };
  // The app encrypts with its secret and the service's pubkey; the bridge hands the vault the key
  // it derives from its own side, which must be the same.
  const content = encryptContent(scheme, sharedKey(scheme, connection, getPublicKey(service)), JSON.stringify(body));
  const tags = [['p', getPublicKey(service)]];
  if (opts.tagEncryption ?? scheme === 'nip44_v2') tags.push(['encryption', scheme]);
  const request = finalizeEvent({ kind: KIND.nwcRequest, created_at: now - 2, tags, content }, connection);
  const authorization = buildAuthorization(grant, request, scheme, sharedKey(scheme, service, getPublicKey(connection)));
  const payment: PaymentToAuthorize = {
    depositOwner: getPublicKey(user),
    operatorNodePubkey: '02' + 'ab'.repeat(32),
    invoice,
    amountMsat: 21_000n,
    maxFeeMsat: 10_000n,
    nowSec: now,
  };
  return { authorization, payment, request, invoice, connection, service, payee, now, connectionPubkey: getPublicKey(connection) };
}

describe('verifyPaymentAuthorization with fresh keys', () => {
  it.each<[string, NwcEncryption, boolean]>([
    ['NIP-44 v2 with its encryption tag', 'nip44_v2', true],
    ['NIP-04 without an encryption tag', 'nip04', false],
    ['NIP-04 with its encryption tag', 'nip04', true],
  ])('accepts a pay_invoice request encrypted with %s', (_, scheme, tagEncryption) => {
    const s = scenario(scheme, { tagEncryption });
    const result = verifyPaymentAuthorization(s.authorization, s.payment);
    if (!result.ok) throw new Error(`refused with ${result.error.code}: ${result.error.message}`);
    expect(result.value.requestId).toBe(s.request.id);
    expect(result.value.connectionPubkey).toBe(s.connectionPubkey);
    expect(result.value.method).toBe('pay_invoice');
    expect(result.value.invoice.paymentRequest).toBe(s.invoice);
    expect(result.value.invoice.amountMsat).toBe(21_000n);
  });

  it('survives the trip over the wire: authorizationSchema parses the JSON and the check still accepts it', () => {
    const s = scenario('nip44_v2');
    const wire = authorizationSchema.parse(JSON.parse(JSON.stringify(s.authorization)));
    expect(verifyPaymentAuthorization(wire, s.payment).ok).toBe(true);
  });

  it('accepts an uppercase invoice in the signed plaintext', () => {
    const s = scenario('nip44_v2', { body: (invoice) => ({ method: 'pay_invoice', params: { invoice: invoice.toUpperCase() } }) });
    expect(verifyPaymentAuthorization(s.authorization, s.payment).ok).toBe(true);
  });

  it('refuses a signed request object whose content was replaced in memory after signing', () => {
    const s = scenario('nip44_v2');
    // What the key holder of (C, S) could produce: another invoice, encrypted under the real key.
    const otherInvoice = makeInvoice({
      network: 'regtest',
      nodeSecret: s.payee,
      amountMsat: 21_000n,
      paymentHash: bytesToHex(generateSecretKey()),
      timestamp: s.now,
    });
    const key = sharedKey('nip44_v2', s.service, s.connectionPubkey);
    const forged: Event = { ...s.request, content: encryptContent('nip44_v2', key, JSON.stringify({ method: 'pay_invoice', params: { invoice: otherInvoice } })) };
    const result = verifyPaymentAuthorization({ ...s.authorization, request: forged }, { ...s.payment, invoice: otherInvoice });
    expect(result.ok ? 'accepted' : result.error.code).toBe('UNAUTHORIZED');
  });

  it('refuses a signed grant object whose limits were raised in memory after signing', () => {
    const s = scenario('nip44_v2');
    const content = JSON.parse(s.authorization.grant.content);
    const raised: Event = { ...s.authorization.grant, content: JSON.stringify({ ...content, methods: ['pay_invoice'], max_amount_msat: null }) };
    const result = verifyPaymentAuthorization({ ...s.authorization, grant: raised }, s.payment);
    expect(result.ok ? 'accepted' : result.error.code).toBe('UNAUTHORIZED');
  });

  it('refuses the invoice of the signed request paid by a deposit of another owner', () => {
    const s = scenario('nip44_v2');
    const result = verifyPaymentAuthorization(s.authorization, { ...s.payment, depositOwner: getPublicKey(generateSecretKey()) });
    expect(result.ok ? 'accepted' : result.error.code).toBe('UNAUTHORIZED');
  });
});

describe('authorizationSchema', () => {
  const s = scenario('nip44_v2');
  const wire = JSON.parse(JSON.stringify(s.authorization));

  it.each<[string, Record<string, unknown>]>([
    ['an unknown encryption', { ...wire, encryption: 'nip44' }],
    ['a key in uppercase hex', { ...wire, key: wire.key.toUpperCase() }],
    ['a key of 31 bytes', { ...wire, key: wire.key.slice(2) }],
    ['an extra field', { ...wire, share: { amount_msat: '1' } }],
    ['a request that is not an event', { ...wire, request: { kind: 23194 } }],
    ['a missing grant', { request: wire.request, encryption: wire.encryption, key: wire.key }],
  ])('refuses %s', (_, body) => {
    expect(authorizationSchema.safeParse(body).success).toBe(false);
  });
});

describe('NIP-47 request schemas shared with vaults', () => {
  it('a request body without params gets empty params', () => {
    expect(nwcRequestBodySchema.parse({ method: 'get_info' })).toEqual({ method: 'get_info', params: {} });
  });

  it.each<[string, unknown]>([
    ['no method', { params: {} }],
    ['an empty method', { method: '', params: {} }],
    ['a method of 65 characters', { method: 'a'.repeat(65), params: {} }],
    ['params that are a list', { method: 'pay_invoice', params: ['lnbc1'] }],
  ])('a request body with %s is refused', (_, body) => {
    expect(nwcRequestBodySchema.safeParse(body).success).toBe(false);
  });

  it('pay_invoice params parse the amount to bigint msat', () => {
    expect(payInvoiceParamsSchema.parse({ invoice: 'lnbc1', amount: 21000 })).toEqual({ invoice: 'lnbc1', amount: 21_000n, metadata: undefined });
  });

  it.each<[string, unknown]>([
    ['no invoice', { amount: 1 }],
    ['an empty invoice', { invoice: '' }],
    ['a fractional amount', { invoice: 'lnbc1', amount: 1.5 }],
    ['an amount as a string', { invoice: 'lnbc1', amount: '21000' }],
    ['an amount past 2^53', { invoice: 'lnbc1', amount: 2 ** 53 }],
  ])('pay_invoice params with %s are refused', (_, params) => {
    expect(payInvoiceParamsSchema.safeParse(params).success).toBe(false);
  });

  it('keeps metadata up to 4096 characters and drops larger metadata (NIP-47)', () => {
    const small = { comment: 'x'.repeat(4000) };
    const large = { comment: 'x'.repeat(4100) };
    expect(payInvoiceParamsSchema.parse({ invoice: 'lnbc1', metadata: small }).metadata).toEqual(small);
    expect(payInvoiceParamsSchema.parse({ invoice: 'lnbc1', metadata: large }).metadata).toBeUndefined();
  });
});
