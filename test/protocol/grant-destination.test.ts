/**
 * A grant's destination (docs/sweep.md): parsed from the grant's content, absent from older
 * grants (which stay valid and sign byte for byte as before), and enforced by
 * `grantAllowsTarget`, the one rule bridge and vaults both run.
 */
import { generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import { buildInvoice, newPaymentSecrets, nodePubkeyOf } from '../../src/devnet/lightning-network.ts';
import { parseSignedPayment, type PaymentTarget } from '../../src/protocol/authorization.ts';
import { grantAllowsTarget, grantTerms, parseGrant, signGrant, signedPaymentTarget, type GrantDestination } from '../../src/protocol/grant.ts';
import { KIND } from '../../src/protocol/kinds.ts';
import { signEvent } from '../../src/protocol/nostr-event.ts';

const user = generateSecretKey();
const connection = getPublicKey(generateSecretKey());
const nodeSecret = generateSecretKey();
const NODE = nodePubkeyOf(nodeSecret);
const OTHER_NODE = nodePubkeyOf(generateSecretKey());
const ADDRESS = 'me@pay.example.com';

/** A grant event with `content` as written (for content a signer would not produce). */
function rawGrant(content: Record<string, unknown>): Event {
  return signEvent(
    {
      kind: KIND.grant,
      created_at: Math.floor(Date.now() / 1000),
      tags: [
        ['d', connection],
        ['p', connection],
      ],
      content: JSON.stringify({
        v: 1,
        connection,
        name: '',
        methods: ['pay_keysend'],
        budget: null,
        max_amount_msat: null,
        fee_limit: { base_msat: '10000', ppm: 10000 },
        expires_at: null,
        vault_operators: null,
        revoked: false,
        ...content,
      }),
    },
    user,
  );
}

function parsedDestination(event: Event): GrantDestination | undefined {
  const parsed = parseGrant(event);
  if (!parsed.ok) throw new Error(`refused: ${parsed.error.message}`);
  return parsed.value.destination;
}

/** An invoice of the destination node itself: still not a keysend. */
function invoiceOfNode(): string {
  const { paymentHash, paymentSecret } = newPaymentSecrets();
  return buildInvoice({ nodeSecret, amountMsat: 5_000_000n, paymentHash, paymentSecret, description: 'x', descriptionHash: null, timestamp: Math.floor(Date.now() / 1000), expirySeconds: 3600 });
}

const keysend = (destination: string): PaymentTarget => ({ type: 'keysend', destination, preimage: null, tlvRecords: [] });
const address = (a: string): PaymentTarget => ({ type: 'lightning_address', address: a });

describe('the destination field of a grant', () => {
  it('round trips a keysend node and a lightning address through signGrant and parseGrant', () => {
    const toNode = signGrant(grantTerms(connection, ['pay_keysend'], { destination: { type: 'keysend', node: NODE } }), user);
    expect(parsedDestination(toNode)).toEqual({ type: 'keysend', node: NODE });
    expect(JSON.parse(toNode.content).destination).toEqual({ type: 'keysend', node: NODE });
    const toAddress = signGrant(grantTerms(connection, ['pay'], { destination: { type: 'lightning_address', address: ADDRESS } }), user);
    expect(parsedDestination(toAddress)).toEqual({ type: 'lightning_address', address: ADDRESS });
  });

  it('keeps grants without one valid, and signGrant writes no destination key for them', () => {
    const old = signGrant(grantTerms(connection, ['pay_invoice']), user);
    expect(Object.keys(JSON.parse(old.content))).not.toContain('destination');
    const parsed = parseGrant(old);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect('destination' in parsed.value).toBe(false);
    // A grant written by hand with "destination": null means none as well.
    expect(parsedDestination(rawGrant({ destination: null }))).toBeUndefined();
    expect(parsedDestination(rawGrant({}))).toBeUndefined();
  });

  it('lowercases a lightning address', () => {
    expect(parsedDestination(rawGrant({ methods: ['pay'], destination: { type: 'lightning_address', address: 'Me@Pay.Example.COM' } }))).toEqual({
      type: 'lightning_address',
      address: ADDRESS,
    });
  });

  it.each([
    ['an x-only key as node', { type: 'keysend', node: connection }],
    ['an uppercase node key', { type: 'keysend', node: NODE.toUpperCase() }],
    ['an address without a name', { type: 'lightning_address', address: '@pay.example.com' }],
    ['an address with a path', { type: 'lightning_address', address: 'me@pay.example.com/x' }],
    ['an unknown type', { type: 'onchain', address: 'bcrt1qxyz' }],
    ['an extra field', { type: 'keysend', node: NODE, amount: 1 }],
    ['a string', 'me@pay.example.com'],
  ])('refuses %s with BAD_REQUEST', (_name, destination) => {
    const parsed = parseGrant(rawGrant({ destination }));
    expect(parsed.ok ? 'accepted' : parsed.error.code).toBe('BAD_REQUEST');
  });

  it('refuses a destination together with rebalance (transfers pay vault invoices)', () => {
    const parsed = parseGrant(rawGrant({ methods: ['pay_keysend', 'rebalance'], destination: { type: 'keysend', node: NODE } }));
    expect(parsed.ok ? 'accepted' : parsed.error.message).toMatch(/cannot allow rebalancing/);
  });
});

describe('grantAllowsTarget', () => {
  const invoice = invoiceOfNode();
  const toNode = { destination: { type: 'keysend', node: NODE } as const };
  const toAddress = { destination: { type: 'lightning_address', address: ADDRESS } as const };

  it.each<[string, { destination?: GrantDestination }, PaymentTarget, boolean]>([
    ['no destination: an invoice', {}, { type: 'invoice', invoice }, true],
    ['no destination: any keysend', {}, keysend(OTHER_NODE), true],
    ['no destination: any address', {}, address('someone@else.example'), true],
    ['node: a keysend to it', toNode, keysend(NODE), true],
    ['node: a keysend to it with TLV records and a preimage', toNode, { type: 'keysend', destination: NODE, preimage: 'aa'.repeat(32), tlvRecords: [{ type: 7629169n, value: '00' }] }, true],
    ['node: a keysend to another node', toNode, keysend(OTHER_NODE), false],
    ['node: an invoice of that very node', toNode, { type: 'invoice', invoice }, false],
    ['node: a lightning address', toNode, address(ADDRESS), false],
    ['address: that address', toAddress, address(ADDRESS), true],
    ['address: that address in other case', toAddress, address('ME@pay.example.com'), true],
    ['address: another name at the host', toAddress, address('you@pay.example.com'), false],
    ['address: the name at another host', toAddress, address('me@pay.example.org'), false],
    ['address: the host with a port', toAddress, address('me@pay.example.com:8443'), false],
    ['address: not an address at all', toAddress, address('me'), false],
    ['address: a keysend', toAddress, keysend(NODE), false],
    ['address: an invoice', toAddress, { type: 'invoice', invoice }, false],
  ])('%s', (_name, grant, target, allowed) => {
    const result = grantAllowsTarget(grant, target);
    expect(result.ok ? 'allowed' : result.error.code).toBe(allowed ? 'allowed' : 'RESTRICTED');
  });

  it('refuses what an app signed for an invoice under a keysend destination grant, and allows its keysend', () => {
    const grant = parseGrant(signGrant(grantTerms(connection, ['pay_invoice', 'pay_keysend', 'pay'], { destination: { type: 'keysend', node: NODE } }), user));
    if (!grant.ok) throw new Error(grant.error.message);
    const signedTarget = (method: string, params: Record<string, unknown>) => {
      const signed = parseSignedPayment({ method, params });
      if (!signed.ok) throw new Error(signed.error.message);
      return signedPaymentTarget(signed.value);
    };
    const refusals = [
      grantAllowsTarget(grant.value, signedTarget('pay_invoice', { invoice })),
      grantAllowsTarget(grant.value, signedTarget('pay', { payment: invoice })),
      grantAllowsTarget(grant.value, signedTarget('pay', { payment: `bitcoin:?lightning=${invoice}` })),
      grantAllowsTarget(grant.value, signedTarget('pay', { payment: ADDRESS, amount: 1000 })),
      grantAllowsTarget(grant.value, signedTarget('pay_keysend', { amount: 1000, pubkey: OTHER_NODE })),
    ];
    for (const refused of refusals) expect(refused).toMatchObject({ ok: false, error: { code: 'RESTRICTED' } });
    expect(grantAllowsTarget(grant.value, signedTarget('pay_keysend', { amount: 1000, pubkey: NODE })).ok).toBe(true);
  });
});
