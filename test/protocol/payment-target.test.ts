/**
 * What a paying request names as its payee: NWC-321 `pay` instructions (BIP-321, BOLT 11,
 * lightning addresses), keysend params and TLV records, and `parseSignedPayment`, which the
 * bridge and vaults both run on the app's plaintext.
 */
import { describe, expect, it } from 'vitest';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey } from 'nostr-tools/pure';
import { parseSignedPayment } from '../../src/protocol/authorization.ts';
import { lightningAddressUrl } from '../../src/protocol/lnurl.ts';
import {
  canonicalTlvRecords,
  payKeysendParamsSchema,
  payParamsSchema,
  sameTlvRecords,
  tlvRecordsSchema,
  tlvRecordsToWire,
} from '../../src/protocol/nwc-request.ts';
import { btcAmountToMsat, isLoopbackHost, parseLightningAddress, parsePaymentInstruction } from '../../src/protocol/payment-target.ts';
import { makeInvoice, readVector } from '../vectors/generate.ts';

interface InstructionVectors {
  cases: {
    name: string;
    input: string;
    expected:
      | { ok: true; type: 'bolt11'; form: string; payment_hash: string; invoice_amount_msat: string | null; uri_amount_msat: string | null }
      | { ok: true; type: 'lightning_address'; address: string; lnurlp_url: string }
      | { ok: false; code: string; nwc_code: string };
  }[];
}

const vectors = readVector<InstructionVectors>('payment-instructions.json');

describe('parsePaymentInstruction on the payment-instruction vectors', () => {
  it.each(vectors.cases)('$name', ({ input, expected }) => {
    const result = parsePaymentInstruction(input);
    if (!expected.ok) {
      expect(result.ok ? 'accepted' : { code: result.error.code, nwc_code: result.error.nwcCode }).toEqual({ code: expected.code, nwc_code: expected.nwc_code });
      return;
    }
    if (!result.ok) throw new Error(`refused: ${result.error.message}`);
    const value = result.value;
    if (expected.type === 'bolt11') {
      if (value.type !== 'bolt11') throw new Error(`parsed as ${value.type}`);
      expect({
        form: value.form,
        payment_hash: value.invoice.paymentHash,
        invoice_amount_msat: value.invoice.amountMsat?.toString() ?? null,
        uri_amount_msat: value.uriAmountMsat?.toString() ?? null,
      }).toEqual({ form: expected.form, payment_hash: expected.payment_hash, invoice_amount_msat: expected.invoice_amount_msat, uri_amount_msat: expected.uri_amount_msat });
    } else {
      if (value.type !== 'lightning_address') throw new Error(`parsed as ${value.type}`);
      expect(value.address.address).toBe(expected.address);
      expect(lightningAddressUrl(value.address)).toBe(expected.lnurlp_url);
    }
  });
});

describe('BIP-321 amounts', () => {
  it.each<[string, bigint | null]>([
    ['1', 100_000_000_000n],
    ['50.00', 5_000_000_000_000n],
    ['0.00000001', 1_000n],
    ['0.00000000001', 1n],
    ['.5', 50_000_000_000n],
    ['20.3', 2_030_000_000_000n],
    ['0.000000000001', null],
    ['1,5', null],
    ['', null],
    ['-1', null],
    ['1e3', null],
  ])('%s BTC is %s msat', (amount, msat) => {
    expect(btcAmountToMsat(amount)).toBe(msat);
  });
});

describe('lightning addresses', () => {
  it.each(['localhost', '127.0.0.1', '127.1.2.3', '[::1]', '::1'])('%s is loopback (plain http allowed)', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });

  it.each(['example.com', '10.0.0.1', '128.0.0.1', '127.0.0.1.example.com', '[::2]'])('%s is not loopback (https only)', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });

  it('keeps the port of a devnet host and uses http there', () => {
    const parsed = parseLightningAddress('payee@127.0.0.1:7450');
    if (!parsed.ok) throw new Error(parsed.error.message);
    expect(parsed.value).toEqual({ name: 'payee', host: '127.0.0.1:7450', address: 'payee@127.0.0.1:7450' });
    expect(lightningAddressUrl(parsed.value)).toBe('http://127.0.0.1:7450/.well-known/lnurlp/payee');
  });

  it('uses https for a public host even with a port', () => {
    const parsed = parseLightningAddress('bob@pay.example.com:8443');
    if (!parsed.ok) throw new Error(parsed.error.message);
    expect(lightningAddressUrl(parsed.value)).toBe('https://pay.example.com:8443/.well-known/lnurlp/bob');
  });
});

