import fc from 'fast-check';
import { bytesToHex } from '@noble/hashes/utils.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { generateSecretKey } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import { decodeInvoice, decodePayableInvoice, type BitcoinNetwork, type DecodedInvoice } from '../../src/protocol/invoice.ts';
import type { VaultErrorCode } from '../../src/protocol/result.ts';
import { makeInvoice, readVector } from '../vectors/generate.ts';

interface InvoiceVectors {
  valid: {
    name: string;
    invoice: string;
    expected: {
      network: BitcoinNetwork;
      amount_msat: string | null;
      payment_hash: string;
      payment_secret: string | null;
      payee_node_key: string;
      description: string | null;
      description_hash: string | null;
      created_at: number;
      expires_at: number;
      basic_mpp: boolean;
    };
  }[];
  invalid: { name: string; input: string; expected: { ok: false; code: VaultErrorCode } }[];
}

const vectors = readVector<InvoiceVectors>('invoices.json');

function decoded(invoice: string): DecodedInvoice {
  const result = decodeInvoice(invoice);
  if (!result.ok) throw new Error(`refused: ${result.error.message}`);
  return result.value;
}

describe('decodeInvoice on the invoice vectors', () => {
  it.each(vectors.valid)('decodes the $name', ({ invoice, expected }) => {
    expect(decoded(invoice)).toEqual({
      paymentRequest: invoice,
      network: expected.network,
      amountMsat: expected.amount_msat === null ? null : BigInt(expected.amount_msat),
      paymentHash: expected.payment_hash,
      paymentSecret: expected.payment_secret,
      payeeNodeKey: expected.payee_node_key,
      description: expected.description,
      descriptionHash: expected.description_hash,
      createdAt: expected.created_at,
      expiresAt: expected.expires_at,
      basicMpp: expected.basic_mpp,
    });
  });

  it.each(vectors.invalid)('refuses $name with BAD_REQUEST', ({ input, expected }) => {
    const result = decodeInvoice(input);
    expect(result.ok ? 'accepted' : result.error.code).toBe(expected.code);
  });

  it('the vectors cover mainnet, testnet, signet and regtest', () => {
    expect(new Set(vectors.valid.map((v) => v.expected.network))).toEqual(new Set(['mainnet', 'testnet', 'signet', 'regtest']));
  });
});

describe('decodeInvoice forms', () => {
  const first = vectors.valid[0];
  if (!first) throw new Error('no invoice vectors');

  it.each([
    ['uppercase', first.invoice.toUpperCase()],
    ['a "lightning:" prefix', `lightning:${first.invoice}`],
    ['an uppercase "LIGHTNING:" prefix and invoice', `LIGHTNING:${first.invoice.toUpperCase()}`],
    ['surrounding whitespace', `  ${first.invoice}\n`],
  ])('accepts %s and returns the bare lowercase invoice', (_, input) => {
    expect(decoded(input)).toEqual(decoded(first.invoice));
    expect(decoded(input).paymentRequest).toBe(first.invoice);
  });

  it('recovers the payee node key of a fresh node from the signature', () => {
    const node = generateSecretKey();
    const invoice = makeInvoice({ network: 'regtest', nodeSecret: node, amountMsat: 1_000n, paymentHash: bytesToHex(generateSecretKey()), timestamp: 1_767_225_600 });
    expect(decoded(invoice).payeeNodeKey).toBe(bytesToHex(secp256k1.getPublicKey(node, true)));
  });

  it('never throws, whatever the input', () => {
    const bech32 = fc.constantFrom(...'qpzry9x8gf2tvdw0s3jn54khce6mua7l1');
    const input = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.tuple(fc.constantFrom('ln', 'lnbc', 'lnbcrt', 'lntb', 'lntbs', 'LNBC', 'lightning:lnbc'), fc.string({ unit: bech32, maxLength: 400 })).map(([p, s]) => p + s),
      // The real invoice with one character replaced or cut.
      fc.tuple(fc.nat({ max: first.invoice.length - 1 }), bech32).map(([i, c]) => first.invoice.slice(0, i) + c + first.invoice.slice(i + 1)),
      fc.nat({ max: first.invoice.length }).map((n) => first.invoice.slice(0, n)),
    );
    fc.assert(
      fc.property(input, (text) => {
        const result = decodeInvoice(text);
        if (!result.ok) expect(result.error.code).toBe('BAD_REQUEST');
      }),
      { numRuns: 120 },
    );
  });
});

describe('decodePayableInvoice', () => {
  const networks: BitcoinNetwork[] = ['mainnet', 'testnet', 'signet', 'regtest'];
  const byNetwork = new Map(vectors.valid.map((v) => [v.expected.network, v] as const));

  it.each(networks)('accepts a fresh %s invoice on its own network', (network) => {
    const v = byNetwork.get(network)!;
    const result = decodePayableInvoice(v.invoice, network, v.expected.created_at + 1);
    expect(result.ok && result.value.network).toBe(network);
  });

  it.each(networks.flatMap((invoiceNetwork) => networks.filter((n) => n !== invoiceNetwork).map((wallet) => [invoiceNetwork, wallet] as const)))(
    'refuses a %s invoice on a %s wallet with WRONG_NETWORK',
    (invoiceNetwork, wallet) => {
      const v = byNetwork.get(invoiceNetwork)!;
      const result = decodePayableInvoice(v.invoice, wallet, v.expected.created_at + 1);
      expect(result.ok ? 'accepted' : result.error.code).toBe('WRONG_NETWORK');
    },
  );

  it('accepts an invoice one second before it expires', () => {
    const v = byNetwork.get('regtest')!;
    expect(decodePayableInvoice(v.invoice, 'regtest', v.expected.expires_at - 1).ok).toBe(true);
  });

  it('refuses an invoice at its expiry with INVOICE_EXPIRED', () => {
    const v = byNetwork.get('regtest')!;
    const result = decodePayableInvoice(v.invoice, 'regtest', v.expected.expires_at);
    expect(result.ok ? 'accepted' : result.error.code).toBe('INVOICE_EXPIRED');
  });

  it('refuses an invoice long expired with INVOICE_EXPIRED', () => {
    const v = byNetwork.get('regtest')!;
    const result = decodePayableInvoice(v.invoice, 'regtest', v.expected.expires_at + 86_400);
    expect(result.ok ? 'accepted' : result.error.code).toBe('INVOICE_EXPIRED');
  });

  it('refuses garbage with BAD_REQUEST before judging network or expiry', () => {
    const result = decodePayableInvoice('lnbcrt1notaninvoice', 'regtest', 0);
    expect(result.ok ? 'accepted' : result.error.code).toBe('BAD_REQUEST');
  });
});
