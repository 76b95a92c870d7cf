/**
 * The v1 adapter (docs/vault-api-v1.md) against a simulated v1 operator over real HTTP: the
 * signed wire format, the operator's window and replay checks, the refusal without the user's
 * signer, bigint amounts past 2^53, answers that fail their checks, and what v1 does not offer.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '../../src/protocol/hex.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import { verifyVaultProof } from '../../src/protocol/vault-proof.ts';
import { V1_UNSIGNED_PROOF, V1DepositServiceClient } from '../../src/vault-client/v1-deposit-service.ts';
import { canonicalJson, v1SignerFromSecretKey, v1SigningMessage, type V1Signer } from '../../src/vault-client/v1-signing.ts';
import { VaultError } from '../../src/vault-client/vault-client.ts';
import { newParty, payAuthorization, signTestGrant } from '../helpers/authorization.ts';
import { startV1DepositServer, type V1DepositServer } from '../helpers/v1-deposit-server.ts';

let server: V1DepositServer;

beforeAll(async () => {
  server = await startV1DepositServer();
});
afterAll(async () => {
  await server.stop();
});
afterEach(() => {
  server.tamper = null;
  server.holdPayments = false;
  server.clockOffsetSeconds = 0;
});

function newUser() {
  const secret = generateSecretKey();
  return { secret, nostrPubkey: getPublicKey(secret), signer: v1SignerFromSecretKey(secret), open: signDepositOpen(secret) };
}
type User = ReturnType<typeof newUser>;

const clientFor = (signers: V1Signer[], options: { now?: () => number; nonce?: () => string; nodePubkey?: string } = {}) =>
  new V1DepositServiceClient({ url: server.url, signers, ...options });

/** A user with an open deposit, credited with `amount` through an invoice a payer outside pays. */
async function funded(amount: bigint): Promise<{ user: User; client: V1DepositServiceClient; depositId: string }> {
  const user = newUser();
  const client = clientFor([user.signer]);
  const { deposit_id: depositId } = await client.openDeposit(user.open);
  if (amount > 0n) {
    const invoice = await client.createInvoice(depositId, {});
    server.credit(invoice.payment_hash, amount);
  }
  return { user, client, depositId };
}

function payParams(invoice: string, amountMsat: bigint, maxFeeMsat: bigint, idempotencyKey: string) {
  const party = newParty();
  return { invoice, amountMsat, maxFeeMsat, idempotencyKey, authorization: payAuthorization(party, signTestGrant(party), invoice) };
}

async function refusal(call: Promise<unknown> | (() => unknown)): Promise<VaultError> {
  try {
    await (typeof call === 'function' ? call() : call);
  } catch (error) {
    if (error instanceof VaultError) return error;
    throw error;
  }
  throw new Error('expected a VaultError, the call succeeded');
}

/** Bodies of signed requests the operator received (GetInfo is unsigned). */
const signedReceived = () => server.received.filter((r) => r.method !== 'GetInfo');

describe('v1 request signing', () => {
  it('signs SHA-256 of "<Method>\\n<timestamp>\\n<sorted canonical JSON>" with a compact low-S ECDSA signature', async () => {
    const signer = v1SignerFromSecretKey(hexToBytes('01'.repeat(32)));
    const fields = { pubkey: signer.pubkey, operator: '02' + '11'.repeat(32), nonce: '00'.repeat(16), memo: 'café "x"\n', amountMsat: '9007199254740993', expirySeconds: 600 };
    const message = v1SigningMessage('CreateInvoice', 1_700_000_000, fields);
    expect(message).toBe(
      'CreateInvoice\n1700000000\n' +
        `{"amountMsat":"9007199254740993","expirySeconds":600,"memo":"café \\"x\\"\\n","nonce":"${'00'.repeat(16)}","operator":"02${'11'.repeat(32)}","pubkey":"${signer.pubkey}"}`,
    );
    const digest = sha256(new TextEncoder().encode(message));
    const signature = await signer.sign(digest);
    expect(signature).toHaveLength(64);
    expect(secp256k1.Signature.fromBytes(signature, 'compact').hasHighS()).toBe(false);
    expect(secp256k1.verify(signature, digest, hexToBytes(signer.pubkey), { prehash: false })).toBe(true);
    expect(canonicalJson({ b: [2, { d: 'x', c: 'y' }], a: '1' })).toBe('{"a":"1","b":[2,{"c":"y","d":"x"}]}');
    expect(() => canonicalJson({ fee: 1.5 })).toThrow(/integers only/);
  });
});

