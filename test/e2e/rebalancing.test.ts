import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NWCClient } from '@getalby/sdk';
import { sql } from 'kysely';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { allocate, DEFAULT_POLICY } from '../../src/deposits/allocation.ts';
import { depositCandidates } from '../../src/deposits/deposit-candidates.ts';
import { recordIncident } from '../../src/deposits/incidents.ts';
import { planMove, rebalanceOnce, rebalanceUser } from '../../src/deposits/rebalancer.ts';
import type { DepositCandidate } from '../../src/deposits/allocation.ts';
import { feeLimitFor } from '../../src/protocol/amounts.ts';
import fc from 'fast-check';
import { SERVED_METHODS } from '../../src/nwc/methods/registry.ts';
import { bytesToHex } from '../../src/protocol/hex.ts';
import { grantTerms, signGrant } from '../../src/protocol/grant.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import type { Devnet } from '../../src/devnet/devnet.ts';
import type { TransferDestination } from '../../src/protocol/transfer.ts';
import type { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import type { TransferParams } from '../../src/vault-client/vault-client.ts';
import { newKeypair, newParty, PAYING_GRANT_METHODS, payAuthorization, signTestGrant } from '../helpers/authorization.ts';
import { clientsFor, fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';
import { BACKENDS } from '../helpers/database.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';
import { fundDeposit } from '../helpers/wallet.ts';

const SAT = 1000n;

/** Registers a connection over the bridge's API as `deposit-bridge connect` does, with the grant terms given. */
async function connect(world: World, userKey: Uint8Array, methods: string[], vaultOperators: string[] | null): Promise<NWCClient> {
  const connectionSecret = generateSecretKey();
  const grant = signGrant(grantTerms(getPublicKey(connectionSecret), methods, { name: 'rebalancing', vaultOperators }), userKey);
  const url = `${world.bridge.url}/api/connections`;
  const body = JSON.stringify({ grant, deposit_open: signDepositOpen(userKey) });
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: httpAuthHeader(userKey, url, 'POST', body) }, body });
  expect(res.status).toBeLessThan(300);
  const registered = (await res.json()) as { wallet_service_pubkey: string; relays: string[] };
  const uri = new URL(`nostr+walletconnect://${registered.wallet_service_pubkey}`);
  for (const relay of registered.relays) uri.searchParams.append('relay', relay);
  uri.searchParams.set('secret', bytesToHex(connectionSecret));
  return new NWCClient({ nostrWalletConnectUrl: uri.toString() });
}


/** Money away from its targets (the sum of the shortfalls below target), and the total. */
async function driftOf(world: World, userPubkey: string): Promise<{ drift: bigint; total: bigint }> {
  const ctx = world.bridge.wallet;
  const candidates = await depositCandidates(ctx, ctx.db, userPubkey);
  const total = candidates.reduce((sum, c) => sum + c.confirmedMsat, 0n);
  const { targets } = allocate(candidates, total, DEFAULT_POLICY);
  const drift = candidates.reduce((sum, c) => {
    const gap = (targets.get(c.depositId) ?? 0n) - c.confirmedMsat;
    return sum + (gap > 0n ? gap : 0n);
  }, 0n);
  return { drift, total };
}

/** Each deposit's cached balance equals its journal and what both channel peers signed at its vault. */
async function expectBooksAgree(world: World, userPubkey: string): Promise<void> {
  const db = world.bridge.wallet.db;
  for (const d of await db.selectFrom('deposits').selectAll().where('user_pubkey', '=', userPubkey).execute()) {
    const sums = await db
      .selectFrom('journal_entries')
      .select([sql<bigint>`coalesce(sum(confirmed_delta_msat), 0)::bigint`.as('confirmed'), sql<bigint>`coalesce(sum(reserved_delta_msat), 0)::bigint`.as('reserved')])
      .where('deposit_id', '=', d.id)
      .executeTakeFirstOrThrow();
    expect(sums.confirmed).toBe(d.confirmed_msat);
    expect(sums.reserved).toBe(d.reserved_msat);
    expect(d.reserved_msat).toBe(0n);
    const status = await world.bridge.wallet.operators.get(d.operator_pubkey)!.client.depositStatus(d.remote_deposit_id);
    expect(status.balance_msat).toBe(d.confirmed_msat);
  }
}

