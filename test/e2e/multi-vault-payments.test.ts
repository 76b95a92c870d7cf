import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NWCClient } from '@getalby/sdk';
import fc from 'fast-check';
import { minimumPartFeeShare, planParts } from '../../src/deposits/payments.ts';
import type { DepositCandidate } from '../../src/deposits/allocation.ts';
import { sql } from 'kysely';
import { getPublicKey, nip19 } from 'nostr-tools';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { decodeInvoice } from '../../src/protocol/invoice.ts';
import { VaultError } from '../../src/vault-client/vault-client.ts';
import type { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { newParty, payAuthorization, signTestGrant } from '../helpers/authorization.ts';
import { clientsFor, fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';
import { BACKENDS } from '../helpers/database.ts';
import { connectRaw, fundDeposit } from '../helpers/wallet.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

describe('multi-part payments at the vaults (Vault API `mpp`)', () => {
  let devnet: Devnet;
  let clients: HttpVaultClient[];

  beforeAll(async () => {
    devnet = await startTestDevnet();
    clients = clientsFor(devnet);
  });
  afterAll(async () => {
    await devnet?.stop();
  });

  it('two vaults each pay their share of one invoice; the payee sees one payment of the total', async () => {
    const party = newParty();
    const grant = signTestGrant(party);
    const [a, b] = [clients[0]!, clients[1]!];
    const depA = await fundedDeposit(devnet, a, party.user, 100_000_000n);
    const depB = await fundedDeposit(devnet, b, party.user, 100_000_000n);
    const { invoice, paymentHash } = devnet.createPayeeInvoice(150_000_000n);
    const authorization = payAuthorization(party, grant, invoice);
    const total = { totalMsat: 150_000_000n };
    const [pa, pb] = await Promise.all([
      a.pay(depA, { invoice, amountMsat: 80_000_000n, maxFeeMsat: 800_000n, idempotencyKey: 'part-a', authorization, mpp: total }),
      b.pay(depB, { invoice, amountMsat: 70_000_000n, maxFeeMsat: 700_000n, idempotencyKey: 'part-b', authorization, mpp: total }),
    ]);
    expect([pa.state, pb.state]).toEqual(['settled', 'settled']);
    expect(pa.mpp_total_msat).toBe(150_000_000n);
    expect(devnet.payeeInvoiceStatus(paymentHash)?.state).toBe('settled');
    expect(devnet.payeeInvoiceStatus(paymentHash)?.amountMsat).toBe(150_000_000n);
    expect((await a.depositStatus(depA)).balance_msat).toBe(100_000_000n - 80_000_000n - pa.fee_msat);
    expect((await b.depositStatus(depB)).balance_msat).toBe(100_000_000n - 70_000_000n - pb.fee_msat);
  });

  it('refuses a share above the total the app signed, a total above the per-payment maximum, and a second share of one request at the same vault', async () => {
    const party = newParty();
    const grant = signTestGrant(party);
    const a = clients[0]!;
    const depA = await fundedDeposit(devnet, a, party.user, 100_000_000n);
    const { invoice } = devnet.createPayeeInvoice(50_000_000n);
    const authorization = payAuthorization(party, grant, invoice);
    await expect(a.pay(depA, { invoice, amountMsat: 60_000_000n, maxFeeMsat: 0n, idempotencyKey: 'too-big', authorization, mpp: { totalMsat: 50_000_000n } })).rejects.toThrow(VaultError);
    await expect(a.pay(depA, { invoice, amountMsat: 20_000_000n, maxFeeMsat: 200_000n, idempotencyKey: 'wrong-total', authorization, mpp: { totalMsat: 40_000_000n } })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    // The per-payment maximum bounds what the app asked for, not one share of it.
    const capped = signTestGrant(party, { maxAmountMsat: 40_000_000n });
    await expect(
      a.pay(depA, { invoice, amountMsat: 20_000_000n, maxFeeMsat: 200_000n, idempotencyKey: 'over-maximum', authorization: payAuthorization(party, capped, invoice), mpp: { totalMsat: 50_000_000n } }),
    ).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    devnet.operators[0]!.faults.holdPayments = true;
    const first = await a.pay(depA, { invoice, amountMsat: 20_000_000n, maxFeeMsat: 200_000n, idempotencyKey: 'share-1', authorization, mpp: { totalMsat: 50_000_000n } });
    expect(first.state).toBe('pending');
    await expect(a.pay(depA, { invoice, amountMsat: 30_000_000n, maxFeeMsat: 300_000n, idempotencyKey: 'share-2', authorization, mpp: { totalMsat: 50_000_000n } })).rejects.toMatchObject({ code: 'REPLAYED' });
    devnet.operators[0]!.faults.holdPayments = false;
  });
});

const SAT = 1000n;

/** The deposits of the user behind an NWC client, with the journal's sums beside the cached columns. */
async function depositsOf(world: World, userPubkey: string) {
  const db = world.bridge.wallet.db;
  const rows = await db.selectFrom('deposits').selectAll().where('user_pubkey', '=', userPubkey).orderBy('id').execute();
  return Promise.all(
    rows.map(async (d) => {
      const sums = await db
        .selectFrom('journal_entries')
        .select([sql<bigint>`coalesce(sum(confirmed_delta_msat), 0)::bigint`.as('confirmed'), sql<bigint>`coalesce(sum(reserved_delta_msat), 0)::bigint`.as('reserved')])
        .where('deposit_id', '=', d.id)
        .executeTakeFirstOrThrow();
      const op = world.bridge.wallet.operators.get(d.operator_pubkey)!;
      const status = await op.client.depositStatus(d.remote_deposit_id);
      return { ...d, journalConfirmed: sums.confirmed, journalReserved: sums.reserved, vaultBalance: status.balance_msat, vaultReserved: status.reserved_msat };
    }),
  );
}


async function connectUser(world: World): Promise<{ client: NWCClient; userPubkey: string }> {
  const out = await runCli(['connect', '--url', world.bridge.url]);
  const client = new NWCClient({ nostrWalletConnectUrl: out.lastLine });
  const row = await world.bridge.wallet.db.selectFrom('connections').select('user_pubkey').where('pubkey', '=', client.publicKey).executeTakeFirstOrThrow();
  return { client, userPubkey: row.user_pubkey };
}

describe.each(BACKENDS)('one invoice paid from several deposits, through a real NWC client, bridge on %s', (backend) => {
  let world: World;

  beforeAll(async () => {
    world = await startWorld(backend);
  });
  afterAll(async () => {
    await world?.stop();
  });

  it('pays an invoice larger than any deposit with parts from several vaults: one settled payment of the total at the payee', async () => {
    const { client, userPubkey } = await connectUser(world);
    try {
      const deposits = await depositsOf(world, userPubkey);
      expect(deposits).toHaveLength(3);
      for (const d of deposits) await fundDeposit(world, d.id, 60_000n * SAT);
      const { invoice, paymentHash } = world.devnet.createPayeeInvoice(150_000n * SAT, 'one big purchase');

      const result = await client.payInvoice({ invoice });

      expect(world.devnet.payeeInvoiceStatus(paymentHash)).toMatchObject({ state: 'settled', amountMsat: 150_000n * SAT });
      const db = world.bridge.wallet.db;
      const tx = await db.selectFrom('transactions').selectAll().where('payment_hash', '=', paymentHash).where('type', '=', 'outgoing').executeTakeFirstOrThrow();
      const parts = await db.selectFrom('payment_parts').selectAll().where('transaction_id', '=', tx.id).orderBy('id').execute();
      expect(parts.length).toBeGreaterThanOrEqual(3);
      expect(parts.every((p) => p.state === 'settled' && p.preimage === result.preimage)).toBe(true);
      expect(parts.reduce((sum, p) => sum + p.amount_msat, 0n)).toBe(150_000n * SAT);
      const fees = parts.reduce((sum, p) => sum + p.fee_msat, 0n);
      expect(tx).toMatchObject({ state: 'settled', amount_msat: 150_000n * SAT, fee_msat: fees, preimage: result.preimage });
      expect(BigInt(result.fees_paid ?? -1)).toBe(fees);
      // Every fee within its part's share of the one fee limit.
      for (const p of parts) expect(p.fee_msat).toBeLessThanOrEqual(p.fee_reserve_msat);
      expect(parts.reduce((sum, p) => sum + p.fee_reserve_msat, 0n)).toBeLessThanOrEqual(1_500n * SAT);

      const after = await depositsOf(world, userPubkey);
      for (const d of after) {
        const part = parts.find((p) => p.deposit_id === d.id);
        const spent = part ? part.amount_msat + part.fee_msat : 0n;
        expect(d.confirmed_msat).toBe(60_000n * SAT - spent);
        expect(d.reserved_msat).toBe(0n);
        expect(d.journalConfirmed).toBe(d.confirmed_msat);
        expect(d.journalReserved).toBe(0n);
        expect(d.vaultBalance).toBe(d.confirmed_msat);
      }
      // One payment in the wallet's history, with the total and all the fees.
      const { transactions } = await client.listTransactions({ type: 'outgoing' });
      expect(transactions).toHaveLength(1);
      expect(transactions[0]).toMatchObject({ state: 'settled', amount: Number(150_000n * SAT), fees_paid: Number(fees), payment_hash: paymentHash });
      expect((await client.getBalance()).balance).toBe(Number(180_000n * SAT - 150_000n * SAT - fees));
    } finally {
      client.close();
    }
  });

  it('when one part fails at its vault, no part settles, every reservation is released, and the app gets an error', async () => {
    const { client, userPubkey } = await connectUser(world);
    try {
      const deposits = await depositsOf(world, userPubkey);
      for (const d of deposits) await fundDeposit(world, d.id, 60_000n * SAT);
      const { invoice, paymentHash } = world.devnet.createPayeeInvoice(150_000n * SAT, 'doomed purchase');
      const faulty = world.devnet.operators[1]!;
      faulty.faults.failPayments = 'fault: this vault fails every payment';
      let error: unknown;
      try {
        await client.payInvoice({ invoice });
      } catch (e) {
        error = e;
      } finally {
        faulty.faults.failPayments = null;
      }
      expect(error).toMatchObject({ code: 'PAYMENT_FAILED' });

      expect(world.devnet.payeeInvoiceStatus(paymentHash)?.state).not.toBe('settled');
      const db = world.bridge.wallet.db;
      const tx = await db.selectFrom('transactions').selectAll().where('payment_hash', '=', paymentHash).where('type', '=', 'outgoing').executeTakeFirstOrThrow();
      expect(tx.state).toBe('failed');
      const parts = await db.selectFrom('payment_parts').selectAll().where('transaction_id', '=', tx.id).execute();
      expect(parts.length).toBeGreaterThanOrEqual(3);
      expect(parts.every((p) => p.state === 'failed')).toBe(true);
      // The faulty vault's part failed there; the others were held by the payee until the set timed out.
      expect(parts.some((p) => p.failure_reason?.includes('fault'))).toBe(true);
      expect(parts.some((p) => p.failure_reason?.includes('mpp_timeout'))).toBe(true);
      for (const d of await depositsOf(world, userPubkey)) {
        expect(d.confirmed_msat).toBe(60_000n * SAT);
        expect(d.reserved_msat).toBe(0n);
        expect(d.journalConfirmed).toBe(d.confirmed_msat);
        expect(d.journalReserved).toBe(0n);
        expect(d.vaultBalance).toBe(60_000n * SAT);
        expect(d.vaultReserved).toBe(0n);
      }
      // Every reservation journaled, and every one released.
      const entries = await db.selectFrom('journal_entries').select(['kind', 'reserved_delta_msat']).where('transaction_id', '=', tx.id).execute();
      expect(entries.filter((e) => e.kind === 'reserve')).toHaveLength(parts.length);
      expect(entries.filter((e) => e.kind === 'release')).toHaveLength(parts.length);
      expect((await client.getBalance()).balance).toBe(Number(180_000n * SAT));
    } finally {
      client.close();
    }
  });

  it('keeps the payment pending, its parts reserved, until every vault reports a final state', async () => {
    const { client, userPubkey } = await connectUser(world);
    try {
      for (const d of await depositsOf(world, userPubkey)) await fundDeposit(world, d.id, 60_000n * SAT);
      const { invoice, paymentHash } = world.devnet.createPayeeInvoice(150_000n * SAT, 'one vault holds its part');
      const slow = world.devnet.operators[1]!;
      slow.faults.holdPayments = true;
      let answered = false;
      const paying = client.payInvoice({ invoice }).finally(() => (answered = true));
      paying.catch(() => undefined);
      const db = world.bridge.wallet.db;
      const partsNow = async () => {
        const tx = await db.selectFrom('transactions').select(['id', 'state']).where('payment_hash', '=', paymentHash).where('type', '=', 'outgoing').executeTakeFirst();
        if (!tx) return null;
        const parts = await db
          .selectFrom('payment_parts')
          .innerJoin('deposits', 'deposits.id', 'payment_parts.deposit_id')
          .select(['payment_parts.state', 'payment_parts.step', 'payment_parts.amount_msat', 'payment_parts.fee_reserve_msat', 'deposits.operator_pubkey', 'deposits.reserved_msat'])
          .where('payment_parts.transaction_id', '=', tx.id)
          .execute();
        return { tx, parts };
      };
      try {
        // The parts that reached the payee fail there when the held one never comes (mpp_timeout)…
        await waitFor(async () => {
          const now = await partsNow();
          return now !== null && now.parts.filter((p) => p.operator_pubkey !== slow.nodePubkey).every((p) => p.state === 'failed') && now.parts.length >= 3;
        }, 'the other parts to fail');
        // …yet the payment stays pending while the held part is not final, its money reserved.
        const now = (await partsNow())!;
        expect(now.tx.state).toBe('pending');
        const held = now.parts.find((p) => p.operator_pubkey === slow.nodePubkey)!;
        expect(held).toMatchObject({ state: 'pending', step: 'sent' });
        expect(held.reserved_msat).toBe(held.amount_msat + held.fee_reserve_msat);
        expect(answered).toBe(false);
      } finally {
        slow.faults.holdPayments = false;
      }
      // Released, the held part goes out alone and fails at the payee too: then the payment fails.
      await expect(paying).rejects.toMatchObject({ code: 'PAYMENT_FAILED' });
      expect(world.devnet.payeeInvoiceStatus(paymentHash)?.state).not.toBe('settled');
      for (const d of await depositsOf(world, userPubkey)) {
        expect(d).toMatchObject({ confirmed_msat: 60_000n * SAT, reserved_msat: 0n, journalConfirmed: 60_000n * SAT, journalReserved: 0n, vaultBalance: 60_000n * SAT });
      }
    } finally {
      client.close();
    }
  });

  it('finishes a multi-part payment in flight across a bridge restart, settling it once', async () => {
    const { client, userKey } = await connectRaw(world, 'nip44_v2');
    try {
      const userPubkey = getPublicKey(nip19.decode(userKey!).data as Uint8Array);
      for (const d of await depositsOf(world, userPubkey)) await fundDeposit(world, d.id, 60_000n * SAT);
      const { invoice, paymentHash } = world.devnet.createPayeeInvoice(150_000n * SAT, 'paid across a restart');
      for (const op of world.devnet.operators) op.faults.holdPayments = true;
      const event = client.signRequest(client.encrypt(JSON.stringify({ method: 'pay_invoice', params: { invoice } })));
      const answered = client.send(event, 90_000);
      const db = () => world.bridge.wallet.db;
      const parts = async () => {
        const tx = await db().selectFrom('transactions').select('id').where('request_event_id', '=', event.id).executeTakeFirst();
        if (!tx) return [];
        return db()
          .selectFrom('payment_parts')
          .innerJoin('deposits', 'deposits.id', 'payment_parts.deposit_id')
          .select(['payment_parts.idempotency_key', 'payment_parts.step', 'payment_parts.state', 'deposits.operator_pubkey', 'deposits.remote_deposit_id'])
          .where('payment_parts.transaction_id', '=', tx.id)
          .execute();
      };
      await waitFor(async () => {
        const now = await parts();
        return now.length >= 3 && now.every((p) => p.step === 'sent');
      }, 'every part sent');
      // 'sent' is written before the call: wait until each vault really holds its part.
      for (const p of await parts()) {
        const vault = world.bridge.wallet.operators.get(p.operator_pubkey)!.client;
        await waitFor(async () => (await vault.paymentStatus(p.remote_deposit_id, p.idempotency_key))?.state === 'pending', 'part held by its vault');
      }

      world.bridge = await world.restartBridge();
      expect((await parts()).every((p) => p.state === 'pending')).toBe(true);
      for (const op of world.devnet.operators) op.faults.holdPayments = false;

      const response = await answered;
      expect(response.error).toBeNull();
      expect(world.devnet.payeeInvoiceStatus(paymentHash)).toMatchObject({ state: 'settled', amountMsat: 150_000n * SAT });
      const tx = await db().selectFrom('transactions').selectAll().where('request_event_id', '=', event.id).executeTakeFirstOrThrow();
      expect(tx).toMatchObject({ state: 'settled', preimage: response.result.preimage });
      expect(BigInt(response.result.fees_paid)).toBe(tx.fee_msat);
      const finished = await db().selectFrom('payment_parts').selectAll().where('transaction_id', '=', tx.id).execute();
      expect(finished.every((p) => p.state === 'settled')).toBe(true);
      // Each part debited once.
      const debits = await db().selectFrom('journal_entries').select('deposit_id').where('transaction_id', '=', tx.id).where('kind', '=', 'debit').execute();
      expect(debits).toHaveLength(finished.length);
      for (const d of await depositsOf(world, userPubkey)) {
        const part = finished.find((p) => p.deposit_id === d.id);
        expect(d.confirmed_msat).toBe(60_000n * SAT - (part ? part.amount_msat + part.fee_msat : 0n));
        expect(d.reserved_msat).toBe(0n);
        expect(d.journalConfirmed).toBe(d.confirmed_msat);
        expect(d.vaultBalance).toBe(d.confirmed_msat);
      }
    } finally {
      for (const op of world.devnet.operators) op.faults.holdPayments = false;
      client.close();
    }
  });

  it('pays an invoice without basic_mpp that no deposit covers by first moving money between the user\'s own deposits', async () => {
    const alice = await connectUser(world);
    const bob = await connectUser(world);
    try {
      for (const d of await depositsOf(world, alice.userPubkey)) await fundDeposit(world, d.id, 60_000n * SAT);
      // Bob's vaults issue invoices without basic_mpp: one vault must pay it whole.
      for (const op of world.devnet.operators) op.faults.noMppInvoices = true;
      let made;
      try {
        made = await bob.client.makeInvoice({ amount: Number(100_000n * SAT), description: 'no multi-part here' });
      } finally {
        for (const op of world.devnet.operators) op.faults.noMppInvoices = false;
      }
      expect(decodeInvoice(made.invoice)).toMatchObject({ ok: true, value: { basicMpp: false } });

      const result = await alice.client.payInvoice({ invoice: made.invoice });

      await waitFor(async () => (await bob.client.getBalance()).balance === Number(100_000n * SAT), "bob's credit");
      const db = world.bridge.wallet.db;
      const payment = await db.selectFrom('transactions').selectAll().where('payment_hash', '=', made.payment_hash).where('type', '=', 'outgoing').executeTakeFirstOrThrow();
      expect(payment).toMatchObject({ state: 'settled', amount_msat: 100_000n * SAT, preimage: result.preimage });
      expect(await db.selectFrom('payment_parts').select('id').where('transaction_id', '=', payment.id).execute()).toHaveLength(0);
      // One transfer, settled, from another deposit of alice's into the one that paid.
      const transfers = await db.selectFrom('transfers').selectAll().where('user_pubkey', '=', alice.userPubkey).execute();
      expect(transfers).toHaveLength(1);
      const transfer = transfers[0]!;
      expect(transfer).toMatchObject({ purpose: 'payment', state: 'settled', to_deposit_id: payment.deposit_id });
      expect(transfer.from_deposit_id).not.toBe(payment.deposit_id);
      const out = await db.selectFrom('transactions').selectAll().where('id', '=', transfer.outgoing_transaction_id!).executeTakeFirstOrThrow();
      const into = await db.selectFrom('transactions').selectAll().where('id', '=', transfer.incoming_transaction_id!).executeTakeFirstOrThrow();
      expect(out).toMatchObject({ state: 'settled', amount_msat: transfer.amount_msat, deposit_id: transfer.from_deposit_id });
      expect(into).toMatchObject({ state: 'settled', amount_msat: transfer.amount_msat, deposit_id: transfer.to_deposit_id });
      expect(out.fee_msat).toBeLessThanOrEqual(transfer.max_fee_msat);

      const deposits = await depositsOf(world, alice.userPubkey);
      for (const d of deposits) {
        const expected =
          60_000n * SAT +
          (d.id === transfer.to_deposit_id ? transfer.amount_msat - 100_000n * SAT - payment.fee_msat : 0n) -
          (d.id === transfer.from_deposit_id ? transfer.amount_msat + out.fee_msat : 0n);
        expect(d.confirmed_msat).toBe(expected);
        expect(d.reserved_msat).toBe(0n);
        expect(d.journalConfirmed).toBe(d.confirmed_msat);
        expect(d.vaultBalance).toBe(d.confirmed_msat);
      }
      expect((await alice.client.getBalance()).balance).toBe(Number(180_000n * SAT - 100_000n * SAT - payment.fee_msat - out.fee_msat));
    } finally {
      alice.client.close();
      bob.client.close();
    }
  });
});

describe('how a payment is split (planParts)', () => {
  const candidate = (i: number, available: bigint): DepositCandidate => ({
    depositId: BigInt(i + 1),
    operatorPubkey: `op${i}`,
    score: 1,
    healthy: true,
    confirmedMsat: available,
    availableMsat: available,
    roomMsat: null,
  });

  it('parts add up to the total, each covered by its deposit with its fee share, the shares within the one fee limit', () => {
    fc.assert(
      fc.property(
        fc.array(fc.bigInt({ min: 0n, max: 10n ** 12n }), { minLength: 1, maxLength: 10 }),
        fc.bigInt({ min: 1n, max: 10n ** 12n }),
        fc.bigInt({ min: 0n, max: 10n ** 10n }),
        fc.bigInt({ min: 0n, max: 10n ** 6n }),
        (availables, total, feeLimit, grantBase) => {
          const order = availables.map((a, i) => candidate(i, a));
          const minShare = minimumPartFeeShare(feeLimit, grantBase);
          const plan = planParts(order, total, feeLimit, minShare);
          if (plan === null) return;
          expect(plan.length).toBeGreaterThanOrEqual(2);
          expect(plan.length).toBeLessThanOrEqual(8);
          expect(plan.reduce((sum, p) => sum + p.amountMsat, 0n)).toBe(total);
          expect(plan.reduce((sum, p) => sum + p.feeReserveMsat, 0n)).toBeLessThanOrEqual(feeLimit);
          expect(new Set(plan.map((p) => p.depositId)).size).toBe(plan.length);
          for (const p of plan) {
            expect(p.amountMsat).toBeGreaterThan(0n);
            const c = order.find((o) => o.depositId === p.depositId)!;
            expect(p.amountMsat + p.feeReserveMsat).toBeLessThanOrEqual(c.availableMsat);
            // Within the grant's limit for the part too: a share of the whole's is proportional.
            expect(p.feeReserveMsat * total).toBeLessThanOrEqual(feeLimit * p.amountMsat);
            expect(p.feeReserveMsat).toBeGreaterThanOrEqual(minShare);
          }
        },
      ),
    );
  });

  it('finds a split whenever the first eight deposits hold the total with the fee limit beside it', () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: 1n, max: 10n ** 9n }), { minLength: 2, maxLength: 8 }), fc.bigInt({ min: 0n, max: 10n ** 7n }), (availables, feeLimit) => {
        const sum = availables.reduce((s, a) => s + a, 0n);
        const total = sum - feeLimit - BigInt(availables.length) - 1n;
        const largest = availables.reduce((m, a) => (a > m ? a : m), 0n);
        const n = BigInt(availables.length);
        // Each part is rounded down by less than one msat: the deposits must hold that much more.
        fc.pre(total > 0n && largest < total + feeLimit && sum * total >= (total + n) * (total + feeLimit));
        expect(planParts(availables.map((a, i) => candidate(i, a)), total, feeLimit)).not.toBeNull();
      }),
    );
  });

  it('passes over a deposit that could carry only a sliver of the payment and of its fee limit', () => {
    // 21 384 sat at the default 1 % fee limit, one deposit with 22 sat left: its part would carry
    // a fee share of about 220 msat, below one route's base fee, and fail on it.
    const total = 21_384_000n;
    const feeLimit = 213_840n;
    const minShare = minimumPartFeeShare(feeLimit, 10_000n);
    expect(minShare).toBe(10_000n);
    expect(planParts([candidate(0, 21_380_000n), candidate(1, 22_000n)], total, feeLimit, minShare)).toBeNull();
    const plan = planParts([candidate(0, 21_380_000n), candidate(1, 22_000n), candidate(2, 5_000_000n)], total, feeLimit, minShare)!;
    expect(plan.map((p) => p.depositId)).toEqual([1n, 3n]);
    expect(plan.reduce((sum, p) => sum + p.amountMsat, 0n)).toBe(total);
    for (const p of plan) expect(p.feeReserveMsat).toBeGreaterThanOrEqual(minShare);
    // A first part that would leave a sliver behind is shortened so the last part is not one.
    const shortened = planParts([candidate(0, 21_300_000n), candidate(1, 5_000_000n)], total, feeLimit, minShare)!;
    expect(shortened.map((p) => p.feeReserveMsat >= minShare)).toEqual([true, true]);
    expect(shortened.reduce((sum, p) => sum + p.amountMsat, 0n)).toBe(total);
  });
});
