/** The simulated Lightning network's rules, the control server, and the operators' fault switches. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { generateSecretKey } from 'nostr-tools/pure';
import type { Devnet, DevnetOperator } from '../../src/devnet/devnet.ts';
import { EXTERNAL_PAYER_POLICY } from '../../src/devnet/external-nodes.ts';
import { buildInvoice, newPaymentSecrets, routingFee } from '../../src/devnet/lightning-network.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { DEFAULT_FEE_LIMIT, feeLimitFor } from '../../src/protocol/amounts.ts';
import { bytesToHex, hexToBytes } from '../../src/protocol/hex.ts';
import { decodeInvoice } from '../../src/protocol/invoice.ts';
import type { VaultErrorCode } from '../../src/protocol/result.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import { VAULT_ERROR_STATUS, type VaultEvent } from '../../src/protocol/vault-api.ts';
import { verifyBalanceUpdate, verifyVaultProof } from '../../src/protocol/vault-proof.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import type { EventSubscription } from '../../src/vault-client/vault-client.ts';
import { keysendParams, newParty, payAuthorization, requestAuthorization, signTestGrant, type NwcParty } from '../helpers/authorization.ts';
import { eventually, fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';

const SAT = 1000n;

describe('simulated Lightning network and control server', () => {
  let devnet: Devnet;
  let vault: HttpVaultClient;

  beforeAll(async () => {
    devnet = await startTestDevnet({ operators: 1, operatorPorts: [0] });
    vault = new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: generateSecretKey() });
  });
  afterAll(async () => {
    await devnet.stop();
  });

  const control = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> => {
    const response = await fetch(devnet.controlUrl + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  const made = z.object({ invoice: z.string(), payment_hash: z.string() });
  const paid = z.object({ payment_hash: z.string(), preimage: z.string(), fee_msat: z.string() });
  const invoiceState = z.object({ state: z.string(), amount_msat: z.string().nullable(), preimage: z.string().optional() });

  it('describes itself on GET /api/devnet', async () => {
    const { status, body } = await control('GET', '/api/devnet');
    expect(status).toBe(200);
    expect(body).toEqual({
      relay_url: devnet.relayUrl,
      network_url: devnet.controlUrl,
      operators: devnet.operators.map((o) => ({ name: o.name, url: o.url, node_pubkey: o.nodePubkey })),
      auditors: devnet.auditors,
      payee_node_pubkey: devnet.payeeNodePubkey,
      lightning_address: `payee@${new URL(devnet.controlUrl).host}`,
    });
    expect(devnet.lightningAddress).toBe(`payee@${new URL(devnet.controlUrl).host}`);
    expect(devnet.relaySubscriptionCounts()).toEqual([]);
    expect(body).toEqual(JSON.parse(JSON.stringify(devnet.describe())));
  });

  it('makes payee invoices and pays vault invoices over HTTP, charging the payer its routing fee', async () => {
    const created = await control('POST', '/network/invoice', { amount_msat: '5000', description: 'tea' });
    expect(created.status).toBe(201);
    const hash = made.parse(created.body).payment_hash;
    expect(await control('GET', `/network/invoices/${hash}`)).toEqual({ status: 200, body: { state: 'pending', amount_msat: '5000' } });

    const party = newParty();
    const deposit = await vault.openDeposit(signDepositOpen(party.user.secretKey));
    const amount = 21_000n * SAT;
    const invoice = await vault.createInvoice(deposit.deposit_id, { amountMsat: amount });
    const response = await control('POST', '/network/pay', { invoice: invoice.invoice });
    expect(response.status).toBe(200);
    const result = paid.parse(response.body);
    expect(result).toMatchObject({ payment_hash: invoice.payment_hash, fee_msat: routingFee(EXTERNAL_PAYER_POLICY, amount).toString() });
    expect(result.fee_msat).toBe('2200');
    expect((await vault.invoiceStatus(deposit.deposit_id, invoice.payment_hash)).preimage).toBe(result.preimage);

    const again = await control('POST', '/network/pay', { invoice: invoice.invoice });
    expect(again).toEqual({ status: 402, body: { error: { code: 'PAYMENT_FAILED', message: 'invoice already paid' } } });
  });

  it('pays an amountless payee invoice with the amount given, and reports what arrived', async () => {
    const created = made.parse((await control('POST', '/network/invoice', {})).body);
    expect((await control('POST', '/network/pay', { invoice: created.invoice })).status).toBe(402);
    expect((await control('POST', '/network/pay', { invoice: created.invoice, amount_msat: '7777' })).status).toBe(200);
    const status = invoiceState.parse((await control('GET', `/network/invoices/${created.payment_hash}`)).body);
    expect(status).toMatchObject({ state: 'settled', amount_msat: '7777' });
    expect(status.preimage).toMatch(/^[0-9a-f]{64}$/);
  });

  it('answers bad control requests with the error body', async () => {
    expect(await control('POST', '/network/pay', { invoice: 'lnbcrt1garbage' })).toMatchObject({ status: 402, body: { error: { code: 'PAYMENT_FAILED' } } });
    expect(await control('POST', '/network/pay', { amount_msat: '1' })).toMatchObject({ status: 400, body: { error: { code: 'BAD_REQUEST' } } });
    expect(await control('POST', '/network/invoice', { amount_msat: '0' })).toMatchObject({ status: 400, body: { error: { code: 'BAD_REQUEST' } } });
    expect(await control('GET', `/network/invoices/${'00'.repeat(32)}`)).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
    expect(await control('GET', '/network/nothing')).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
  });

  it('accepts exactly the invoice amount, and fails unknown nodes, expired invoices', async () => {
    const payee = devnet.createPayeeInvoice(5_000n);
    expect(await devnet.payInvoice(payee.invoice, 5_001n)).toMatchObject({ state: 'failed', reason: 'amount does not match the invoice' });
    expect(devnet.payeeInvoiceStatus(payee.paymentHash)?.state).toBe('pending');

    const secrets = newPaymentSecrets();
    const stranger = buildInvoice({
      nodeSecret: generateSecretKey(),
      amountMsat: 1_000n,
      paymentHash: secrets.paymentHash,
      paymentSecret: secrets.paymentSecret,
      description: '',
      descriptionHash: null,
      timestamp: Math.floor(Date.now() / 1000),
      expirySeconds: 600,
    });
    expect(await devnet.payInvoice(stranger)).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^no route/) });

    const party = newParty();
    const deposit = await vault.openDeposit(signDepositOpen(party.user.secretKey));
    const shortLived = await vault.createInvoice(deposit.deposit_id, { amountMsat: 1_000n * SAT, expirySeconds: 1 });
    await eventually(() => Date.now() / 1000 >= shortLived.expires_at, 'expiry', 3_000);
    expect(await devnet.payInvoice(shortLived.invoice)).toMatchObject({ state: 'failed', reason: 'invoice expired', code: 'INVOICE_EXPIRED' });
    expect((await vault.depositStatus(deposit.deposit_id)).balance_msat).toBe(0n);
  });

  it('mines blocks on POST /network/blocks and reports keysends the payee received on GET /network/keysends/:hash', async () => {
    const height = devnet.blockHeight();
    expect(await control('POST', '/network/blocks', { count: 3 })).toEqual({ status: 200, body: { block_height: height + 3 } });
    expect(await control('POST', '/network/blocks')).toEqual({ status: 200, body: { block_height: height + 4 } });
    expect(await control('POST', '/network/blocks', { count: 0 })).toMatchObject({ status: 400, body: { error: { code: 'BAD_REQUEST' } } });
    expect((await vault.info()).block_height).toBe(height + 4);

    const party = newParty();
    const depositId = await fundedDeposit(devnet, vault, party.user, 10_000n * SAT);
    const preimage = bytesToHex(generateSecretKey());
    const paid = await vault.pay(depositId, {
      keysend: { destination: devnet.payeeNodePubkey, preimage, tlvRecords: [{ type: 696_969n, value: '0102' }] },
      amountMsat: 1_000n * SAT,
      maxFeeMsat: 10_000n,
      idempotencyKey: 'control-keysend',
      authorization: requestAuthorization(party, signTestGrant(party), 'pay_keysend', keysendParams({ amountMsat: 1_000n * SAT, pubkey: devnet.payeeNodePubkey, preimage, tlvRecords: [{ type: 696_969, value: '0102' }] })),
    });
    expect(paid.state).toBe('settled');
    expect(await control('GET', `/network/keysends/${paid.payment_hash}`)).toEqual({
      status: 200,
      body: { payment_hash: paid.payment_hash, preimage, amount_msat: '1000000', tlv_records: [{ type: '696969', value: '0102' }], received_at: expect.any(Number) },
    });
    expect(await control('GET', `/network/keysends/${'00'.repeat(32)}`)).toMatchObject({ status: 404 });
    // The same keysend (same preimage) again is refused by the payee.
    const again = await vault.pay(depositId, {
      keysend: { destination: devnet.payeeNodePubkey, preimage },
      amountMsat: 1_000n * SAT,
      maxFeeMsat: 10_000n,
      idempotencyKey: 'control-keysend-again',
      authorization: requestAuthorization(party, signTestGrant(party), 'pay_keysend', keysendParams({ amountMsat: 1_000n * SAT, pubkey: devnet.payeeNodePubkey, preimage })),
    });
    expect(again).toMatchObject({ state: 'failed', failure_code: 'ALREADY_PAID' });
  });

  it('serves the payee lightning address (LUD-16) for any name, with invoices committing to the metadata', async () => {
    const host = new URL(devnet.controlUrl).host;
    const payRequest = await control('GET', '/.well-known/lnurlp/alice');
    expect(payRequest).toMatchObject({
      status: 200,
      body: { tag: 'payRequest', callback: `http://${host}/lnurlp/alice/callback`, minSendable: 1000, maxSendable: 100_000_000_000, commentAllowed: 255 },
    });
    const { metadata } = z.object({ metadata: z.string() }).parse(payRequest.body);
    expect(JSON.parse(metadata)).toEqual([
      ['text/plain', 'Payment to alice on the deposit-bridge devnet'],
      ['text/identifier', `alice@${host}`],
    ]);
    const answer = await control('GET', '/lnurlp/alice/callback?amount=21000&comment=hi');
    const { pr } = z.object({ pr: z.string(), routes: z.array(z.unknown()) }).parse(answer.body);
    const decoded = decodeInvoice(pr);
    if (!decoded.ok) throw new Error(decoded.error.message);
    expect(decoded.value).toMatchObject({ amountMsat: 21_000n, payeeNodeKey: devnet.payeeNodePubkey, descriptionHash: bytesToHex(sha256(new TextEncoder().encode(metadata))) });
    expect(devnet.payeeInvoiceStatus(decoded.value.paymentHash)).toMatchObject({ state: 'pending', comment: 'hi' });
    expect(await control('GET', '/lnurlp/alice/callback?amount=999')).toMatchObject({ status: 400, body: { status: 'ERROR' } });
    expect(await control('GET', '/lnurlp/alice/callback')).toMatchObject({ status: 400, body: { status: 'ERROR' } });
    expect(await control('GET', `/lnurlp/alice/callback?amount=1000&comment=${'x'.repeat(256)}`)).toMatchObject({ status: 400, body: { status: 'ERROR', reason: 'comment too long' } });
    expect(await control('GET', '/.well-known/lnurlp/Bad%20Name')).toMatchObject({ status: 400, body: { status: 'ERROR' } });
  });
});

describe('operator fault switches', () => {
  let devnet: Devnet;
  let op: DevnetOperator;
  let vault: HttpVaultClient;
  let party: NwcParty;
  let depositId: string;
  const events: VaultEvent[] = [];
  let subscription: EventSubscription;

  const pay = (invoice: string, amount: bigint, key: string, maxFeeMsat = feeLimitFor(amount, DEFAULT_FEE_LIMIT)) =>
    vault.pay(depositId, { invoice, amountMsat: amount, maxFeeMsat, idempotencyKey: key, authorization: payAuthorization(party, signTestGrant(party), invoice) });

  beforeAll(async () => {
    devnet = await startTestDevnet({ operators: 3, paymentWaitMs: 200 });
    const c = devnet.operators[2];
    if (!c) throw new Error('no operator');
    op = c;
    vault = new HttpVaultClient({ url: op.url, secretKey: generateSecretKey(), timeoutMs: 2_000 });
    party = newParty();
    depositId = await fundedDeposit(devnet, vault, party.user, 100_000n * SAT);
    subscription = vault.subscribeEvents(0, async (e) => {
      events.push(e);
    });
  });
  afterAll(async () => {
    subscription.close();
    await devnet.stop();
  });

  it('fails a payment whose route fee is above its fee limit, charging nothing', async () => {
    const amount = 10_000n * SAT;
    const payee = devnet.createPayeeInvoice(amount);
    // vault-c charges 5000 ppm = 50 000 msat here; the payment allows 20 000.
    const payment = await pay(payee.invoice, amount, 'fee-too-low', 20_000n);
    expect(payment).toMatchObject({ state: 'failed', fee_msat: 0n, preimage: null });
    expect(payment.failure_reason).toMatch(/route fee 50000 msat exceeds the fee limit of 20000 msat/);
    expect(await vault.depositStatus(depositId)).toMatchObject({ balance_msat: 100_000n * SAT, reserved_msat: 0n });
    expect(devnet.payeeInvoiceStatus(payee.paymentHash)?.state).toBe('pending');
  });

  it('holds payments pending while holdPayments is on, then releases them', async () => {
    const amount = 1_000n * SAT;
    const payee = devnet.createPayeeInvoice(amount);
    op.faults.holdPayments = true;
    const held = await pay(payee.invoice, amount, 'held');
    expect(held).toMatchObject({ state: 'pending', balance_update: null, preimage: null });
    expect((await vault.depositStatus(depositId)).reserved_msat).toBe(amount + 10_000n);
    op.releasePayments();
    await eventually(() => events.some((e) => e.type === 'payment_settled' && e.idempotency_key === 'held'), 'payment_settled event');
    expect(await vault.paymentStatus(depositId, 'held')).toMatchObject({ state: 'settled', fee_msat: 5_000n });
    // Still on: the next payment is held too, until the switch goes off.
    const second = devnet.createPayeeInvoice(amount);
    expect((await pay(second.invoice, amount, 'held-2')).state).toBe('pending');
    op.faults.holdPayments = false;
    await eventually(async () => (await vault.paymentStatus(depositId, 'held-2'))?.state === 'settled', 'release when switched off');
    expect((await vault.depositStatus(depositId)).reserved_msat).toBe(0n);
  });

  it('fails payments with the given reason under failPayments, releasing the reservation', async () => {
    const before = await vault.depositStatus(depositId);
    const payee = devnet.createPayeeInvoice(1_000n * SAT);
    op.faults.failPayments = 'temporary channel failure';
    try {
      const failed = await pay(payee.invoice, 1_000n * SAT, 'failing');
      expect(failed).toMatchObject({ state: 'failed', failure_reason: 'temporary channel failure', fee_msat: 0n });
      expect(failed.balance_update).toEqual(before.balance_update);
    } finally {
      op.faults.failPayments = null;
    }
    expect(await vault.depositStatus(depositId)).toEqual(before);
    await eventually(() => events.some((e) => e.type === 'payment_failed' && e.idempotency_key === 'failing'), 'payment_failed event');
  });

  it('takes a payment without crediting it under skipCredit (the selective-payment attack)', async () => {
    const before = await vault.depositStatus(depositId);
    const invoice = await vault.createInvoice(depositId, { amountMsat: 5_000n * SAT });
    op.faults.skipCredit = true;
    try {
      const paid = await devnet.payInvoice(invoice.invoice);
      expect(paid.state).toBe('settled');
    } finally {
      op.faults.skipCredit = false;
    }
    // What a bridge sees: settled, with the preimage, but no balance update and no credit.
    const status = await vault.invoiceStatus(depositId, invoice.payment_hash);
    expect(status).toMatchObject({ state: 'settled', balance_update: null });
    expect(status.settled_at).not.toBeNull();
    expect(bytesToHex(sha256(hexToBytes(status.preimage ?? '')))).toBe(invoice.payment_hash);
    expect(await vault.depositStatus(depositId)).toEqual(before);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(events.some((e) => e.type === 'invoice_settled' && e.payment_hash === invoice.payment_hash)).toBe(false);
  });

  it('charges a fee above the limit under overchargeFeeMsat, and signs the overcharged balance', async () => {
    const before = await vault.depositStatus(depositId);
    const amount = 1_000n * SAT;
    const payee = devnet.createPayeeInvoice(amount);
    // vault-c's real route fee here is 5 000 msat; the payment allows 10 000.
    const realFee = routingFee(op.routingPolicy, amount);
    expect(realFee).toBe(5_000n);
    op.faults.overchargeFeeMsat = 20_000n;
    try {
      // The bridge's client refuses to take the answer as a normal payment.
      await expect(pay(payee.invoice, amount, 'overcharged')).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/fee within its limit/) });
    } finally {
      op.faults.overchargeFeeMsat = 0n;
    }
    expect(devnet.payeeInvoiceStatus(payee.paymentHash)?.state).toBe('settled');
    const payment = await vault.paymentStatus(depositId, 'overcharged');
    expect(payment).toMatchObject({ state: 'settled', amount_msat: amount, max_fee_msat: 10_000n, fee_msat: realFee + 20_000n });
    const charged = before.balance_msat - amount - realFee - 20_000n;
    const update = payment?.balance_update;
    if (!update) throw new Error('a settled payment carries a balance update');
    expect(update.balance_msat).toBe(charged);
    expect(verifyBalanceUpdate(update, op.nodePubkey, op.peerNodePubkey).ok).toBe(true);
    expect(await vault.depositStatus(depositId)).toMatchObject({ balance_msat: charged, reserved_msat: 0n, balance_update: update });
    await eventually(
      () => events.some((e) => e.type === 'payment_settled' && e.idempotency_key === 'overcharged' && e.fee_msat === realFee + 20_000n && e.balance_update.balance_msat === charged),
      'payment_settled event with the overcharged fee',
    );
  });

  it('cuts the overcharge to what the deposit holds, so no balance goes below zero', async () => {
    const poor = newParty();
    const amount = 1_000n * SAT;
    const poorDeposit = await fundedDeposit(devnet, vault, poor.user, amount + 10_000n + 2_000n);
    const payee = devnet.createPayeeInvoice(amount);
    op.faults.overchargeFeeMsat = 1_000_000n;
    try {
      await expect(
        vault.pay(poorDeposit, { invoice: payee.invoice, amountMsat: amount, maxFeeMsat: 10_000n, idempotencyKey: 'cut', authorization: payAuthorization(poor, signTestGrant(poor), payee.invoice) }),
      ).rejects.toMatchObject({ code: 'INTERNAL' });
    } finally {
      op.faults.overchargeFeeMsat = 0n;
    }
    expect(await vault.paymentStatus(poorDeposit, 'cut')).toMatchObject({ state: 'settled', fee_msat: 12_000n });
    expect((await vault.depositStatus(poorDeposit)).balance_msat).toBe(0n);
  });

  it('reports a false balance under misreportBalanceMsat, signed by both peers for the newest seq', async () => {
    const before = await vault.depositStatus(depositId);
    const metricsBefore = await vault.metrics();
    if (before.balance_update === null) throw new Error('the deposit has a balance update by now');
    op.faults.misreportBalanceMsat = 7_000n;
    let lying;
    try {
      lying = await vault.depositStatus(depositId);
    } finally {
      op.faults.misreportBalanceMsat = 0n;
    }
    expect(lying).toMatchObject({ balance_msat: before.balance_msat + 7_000n, reserved_msat: before.reserved_msat });
    const update = lying.balance_update;
    if (update === null) throw new Error('no balance update');
    // Both peers signed the false figure; it equivocates with the real update of the same seq.
    expect(verifyBalanceUpdate(update, op.nodePubkey, op.peerNodePubkey).ok).toBe(true);
    expect(update).toMatchObject({ balance_msat: before.balance_msat + 7_000n, seq: before.balance_update.seq, created_at: before.balance_update.created_at });
    expect(update.balance_msat).not.toBe(before.balance_update.balance_msat);
    // The books are untouched: metrics, and the status once the switch is off.
    expect(await vault.metrics()).toEqual(metricsBefore);
    expect(await vault.depositStatus(depositId)).toEqual(before);

    op.faults.misreportBalanceMsat = -(before.balance_msat + 1n);
    try {
      expect((await vault.depositStatus(depositId)).balance_msat).toBe(0n);
    } finally {
      op.faults.misreportBalanceMsat = 0n;
    }
    // A deposit with no balance update yet gets a signed false one at seq 0.
    const empty = await vault.openDeposit(signDepositOpen(newParty().user.secretKey));
    op.faults.misreportBalanceMsat = 3_000n;
    try {
      const status = await vault.depositStatus(empty.deposit_id);
      expect(status.balance_update).toMatchObject({ balance_msat: 3_000n, seq: 0, created_at: empty.created_at });
      if (status.balance_update === null) throw new Error('no balance update');
      expect(verifyBalanceUpdate(status.balance_update, op.nodePubkey, op.peerNodePubkey).ok).toBe(true);
    } finally {
      op.faults.misreportBalanceMsat = 0n;
    }
    expect((await vault.depositStatus(empty.deposit_id)).balance_update).toBeNull();
  });

  it('hands out invoices whose vault proof does not verify under invalidProof, yet still payable', async () => {
    const amount = 2_000n * SAT;
    op.faults.invalidProof = true;
    let invoice;
    try {
      invoice = await vault.createInvoice(depositId, { amountMsat: amount });
    } finally {
      op.faults.invalidProof = false;
    }
    const decoded = decodeInvoice(invoice.invoice);
    if (!decoded.ok) throw new Error(decoded.error.message);
    const expected = {
      depositId,
      operatorNodePubkey: op.nodePubkey,
      peerNodePubkey: op.peerNodePubkey,
      paymentHash: invoice.payment_hash,
      amountMsat: amount,
      invoicePayeeNodeKey: decoded.value.payeeNodeKey,
    };
    // Every field is right (the invoice is signed by N_A) except the peer signature.
    expect(invoice.proof).toMatchObject({ deposit_id: depositId, operator_node_pubkey: op.nodePubkey, peer_node_pubkey: op.peerNodePubkey, amount_msat: amount });
    expect(verifyVaultProof(invoice.proof, expected)).toEqual({ ok: false, error: { code: 'UNAUTHORIZED', message: 'vault proof is not signed by the channel peer' } });
    // The lookup carries the same bad proof; an invoice made after the switch is off is sound.
    expect((await vault.invoiceStatus(depositId, invoice.payment_hash)).proof).toEqual(invoice.proof);
    const sound = await vault.createInvoice(depositId, { amountMsat: amount });
    const soundDecoded = decodeInvoice(sound.invoice);
    if (!soundDecoded.ok) throw new Error(soundDecoded.error.message);
    expect(verifyVaultProof(sound.proof, { ...expected, paymentHash: sound.payment_hash, invoicePayeeNodeKey: soundDecoded.value.payeeNodeKey }).ok).toBe(true);
    expect((await devnet.payInvoice(invoice.invoice)).state).toBe('settled');
  });

  it.each<[VaultErrorCode, boolean]>([
    ['INSUFFICIENT_BALANCE', false],
    ['LOCKED', false],
    ['RESTRICTED', false],
    ['UNAVAILABLE', false],
    ['INTERNAL', true],
  ])('refuses every payment with %s and its documented status under refusePayments', async (code, outcomeUnknown) => {
    const before = await vault.depositStatus(depositId);
    const metricsBefore = await vault.metrics();
    const amount = 1_000n * SAT;
    const payee = devnet.createPayeeInvoice(amount);
    const key = `refused-${code}`;
    op.faults.refusePayments = code;
    try {
      await expect(pay(payee.invoice, amount, key)).rejects.toMatchObject({ code, status: VAULT_ERROR_STATUS[code], outcomeUnknown });
    } finally {
      op.faults.refusePayments = null;
    }
    // Nothing recorded, reserved or paid, and not counted as an authorization refusal.
    expect(await vault.paymentStatus(depositId, key)).toBeNull();
    expect(await vault.depositStatus(depositId)).toEqual(before);
    expect(await vault.metrics()).toEqual(metricsBefore);
    expect(devnet.payeeInvoiceStatus(payee.paymentHash)?.state).toBe('pending');
    // With the switch off, the same key pays.
    expect((await pay(payee.invoice, amount, key)).state).toBe('settled');
  });

  it('reports a reserve below the deposits under reservePpm', async () => {
    op.faults.reservePpm = 250_000;
    try {
      const metrics = await vault.metrics();
      expect(metrics.reserve_msat).toBe(metrics.total_balance_msat / 4n);
    } finally {
      op.faults.reservePpm = 1_000_000;
    }
  });

  it('delays every response by delayMs: past the client timeout a GET is UNAVAILABLE, a POST also outcome-unknown', async () => {
    const impatient = new HttpVaultClient({ url: op.url, secretKey: generateSecretKey(), timeoutMs: 100 });
    op.faults.delayMs = 300;
    try {
      await expect(impatient.info()).rejects.toMatchObject({ code: 'UNAVAILABLE', outcomeUnknown: false });
      await expect(impatient.openDeposit(signDepositOpen(newParty().user.secretKey))).rejects.toMatchObject({ code: 'UNAVAILABLE', outcomeUnknown: true });
      const started = Date.now();
      await vault.info();
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    } finally {
      op.faults.delayMs = 0;
    }
  });

  it('goes offline under down: the API answers 503 and its invoices find no route', async () => {
    const invoice = await vault.createInvoice(depositId, { amountMsat: 1_000n * SAT });
    op.faults.down = true;
    try {
      await expect(vault.info()).rejects.toMatchObject({ code: 'UNAVAILABLE', status: 503, outcomeUnknown: false });
      expect(await devnet.payInvoice(invoice.invoice)).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^no route/) });
    } finally {
      op.faults.down = false;
    }
    expect((await devnet.payInvoice(invoice.invoice)).state).toBe('settled');
  });
});
