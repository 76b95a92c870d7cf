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
import { newParty, payAuthorization, signTestGrant, type NwcParty } from '../helpers/authorization.ts';
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

describe('Vault API contract: HttpVaultClient against the reference operator', () => {
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
    clients = clientsFor(devnet);
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
    const stranger = new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: generateSecretKey() });
    await expect(stranger.depositStatus(deposit.deposit_id)).rejects.toMatchObject({ code: 'NOT_FOUND', status: 404 });
    const owner = new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: party.user.secretKey });
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

  it('raises VaultError with the operator code on refusal', async () => {
    const error = await client(0).depositStatus('no-such-deposit').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VaultError);
    expect(error).toMatchObject({ code: 'NOT_FOUND', status: 404, outcomeUnknown: false });
  });
});