describe('V1DepositServiceClient against a simulated v1 operator', () => {
  it('round-trips all six calls, each signed by the deposit key over the documented message and naming the operator', async () => {
    const alice = newUser();
    const bob = newUser();
    const client = clientFor([alice.signer, bob.signer]);
    const before = server.received.length;

    const deposit = await client.openDeposit(alice.open);
    expect(deposit).toMatchObject({ deposit_id: alice.signer.pubkey, owner: alice.nostrPubkey, vault_id: server.vaultId });
    expect(deposit.address).toBe(`${server.vaultId}@${deposit.multisig_pubkey}`);

    const invoice = await client.createInvoice(deposit.deposit_id, { amountMsat: 50_000_000n, description: 'top up' });
    expect(invoice).toMatchObject({ amount_msat: 50_000_000n, state: 'pending', description: 'top up', preimage: null, balance_update: null, hold: false });
    expect(invoice.proof).toMatchObject({ deposit_id: deposit.deposit_id, operator_node_pubkey: server.nodePubkey, amount_msat: 50_000_000n, peer_sig: V1_UNSIGNED_PROOF });
    // No v1 proof verifies: nothing downstream can take a v1 invoice for a co-signed one.
    const proofCheck = verifyVaultProof(invoice.proof, {
      depositId: deposit.deposit_id,
      operatorNodePubkey: invoice.proof.operator_node_pubkey,
      peerNodePubkey: invoice.proof.peer_node_pubkey,
      paymentHash: invoice.payment_hash,
      amountMsat: 50_000_000n,
      invoicePayeeNodeKey: server.nodePubkey,
    });
    expect(proofCheck).toMatchObject({ ok: false, error: { message: expect.stringMatching(/not signed by the channel peer/) } });
    server.credit(invoice.payment_hash);

    expect(await client.depositStatus(deposit.deposit_id)).toEqual({
      deposit_id: deposit.deposit_id,
      owner: alice.nostrPubkey,
      balance_msat: 50_000_000n,
      reserved_msat: 0n,
      locked: false,
      balance_update: null,
    });

    const payee = server.payee(10_000_000n);
    const paid = await client.pay(deposit.deposit_id, payParams(payee.paymentRequest, 10_000_000n, 100_000n, 'pay-1'));
    expect(paid).toMatchObject({ idempotency_key: 'pay-1', state: 'settled', amount_msat: 10_000_000n, max_fee_msat: 100_000n, fee_msat: 11_000n, payment_hash: payee.paymentHash, kind: 'invoice' });
    expect(bytesToHex(sha256(hexToBytes(paid.preimage ?? '')))).toBe(payee.paymentHash);

    const bobDeposit = await client.openDeposit(bob.open);
    const bobInvoice = await client.createInvoice(bobDeposit.deposit_id, { amountMsat: 5_000_000n });
    const moved = await client.transfer(deposit.deposit_id, {
      destination: { invoice: bobInvoice.invoice, proof: bobInvoice.proof, owner: bob.nostrPubkey, owner_sig: V1_UNSIGNED_PROOF },
      amountMsat: 5_000_000n,
      maxFeeMsat: 0n,
      idempotencyKey: 'move-1',
      grant: signTestGrant(newParty()),
      purpose: { type: 'rebalance' },
    });
    expect(moved).toMatchObject({ kind: 'transfer', state: 'settled', amount_msat: 5_000_000n, fee_msat: 0n, payment_hash: bobInvoice.payment_hash });
    expect((await client.depositStatus(bobDeposit.deposit_id)).balance_msat).toBe(5_000_000n);

    const history = await client.depositHistory(deposit.deposit_id);
    expect(history).toMatchObject({ deposit_id: deposit.deposit_id, owner: alice.nostrPubkey, balance_msat: 50_000_000n - 10_011_000n - 5_000_000n, reserved_msat: 0n, balance_update: null, maintenance: [], events_seq: 0 });
    expect(history.invoices.map((i) => [i.payment_hash, i.state])).toEqual([[invoice.payment_hash, 'settled']]);
    expect(history.payments.map((p) => [p.idempotency_key, p.kind, p.state, p.finished_at !== null])).toEqual([
      ['pay-1', 'invoice', 'settled', true],
      ['move-1', 'transfer', 'settled', true],
    ]);

    const aliceCalls = server.verified.filter((v) => v.pubkey === alice.signer.pubkey).map((v) => v.method);
    expect(aliceCalls).toEqual(['OpenDeposit', 'CreateInvoice', 'GetDepositStatus', 'PayInvoice', 'TransferToDeposit', 'DumpDeposits']);
    // Every signed body: the deposit key's signature over the documented message, this operator named.
    const bodies = server.received.slice(before).filter((r) => r.method !== 'GetInfo');
    expect(bodies.length).toBeGreaterThanOrEqual(6);
    for (const { method, body } of bodies) {
      const { timestamp, signature, ...signed } = body;
      expect(signed.operator).toBe(server.nodePubkey);
      expect(typeof timestamp).toBe('number');
      const digest = sha256(new TextEncoder().encode(`${method}\n${String(timestamp)}\n${canonicalJson(JSON.parse(JSON.stringify(signed)))}`));
      expect(secp256k1.verify(hexToBytes(String(signature)), digest, hexToBytes(String(signed.pubkey)), { prehash: false })).toBe(true);
    }
    const payBody = bodies.find((b) => b.method === 'PayInvoice')?.body;
    expect(payBody).toMatchObject({ paymentRequest: payee.paymentRequest, amountMsat: '10000000', maxFeeMsat: '100000', idempotencyKey: 'pay-1' });
    expect(payBody).not.toHaveProperty('authorization');
  });

  it('keeps amounts bigint end to end, exactly, past 2^53', async () => {
    const big = 2n ** 60n + 1n;
    const { client, depositId } = await funded(big);
    const status = await client.depositStatus(depositId);
    expect(typeof status.balance_msat).toBe('bigint');
    expect(status.balance_msat).toBe(big);

    const amount = 2n ** 53n + 1n;
    const invoice = await client.createInvoice(depositId, { amountMsat: amount });
    expect(invoice.amount_msat).toBe(amount);
    expect(invoice.proof.amount_msat).toBe(amount);

    const payee = server.payee(amount);
    const maxFee = 10n ** 13n;
    const paid = await client.pay(depositId, payParams(payee.paymentRequest, amount, maxFee, 'big'));
    const fee = 1_000n + (amount * 1_000n) / 1_000_000n;
    expect(paid).toMatchObject({ state: 'settled', amount_msat: amount, fee_msat: fee, max_fee_msat: maxFee });
    expect(signedReceived().at(-1)?.body).toMatchObject({ amountMsat: '9007199254740993', maxFeeMsat: '10000000000000' });
    expect((await client.depositStatus(depositId)).balance_msat).toBe(big - amount - fee);
    const history = await client.depositHistory(depositId);
    expect(history.invoices.find((i) => i.state === 'settled')?.amount_msat).toBe(big);
    expect(history.payments[0]?.amount_msat).toBe(amount);
  });

  it('is refused by the operator for a timestamp 301 s old or ahead, and accepted 295 s old', async () => {
    const { user, depositId } = await funded(0n);
    for (const skewMs of [-301_000, 301_000]) {
      const skewed = clientFor([user.signer], { now: () => Date.now() + skewMs });
      const error = await refusal(skewed.depositStatus(depositId));
      expect(error).toMatchObject({ code: 'UNAUTHORIZED', status: 401, outcomeUnknown: false });
      expect(error.message).toMatch(/timestamp \d+ is more than 300 s from the operator's clock/);
    }
    const late = clientFor([user.signer], { now: () => Date.now() - 295_000 });
    expect((await late.depositStatus(depositId)).balance_msat).toBe(0n);
  });

  it('is refused a replayed request: the same signed message twice, a captured body resent, or its high-S twin', async () => {
    const { user, client, depositId } = await funded(20_000_000n);
    const at = Date.now();
    const frozen = clientFor([user.signer], { now: () => at, nonce: () => 'ab'.repeat(16) });
    await frozen.depositStatus(depositId);
    const replay = await refusal(frozen.depositStatus(depositId));
    expect(replay).toMatchObject({ code: 'REPLAYED', status: 409 });
    expect(replay.message).toMatch(/replayed request/);

    const payee = server.payee(1_000_000n);
    await client.pay(depositId, payParams(payee.paymentRequest, 1_000_000n, 10_000n, 'once'));
    const captured = signedReceived().at(-1);
    expect(captured?.method).toBe('PayInvoice');
    const again = await server.send('PayInvoice', captured?.body);
    expect(again).toMatchObject({ status: 409, json: { code: 6 } });

    const signature = secp256k1.Signature.fromBytes(hexToBytes(String(captured?.body.signature)), 'compact');
    const highS = new secp256k1.Signature(signature.r, secp256k1.Point.Fn.ORDER - signature.s).toBytes('compact');
    expect(await server.send('PayInvoice', { ...captured?.body, signature: bytesToHex(highS) })).toMatchObject({ status: 401, json: { code: 16 } });
    // The signature covers the fields: a larger amount under it does not verify.
    expect(await server.send('PayInvoice', { ...captured?.body, amountMsat: '2000000' })).toMatchObject({ status: 401, json: { code: 16 } });
    expect((await client.depositStatus(depositId)).balance_msat).toBe(20_000_000n - 1_000_000n - 2_000n);
    expect((await client.depositHistory(depositId)).payments).toHaveLength(1);
  });

  it('is refused at another operator holding a deposit of the same key: the operator is signed', async () => {
    const { user, client, depositId } = await funded(5_000_000n);
    const other = await startV1DepositServer();
    try {
      const there = new V1DepositServiceClient({ url: other.url, signers: [user.signer] });
      await there.openDeposit(user.open);
      other.credit((await there.createInvoice(depositId, {})).payment_hash, 5_000_000n);
      await client.pay(depositId, payParams(server.payee(1_000_000n).paymentRequest, 1_000_000n, 10_000n, 'here-only'));
      const captured = signedReceived().at(-1);
      expect(await other.send('PayInvoice', captured?.body)).toMatchObject({ status: 401, json: { code: 16, message: 'the request is signed for another operator' } });
      expect(other.verified.filter((v) => v.method === 'PayInvoice')).toHaveLength(0);
    } finally {
      await other.stop();
    }
  });

  it('refuses every deposit call without a signer for the deposit, before any HTTP', async () => {
    const { user, depositId } = await funded(1_000_000n);
    const stranger = newUser();
    const payee = server.payee(1_000n);
    const before = server.received.length;
    for (const client of [clientFor([]), clientFor([stranger.signer])]) {
      const calls: [string, () => Promise<unknown>][] = [
        ['openDeposit', () => client.openDeposit(user.open)],
        ['depositStatus', () => client.depositStatus(depositId)],
        ['depositHistory', () => client.depositHistory(depositId)],
        ['createInvoice', () => client.createInvoice(depositId, { amountMsat: 1_000n })],
        ['invoiceStatus', () => client.invoiceStatus(depositId, '00'.repeat(32))],
        ['pay', () => client.pay(depositId, payParams(payee.paymentRequest, 1_000n, 1_000n, 'no-signer'))],
        ['paymentStatus', () => client.paymentStatus(depositId, 'no-signer')],
      ];
      for (const [name, call] of calls) {
        const error = await refusal(call);
        expect({ name, code: error.code }).toEqual({ name, code: 'UNAUTHORIZED' });
        expect(error.message).toMatch(/no V1Signer for (deposit|owner) .*the bridge holds no deposit keys/);
      }
    }
    expect(server.received.length).toBe(before);
  });

  it('refuses a signer whose signature is not by its key, sending nothing signed', async () => {
    const { user, depositId } = await funded(0n);
    const other = newUser();
    const impostor: V1Signer = { pubkey: user.signer.pubkey, sign: (digest) => other.signer.sign(digest) };
    const before = signedReceived().length;
    const error = await refusal(clientFor([impostor]).depositStatus(depositId));
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toMatch(/gave no valid low-S signature/);
    expect(signedReceived().length).toBe(before);
  });

  const tampered: [string, string, (answer: Record<string, unknown>) => unknown, RegExp][] = [
    ['a negative balance', 'GetDepositStatus', (a) => ({ ...a, balanceMsat: '-5' }), /invalid at balanceMsat/],
    ['a balance as a JSON number', 'GetDepositStatus', (a) => ({ ...a, balanceMsat: 5 }), /invalid at balanceMsat/],
    ['another deposit’s status', 'GetDepositStatus', (a) => ({ ...a, pubkey: '02' + 'ee'.repeat(32) }), /expected the status of deposit/],
    ['an unknown payment status', 'DumpDeposits', (a) => ({ ...a, payments: [{ idempotencyKey: 'k', status: 'DONE' }] }), /invalid at payments\.0/],
    ['an invoice for another amount', 'CreateInvoice', (a) => ({ ...a, amountMsat: '1' }), /an open invoice for the amount asked for/],
    ['an invoice whose BOLT 11 has another payment hash', 'CreateInvoice', (a) => ({ ...a, paymentHash: 'ab'.repeat(32) }), /BOLT 11 of the operator's node/],
    ['a fee above its limit', 'PayInvoice', (a) => ({ ...a, feeMsat: '999999999' }), /feeMsat above maxFeeMsat/],
    ['a preimage of another hash', 'PayInvoice', (a) => ({ ...a, preimage: '00'.repeat(32) }), /preimage does not hash to paymentHash/],
    ['another amount paid', 'PayInvoice', (a) => ({ ...a, amountMsat: '2000000' }), /the payment asked for/],
    ['an operator node key that is not a key', 'GetInfo', (a) => ({ ...a, nodePubkey: 'ab'.repeat(32) }), /invalid at nodePubkey/],
  ];

  it.each(tampered)('refuses an answer with %s', async (_what, method, rewrite, message) => {
    const { user, depositId } = await funded(5_000_000n);
    const client = clientFor([user.signer]);
    const payee = server.payee(1_000_000n);
    server.tamper = (m, answer) => (m === method ? rewrite(answer) : answer);
    const run = () => {
      switch (method) {
        case 'CreateInvoice':
          return client.createInvoice(depositId, { amountMsat: 1_000_000n });
        case 'PayInvoice':
          return client.pay(depositId, payParams(payee.paymentRequest, 1_000_000n, 100_000n, `tamper-${message.source}`));
        case 'DumpDeposits':
          return client.depositHistory(depositId);
        default:
          return client.depositStatus(depositId);
      }
    };
    const error = await refusal(run());
    expect(error.code).toBe('INTERNAL');
    expect(error.message).toMatch(message);
    // A write answered wrongly may have happened anyway; a read did not change anything.
    expect(error.outcomeUnknown).toBe(method === 'CreateInvoice' || method === 'PayInvoice');
  });

  it('throws clearly for what v1 operators do not offer, without calling them', async () => {
    const { user, client, depositId } = await funded(1_000_000n);
    const payee = server.payee(1_000n);
    const party = newParty();
    const authorization = payAuthorization(party, signTestGrant(party), payee.paymentRequest);
    const otherOperatorInvoice = await client.createInvoice(depositId, {});
    const before = signedReceived().length;
    const calls: [string, () => unknown][] = [
      ['createHoldInvoice', () => client.createHoldInvoice()],
      ['settleHoldInvoice', () => client.settleHoldInvoice()],
      ['cancelHoldInvoice', () => client.cancelHoldInvoice()],
      ['pushGrant', () => client.pushGrant()],
      ['lock', () => client.lock()],
      ['metrics', () => client.metrics()],
      ['subscribeEvents', () => client.subscribeEvents()],
      ['keysend', () => client.pay(depositId, { keysend: { destination: server.nodePubkey }, amountMsat: 1_000n, maxFeeMsat: 1_000n, idempotencyKey: 'k', authorization })],
      ['lightning address', () => client.pay(depositId, { lightningAddress: 'alice@example.com', amountMsat: 1_000n, maxFeeMsat: 1_000n, idempotencyKey: 'l', authorization })],
      ['multi-part share', () => client.pay(depositId, { ...payParams(payee.paymentRequest, 500n, 1_000n, 'm'), mpp: { totalMsat: 1_000n } })],
      [
        'transfer to another operator',
        () =>
          client.transfer(depositId, {
            destination: { invoice: otherOperatorInvoice.invoice, proof: { ...otherOperatorInvoice.proof, operator_node_pubkey: '03' + '22'.repeat(32) }, owner: user.nostrPubkey, owner_sig: V1_UNSIGNED_PROOF },
            amountMsat: 1_000n,
            maxFeeMsat: 0n,
            idempotencyKey: 't',
            grant: signTestGrant(party),
            purpose: { type: 'rebalance' },
          }),
      ],
    ];
    for (const [name, call] of calls) {
      const error = await refusal(call);
      expect({ name, code: error.code }).toEqual({ name, code: 'RESTRICTED' });
      expect(error.message).toMatch(/is not offered by v1 operators/);
    }
    expect(signedReceived().length).toBe(before);
  });

  it('maps GetInfo, and refuses an operator that is not the pinned node', async () => {
    const info = await clientFor([]).info();
    expect(info).toMatchObject({
      version: '0',
      operator: { node_pubkey: server.nodePubkey, alias: 'v1-sim' },
      network: 'regtest',
      vaults: [{ vault_id: server.vaultId }],
      fees: { routing_base_msat: 1_000n, routing_ppm: 1_000, maintenance: { unit_fee_msat: 0n, rate_fee_ppm: 0 } },
      auditors: [],
      request_max_age_seconds: 300,
    });
    const pinned = await refusal(clientFor([], { nodePubkey: '03' + '44'.repeat(32) }).info());
    expect(pinned).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(pinned.message).toMatch(/is not the pinned/);
  });

  it('maps operator refusals: insufficient balance, no deposit, an idempotency key reused; a retry pays once', async () => {
    const { client, depositId } = await funded(2_000_000n);
    const payee = server.payee(1_900_000n);
    const short = await refusal(client.pay(depositId, payParams(payee.paymentRequest, 1_900_000n, 200_000n, 'short')));
    expect(short).toMatchObject({ code: 'INSUFFICIENT_BALANCE', status: 400, outcomeUnknown: false });

    const first = await client.pay(depositId, payParams(payee.paymentRequest, 1_900_000n, 100_000n, 'retry'));
    const retried = await client.pay(depositId, payParams(payee.paymentRequest, 1_900_000n, 100_000n, 'retry'));
    expect(retried).toEqual(first);
    expect((await client.depositStatus(depositId)).balance_msat).toBe(2_000_000n - 1_900_000n - first.fee_msat);
    const other = server.payee(1_000n);
    expect(await refusal(client.pay(depositId, payParams(other.paymentRequest, 1_000n, 1_000n, 'retry')))).toMatchObject({ code: 'CONFLICT' });

    const unopened = newUser();
    expect(await refusal(clientFor([unopened.signer]).depositStatus(unopened.signer.pubkey))).toMatchObject({ code: 'NOT_FOUND', status: 404 });
  });

  it('reports a payment in flight, and answers invoice and payment status from DumpDeposits', async () => {
    const { client, depositId } = await funded(3_000_000n);
    server.holdPayments = true;
    const payee = server.payee(1_000_000n);
    const pending = await client.pay(depositId, payParams(payee.paymentRequest, 1_000_000n, 50_000n, 'held'));
    expect(pending).toMatchObject({ state: 'pending', preimage: null, settled_at: null, fee_msat: 0n });
    expect(await client.depositStatus(depositId)).toMatchObject({ balance_msat: 3_000_000n, reserved_msat: 1_050_000n });
    expect(await client.paymentStatus(depositId, 'held')).toMatchObject({ idempotency_key: 'held', state: 'pending' });
    expect(await client.paymentStatus(depositId, 'never')).toBeNull();

    const settled = (await client.depositHistory(depositId)).invoices[0];
    expect(settled?.state).toBe('settled');
    const looked = await client.invoiceStatus(depositId, settled?.payment_hash ?? '');
    expect(looked).toMatchObject({ state: 'settled', amount_msat: 3_000_000n, proof: { amount_msat: 0n } });
    expect(bytesToHex(sha256(hexToBytes(looked.preimage ?? '')))).toBe(looked.payment_hash);
    expect(await refusal(client.invoiceStatus(depositId, 'cd'.repeat(32)))).toMatchObject({ code: 'NOT_FOUND' });
  });
});