describe('TLV records', () => {
  it('parse number and decimal-string types to bigint, keep values lowercase and sort by type', () => {
    const records = tlvRecordsSchema.parse([
      { type: '18446744073709551615', value: 'FF' },
      { type: 7629169, value: 'abCD' },
    ]);
    expect(records).toEqual([
      { type: 7629169n, value: 'abcd' },
      { type: 18446744073709551615n, value: 'ff' },
    ]);
    expect(tlvRecordsToWire(records)).toEqual([
      { type: '7629169', value: 'abcd' },
      { type: '18446744073709551615', value: 'ff' },
    ]);
  });

  it.each<[string, unknown]>([
    ['a type below 2^16', [{ type: 65_535, value: '00' }]],
    ['a type of 2^64', [{ type: '18446744073709551616', value: '00' }]],
    ['a type past 2^53 as a JSON number', [{ type: 2 ** 53, value: '00' }]],
    ['a fractional type', [{ type: 65_536.5, value: '00' }]],
    ['a duplicated type', [{ type: 65_536, value: '00' }, { type: '65536', value: '01' }]],
    ['an odd-length value', [{ type: 65_536, value: 'abc' }]],
    ['a value that is not hex', [{ type: 65_536, value: 'zz' }]],
    ['a value of 1301 bytes', [{ type: 65_536, value: '00'.repeat(1301) }]],
    ['65 records', Array.from({ length: 65 }, (_, i) => ({ type: 65_536 + i, value: '' }))],
  ])('refuse %s', (_, records) => {
    expect(tlvRecordsSchema.safeParse(records).success).toBe(false);
  });

  it('compare as sets of records', () => {
    const a = [
      { type: 65_537n, value: 'aa' },
      { type: 65_536n, value: 'bb' },
    ];
    expect(sameTlvRecords(a, canonicalTlvRecords(a))).toBe(true);
    expect(sameTlvRecords(a, [{ type: 65_536n, value: 'bb' }])).toBe(false);
    expect(sameTlvRecords(a, [{ type: 65_537n, value: 'aa' }, { type: 65_536n, value: 'bc' }])).toBe(false);
    expect(sameTlvRecords([], [])).toBe(true);
  });
});

describe('NIP-47 paying params', () => {
  const node = '02' + 'ab'.repeat(32);

  it('pay_keysend needs amount and pubkey; preimage, TLV records and max_fee are optional', () => {
    expect(payKeysendParamsSchema.parse({ amount: 1000, pubkey: node, max_fee: 10 })).toMatchObject({ amount: 1000n, pubkey: node, max_fee: 10n });
    expect(payKeysendParamsSchema.safeParse({ pubkey: node }).success).toBe(false);
    expect(payKeysendParamsSchema.safeParse({ amount: 1000, pubkey: node.slice(2) }).success).toBe(false);
    expect(payKeysendParamsSchema.safeParse({ amount: 1000, pubkey: node, preimage: 'ab' }).success).toBe(false);
  });

  it('pay needs a payment; a payer note is at most 2000 characters', () => {
    expect(payParamsSchema.safeParse({ amount: 1 }).success).toBe(false);
    expect(payParamsSchema.safeParse({ payment: 'x', payer_note: 'n'.repeat(2001) }).success).toBe(false);
    expect(payParamsSchema.parse({ payment: 'x', amount: 5, payer_note: 'hi', max_fee: 0 })).toMatchObject({ payment: 'x', amount: 5n, payer_note: 'hi', max_fee: 0n });
  });
});

describe('parseSignedPayment', () => {
  const payee = generateSecretKey();
  const invoiceOf = (amountMsat?: bigint) =>
    makeInvoice({
      network: 'regtest',
      nodeSecret: payee,
      ...(amountMsat === undefined ? {} : { amountMsat }),
      paymentHash: bytesToHex(generateSecretKey()),
      paymentSecret: bytesToHex(generateSecretKey()),
      timestamp: Math.floor(Date.now() / 1000),
    });

  it('reads the amount of a BOLT 11 payment from the invoice, params.amount or the BIP-321 amount', () => {
    const fixed = invoiceOf(21_000n);
    const amountless = invoiceOf();
    const read = (method: string, params: Record<string, unknown>) => {
      const r = parseSignedPayment({ method, params });
      return r.ok ? r.value.amountMsat : r.error.code;
    };
    expect(read('pay_invoice', { invoice: fixed })).toBe(21_000n);
    expect(read('pay_invoice', { invoice: amountless, amount: 5 })).toBe(5n);
    expect(read('pay', { payment: `bitcoin:?lightning=${amountless}&amount=0.00000000007` })).toBe(7n);
    expect(read('pay', { payment: `bitcoin:?lightning=${amountless}&amount=0.00000000007`, amount: 7 })).toBe(7n);
    expect(read('pay', { payment: `bitcoin:?lightning=${amountless}&amount=0.00000000007`, amount: 8 })).toBe('BAD_REQUEST');
    expect(read('pay', { payment: amountless })).toBe('BAD_REQUEST');
    expect(read('pay', { payment: 'a@b.example', amount: 0 })).toBe('BAD_REQUEST');
    expect(read('pay_keysend', { pubkey: '02' + 'cd'.repeat(32), amount: 9 })).toBe(9n);
    expect(read('get_balance', {})).toBe('RESTRICTED');
  });

  it('passes on the payer note of a lightning address and the app max_fee', () => {
    const r = parseSignedPayment({ method: 'pay', params: { payment: 'Alice@Example.com', amount: 1000, payer_note: 'hello', max_fee: 3 } });
    expect(r).toMatchObject({ ok: true, value: { target: 'lightning_address', address: { address: 'alice@example.com' }, payerNote: 'hello', maxFeeMsat: 3n } });
    const empty = parseSignedPayment({ method: 'pay', params: { payment: 'alice@example.com', amount: 1000, payer_note: '' } });
    expect(empty.ok && empty.value.target === 'lightning_address' ? empty.value.payerNote : 'refused').toBeNull();
  });
});
