/**
 * A hostile bridge: payment requests sent straight to a vault with forged or stretched
 * authorizations. Every one must be refused by the vault itself, with the documented code,
 * recorded, and without any balance change.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateSecretKey, type Event } from 'nostr-tools/pure';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { buildAuthorization, type Authorization } from '../../src/protocol/authorization.ts';
import { bytesToHex } from '../../src/protocol/hex.ts';
import { signDepositLock } from '../../src/protocol/user-statements.ts';
import { sharedKey } from '../../src/protocol/nwc-encryption.ts';
import type { VaultErrorCode } from '../../src/protocol/result.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import type { KeysendPayParams } from '../../src/vault-client/vault-client.ts';
import {
  keysendParams,
  newKeypair,
  newParty,
  pay321Params,
  payAuthorization,
  requestAuthorization,
  signPayRequest,
  signTestGrant,
  type NwcParty,
} from '../helpers/authorization.ts';
import { eventually, fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';

const SAT = 1000n;
const FUNDS = 100_000n * SAT;
const AMOUNT = 10_000n * SAT;
/** The default grant fee limit for AMOUNT: max(10 sat, 1 %). */
const MAX_FEE = 100_000n;

describe('a hostile bridge cannot spend beyond what the user signed', () => {
  let devnet: Devnet;
  let vault: HttpVaultClient;
  let party: NwcParty;
  let depositId: string;
  let invoice: string;
  let refusedBefore: number;

  const now = () => Math.floor(Date.now() / 1000);
  const tryPay = (authorization: Authorization, options: { invoice?: string; amountMsat?: bigint; maxFeeMsat?: bigint; key?: string } = {}) =>
    vault.pay(depositId, {
      invoice: options.invoice ?? invoice,
      amountMsat: options.amountMsat ?? AMOUNT,
      maxFeeMsat: options.maxFeeMsat ?? MAX_FEE,
      idempotencyKey: options.key ?? bytesToHex(generateSecretKey()),
      authorization,
    });

  /** The vault refuses with `code`, records the refusal, records no payment and keeps the balance. */
  const expectRefused = async (attempt: () => Promise<unknown>, code: VaultErrorCode) => {
    const before = await vault.depositStatus(depositId);
    const metricsBefore = await vault.metrics();
    const error = await attempt().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code });
    const after = await vault.depositStatus(depositId);
    expect(after.balance_msat).toBe(before.balance_msat);
    expect(after.reserved_msat).toBe(before.reserved_msat);
    expect(after.balance_update).toEqual(before.balance_update);
    const metrics = await vault.metrics();
    expect(metrics.authorizations_refused).toBe(refusedBefore + 1);
    // No payment was recorded: none settled or failed, and nothing is reserved for a pending one.
    expect([metrics.payments_settled, metrics.payments_failed]).toEqual([metricsBefore.payments_settled, metricsBefore.payments_failed]);
  };

  beforeAll(async () => {
    devnet = await startTestDevnet({ operators: 2, operatorPorts: [0, 0], paymentWaitMs: 300 });
    vault = new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: generateSecretKey() });
  });

  afterAll(async () => {
    await devnet.stop();
  });

  beforeEach(async () => {
    party = newParty();
    depositId = await fundedDeposit(devnet, vault, party.user, FUNDS);
    invoice = devnet.createPayeeInvoice(AMOUNT).invoice;
    refusedBefore = (await vault.metrics()).authorizations_refused;
  });

  it('accepts the honest authorization (the control case)', async () => {
    const payment = await tryPay(payAuthorization(party, signTestGrant(party), invoice));
    expect(payment.state).toBe('settled');
    expect((await vault.depositStatus(depositId)).balance_msat).toBe(FUNDS - AMOUNT - payment.fee_msat);
  });

  it('refuses a grant signed by another key than the deposit owner', async () => {
    const grant = signTestGrant(party, {}, undefined, newKeypair());
    await expectRefused(() => tryPay(payAuthorization(party, grant, invoice)), 'UNAUTHORIZED');
  });

  it('refuses a request signed by a key other than the granted connection', async () => {
    const auth = payAuthorization(party, signTestGrant(party), invoice, { signer: newKeypair() });
    await expectRefused(() => tryPay(auth), 'UNAUTHORIZED');
  });

  it.each([
    ['content', (e: Event): Event => ({ ...e, content: e.content.slice(0, -4) + 'AAAA' })],
    ['id', (e: Event): Event => ({ ...e, id: bytesToHex(generateSecretKey()) })],
    ['sig', (e: Event): Event => ({ ...e, sig: e.sig.slice(0, -2) + (e.sig.endsWith('00') ? '01' : '00') })],
    ['created_at', (e: Event): Event => ({ ...e, created_at: e.created_at - 1 })],
  ])('refuses a request whose %s was tampered with', async (_field, tamper) => {
    const auth = payAuthorization(party, signTestGrant(party), invoice);
    await expectRefused(() => tryPay({ ...auth, request: tamper(auth.request) }), 'UNAUTHORIZED');
  });

  it('refuses a conversation key that does not decrypt the signed request', async () => {
    const { request } = signPayRequest(party, invoice);
    const wrongKey = sharedKey('nip44_v2', party.connection.secretKey, newKeypair().pubkey);
    await expectRefused(() => tryPay(buildAuthorization(signTestGrant(party), request, 'nip44_v2', wrongKey)), 'UNAUTHORIZED');
  });

  it('refuses paying an invoice other than the one in the signed plaintext', async () => {
    const auth = payAuthorization(party, signTestGrant(party), invoice);
    const other = devnet.createPayeeInvoice(AMOUNT).invoice;
    await expectRefused(() => tryPay(auth, { invoice: other }), 'UNAUTHORIZED');
  });

  it('refuses an amount other than the signed amount of an amountless invoice', async () => {
    const amountless = devnet.createPayeeInvoice(null).invoice;
    const auth = payAuthorization(party, signTestGrant(party), amountless, { amountMsat: 1000n * SAT });
    await expectRefused(() => tryPay(auth, { invoice: amountless, amountMsat: 50_000n * SAT, maxFeeMsat: 500_000n }), 'UNAUTHORIZED');
  });

  it('refuses a method the grant does not include', async () => {
    const grant = signTestGrant(party, { methods: ['get_balance', 'make_invoice'] });
    await expectRefused(() => tryPay(payAuthorization(party, grant, invoice)), 'RESTRICTED');
  });

  it('refuses a signed request for a method that does not pay', async () => {
    const auth = payAuthorization(party, signTestGrant(party, { methods: ['pay_invoice', 'make_invoice'] }), invoice, { method: 'make_invoice' });
    await expectRefused(() => tryPay(auth), 'RESTRICTED');
  });

  it('refuses a revoked grant', async () => {
    const revoked = signTestGrant(party, { revoked: true });
    await expectRefused(() => tryPay(payAuthorization(party, revoked, invoice)), 'UNAUTHORIZED');
  });

  it('refuses an older grant once the user pushed a revocation', async () => {
    const t = now();
    const grant = signTestGrant(party, {}, t - 60);
    await vault.pushGrant(depositId, signTestGrant(party, { revoked: true }, t - 5));
    await expectRefused(() => tryPay(payAuthorization(party, grant, invoice)), 'STALE_GRANT');
  });

  it('refuses an expired grant', async () => {
    const grant = signTestGrant(party, { expiresAt: now() - 1 });
    await expectRefused(() => tryPay(payAuthorization(party, grant, invoice)), 'EXPIRED');
  });

  it('refuses a request older than 300 s', async () => {
    const auth = payAuthorization(party, signTestGrant(party), invoice, { createdAt: now() - 301 });
    await expectRefused(() => tryPay(auth), 'EXPIRED');
  });

  it('refuses a request past its expiration tag', async () => {
    const auth = payAuthorization(party, signTestGrant(party), invoice, { expiration: now() - 1 });
    await expectRefused(() => tryPay(auth), 'EXPIRED');
  });

  it('refuses a spent request id under a new idempotency key, and pays once', async () => {
    const auth = payAuthorization(party, signTestGrant(party), invoice);
    const first = await tryPay(auth, { key: 'first' });
    expect(first.state).toBe('settled');
    refusedBefore = (await vault.metrics()).authorizations_refused;
    await expectRefused(() => tryPay(auth, { key: 'second' }), 'REPLAYED');
    expect(await vault.paymentStatus(depositId, 'second')).toBeNull();
    expect((await vault.depositStatus(depositId)).balance_msat).toBe(FUNDS - AMOUNT - first.fee_msat);
  });

  it('refuses a payment above the per-payment maximum', async () => {
    const grant = signTestGrant(party, { maxAmountMsat: AMOUNT - 1n });
    await expectRefused(() => tryPay(payAuthorization(party, grant, invoice)), 'QUOTA_EXCEEDED');
  });

  it('refuses a payment above the budget, counting pending payments with their fee limit', async () => {
    const op = devnet.operators[0];
    if (!op) throw new Error('no operator');
    const grant = signTestGrant(party, { budget: { amountMsat: 2n * AMOUNT + MAX_FEE, renewal: 'daily' } });
    op.faults.holdPayments = true;
    try {
      const held = await tryPay(payAuthorization(party, grant, invoice), { key: 'held' });
      expect(held.state).toBe('pending');
      expect((await vault.depositStatus(depositId)).reserved_msat).toBe(AMOUNT + MAX_FEE);
      refusedBefore = (await vault.metrics()).authorizations_refused;
      // Amount alone fits the budget next to the pending amount; with both fee limits it does not.
      const second = devnet.createPayeeInvoice(AMOUNT).invoice;
      await expectRefused(() => tryPay(payAuthorization(party, grant, second), { invoice: second }), 'QUOTA_EXCEEDED');
    } finally {
      op.faults.holdPayments = false;
    }
    await eventually(async () => (await vault.paymentStatus(depositId, 'held'))?.state === 'settled', 'held payment settles');
  });

  it('refuses a fee limit above the grant fee limit for the amount', async () => {
    await expectRefused(() => tryPay(payAuthorization(party, signTestGrant(party), invoice), { maxFeeMsat: MAX_FEE + 1n }), 'FEE_LIMIT');
  });

  it('refuses an operator the grant does not allow', async () => {
    const other = devnet.operators[1]?.nodePubkey ?? '';
    const grant = signTestGrant(party, { vaultOperators: [other] });
    await expectRefused(() => tryPay(payAuthorization(party, grant, invoice)), 'RESTRICTED');
  });

  it('refuses a payment larger than the available balance', async () => {
    const big = 99_950n * SAT;
    const bigInvoice = devnet.createPayeeInvoice(big).invoice;
    await expectRefused(() => tryPay(payAuthorization(party, signTestGrant(party), bigInvoice), { invoice: bigInvoice, amountMsat: big, maxFeeMsat: 999_500n }), 'INSUFFICIENT_BALANCE');
  });

  it('accepts a NIP-04 authorization with the right shared secret and refuses a wrong one', async () => {
    const grant = signTestGrant(party);
    const { request } = signPayRequest(party, invoice, { encryption: 'nip04' });
    const wrong = sharedKey('nip04', party.connection.secretKey, newKeypair().pubkey);
    await expectRefused(() => tryPay(buildAuthorization(grant, request, 'nip04', wrong)), 'UNAUTHORIZED');
    const right = sharedKey('nip04', party.connection.secretKey, party.service.pubkey);
    expect((await tryPay(buildAuthorization(grant, request, 'nip04', right))).state).toBe('settled');
  });

  describe('keysend, NWC-321 pay and the app fee cap', () => {
    const otherNode = () => '02' + bytesToHex(sha256(generateSecretKey()));
    /** Any payment body, with a fresh idempotency key and the defaults of this file. */
    type Body = { authorization: Authorization; amountMsat?: bigint; maxFeeMsat?: bigint } & (
      | { invoice: string }
      | { keysend: KeysendPayParams['keysend'] }
      | { lightningAddress: string }
    );
    const send = (body: Body) => vault.pay(depositId, { amountMsat: AMOUNT, maxFeeMsat: MAX_FEE, idempotencyKey: bytesToHex(generateSecretKey()), ...body });
    const keysendAuth = (p: Partial<Parameters<typeof keysendParams>[0]> = {}) =>
      requestAuthorization(party, signTestGrant(party), 'pay_keysend', keysendParams({ amountMsat: AMOUNT, pubkey: devnet.payeeNodePubkey, ...p }));

    it('accepts the honest keysend (the control case)', async () => {
      const payment = await send({ keysend: { destination: devnet.payeeNodePubkey }, authorization: keysendAuth() });
      expect(payment.state).toBe('settled');
      expect(devnet.payeeKeysend(payment.payment_hash)).toMatchObject({ amountMsat: AMOUNT });
    });

    it('refuses a keysend to another pubkey than the app signed', async () => {
      await expectRefused(() => send({ keysend: { destination: otherNode() }, authorization: keysendAuth() }), 'UNAUTHORIZED');
    });

    it('refuses a keysend of another amount than the app signed', async () => {
      await expectRefused(() => send({ keysend: { destination: devnet.payeeNodePubkey }, amountMsat: AMOUNT + 1n, authorization: keysendAuth() }), 'UNAUTHORIZED');
    });

    it('refuses a keysend preimage other than the one the app signed, or one the app left to the vault', async () => {
      const signed = bytesToHex(generateSecretKey());
      const bridgeKnows = bytesToHex(generateSecretKey());
      await expectRefused(() => send({ keysend: { destination: devnet.payeeNodePubkey, preimage: bridgeKnows }, authorization: keysendAuth({ preimage: signed }) }), 'UNAUTHORIZED');
      refusedBefore += 1;
      await expectRefused(() => send({ keysend: { destination: devnet.payeeNodePubkey, preimage: bridgeKnows }, authorization: keysendAuth() }), 'UNAUTHORIZED');
    });

    it('refuses a keysend carrying TLV records the app did not sign', async () => {
      const signed = [{ type: 7_629_169, value: 'aa' }];
      await expectRefused(
        () => send({ keysend: { destination: devnet.payeeNodePubkey, tlvRecords: [{ type: 7_629_169n, value: 'aa' }, { type: 696_969n, value: 'bb' }] }, authorization: keysendAuth({ tlvRecords: signed }) }),
        'UNAUTHORIZED',
      );
    });

    it('refuses paying an invoice with a signed keysend, and a keysend with a signed pay_invoice', async () => {
      await expectRefused(() => send({ invoice, authorization: keysendAuth() }), 'UNAUTHORIZED');
      refusedBefore += 1;
      await expectRefused(() => send({ keysend: { destination: devnet.payeeNodePubkey }, authorization: payAuthorization(party, signTestGrant(party), invoice) }), 'UNAUTHORIZED');
    });

    it('refuses paying another invoice than the one in the signed BIP-321 URI', async () => {
      const auth = requestAuthorization(party, signTestGrant(party), 'pay', pay321Params({ payment: `bitcoin:?lightning=${invoice}` }));
      const other = devnet.createPayeeInvoice(AMOUNT);
      await expectRefused(() => send({ invoice: other.invoice, authorization: auth }), 'UNAUTHORIZED');
      expect(devnet.payeeInvoiceStatus(other.paymentHash)?.state).toBe('pending');
      // The very invoice of the URI is paid.
      expect((await send({ invoice, authorization: auth })).state).toBe('settled');
    });

    it.each([
      ['pay_invoice', (amount: bigint) => requestAuthorization(party, signTestGrant(party), 'pay_invoice', { invoice, max_fee: Number(amount) })],
      ['pay', (amount: bigint) => requestAuthorization(party, signTestGrant(party), 'pay', pay321Params({ payment: invoice, maxFeeMsat: amount }))],
    ])('refuses a fee limit above the max_fee the app signed (%s), though within the grant', async (_, auth) => {
      const cap = 20_000n;
      await expectRefused(() => send({ invoice, maxFeeMsat: cap + 1n, authorization: auth(cap) }), 'FEE_LIMIT');
      // At the app's cap it pays (vault-a charges 11 000 msat for this amount).
      expect((await send({ invoice, maxFeeMsat: cap, authorization: auth(cap) })).state).toBe('settled');
    });

    it('refuses a keysend fee limit above the app max_fee', async () => {
      await expectRefused(() => send({ keysend: { destination: devnet.payeeNodePubkey }, maxFeeMsat: 15_001n, authorization: keysendAuth({ maxFeeMsat: 15_000n }) }), 'FEE_LIMIT');
    });

    it('refuses an invoice supplied by the bridge for a signed lightning address: the vault resolves it itself', async () => {
      const address = devnet.lightningAddress;
      const auth = requestAuthorization(party, signTestGrant(party), 'pay', pay321Params({ payment: address, amountMsat: AMOUNT }));
      // A valid invoice of the very payee, for the very amount: still not what the app signed.
      const substitute = devnet.createPayeeInvoice(AMOUNT);
      await expectRefused(() => send({ invoice: substitute.invoice, authorization: auth }), 'UNAUTHORIZED');
      expect(devnet.payeeInvoiceStatus(substitute.paymentHash)?.state).toBe('pending');
      refusedBefore += 1;
      // Another address than the signed one is refused too.
      await expectRefused(() => send({ lightningAddress: `mallory@${new URL(devnet.controlUrl).host}`, authorization: auth }), 'UNAUTHORIZED');
      refusedBefore += 1;
      await expectRefused(() => send({ lightningAddress: address, amountMsat: AMOUNT + 1n, authorization: auth }), 'UNAUTHORIZED');
      // The signed address, resolved by the vault, pays.
      const paid = await send({ lightningAddress: address, authorization: auth });
      expect(paid).toMatchObject({ state: 'settled', kind: 'lnurl' });
      expect(paid.payment_hash).not.toBe(substitute.paymentHash);
    });

    it('refuses a lightning address for a request the app signed as pay_invoice', async () => {
      await expectRefused(() => send({ lightningAddress: devnet.lightningAddress, authorization: payAuthorization(party, signTestGrant(party), invoice) }), 'UNAUTHORIZED');
    });

    it('refuses a keysend while the owner has locked', async () => {
      const now = Math.floor(Date.now() / 1000);
      await vault.lock(depositId, signDepositLock(party.user.secretKey, true, now));
      await expectRefused(() => send({ keysend: { destination: devnet.payeeNodePubkey }, authorization: keysendAuth() }), 'LOCKED');
    });
  });

  it('refuses an authorization claiming another encryption than the request carries', async () => {
    const { request, key } = signPayRequest(party, invoice);
    await expectRefused(() => tryPay(buildAuthorization(signTestGrant(party), request, 'nip04', key)), 'UNAUTHORIZED');
  });
});