/** Fees of the user's transfers (their outgoing sides). */
async function transferFees(world: World, userPubkey: string): Promise<bigint> {
  const row = await world.bridge.wallet.db
    .selectFrom('transfers')
    .innerJoin('transactions', 'transactions.id', 'transfers.outgoing_transaction_id')
    .select(sql<bigint>`coalesce(sum(transactions.fee_msat), 0)::bigint`.as('fees'))
    .where('transfers.user_pubkey', '=', userPubkey)
    .where('transfers.state', '=', 'settled')
    .executeTakeFirstOrThrow();
  return row.fees;
}

describe.each(BACKENDS)('the rebalancer, on the devnet, bridge on %s', (backend) => {
  let world: World;
  let operators: string[];

  beforeAll(async () => {
    world = await startWorld(backend);
    operators = world.devnet.operators.map((o) => o.nodePubkey);
  });
  afterAll(async () => {
    await world?.stop();
  });

  it('does nothing for a user whose grant does not allow rebalancing', async () => {
    const userKey = generateSecretKey();
    const user = getPublicKey(userKey);
    const client = await connect(world, userKey, [...SERVED_METHODS], operators);
    try {
      const [first] = await world.bridge.wallet.db.selectFrom('deposits').select('id').where('user_pubkey', '=', user).orderBy('id').execute();
      await fundDeposit(world, first!.id, 300_000n * SAT);
      expect(await rebalanceUser(world.bridge.wallet, user)).toBeNull();
      expect(await world.bridge.wallet.db.selectFrom('transfers').select('id').where('user_pubkey', '=', user).execute()).toHaveLength(0);
    } finally {
      client.close();
    }
  });

  it('moves money between the user\'s own deposits towards the targets, each move journaled and fee-bounded', async () => {
    const userKey = generateSecretKey();
    const user = getPublicKey(userKey);
    const client = await connect(world, userKey, [...SERVED_METHODS, 'notifications', 'rebalance'], operators);
    try {
      const db = world.bridge.wallet.db;
      const [first] = await db.selectFrom('deposits').select('id').where('user_pubkey', '=', user).orderBy('id').execute();
      await fundDeposit(world, first!.id, 300_000n * SAT);
      // The funding was a payment received: the app is told of it.
      const told = await db.selectFrom('notifications').select('transaction_id').where('type', '=', 'payment_received').execute();
      expect(told.length).toBeGreaterThan(0);
      const before = await driftOf(world, user);
      expect(before.drift * 10n).toBeGreaterThan(before.total);

      let last = before.drift;
      let moves = 0;
      for (let pass = 0; pass < 6; pass++) {
        const made = (await rebalanceOnce(world.bridge.wallet)).filter((m) => m.userPubkey === user);
        if (made.length === 0) break;
        for (const move of made) {
          expect(move.kind).toBe('rebalance');
          expect(move.result.state).toBe('settled');
          expect(move.fromDepositId).not.toBe(move.toDepositId);
        }
        moves += made.length;
        const now = await driftOf(world, user);
        expect(now.drift).toBeLessThan(last);
        last = now.drift;
      }
      expect(moves).toBeGreaterThan(0);
      const after = await driftOf(world, user);
      // Within the threshold now: nothing more worth moving.
      expect(after.drift * 10n).toBeLessThanOrEqual(after.total);
      expect(await rebalanceUser(world.bridge.wallet, user)).toBeNull();

      // Only fees left the user's money, each within its reserved limit.
      const fees = await transferFees(world, user);
      expect(after.total).toBe(300_000n * SAT - fees);
      const transfers = await db.selectFrom('transfers').selectAll().where('user_pubkey', '=', user).execute();
      expect(transfers).toHaveLength(moves);
      for (const t of transfers) {
        const out = await db.selectFrom('transactions').selectAll().where('id', '=', t.outgoing_transaction_id!).executeTakeFirstOrThrow();
        const into = await db.selectFrom('transactions').selectAll().where('id', '=', t.incoming_transaction_id!).executeTakeFirstOrThrow();
        expect(t).toMatchObject({ purpose: 'rebalance', state: 'settled' });
        expect(out).toMatchObject({ state: 'settled', deposit_id: t.from_deposit_id, amount_msat: t.amount_msat });
        expect(out.fee_msat).toBeLessThanOrEqual(t.max_fee_msat);
        expect(into).toMatchObject({ state: 'settled', deposit_id: t.to_deposit_id, amount_msat: t.amount_msat });
        // Money moved between the user's own deposits is not a payment received.
        expect(await db.selectFrom('notifications').select('id').where('transaction_id', '=', into.id).execute()).toHaveLength(0);
      }
      const held = await db.selectFrom('deposits').select('confirmed_msat').where('user_pubkey', '=', user).execute();
      expect(held.filter((d) => d.confirmed_msat > 0n).length).toBeGreaterThan(1);
      await expectBooksAgree(world, user);
      expect(BigInt((await client.getBalance()).balance)).toBe(after.total);
    } finally {
      client.close();
    }
  });

  it('lets `deposit-bridge connect --rebalance` grant it: the grant lists rebalance and names every operator', async () => {
    const userKey = generateSecretKey();
    await runCli(['connect', '--url', world.bridge.url, '--user-key', bytesToHex(userKey), '--rebalance']);
    const row = await world.bridge.wallet.db.selectFrom('connections').selectAll().where('user_pubkey', '=', getPublicKey(userKey)).executeTakeFirstOrThrow();
    const grant = JSON.parse((row.grant_event as { content: string }).content) as { methods: string[]; vault_operators: string[] | null };
    expect(grant.methods).toContain('rebalance');
    expect([...(grant.vault_operators ?? [])].sort()).toEqual([...operators].sort());
  });

  it('does not try to rebalance under a grant naming no operators (the vaults would refuse it)', async () => {
    const userKey = generateSecretKey();
    const user = getPublicKey(userKey);
    const client = await connect(world, userKey, [...SERVED_METHODS, 'rebalance'], null);
    try {
      const db = world.bridge.wallet.db;
      const [first] = await db.selectFrom('deposits').select('id').where('user_pubkey', '=', user).orderBy('id').execute();
      await fundDeposit(world, first!.id, 300_000n * SAT);
      // The bridge does not try (the vault would refuse: a bridge could name a vault of its own).
      expect(await rebalanceUser(world.bridge.wallet, user)).toBeNull();
    } finally {
      client.close();
    }
  });

  it("drains an operator whose score collapsed before anything else", async () => {
    const userKey = generateSecretKey();
    const user = getPublicKey(userKey);
    const client = await connect(world, userKey, [...SERVED_METHODS, 'rebalance'], operators);
    try {
      const ctx = world.bridge.wallet;
      const deposits = await ctx.db.selectFrom('deposits').selectAll().where('user_pubkey', '=', user).orderBy('id').execute();
      for (const d of deposits) await fundDeposit(world, d.id, 100_000n * SAT);
      expect(await rebalanceUser(ctx, user)).toBeNull(); // balanced: nothing to do

      // A proven integrity failure sends the operator's score to zero (docs/reputation.md).
      const doomed = deposits[2]!;
      await recordIncident(ctx, { operatorPubkey: doomed.operator_pubkey, kind: 'uncredited_payment', message: 'test: an integrity failure' });
      expect(ctx.operators.get(doomed.operator_pubkey)!.score).toBeLessThan(DEFAULT_POLICY.minScore);

      const move = await rebalanceUser(ctx, user);
      expect(move).toMatchObject({ kind: 'drain', fromDepositId: doomed.id });
      expect(move!.result.state).toBe('settled');
      const left = await ctx.db.selectFrom('deposits').select('confirmed_msat').where('id', '=', doomed.id).executeTakeFirstOrThrow();
      // Everything that could be sent with its fee limit beside it left; at most that limit stays.
      expect(left.confirmed_msat).toBeLessThanOrEqual(move!.maxFeeMsat);
      const fees = await transferFees(world, user);
      const total = (await ctx.db.selectFrom('deposits').select('confirmed_msat').where('user_pubkey', '=', user).execute()).reduce((s, d) => s + d.confirmed_msat, 0n);
      expect(total).toBe(300_000n * SAT - fees);
      await expectBooksAgree(world, user);
    } finally {
      client.close();
    }
  });
});

