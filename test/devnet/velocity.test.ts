/**
 * Vault-side velocity: the reference operator counts a connection's payments of the last
 * 3600 s from its own records (pending and settled, not failed; amounts without fees) and
 * refuses the one that would go past the grant's `velocity` with QUOTA_EXCEEDED.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateSecretKey, type Event } from 'nostr-tools/pure';
import type { Devnet, DevnetOperator } from '../../src/devnet/devnet.ts';
import { DEFAULT_FEE_LIMIT, feeLimitFor, type Msat } from '../../src/protocol/amounts.ts';
import { bytesToHex } from '../../src/protocol/hex.ts';
import type { VaultErrorCode } from '../../src/protocol/result.ts';
import type { VaultPayment } from '../../src/protocol/vault-api.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { newKeypair, newParty, payAuthorization, signTestGrant, type NwcParty } from '../helpers/authorization.ts';
import { eventually, fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';

const SAT = 1000n;
const FUNDS = 1_000_000n * SAT;
const AMOUNT = 10_000n * SAT;

describe('velocity limits enforced by the vault on its own records', () => {
  let devnet: Devnet;
  let opA: DevnetOperator;
  let vaultA: HttpVaultClient;
  let vaultB: HttpVaultClient;

  beforeAll(async () => {
    devnet = await startTestDevnet({ operators: 2, operatorPorts: [0, 0], paymentWaitMs: 300 });
    const [a, b] = devnet.operators;
    if (!a || !b) throw new Error('no operators');
    opA = a;
    const bridgeKey = generateSecretKey();
    vaultA = new HttpVaultClient({ url: a.url, secretKey: bridgeKey });
    vaultB = new HttpVaultClient({ url: b.url, secretKey: bridgeKey });
  });
  afterAll(async () => {
    await devnet.stop();
  });
  afterEach(() => {
    vi.restoreAllMocks();
    opA.faults.holdPayments = false;
    opA.faults.failPayments = null;
  });

  /** A fresh user whose connection is granted `velocity` (no budget, default fee limit). */
  const partyWith = (velocity: { paymentsPerHour: number | null; amountMsatPerHour: Msat | null }) => {
    const party = newParty();
    return { party, grant: signTestGrant(party, { velocity }) };
  };

  /** Pays a fresh payee invoice of `amount` from the deposit under `grant`, with a new request and the grant's fee limit. */
  const pay = (vault: HttpVaultClient, depositId: string, party: NwcParty, grant: Event, amount: Msat = AMOUNT, key = bytesToHex(generateSecretKey())) => {
    const invoice = devnet.createPayeeInvoice(amount).invoice;
    return vault.pay(depositId, { invoice, amountMsat: amount, maxFeeMsat: feeLimitFor(amount, DEFAULT_FEE_LIMIT), idempotencyKey: key, authorization: payAuthorization(party, grant, invoice) });
  };

  /** The payment is refused with `code` and `reason`: counted as a refusal, nothing recorded, no balance change. */
  const expectRefused = async (vault: HttpVaultClient, depositId: string, attempt: (key: string) => Promise<VaultPayment>, code: VaultErrorCode, reason: RegExp) => {
    const before = await vault.depositStatus(depositId);
    const refused = (await vault.metrics()).authorizations_refused;
    const key = bytesToHex(generateSecretKey());
    await expect(attempt(key)).rejects.toMatchObject({ code, message: expect.stringMatching(reason) });
    expect(await vault.paymentStatus(depositId, key)).toBeNull();
    expect(await vault.depositStatus(depositId)).toEqual(before);
    expect((await vault.metrics()).authorizations_refused).toBe(refused + 1);
  };

  it('accepts the n-th payment in the hour and refuses the next, counting pending and settled but not failed ones', async () => {
    const { party, grant } = partyWith({ paymentsPerHour: 3, amountMsatPerHour: null });
    const depositId = await fundedDeposit(devnet, vaultA, party.user, FUNDS);

    expect((await pay(vaultA, depositId, party, grant)).state).toBe('settled');
    opA.faults.failPayments = 'temporary channel failure';
    expect((await pay(vaultA, depositId, party, grant)).state).toBe('failed');
    opA.faults.failPayments = null;
    opA.faults.holdPayments = true;
    expect((await pay(vaultA, depositId, party, grant, AMOUNT, 'held-1')).state).toBe('pending');
    // Third counted payment (settled + pending + this one): accepted.
    expect((await pay(vaultA, depositId, party, grant, AMOUNT, 'held-2')).state).toBe('pending');
    await expectRefused(vaultA, depositId, (key) => pay(vaultA, depositId, party, grant, AMOUNT, key), 'QUOTA_EXCEEDED', /velocity exceeded: at most 3 payments an hour/);

    opA.faults.holdPayments = false;
    await eventually(async () => (await vaultA.paymentStatus(depositId, 'held-2'))?.state === 'settled', 'held payments settle');
    expect((await vaultA.paymentStatus(depositId, 'held-1'))?.state).toBe('settled');
    await expectRefused(vaultA, depositId, (key) => pay(vaultA, depositId, party, grant, 1n * SAT, key), 'QUOTA_EXCEEDED', /at most 3 payments an hour/);
  });

  it('counts per connection and per operator', async () => {
    const { party, grant } = partyWith({ paymentsPerHour: 1, amountMsatPerHour: null });
    const depositA = await fundedDeposit(devnet, vaultA, party.user, FUNDS);
    expect((await pay(vaultA, depositA, party, grant)).state).toBe('settled');
    await expectRefused(vaultA, depositA, (key) => pay(vaultA, depositA, party, grant, AMOUNT, key), 'QUOTA_EXCEEDED', /velocity exceeded/);

    // Another connection of the same owner has its own hour.
    const other: NwcParty = { ...party, connection: newKeypair() };
    expect((await pay(vaultA, depositA, other, signTestGrant(other, { velocity: { paymentsPerHour: 1, amountMsatPerHour: null } }))).state).toBe('settled');
    // Another operator counts only the payments it made itself.
    const depositB = await fundedDeposit(devnet, vaultB, party.user, FUNDS);
    expect((await pay(vaultB, depositB, party, grant)).state).toBe('settled');
    await expectRefused(vaultB, depositB, (key) => pay(vaultB, depositB, party, grant, AMOUNT, key), 'QUOTA_EXCEEDED', /velocity exceeded/);
  });

  it('accepts amounts up to the hourly amount, fees excluded, and refuses the payment that would pass it', async () => {
    const { party, grant } = partyWith({ paymentsPerHour: null, amountMsatPerHour: 2n * AMOUNT });
    const depositId = await fundedDeposit(devnet, vaultA, party.user, FUNDS);

    // A failed payment's amount does not count.
    opA.faults.failPayments = 'no route';
    expect((await pay(vaultA, depositId, party, grant)).state).toBe('failed');
    opA.faults.failPayments = null;
    const first = await pay(vaultA, depositId, party, grant, AMOUNT);
    expect(first).toMatchObject({ state: 'settled' });
    expect(first.fee_msat).toBeGreaterThan(0n);
    await expectRefused(vaultA, depositId, (key) => pay(vaultA, depositId, party, grant, AMOUNT + 1n * SAT, key), 'QUOTA_EXCEEDED', /velocity exceeded: at most 20000000 msat an hour/);
    // Exactly up to the limit: the fees already paid do not count.
    opA.faults.holdPayments = true;
    expect((await pay(vaultA, depositId, party, grant, AMOUNT, 'to-the-limit')).state).toBe('pending');
    // Pending amounts count too.
    await expectRefused(vaultA, depositId, (key) => pay(vaultA, depositId, party, grant, 1n * SAT, key), 'QUOTA_EXCEEDED', /msat an hour/);
    opA.faults.holdPayments = false;
    await eventually(async () => (await vaultA.paymentStatus(depositId, 'to-the-limit'))?.state === 'settled', 'held payment settles');
    await expectRefused(vaultA, depositId, (key) => pay(vaultA, depositId, party, grant, 1n * SAT, key), 'QUOTA_EXCEEDED', /msat an hour/);
  });

  it('rolls: a payment leaves the count 3600 s after it was accepted', async () => {
    const { party, grant } = partyWith({ paymentsPerHour: 1, amountMsatPerHour: AMOUNT });
    const depositId = await fundedDeposit(devnet, vaultA, party.user, FUNDS);
    const first = await pay(vaultA, depositId, party, grant);
    expect(first.state).toBe('settled');

    // The whole devnet runs in this process: shift its clock (and the app's) to the start of a second.
    const realNow = Date.now.bind(Date);
    const shiftTo = (second: number) => {
      const offset = second * 1000 + 20 - realNow();
      vi.spyOn(Date, 'now').mockImplementation(() => realNow() + offset);
    };
    shiftTo(first.created_at + 3600);
    await expectRefused(vaultA, depositId, (key) => pay(vaultA, depositId, party, grant, AMOUNT, key), 'QUOTA_EXCEEDED', /velocity exceeded/);
    shiftTo(first.created_at + 3601);
    expect((await pay(vaultA, depositId, party, grant)).state).toBe('settled');
  });
});
