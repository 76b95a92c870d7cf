/**
 * The Vault API contract, end to end: HttpVaultClient against the reference operator over real
 * HTTP, every endpoint, with the signed statements checked by the same src/protocol code the
 * bridge runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import bolt11 from 'bolt11';
import { sha256 } from '@noble/hashes/sha2.js';
import { generateSecretKey } from 'nostr-tools/pure';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { DEFAULT_FEE_LIMIT, feeLimitFor } from '../../src/protocol/amounts.ts';
import { bytesToHex, hexToBytes } from '../../src/protocol/hex.ts';
import { decodeInvoice } from '../../src/protocol/invoice.ts';
import { signDepositLock, signDepositOpen } from '../../src/protocol/user-statements.ts';
import type { VaultEvent, VaultInfo } from '../../src/protocol/vault-api.ts';
import { vaultMultisigPubkey, verifyBalanceUpdate, verifyVaultProof } from '../../src/protocol/vault-proof.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { VaultError, type EventSubscription } from '../../src/vault-client/vault-client.ts';
import {
  keysendParams,
  newParty,
  pay321Params,
  payAuthorization,
  requestAuthorization,
  signTestGrant,
  type NwcParty,
} from '../helpers/authorization.ts';
import { clientsFor, eventually, fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';

const SAT = 1000n;

/** A valid, signed mainnet (`lnbc`) invoice. */
function mainnetInvoice(amountMsat: bigint): string {
  const unsigned = bolt11.encode({
    millisatoshis: amountMsat.toString(),
    timestamp: Math.floor(Date.now() / 1000),
    tags: [
      { tagName: 'payment_hash', data: bytesToHex(generateSecretKey()) },
      { tagName: 'payment_secret', data: bytesToHex(generateSecretKey()) },
      { tagName: 'description', data: 'mainnet' },
    ],
  });
  const signed = bolt11.sign(unsigned, Buffer.from(generateSecretKey())).paymentRequest;
  if (!signed) throw new Error('bolt11 sign failed');
  return signed;
}