describe('a deposit moved by its operator', () => {
  let world: World;

  beforeAll(async () => {
    world = await startWorld('pglite');
  });
  afterAll(async () => {
    await world?.stop();
  });

  it('is followed from the vault event stream and shown as a transaction, and the destination credited', async () => {
    const userKey = generateSecretKey();
    const user = getPublicKey(userKey);
    const client = await connect(world, userKey, [...SERVED_METHODS], null);
    try {
      const ctx = world.bridge.wallet;
      const [from, to] = await ctx.db.selectFrom('deposits').selectAll().where('user_pubkey', '=', user).orderBy('id').execute();
      await fundDeposit(world, from!.id, 100_000n * SAT);
      // The operator retires the vault: it asks the user's vault at another operator for an
      // invoice (the devnet test plays that part with the bridge's own client) and moves the money.
      const toOp = ctx.operators.get(to!.operator_pubkey)!;
      const invoice = await toOp.client.createInvoice(to!.remote_deposit_id, { amountMsat: 90_000n * SAT, description: 'vault retired' });
      const fromOperator = world.devnet.operators.find((o) => o.nodePubkey === from!.operator_pubkey)!;
      const moved = await fromOperator.faults.moveDeposit(from!.remote_deposit_id, {
        invoice: invoice.invoice,
        proof: invoice.proof,
        owner: invoice.owner!,
        owner_sig: invoice.owner_sig!,
      });
      expect(moved.ok).toBe(true);

      await waitFor(async () => {
        const rows = await ctx.db.selectFrom('transactions').select('state').where('deposit_id', '=', from!.id).where('idempotency_key', '=', `deposit_moved:${invoice.payment_hash}`).execute();
        return rows.length === 1 && rows[0]!.state === 'settled';
      }, 'the deposit_moved transaction');
      await waitFor(
        async () => (await ctx.db.selectFrom('deposits').select('confirmed_msat').where('id', '=', to!.id).executeTakeFirstOrThrow()).confirmed_msat === 90_000n * SAT,
        'the destination credit',
      );
      const tx = await ctx.db.selectFrom('transactions').selectAll().where('idempotency_key', '=', `deposit_moved:${invoice.payment_hash}`).executeTakeFirstOrThrow();
      expect(tx).toMatchObject({ type: 'outgoing', amount_msat: 90_000n * SAT, connection_pubkey: null });
      expect(tx.metadata).toMatchObject({ deposit_moved: { to_deposit: to!.remote_deposit_id, to_known_deposit: true } });
      const source = await ctx.db.selectFrom('deposits').select('confirmed_msat').where('id', '=', from!.id).executeTakeFirstOrThrow();
      expect(source.confirmed_msat).toBe(100_000n * SAT - 90_000n * SAT - tx.fee_msat);
      const transfer = await ctx.db.selectFrom('transfers').selectAll().where('outgoing_transaction_id', '=', tx.id).executeTakeFirstOrThrow();
      expect(transfer).toMatchObject({ purpose: 'operator', state: 'settled', to_deposit_id: to!.id, amount_msat: 90_000n * SAT });
      await expectBooksAgree(world, user);

      // The wallet shows the move, and its balance lost only the operator's routing fee.
      const { transactions } = await client.listTransactions({});
      expect(transactions.some((t) => t.payment_hash === invoice.payment_hash && t.type === 'outgoing' && t.amount === Number(90_000n * SAT))).toBe(true);
      expect(BigInt((await client.getBalance()).balance)).toBe(100_000n * SAT - tx.fee_msat);
    } finally {
      client.close();
    }
  });
});