describe.each([
  ['each call signed with NIP-98', false],
  ['calls signed in a session', true],
])('Vault API contract: HttpVaultClient against the reference operator, %s', (_, sessions) => {
  let devnet: Devnet;
  let clients: HttpVaultClient[];
  let infos: VaultInfo[];
  const events: VaultEvent[] = [];
  let subscription: EventSubscription;

  const client = (i: number): HttpVaultClient => {
    const c = clients[i];
    if (!c) throw new Error(`no client ${i}`);
    return c;
  };
  const info = (i: number): VaultInfo => {
    const v = infos[i];
    if (!v) throw new Error(`no info ${i}`);
    return v;
  };
  const statusOf = async (i: number, depositId: string) => client(i).depositStatus(depositId);

  /** Pays `invoice` from the party's deposit with a fresh authorization and the default fee limit. */
  const pay = (i: number, depositId: string, party: NwcParty, invoice: string, amountMsat: bigint, key = bytesToHex(generateSecretKey())) =>
    client(i).pay(depositId, {
      invoice,
      amountMsat,
      maxFeeMsat: feeLimitFor(amountMsat, DEFAULT_FEE_LIMIT),
      idempotencyKey: key,
      authorization: payAuthorization(party, signTestGrant(party), invoice),
    });

  beforeAll(async () => {
    devnet = await startTestDevnet();
    clients = clientsFor(devnet, generateSecretKey(), { sessions });
    infos = await Promise.all(clients.map((c) => c.info()));
    subscription = client(0).subscribeEvents(0, async (event) => {
      events.push(event);
    });
  });

  afterAll(async () => {
    subscription.close();
    await devnet.stop();
  });

  it('describes the operator in /v0/info: node keys, a vault derived from both, fees, auditors, height', () => {
    for (const [i, op] of devnet.operators.entries()) {
      const v = info(i);
      expect(v.version).toBe('0');
      expect(v.network).toBe('regtest');
      expect(v.operator).toEqual({ node_pubkey: op.nodePubkey, alias: op.name });
      expect(v.peer.node_pubkey).toBe(op.peerNodePubkey);
      expect(v.vaults).toEqual([{ vault_id: op.vaultId, channel_id: op.channelId, multisig_pubkey: op.multisigPubkey }]);
      expect(vaultMultisigPubkey(v.operator.node_pubkey, v.peer.node_pubkey, op.channelId, op.vaultId)).toBe(op.multisigPubkey);
      expect(v.fees.routing_base_msat).toBe(op.routingPolicy.baseMsat);
      expect(v.fees.routing_ppm).toBe(op.routingPolicy.ppm);
      expect(v.auditors).toEqual(devnet.auditors.map((a) => a.pubkey));
      expect(v.block_height).toBeGreaterThanOrEqual(101);
      expect(v.request_max_age_seconds).toBe(300);
    }
    expect(new Set(devnet.operators.map((o) => o.nodePubkey)).size).toBe(3);
  });

  it('opens one deposit per owner: opening again returns the same deposit', async () => {
    const party = newParty();
    const first = await client(0).openDeposit(signDepositOpen(party.user.secretKey));
    const again = await client(0).openDeposit(signDepositOpen(party.user.secretKey, first.created_at + 5));
    expect(again).toEqual(first);
    expect(first.owner).toBe(party.user.pubkey);
    expect(first.address).toBe(`${devnet.operators[0]?.vaultId}@${devnet.operators[0]?.multisigPubkey}`);
    const status = await statusOf(0, first.deposit_id);
    expect(status).toEqual({ deposit_id: first.deposit_id, owner: party.user.pubkey, balance_msat: 0n, reserved_msat: 0n, locked: false, balance_update: null });
  });

  it('shows a deposit only to its owner and its watchers', async () => {
    const party = newParty();
    const deposit = await client(0).openDeposit(signDepositOpen(party.user.secretKey));
    const stranger = new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: generateSecretKey(), sessions });
    await expect(stranger.depositStatus(deposit.deposit_id)).rejects.toMatchObject({ code: 'NOT_FOUND', status: 404 });
    const owner = new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: party.user.secretKey, sessions });
    expect((await owner.depositStatus(deposit.deposit_id)).owner).toBe(party.user.pubkey);
  });

  it('hands out invoices with a vault proof the bridge verifies, then credits the payment with a signed balance', async () => {
    const party = newParty();
    const deposit = await client(0).openDeposit(signDepositOpen(party.user.secretKey));
    const amount = 50_000n * SAT;
    const invoice = await client(0).createInvoice(deposit.deposit_id, { amountMsat: amount, description: 'top up' });
    const decoded = decodeInvoice(invoice.invoice);
    if (!decoded.ok) throw new Error(decoded.error.message);
    expect(decoded.value).toMatchObject({ network: 'regtest', amountMsat: amount, paymentHash: invoice.payment_hash, description: 'top up', basicMpp: true });
    expect(decoded.value.paymentSecret).toMatch(/^[0-9a-f]{64}$/);
    expect(invoice).toMatchObject({ state: 'pending', preimage: null, settled_at: null, balance_update: null, amount_msat: amount });
    const expected = {
      depositId: deposit.deposit_id,
      operatorNodePubkey: info(0).operator.node_pubkey,
      peerNodePubkey: info(0).peer.node_pubkey,
      paymentHash: decoded.value.paymentHash,
      amountMsat: amount,
      invoicePayeeNodeKey: decoded.value.payeeNodeKey,
    };
    expect(verifyVaultProof(invoice.proof, expected)).toEqual({ ok: true, value: undefined });
    expect(verifyVaultProof(invoice.proof, { ...expected, amountMsat: amount + 1n }).ok).toBe(false);

    const paid = await devnet.payInvoice(invoice.invoice);
    expect(paid.state).toBe('settled');
    await eventually(() => events.some((e) => e.type === 'invoice_settled' && e.payment_hash === invoice.payment_hash), 'invoice_settled event');
    const event = events.find((e) => e.type === 'invoice_settled' && e.payment_hash === invoice.payment_hash);
    if (event?.type !== 'invoice_settled') throw new Error('no event');
    expect(event).toMatchObject({ deposit_id: deposit.deposit_id, amount_msat: amount });
    expect(event.balance_update).toMatchObject({ balance_msat: amount, seq: 1, deposit_id: deposit.deposit_id });
    expect(verifyBalanceUpdate(event.balance_update, info(0).operator.node_pubkey, info(0).peer.node_pubkey).ok).toBe(true);

    const status = await statusOf(0, deposit.deposit_id);
    expect(status.balance_msat).toBe(amount);
    expect(status.balance_update).toEqual(event.balance_update);
    const settled = await client(0).invoiceStatus(deposit.deposit_id, invoice.payment_hash);
    expect(settled.state).toBe('settled');
    expect(settled.preimage).not.toBeNull();
    expect(bytesToHex(sha256(hexToBytes(settled.preimage ?? '')))).toBe(invoice.payment_hash);
    expect(settled.balance_update).toEqual(event.balance_update);

    const twice = await devnet.payInvoice(invoice.invoice);
    expect(twice).toMatchObject({ state: 'failed', reason: 'invoice already paid' });
    expect((await statusOf(0, deposit.deposit_id)).balance_msat).toBe(amount);
  });

  it('commits to a description hash instead of a description when asked', async () => {
    const party = newParty();
    const deposit = await client(1).openDeposit(signDepositOpen(party.user.secretKey));
    const descriptionHash = bytesToHex(sha256(new TextEncoder().encode('{"lnurl":"metadata"}')));
    const invoice = await client(1).createInvoice(deposit.deposit_id, { amountMsat: 2_000n * SAT, descriptionHash, expirySeconds: 600 });
    expect(invoice).toMatchObject({ description: null, description_hash: descriptionHash });
    expect(invoice.expires_at - invoice.created_at).toBe(600);
    const decoded = decodeInvoice(invoice.invoice);
    expect(decoded.ok && decoded.value).toMatchObject({ description: null, descriptionHash, expiresAt: invoice.expires_at });
    await expect(client(1).createInvoice(deposit.deposit_id, { amountMsat: 2_000n * SAT, description: 'x', descriptionHash })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    await expect(client(1).createInvoice(deposit.deposit_id, { amountMsat: 999n })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('pays the external payee and charges exactly the paying node routing fee', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(0), party.user, 100_000n * SAT);
    const amount = 10_000n * SAT;
    const payee = devnet.createPayeeInvoice(amount, 'coffee');
    const payment = await pay(0, depositId, party, payee.invoice, amount);
    const policy = devnet.operators[0]?.routingPolicy;
    if (!policy) throw new Error('no policy');
    const fee = policy.baseMsat + (amount * BigInt(policy.ppm)) / 1_000_000n;
    expect(fee).toBe(11_000n);
    expect(payment).toMatchObject({ state: 'settled', amount_msat: amount, fee_msat: fee, failure_reason: null, payment_hash: payee.paymentHash });
    expect(payment.preimage).toBe(devnet.payeeInvoiceStatus(payee.paymentHash)?.preimage);
    expect(devnet.payeeInvoiceStatus(payee.paymentHash)).toMatchObject({ state: 'settled', amountMsat: amount });
    const status = await statusOf(0, depositId);
    expect(status.balance_msat).toBe(100_000n * SAT - amount - fee);
    expect(status.reserved_msat).toBe(0n);
    expect(payment.balance_update).toEqual(status.balance_update);
    expect(status.balance_update?.seq).toBe(2);
    if (!status.balance_update) throw new Error('no balance update');
    expect(verifyBalanceUpdate(status.balance_update, info(0).operator.node_pubkey, info(0).peer.node_pubkey).ok).toBe(true);
    await eventually(() => events.some((e) => e.type === 'payment_settled' && e.payment_hash === payee.paymentHash), 'payment_settled event');
  });

  it('pays an amountless invoice with an explicit amount', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(1), party.user, 20_000n * SAT);
    const payee = devnet.createPayeeInvoice(null);
    const amount = 1_234_567n;
    const payment = await client(1).pay(depositId, {
      invoice: payee.invoice,
      amountMsat: amount,
      maxFeeMsat: feeLimitFor(amount, DEFAULT_FEE_LIMIT),
      idempotencyKey: 'amountless-1',
      authorization: payAuthorization(party, signTestGrant(party), payee.invoice, { amountMsat: amount }),
    });
    // vault-b: 500 msat + 2000 ppm
    expect(payment).toMatchObject({ state: 'settled', amount_msat: amount, fee_msat: 500n + 2469n });
    expect(devnet.payeeInvoiceStatus(payee.paymentHash)).toMatchObject({ state: 'settled', amountMsat: amount });
  });

  it('pays between deposits at two operators: the payer pays its routing fee, the payee is credited', async () => {
    const alice = newParty();
    const bob = newParty();
    const aliceDeposit = await fundedDeposit(devnet, client(0), alice.user, 100_000n * SAT);
    const bobDeposit = await client(1).openDeposit(signDepositOpen(bob.user.secretKey));
    const amount = 30_000n * SAT;
    const invoice = await client(1).createInvoice(bobDeposit.deposit_id, { amountMsat: amount });
    const payment = await pay(0, aliceDeposit, alice, invoice.invoice, amount);
    expect(payment).toMatchObject({ state: 'settled', fee_msat: 1000n + 30_000n });
    expect((await statusOf(0, aliceDeposit)).balance_msat).toBe(100_000n * SAT - amount - 31_000n);
    expect((await statusOf(1, bobDeposit.deposit_id)).balance_msat).toBe(amount);
    expect((await client(1).invoiceStatus(bobDeposit.deposit_id, invoice.payment_hash)).preimage).toBe(payment.preimage);
  });

  it('pays between two deposits of the same operator without a routing fee', async () => {
    const alice = newParty();
    const bob = newParty();
    const aliceDeposit = await fundedDeposit(devnet, client(2), alice.user, 100_000n * SAT);
    const bobDeposit = await client(2).openDeposit(signDepositOpen(bob.user.secretKey));
    const amount = 40_000n * SAT;
    const invoice = await client(2).createInvoice(bobDeposit.deposit_id, { amountMsat: amount });
    const payment = await pay(2, aliceDeposit, alice, invoice.invoice, amount);
    expect(payment).toMatchObject({ state: 'settled', fee_msat: 0n });
    expect((await statusOf(2, aliceDeposit)).balance_msat).toBe(60_000n * SAT);
    expect((await statusOf(2, bobDeposit.deposit_id)).balance_msat).toBe(amount);
  });

  it('answers an idempotent retry with the same payment and moves the balance once', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(0), party.user, 50_000n * SAT);
    const amount = 5_000n * SAT;
    const payee = devnet.createPayeeInvoice(amount);
    const params = {
      invoice: payee.invoice,
      amountMsat: amount,
      maxFeeMsat: 50_000n,
      idempotencyKey: 'retry-key',
      authorization: payAuthorization(party, signTestGrant(party), payee.invoice),
    };
    const first = await client(0).pay(depositId, params);
    const retry = await client(0).pay(depositId, params);
    expect(retry).toEqual(first);
    expect(first.state).toBe('settled');
    expect((await statusOf(0, depositId)).balance_msat).toBe(50_000n * SAT - amount - first.fee_msat);
    expect(await client(0).paymentStatus(depositId, 'retry-key')).toEqual(first);

    const otherBody = { ...params, maxFeeMsat: 40_000n };
    await expect(client(0).pay(depositId, otherBody)).rejects.toMatchObject({ code: 'CONFLICT', status: 409 });
    expect((await statusOf(0, depositId)).balance_msat).toBe(50_000n * SAT - amount - first.fee_msat);
  });

  it('answers paymentStatus with null for a key it never accepted', async () => {
    const party = newParty();
    const deposit = await client(0).openDeposit(signDepositOpen(party.user.secretKey));
    expect(await client(0).paymentStatus(deposit.deposit_id, 'never-used')).toBeNull();
  });

  it('keeps the newest grant per connection and refuses older ones with STALE_GRANT', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(0), party.user, 20_000n * SAT);
    const now = Math.floor(Date.now() / 1000);
    const older = signTestGrant(party, {}, now - 100);
    const newer = signTestGrant(party, { name: 'newer' }, now - 10);
    expect(await client(0).pushGrant(depositId, newer)).toEqual({ connection: party.connection.pubkey, createdAt: now - 10 });
    expect(await client(0).pushGrant(depositId, newer)).toEqual({ connection: party.connection.pubkey, createdAt: now - 10 });
    await expect(client(0).pushGrant(depositId, older)).rejects.toMatchObject({ code: 'STALE_GRANT', status: 409 });

    const payee = devnet.createPayeeInvoice(1000n * SAT);
    const withOlder = client(0).pay(depositId, {
      invoice: payee.invoice,
      amountMsat: 1000n * SAT,
      maxFeeMsat: 10_000n,
      idempotencyKey: 'older-grant',
      authorization: payAuthorization(party, older, payee.invoice),
    });
    await expect(withOlder).rejects.toMatchObject({ code: 'STALE_GRANT' });
    const withNewer = await client(0).pay(depositId, {
      invoice: payee.invoice,
      amountMsat: 1000n * SAT,
      maxFeeMsat: 10_000n,
      idempotencyKey: 'newer-grant',
      authorization: payAuthorization(party, newer, payee.invoice),
    });
    expect(withNewer.state).toBe('settled');
  });

  it('refuses every balance decrease while the owner has locked, still receives, and unlocks', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(0), party.user, 20_000n * SAT);
    const now = Math.floor(Date.now() / 1000);
    expect(await client(0).lock(depositId, signDepositLock(party.user.secretKey, true, now))).toEqual({ locked: true, createdAt: now });
    expect((await statusOf(0, depositId)).locked).toBe(true);
    await eventually(() => events.some((e) => e.type === 'lock_changed' && e.deposit_id === depositId && e.locked), 'lock_changed event');

    const payee = devnet.createPayeeInvoice(1000n * SAT);
    await expect(pay(0, depositId, party, payee.invoice, 1000n * SAT)).rejects.toMatchObject({ code: 'LOCKED', status: 423 });
    const topUp = await client(0).createInvoice(depositId, { amountMsat: 1000n * SAT });
    expect((await devnet.payInvoice(topUp.invoice)).state).toBe('settled');
    expect((await statusOf(0, depositId)).balance_msat).toBe(21_000n * SAT);

    // An older unlock does not undo a newer lock; a newer one does.
    expect(await client(0).lock(depositId, signDepositLock(party.user.secretKey, false, now - 60))).toEqual({ locked: true, createdAt: now });
    expect(await client(0).lock(depositId, signDepositLock(party.user.secretKey, false, now + 1))).toEqual({ locked: false, createdAt: now + 1 });
    const paid = await pay(0, depositId, party, payee.invoice, 1000n * SAT);
    expect(paid.state).toBe('settled');

    const stranger = newParty();
    await expect(client(0).lock(depositId, signDepositLock(stranger.user.secretKey, true))).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('refuses expired invoices and invoices of another network', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(0), party.user, 20_000n * SAT);
    const bob = newParty();
    const bobDeposit = await client(1).openDeposit(signDepositOpen(bob.user.secretKey));
    const shortLived = await client(1).createInvoice(bobDeposit.deposit_id, { amountMsat: 1000n * SAT, expirySeconds: 1 });
    await eventually(() => Date.now() / 1000 >= shortLived.expires_at, 'invoice expiry', 3_000);
    await expect(pay(0, depositId, party, shortLived.invoice, 1000n * SAT)).rejects.toMatchObject({ code: 'INVOICE_EXPIRED', status: 400 });
    expect((await client(1).invoiceStatus(bobDeposit.deposit_id, shortLived.payment_hash)).state).toBe('expired');
    const mainnet = mainnetInvoice(2_000_000n);
    await expect(pay(0, depositId, party, mainnet, 2_000_000n)).rejects.toMatchObject({ code: 'WRONG_NETWORK' });
    expect((await statusOf(0, depositId)).balance_msat).toBe(20_000n * SAT);
  });

  it('reports metrics: deposits, balances, reserve, counters', async () => {
    const status = await client(0).metrics();
    expect(status.deposits).toBeGreaterThanOrEqual(6);
    expect(status.total_balance_msat).toBeGreaterThan(0n);
    expect(status.reserve_msat).toBe(status.total_balance_msat);
    expect(status.invoices_settled).toBeGreaterThanOrEqual(5);
    expect(status.payments_settled).toBeGreaterThanOrEqual(4);
    expect(status.authorizations_refused).toBeGreaterThanOrEqual(3);
    expect(status.started_at).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });

  // ------------------------------------------------------------------ amountless invoices

  it('hands out an amountless invoice with an any-amount proof ("0") and credits what the payer sends', async () => {
    const party = newParty();
    const deposit = await client(1).openDeposit(signDepositOpen(party.user.secretKey));
    const invoice = await client(1).createInvoice(deposit.deposit_id, { description: 'tip jar' });
    const decoded = decodeInvoice(invoice.invoice);
    if (!decoded.ok) throw new Error(decoded.error.message);
    expect(decoded.value.amountMsat).toBeNull();
    expect(invoice).toMatchObject({ amount_msat: 0n, state: 'pending', hold: false, settle_deadline: null });
    expect(invoice.proof.amount_msat).toBe(0n);
    const expected = {
      depositId: deposit.deposit_id,
      operatorNodePubkey: info(1).operator.node_pubkey,
      peerNodePubkey: info(1).peer.node_pubkey,
      paymentHash: invoice.payment_hash,
      amountMsat: 0n,
      invoicePayeeNodeKey: decoded.value.payeeNodeKey,
      invoiceAmountMsat: decoded.value.amountMsat,
    };
    expect(verifyVaultProof(invoice.proof, expected)).toEqual({ ok: true, value: undefined });
    expect(verifyVaultProof(invoice.proof, { ...expected, amountMsat: 12_345n }).ok).toBe(false);

    const paid = await devnet.payInvoice(invoice.invoice, 12_345n);
    expect(paid).toMatchObject({ state: 'settled', amountMsat: 12_345n });
    const settled = await client(1).invoiceStatus(deposit.deposit_id, invoice.payment_hash);
    expect(settled).toMatchObject({ state: 'settled', amount_msat: 12_345n });
    // The proof still says what was signed: any amount.
    expect(settled.proof.amount_msat).toBe(0n);
    expect(settled.balance_update).toMatchObject({ balance_msat: 12_345n, seq: 1 });
    expect((await statusOf(1, deposit.deposit_id)).balance_msat).toBe(12_345n);
    if (!settled.balance_update) throw new Error('no balance update');
    expect(verifyBalanceUpdate(settled.balance_update, info(1).operator.node_pubkey, info(1).peer.node_pubkey).ok).toBe(true);
    // Paid once: a second payment of any amount fails.
    expect(await devnet.payInvoice(invoice.invoice, 1_000n)).toMatchObject({ state: 'failed', code: 'ALREADY_PAID' });
  });

  // ------------------------------------------------------------------ hold invoices

  const preimagePair = () => {
    const preimage = generateSecretKey();
    return { preimage: bytesToHex(preimage), paymentHash: bytesToHex(sha256(preimage)) };
  };
  const eventOf = <T extends VaultEvent['type']>(type: T, paymentHash: string) =>
    events.find((e): e is Extract<VaultEvent, { type: T }> => e.type === type && 'payment_hash' in e && e.payment_hash === paymentHash);

  it('makes a hold invoice, holds the payment without credit, then settles it with the preimage: credit, signed balance, events', async () => {
    const party = newParty();
    const deposit = await client(0).openDeposit(signDepositOpen(party.user.secretKey));
    const { preimage, paymentHash } = preimagePair();
    const amount = 7_000n * SAT;
    const height = info(0).block_height;
    const hold = await client(0).createHoldInvoice(deposit.deposit_id, { amountMsat: amount, paymentHash, description: 'escrow', minCltvExpiryDelta: 40 });
    expect(hold).toMatchObject({ hold: true, state: 'pending', payment_hash: paymentHash, amount_msat: amount, preimage: null, min_cltv_expiry_delta: 40, settle_deadline: null });
    const decoded = decodeInvoice(hold.invoice);
    if (!decoded.ok) throw new Error(decoded.error.message);
    expect(decoded.value).toMatchObject({ paymentHash, amountMsat: amount, description: 'escrow', payeeNodeKey: info(0).operator.node_pubkey });
    const proof = { depositId: deposit.deposit_id, operatorNodePubkey: info(0).operator.node_pubkey, peerNodePubkey: info(0).peer.node_pubkey, paymentHash, amountMsat: amount, invoicePayeeNodeKey: decoded.value.payeeNodeKey };
    expect(verifyVaultProof(hold.proof, proof).ok).toBe(true);
    // The same request again is the same invoice; the hash with other terms is a conflict.
    expect(await client(0).createHoldInvoice(deposit.deposit_id, { amountMsat: amount, paymentHash, description: 'escrow', minCltvExpiryDelta: 40 })).toEqual(hold);
    await expect(client(0).createHoldInvoice(deposit.deposit_id, { amountMsat: amount + 1n, paymentHash })).rejects.toMatchObject({ code: 'CONFLICT', status: 409 });
    // Settling before anything is held is refused.
    await expect(client(0).settleHoldInvoice(deposit.deposit_id, paymentHash, preimage)).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/no payment is held/) });

    let payerOutcome: Awaited<ReturnType<Devnet['payInvoice']>> | null = null;
    const paying = devnet.payInvoice(hold.invoice).then((o) => (payerOutcome = o));
    await eventually(() => eventOf('hold_invoice_accepted', paymentHash) !== undefined, 'hold_invoice_accepted event');
    const accepted = eventOf('hold_invoice_accepted', paymentHash);
    expect(accepted).toMatchObject({ deposit_id: deposit.deposit_id, amount_msat: amount });
    expect(accepted?.settle_deadline).toBeGreaterThanOrEqual(height + 40);
    expect(accepted?.settle_deadline).toBeLessThanOrEqual(devnet.blockHeight() + 40);
    const held = await client(0).invoiceStatus(deposit.deposit_id, paymentHash);
    expect(held).toMatchObject({ state: 'accepted', settle_deadline: accepted?.settle_deadline, preimage: null, balance_update: null, settled_at: null });
    expect(held.accepted_at).not.toBeNull();
    // Held, not credited; the payer's payment is still in flight.
    expect((await statusOf(0, deposit.deposit_id)).balance_msat).toBe(0n);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(payerOutcome).toBeNull();

    await expect(client(0).settleHoldInvoice(deposit.deposit_id, paymentHash, bytesToHex(generateSecretKey()))).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/does not hash to this payment hash/),
    });
    const settled = await client(0).settleHoldInvoice(deposit.deposit_id, paymentHash, preimage);
    expect(settled).toMatchObject({ state: 'settled', preimage, amount_msat: amount });
    expect(settled.balance_update).toMatchObject({ balance_msat: amount, seq: 1, deposit_id: deposit.deposit_id });
    if (!settled.balance_update) throw new Error('no balance update');
    expect(verifyBalanceUpdate(settled.balance_update, info(0).operator.node_pubkey, info(0).peer.node_pubkey).ok).toBe(true);
    expect(await paying).toMatchObject({ state: 'settled', preimage, amountMsat: amount });
    const status = await statusOf(0, deposit.deposit_id);
    expect(status.balance_msat).toBe(amount);
    expect(status.balance_update).toEqual(settled.balance_update);
    await eventually(() => eventOf('invoice_settled', paymentHash) !== undefined, 'invoice_settled event');
    expect(eventOf('invoice_settled', paymentHash)).toMatchObject({ amount_msat: amount, preimage, balance_update: settled.balance_update });
    // Settling again is idempotent; canceling a settled invoice is refused.
    expect(await client(0).settleHoldInvoice(deposit.deposit_id, paymentHash, preimage)).toEqual(settled);
    await expect(client(0).cancelHoldInvoice(deposit.deposit_id, paymentHash)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect((await statusOf(0, deposit.deposit_id)).balance_msat).toBe(amount);
  });

  it('cancels a held payment: the payer is refunded (its payment fails), nothing is credited, invoice_canceled', async () => {
    const alice = newParty();
    const bob = newParty();
    const aliceDeposit = await fundedDeposit(devnet, client(1), alice.user, 50_000n * SAT);
    const bobDeposit = await client(0).openDeposit(signDepositOpen(bob.user.secretKey));
    const { paymentHash } = preimagePair();
    const amount = 3_000n * SAT;
    const hold = await client(0).createHoldInvoice(bobDeposit.deposit_id, { amountMsat: amount, paymentHash });
    // Alice pays from her deposit at vault-b: the vault-to-vault payment stays pending while held.
    const payment = await client(1).pay(aliceDeposit, {
      invoice: hold.invoice,
      amountMsat: amount,
      maxFeeMsat: feeLimitFor(amount, DEFAULT_FEE_LIMIT),
      idempotencyKey: 'held-then-canceled',
      authorization: payAuthorization(alice, signTestGrant(alice), hold.invoice),
    });
    expect(payment.state).toBe('pending');
    await eventually(async () => (await client(0).invoiceStatus(bobDeposit.deposit_id, paymentHash)).state === 'accepted', 'accepted');
    expect((await statusOf(1, aliceDeposit)).reserved_msat).toBe(amount + feeLimitFor(amount, DEFAULT_FEE_LIMIT));

    const canceled = await client(0).cancelHoldInvoice(bobDeposit.deposit_id, paymentHash);
    expect(canceled).toMatchObject({ state: 'canceled', preimage: null, balance_update: null, settled_at: null });
    expect(canceled.canceled_at).not.toBeNull();
    expect(await client(0).cancelHoldInvoice(bobDeposit.deposit_id, paymentHash)).toEqual(canceled);
    await eventually(async () => (await client(1).paymentStatus(aliceDeposit, 'held-then-canceled'))?.state === 'failed', 'payer payment fails');
    expect(await client(1).paymentStatus(aliceDeposit, 'held-then-canceled')).toMatchObject({ failure_code: 'REJECTED', fee_msat: 0n, preimage: null });
    expect(await statusOf(1, aliceDeposit)).toMatchObject({ balance_msat: 50_000n * SAT, reserved_msat: 0n });
    expect(await statusOf(0, bobDeposit.deposit_id)).toMatchObject({ balance_msat: 0n, balance_update: null });
    await eventually(() => eventOf('invoice_canceled', paymentHash) !== undefined, 'invoice_canceled event');
    expect(eventOf('invoice_canceled', paymentHash)).toMatchObject({ deposit_id: bobDeposit.deposit_id });
    expect(eventOf('invoice_settled', paymentHash)).toBeUndefined();
    // A canceled invoice takes no payment and cannot be settled.
    expect(await devnet.payInvoice(hold.invoice)).toMatchObject({ state: 'failed', reason: 'invoice canceled' });
    await expect(client(0).settleHoldInvoice(bobDeposit.deposit_id, paymentHash, bytesToHex(generateSecretKey()))).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('cancels a held payment by itself once the chain reaches its settle deadline', async () => {
    const party = newParty();
    const deposit = await client(0).openDeposit(signDepositOpen(party.user.secretKey));
    const { preimage, paymentHash } = preimagePair();
    const hold = await client(0).createHoldInvoice(deposit.deposit_id, { amountMsat: 2_000n * SAT, paymentHash, minCltvExpiryDelta: 6 });
    const paying = devnet.payInvoice(hold.invoice);
    await eventually(() => eventOf('hold_invoice_accepted', paymentHash) !== undefined, 'accepted');
    const deadline = eventOf('hold_invoice_accepted', paymentHash)?.settle_deadline ?? 0;
    expect(deadline).toBe(devnet.blockHeight() + 6);
    devnet.mineBlocks(5);
    expect((await client(0).invoiceStatus(deposit.deposit_id, paymentHash)).state).toBe('accepted');
    devnet.mineBlocks(1);
    expect(devnet.blockHeight()).toBe(deadline);
    expect(await paying).toMatchObject({ state: 'failed', code: 'REJECTED', reason: expect.stringMatching(/settle deadline/) });
    expect(await client(0).invoiceStatus(deposit.deposit_id, paymentHash)).toMatchObject({ state: 'canceled', balance_update: null });
    await eventually(() => eventOf('invoice_canceled', paymentHash) !== undefined, 'invoice_canceled event');
    await expect(client(0).settleHoldInvoice(deposit.deposit_id, paymentHash, preimage)).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/canceled/) });
    expect((await statusOf(0, deposit.deposit_id)).balance_msat).toBe(0n);
  });

  it('settles and cancels hold invoices only for the watcher or the owner, and only hold invoices', async () => {
    const party = newParty();
    const deposit = await client(0).openDeposit(signDepositOpen(party.user.secretKey));
    const { preimage, paymentHash } = preimagePair();
    await client(0).createHoldInvoice(deposit.deposit_id, { amountMsat: 1_000n * SAT, paymentHash });
    const stranger = new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: generateSecretKey(), sessions });
    await expect(stranger.createHoldInvoice(deposit.deposit_id, { amountMsat: 1_000n * SAT, paymentHash: preimagePair().paymentHash })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(stranger.settleHoldInvoice(deposit.deposit_id, paymentHash, preimage)).rejects.toMatchObject({ code: 'NOT_FOUND', status: 404 });
    await expect(stranger.cancelHoldInvoice(deposit.deposit_id, paymentHash)).rejects.toMatchObject({ code: 'NOT_FOUND', status: 404 });
    const owner = new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: party.user.secretKey, sessions });
    expect((await owner.cancelHoldInvoice(deposit.deposit_id, paymentHash)).state).toBe('canceled');
    const ordinary = await client(0).createInvoice(deposit.deposit_id, { amountMsat: 1_000n * SAT });
    await expect(client(0).cancelHoldInvoice(deposit.deposit_id, ordinary.payment_hash)).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/not a hold invoice/) });
    await expect(client(0).settleHoldInvoice(deposit.deposit_id, preimagePair().paymentHash, preimage)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  // ------------------------------------------------------------------ keysend

  it('pays a keysend to the external payee with TLV records: the payee records them, the payment has sha256(preimage)', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(0), party.user, 50_000n * SAT);
    const amount = 4_000n * SAT;
    const records = [
      { type: 7_629_169, value: '7b22626f6f7374223a317d' },
      { type: '18446744073709551615', value: 'ff00' },
    ];
    const payment = await client(0).pay(depositId, {
      keysend: { destination: devnet.payeeNodePubkey, tlvRecords: records.map((r) => ({ type: BigInt(r.type), value: r.value })) },
      amountMsat: amount,
      maxFeeMsat: feeLimitFor(amount, DEFAULT_FEE_LIMIT),
      idempotencyKey: 'keysend-1',
      authorization: requestAuthorization(party, signTestGrant(party), 'pay_keysend', keysendParams({ amountMsat: amount, pubkey: devnet.payeeNodePubkey, tlvRecords: records })),
    });
    // vault-a: 1000 msat + 1000 ppm
    expect(payment).toMatchObject({ state: 'settled', kind: 'keysend', invoice: null, destination: devnet.payeeNodePubkey, amount_msat: amount, fee_msat: 1_000n + 4_000n, failure_code: null });
    expect(bytesToHex(sha256(hexToBytes(payment.preimage ?? '')))).toBe(payment.payment_hash);
    const receipt = devnet.payeeKeysend(payment.payment_hash);
    expect(receipt).toMatchObject({ amountMsat: amount, preimage: payment.preimage });
    expect(receipt?.tlvRecords).toEqual([
      { type: 7_629_169n, value: '7b22626f6f7374223a317d' },
      { type: 18_446_744_073_709_551_615n, value: 'ff00' },
    ]);
    expect(await client(0).paymentStatus(depositId, 'keysend-1')).toEqual(payment);
    expect((await statusOf(0, depositId)).balance_msat).toBe(50_000n * SAT - amount - payment.fee_msat);
  });

  it('pays a keysend with the preimage the app chose', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(2), party.user, 20_000n * SAT);
    const { preimage, paymentHash } = preimagePair();
    const payment = await client(2).pay(depositId, {
      keysend: { destination: devnet.payeeNodePubkey, preimage },
      amountMsat: 1_000n * SAT,
      maxFeeMsat: 10_000n,
      idempotencyKey: 'keysend-preimage',
      authorization: requestAuthorization(party, signTestGrant(party), 'pay_keysend', keysendParams({ amountMsat: 1_000n * SAT, pubkey: devnet.payeeNodePubkey, preimage })),
    });
    expect(payment).toMatchObject({ state: 'settled', payment_hash: paymentHash, preimage });
    expect(devnet.payeeKeysend(paymentHash)).toMatchObject({ preimage, tlvRecords: [] });
  });

  it('fails a keysend to a vault operator node: no deposit to credit (REJECTED)', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(0), party.user, 20_000n * SAT);
    const destination = info(1).operator.node_pubkey;
    const payment = await client(0).pay(depositId, {
      keysend: { destination },
      amountMsat: 1_000n * SAT,
      maxFeeMsat: 10_000n,
      idempotencyKey: 'keysend-to-vault',
      authorization: requestAuthorization(party, signTestGrant(party), 'pay_keysend', keysendParams({ amountMsat: 1_000n * SAT, pubkey: destination })),
    });
    expect(payment).toMatchObject({ state: 'failed', failure_reason: 'no deposit for keysend', failure_code: 'REJECTED', fee_msat: 0n });
    expect(await statusOf(0, depositId)).toMatchObject({ balance_msat: 20_000n * SAT, reserved_msat: 0n });
  });

  // ------------------------------------------------------------------ failure codes

  it('gives every failed payment a failure code: fee limit, no route, expired, already paid', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(0), party.user, 100_000n * SAT);
    const grant = signTestGrant(party);
    const attempt = (invoice: string, amountMsat: bigint, maxFeeMsat: bigint, key: string) =>
      client(0).pay(depositId, { invoice, amountMsat, maxFeeMsat, idempotencyKey: key, authorization: payAuthorization(party, grant, invoice) });
    const failedEvent = (key: string) => events.find((e) => e.type === 'payment_failed' && e.idempotency_key === key);

    // vault-a charges 1000 msat + 1000 ppm = 11 000 msat for 10 000 sat: a 5 000 msat limit is too low.
    const payee = devnet.createPayeeInvoice(10_000n * SAT);
    expect(await attempt(payee.invoice, 10_000n * SAT, 5_000n, 'fee-too-low')).toMatchObject({ state: 'failed', failure_code: 'FEE_LIMIT_EXCEEDED' });

    const bob = newParty();
    const bobDeposit = await client(1).openDeposit(signDepositOpen(bob.user.secretKey));
    const offline = await client(1).createInvoice(bobDeposit.deposit_id, { amountMsat: 1_000n * SAT });
    const op1 = devnet.operators[1];
    if (!op1) throw new Error('no operator');
    op1.faults.down = true;
    try {
      expect(await attempt(offline.invoice, 1_000n * SAT, 10_000n, 'no-route')).toMatchObject({ state: 'failed', failure_code: 'NO_ROUTE' });
    } finally {
      op1.faults.down = false;
    }

    const paidAlready = devnet.createPayeeInvoice(1_000n * SAT);
    expect((await devnet.payInvoice(paidAlready.invoice)).state).toBe('settled');
    expect(await attempt(paidAlready.invoice, 1_000n * SAT, 10_000n, 'already-paid')).toMatchObject({ state: 'failed', failure_code: 'ALREADY_PAID' });

    const op0 = devnet.operators[0];
    if (!op0) throw new Error('no operator');
    // Expiry is counted in whole seconds from a whole-second creation time: 2 s leave it at least 1 s to be paid in.
    const shortLived = await client(1).createInvoice(bobDeposit.deposit_id, { amountMsat: 1_000n * SAT, expirySeconds: 2 });
    op0.faults.holdPayments = true;
    try {
      expect((await attempt(shortLived.invoice, 1_000n * SAT, 10_000n, 'expires-in-flight')).state).toBe('pending');
      await eventually(() => Date.now() / 1000 >= shortLived.expires_at, 'invoice expiry', 4_000);
    } finally {
      op0.faults.holdPayments = false;
    }
    await eventually(async () => (await client(0).paymentStatus(depositId, 'expires-in-flight'))?.state === 'failed', 'expired payment fails');
    expect(await client(0).paymentStatus(depositId, 'expires-in-flight')).toMatchObject({ failure_code: 'INVOICE_EXPIRED' });

    for (const key of ['fee-too-low', 'no-route', 'already-paid', 'expires-in-flight']) {
      await eventually(() => failedEvent(key) !== undefined, `payment_failed event for ${key}`);
    }
    expect(failedEvent('fee-too-low')).toMatchObject({ failure_code: 'FEE_LIMIT_EXCEEDED' });
    expect(failedEvent('already-paid')).toMatchObject({ failure_code: 'ALREADY_PAID' });
    expect(await statusOf(0, depositId)).toMatchObject({ balance_msat: 100_000n * SAT, reserved_msat: 0n });
  });

  // ------------------------------------------------------------------ NWC-321 pay

  it('pays the invoice of a signed BIP-321 URI', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(1), party.user, 20_000n * SAT);
    const amount = 2_000n * SAT;
    const payee = devnet.createPayeeInvoice(amount);
    const uri = `bitcoin:?amount=0.00002&lightning=${payee.invoice.toUpperCase()}`;
    const payment = await client(1).pay(depositId, {
      invoice: payee.invoice,
      amountMsat: amount,
      maxFeeMsat: 10_000n,
      idempotencyKey: 'bip321',
      authorization: requestAuthorization(party, signTestGrant(party), 'pay', pay321Params({ payment: uri })),
    });
    expect(payment).toMatchObject({ state: 'settled', kind: 'invoice', payment_hash: payee.paymentHash, invoice: payee.invoice });
    expect(devnet.payeeInvoiceStatus(payee.paymentHash)?.state).toBe('settled');
  });

  it('resolves the devnet lightning address itself (LUD-16), pays it, and passes on the payer note', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, client(2), party.user, 20_000n * SAT);
    const amount = 3_210n * SAT;
    const address = devnet.lightningAddress;
    expect(address).toBe(`payee@${new URL(devnet.controlUrl).host}`);
    const params = {
      lightningAddress: address,
      amountMsat: amount,
      maxFeeMsat: feeLimitFor(amount, DEFAULT_FEE_LIMIT),
      idempotencyKey: 'lnurl-1',
      authorization: requestAuthorization(party, signTestGrant(party), 'pay', pay321Params({ payment: address, amountMsat: amount, payerNote: 'for the coffee' })),
    };
    const payment = await client(2).pay(depositId, params);
    expect(payment).toMatchObject({ state: 'settled', kind: 'lnurl', amount_msat: amount, destination: devnet.payeeNodePubkey });
    const decoded = decodeInvoice(payment.invoice ?? '');
    if (!decoded.ok) throw new Error(decoded.error.message);
    expect(decoded.value).toMatchObject({ amountMsat: amount, paymentHash: payment.payment_hash, payeeNodeKey: devnet.payeeNodePubkey });
    const lnurlp = (await fetch(`http://${new URL(devnet.controlUrl).host}/.well-known/lnurlp/payee`).then((r) => r.json())) as { metadata: string; tag: string };
    expect(lnurlp.tag).toBe('payRequest');
    expect(decoded.value.descriptionHash).toBe(bytesToHex(sha256(new TextEncoder().encode(lnurlp.metadata))));
    expect(devnet.payeeInvoiceStatus(payment.payment_hash)).toMatchObject({ state: 'settled', amountMsat: amount, comment: 'for the coffee', preimage: payment.preimage });
    // A retry is the same payment: the address is not resolved (nor paid) again.
    expect(await client(2).pay(depositId, params)).toEqual(payment);
    expect((await statusOf(2, depositId)).balance_msat).toBe(20_000n * SAT - amount - payment.fee_msat);
  });

  it('raises VaultError with the operator code on refusal', async () => {
    const error = await client(0).depositStatus('no-such-deposit').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VaultError);
    expect(error).toMatchObject({ code: 'NOT_FOUND', status: 404, outcomeUnknown: false });
  });
});