describe('transfers at the vaults: what a hostile bridge cannot make them do', () => {
  let devnet: Devnet;
  let clients: HttpVaultClient[];

  beforeAll(async () => {
    devnet = await startTestDevnet();
    clients = clientsFor(devnet);
  });
  afterAll(async () => {
    await devnet?.stop();
  });

  it('moves money only to a deposit of the same owner, at operators the grant names, with `rebalance` or an app request that bounds it', async () => {
    const [a, b, c] = [clients[0]!, clients[1]!, clients[2]!];
    const [opA, opB] = [devnet.operators[0]!.nodePubkey, devnet.operators[1]!.nodePubkey];
    const party = newParty();
    const depA = await fundedDeposit(devnet, a, party.user, 100_000n * SAT);
    const depB = (await b.openDeposit(signDepositOpen(party.user.secretKey))).deposit_id;
    const other = newKeypair();
    const otherB = (await b.openDeposit(signDepositOpen(other.secretKey))).deposit_id;
    const destinationAt = async (client: HttpVaultClient, depositId: string, amountMsat: bigint): Promise<TransferDestination> => {
      const issued = await client.createInvoice(depositId, { amountMsat });
      return { invoice: issued.invoice, proof: issued.proof, owner: issued.owner!, owner_sig: issued.owner_sig! };
    };
    const rebalancing = (overrides: Parameters<typeof signTestGrant>[1]) => signTestGrant(party, { methods: [...PAYING_GRANT_METHODS, 'rebalance'], ...overrides });
    const transfer = (destination: TransferDestination, grant: ReturnType<typeof signTestGrant>, key: string, purpose: TransferParams['purpose'] = { type: 'rebalance' }, amountMsat = 10_000n * SAT) =>
      a.transfer(depA, { destination, amountMsat, maxFeeMsat: 100n * SAT, idempotencyKey: key, grant, purpose });
    const mine = await destinationAt(b, depB, 10_000n * SAT);

    await expect(transfer(mine, signTestGrant(party, { vaultOperators: [opA, opB] }), 'no-capability')).rejects.toMatchObject({ code: 'RESTRICTED' });
    await expect(transfer(mine, rebalancing({ vaultOperators: null }), 'any-operator')).rejects.toMatchObject({ code: 'RESTRICTED' });
    await expect(transfer(mine, rebalancing({ vaultOperators: [opA] }), 'destination-not-named')).rejects.toMatchObject({ code: 'RESTRICTED' });
    const grant = rebalancing({ vaultOperators: [opA, opB] });
    // Another user's deposit, as attested, and with its attestation claimed for this owner.
    const theirs = await destinationAt(b, otherB, 10_000n * SAT);
    await expect(transfer(theirs, grant, 'someone-else')).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    await expect(transfer({ ...theirs, owner: party.user.pubkey }, grant, 'forged-owner')).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    await expect(transfer({ ...mine, proof: { ...mine.proof, deposit_id: otherB } }, grant, 'forged-proof')).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    // A transfer for a payment is bounded by the amount the app signed plus its fee limit.
    const payee = devnet.createPayeeInvoice(5_000n * SAT);
    const appGrant = signTestGrant(party);
    const paymentPurpose = { type: 'payment' as const, invoice: payee.invoice, authorization: payAuthorization(party, appGrant, payee.invoice) };
    await expect(transfer(mine, appGrant, 'larger-than-signed', paymentPurpose)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    // Nothing moved so far.
    expect((await a.depositStatus(depA)).balance_msat).toBe(100_000n * SAT);

    const moved = await transfer(mine, grant, 'the-real-one');
    expect(moved).toMatchObject({ kind: 'transfer', state: 'settled', amount_msat: 10_000n * SAT });
    expect((await a.depositStatus(depA)).balance_msat).toBe(100_000n * SAT - 10_000n * SAT - moved.fee_msat);
    expect((await b.depositStatus(depB)).balance_msat).toBe(10_000n * SAT);
    // The same key again is the same transfer: nothing moves twice.
    expect(await transfer(mine, grant, 'the-real-one')).toMatchObject({ state: 'settled', fee_msat: moved.fee_msat });
    expect((await b.depositStatus(depB)).balance_msat).toBe(10_000n * SAT);

    // A multi-part share of an invoice that does not allow multi-part payments is refused.
    devnet.operators[2]!.faults.noMppInvoices = true;
    const depC = (await c.openDeposit(signDepositOpen(other.secretKey))).deposit_id;
    const single = await c.createInvoice(depC, { amountMsat: 20_000n * SAT });
    devnet.operators[2]!.faults.noMppInvoices = false;
    const auth = payAuthorization(party, appGrant, single.invoice);
    await expect(
      a.pay(depA, { invoice: single.invoice, amountMsat: 10_000n * SAT, maxFeeMsat: 100n * SAT, idempotencyKey: 'no-mpp', authorization: auth, mpp: { totalMsat: 20_000n * SAT } }),
    ).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});

describe('what the rebalancer plans (planMove)', () => {
  const feeLimit = { baseMsat: 10_000n, ppm: 10_000 };
  const routingFee = (_op: string, amount: bigint) => 1_000n + amount / 1_000n;

  it('moves only from above target to below (or out of a collapsed operator), within the source with its fee limit beside it', () => {
    const planned = { rebalance: 0, drain: 0 };
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            // Mostly healthy, trusted operators with little in flight, so every branch is exercised.
            score: fc.oneof({ weight: 4, arbitrary: fc.double({ min: 0.3, max: 1, noNaN: true }) }, { weight: 1, arbitrary: fc.double({ min: 0, max: 0.3, noNaN: true }) }),
            healthy: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
            confirmed: fc.bigInt({ min: 0n, max: 10n ** 11n }),
            reservedPpm: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 1_000_000 }) }),
          }),
          { minLength: 2, maxLength: 6 },
        ),
        (rows) => {
          const candidates: DepositCandidate[] = rows.map((r, i) => ({
            depositId: BigInt(i + 1),
            operatorPubkey: `op${i}`,
            score: r.score,
            healthy: r.healthy,
            confirmedMsat: r.confirmed,
            availableMsat: r.confirmed - (r.confirmed * BigInt(r.reservedPpm)) / 1_000_000n,
            roomMsat: null,
          }));
          const plan = planMove(candidates, { feeLimit }, routingFee, 1_000n);
          if (plan === null) return;
          planned[plan.kind] += 1;
          expect(plan.from.depositId).not.toBe(plan.to.depositId);
          expect(plan.amountMsat).toBeGreaterThanOrEqual(1_000n);
          expect(plan.maxFeeMsat).toBe(feeLimitFor(plan.amountMsat, feeLimit));
          expect(plan.amountMsat + plan.maxFeeMsat).toBeLessThanOrEqual(plan.from.availableMsat);
          expect(plan.from.healthy && plan.to.healthy).toBe(true);
          expect(plan.to.score).toBeGreaterThanOrEqual(DEFAULT_POLICY.minScore);
          const total = candidates.reduce((s, c) => s + c.confirmedMsat, 0n);
          const { targets } = allocate(candidates, total, DEFAULT_POLICY);
          if (plan.kind === 'drain') {
            expect(plan.from.score).toBeLessThan(DEFAULT_POLICY.minScore);
          } else {
            const excess = plan.from.confirmedMsat - targets.get(plan.from.depositId)!;
            const deficit = targets.get(plan.to.depositId)! - plan.to.confirmedMsat;
            expect(plan.amountMsat).toBeLessThanOrEqual(excess);
            expect(plan.amountMsat).toBeLessThanOrEqual(deficit);
            // Worth it: the drift passes 10 % of the total and ten times the move's fee.
            const drift = candidates.reduce((s, c) => {
              const gap = targets.get(c.depositId)! - c.confirmedMsat;
              return s + (gap > 0n ? gap : 0n);
            }, 0n);
            expect(drift * 10n).toBeGreaterThan(total);
            expect(drift).toBeGreaterThan(10n * routingFee(plan.from.operatorPubkey, plan.amountMsat));
          }
        },
      ),
      { numRuns: 500 },
    );
    expect(planned.rebalance).toBeGreaterThan(0);
    expect(planned.drain).toBeGreaterThan(0);
  });
});
