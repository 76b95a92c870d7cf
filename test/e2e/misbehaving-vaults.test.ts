import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nip19 } from 'nostr-tools';
import { getPublicKey } from 'nostr-tools/pure';
import type { DevnetOperator } from '../../src/devnet/devnet.ts';
import { reconcile } from '../../src/deposits/reconcile.ts';
import type { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw } from '../helpers/wallet.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

/**
 * Each devnet operator switched to one misbehaviour at a time. The bridge must notice it,
 * record it against the operator, tell the user, and keep the user's other deposits working.
 */
describe('vaults that misbehave', () => {
  let world: World;
  let client: RawNwcClient;
  let userKey: string;
  let user: string;

  beforeAll(async () => {
    world = await startWorld('postgres', { vaultTimeoutMs: 1_000 });
    const connected = await connectRaw(world, 'nip44_v2');
    client = connected.client;
    userKey = connected.userKey ?? '';
    const decoded = nip19.decode(userKey);
    if (decoded.type !== 'nsec') throw new Error('expected an nsec');
    user = getPublicKey(decoded.data);
  });

  afterEach(async () => {
    for (const op of world.devnet.operators) {
      Object.assign(op.faults, { down: false, delayMs: 0, holdPayments: false, refusePayments: null, overchargeFeeMsat: 0n, misreportBalanceMsat: 0n, invalidProof: false, skipCredit: false });
    }
    // The bridge probes operators it saw fail; the next test starts with all of them back.
    await waitFor(() => world.bridge.wallet.operators.all().every((op) => op.available), 'operators available again', 30_000);
  });

  afterAll(async () => {
    client?.close();
    await world?.stop();
  });

  const db = () => world.bridge.wallet.db;
  const devnetOperator = (nodePubkey: string): DevnetOperator => world.devnet.operators.find((o) => o.nodePubkey === nodePubkey)!;
  const balance = async () => (await client.request('get_balance')).result.balance as number;
  const incidents = (operator: string, kind: string) =>
    db().selectFrom('operator_incidents').selectAll().where('operator_pubkey', '=', operator).where('kind', '=', kind as never).where('user_pubkey', '=', user).execute();
  const audit = () => db().selectFrom('audit_log').select(['code', 'message']).where('user_pubkey', '=', user).orderBy('id').execute();

  /** Funds the user at the operator make_invoice picks, and returns that operator. */
  async function fundSomewhere(amountMsat: number): Promise<string> {
    const made = await client.request('make_invoice', { amount: amountMsat });
    expect(made.error).toBeNull();
    const before = await balance();
    await world.devnet.payInvoice(made.result.invoice);
    await waitFor(async () => (await balance()) === before + amountMsat, 'funding');
    return operatorOf(made.result.payment_hash, 'incoming');
  }

  async function operatorOf(paymentHash: string, type: 'incoming' | 'outgoing'): Promise<string> {
    const row = await db()
      .selectFrom('transactions')
      .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
      .select('deposits.operator_pubkey')
      .where('transactions.payment_hash', '=', paymentHash)
      .where('transactions.type', '=', type)
      .orderBy('transactions.id', 'desc')
      .executeTakeFirstOrThrow();
    return row.operator_pubkey;
  }

  it('spreads the first deposits over two operators (equal scores go to the lighter deposit)', async () => {
    const first = await fundSomewhere(40_000_000);
    const second = await fundSomewhere(30_000_000);
    expect(second).not.toBe(first);
  });

  it('pays from another deposit when the vault it chose is down, and receives elsewhere too', async () => {
    const fullest = await db().selectFrom('deposits').select('operator_pubkey').where('user_pubkey', '=', user).orderBy('confirmed_msat', 'desc').executeTakeFirstOrThrow();
    devnetOperator(fullest.operator_pubkey).faults.down = true;
    const { invoice, paymentHash } = world.devnet.createPayeeInvoice(5_000_000n);
    const paid = await client.request('pay_invoice', { invoice });
    expect(paid.error).toBeNull();
    expect(await operatorOf(paymentHash, 'outgoing')).not.toBe(fullest.operator_pubkey);
    const made = await client.request('make_invoice', { amount: 1_000_000 });
    expect(made.error).toBeNull();
    expect(await operatorOf(made.result.payment_hash, 'incoming')).not.toBe(fullest.operator_pubkey);
  });

  it('records a vault that refuses a payment the journal covers, and pays from another deposit', async () => {
    const fullest = await db().selectFrom('deposits').select('operator_pubkey').where('user_pubkey', '=', user).orderBy('confirmed_msat', 'desc').executeTakeFirstOrThrow();
    devnetOperator(fullest.operator_pubkey).faults.refusePayments = 'INSUFFICIENT_BALANCE';
    const scoreBefore = world.bridge.wallet.operators.get(fullest.operator_pubkey)!.score;
    const { invoice, paymentHash } = world.devnet.createPayeeInvoice(2_000_000n);
    const paid = await client.request('pay_invoice', { invoice });
    expect(paid.error).toBeNull();
    expect(await operatorOf(paymentHash, 'outgoing')).not.toBe(fullest.operator_pubkey);
    expect(await incidents(fullest.operator_pubkey, 'balance_mismatch')).toHaveLength(1);
    expect(world.bridge.wallet.operators.get(fullest.operator_pubkey)!.score).toBeLessThan(scoreBefore);
    expect((await audit()).at(-1)).toMatchObject({ code: 'OPERATOR_INCIDENT' });
  });

  it('charges a fee above the limit only as far as the vault signed for it, and records the violation', async () => {
    for (const op of world.devnet.operators) op.faults.overchargeFeeMsat = 500_000n;
    const before = await balance();
    const { invoice, paymentHash } = world.devnet.createPayeeInvoice(1_000_000n);
    const paid = await client.request('pay_invoice', { invoice });
    expect(paid.error).toBeNull();
    const payer = await operatorOf(paymentHash, 'outgoing');
    const violation = await incidents(payer, 'fee_violation');
    expect(violation).toHaveLength(1);
    // The vault's own balance, signed by both peers, shows it took the excess: the journal follows it.
    expect(paid.result.fees_paid).toBeGreaterThan(10_000);
    expect(await balance()).toBe(before - 1_000_000 - paid.result.fees_paid);
    const results = await reconcile(world.bridge.wallet);
    expect(results.filter((r) => r.userPubkey === user).map((r) => r.status)).not.toContain('differs');
  });

  it('finds a vault that reports a wrong balance, once, and leaves the money where the journal has it', async () => {
    const deposit = await db().selectFrom('deposits').selectAll().where('user_pubkey', '=', user).where('confirmed_msat', '>', 0n).orderBy('id').executeTakeFirstOrThrow();
    devnetOperator(deposit.operator_pubkey).faults.misreportBalanceMsat = 1_234_000n;
    const before = await balance();
    const known = (await incidents(deposit.operator_pubkey, 'balance_mismatch')).length;
    const first = await reconcile(world.bridge.wallet);
    const mine = first.find((r) => r.remoteDepositId === deposit.remote_deposit_id)!;
    expect(mine).toMatchObject({ status: 'differs', bridgeMsat: deposit.confirmed_msat, vaultMsat: deposit.confirmed_msat + 1_234_000n });
    expect(await incidents(deposit.operator_pubkey, 'balance_mismatch')).toHaveLength(known + 1);
    await reconcile(world.bridge.wallet);
    expect(await incidents(deposit.operator_pubkey, 'balance_mismatch')).toHaveLength(known + 1);
    expect(await balance()).toBe(before);
    const cli = await runCli(['audit', '--url', world.bridge.url, '--user-key', userKey]);
    expect(cli.stdout).toMatch(/OPERATOR_INCIDENT.*reports/);
  });

  it('never hands out an invoice whose vault proof fails, and makes it at another operator', async () => {
    // Every operator but the one the allocation would try last hands out bad proofs.
    const byPreference = world.bridge.wallet.operators.all().sort((a, b) => b.score - a.score);
    const good = byPreference.at(-1)!.nodePubkey;
    for (const op of world.devnet.operators) op.faults.invalidProof = op.nodePubkey !== good;
    const made = await client.request('make_invoice', { amount: 2_000_000 });
    expect(made.error).toBeNull();
    expect(await operatorOf(made.result.payment_hash, 'incoming')).toBe(good);
    const caught = await db().selectFrom('operator_incidents').select('operator_pubkey').where('kind', '=', 'invalid_invoice').where('user_pubkey', '=', user).execute();
    expect(caught.length).toBeGreaterThan(0);
    expect(caught.map((c) => c.operator_pubkey)).not.toContain(good);
  });

  it('catches a vault that takes a payment without crediting it, zeroes its score and receives elsewhere after', async () => {
    const made = await client.request('make_invoice', { amount: 3_000_000 });
    const pocketing = await operatorOf(made.result.payment_hash, 'incoming');
    devnetOperator(pocketing).faults.skipCredit = true;
    const before = await balance();
    const paid = await world.devnet.payInvoice(made.result.invoice);
    expect(paid.state).toBe('settled');
    const looked = await client.request('lookup_invoice', { payment_hash: made.result.payment_hash });
    expect(looked.result.state).toBe('settled');
    expect(await balance()).toBe(before);
    expect(await incidents(pocketing, 'uncredited_payment')).toHaveLength(1);
    expect(world.bridge.wallet.operators.get(pocketing)!.score).toBe(0);
    const next = await client.request('make_invoice', { amount: 1_000_000 });
    expect(await operatorOf(next.result.payment_hash, 'incoming')).not.toBe(pocketing);
  });

  it('keeps a payment pending through a vault slower than its timeout, and settles it once', async () => {
    for (const op of world.devnet.operators) op.faults.delayMs = 1_500;
    const before = await balance();
    const { invoice, paymentHash } = world.devnet.createPayeeInvoice(1_000_000n);
    const answered = client.request('pay_invoice', { invoice });
    await waitFor(async () => (await db().selectFrom('transactions').select('step').where('payment_hash', '=', paymentHash).executeTakeFirst())?.step === 'sent', 'sent');
    const row = await db().selectFrom('transactions').select('state').where('payment_hash', '=', paymentHash).executeTakeFirstOrThrow();
    expect(row.state).toBe('pending');
    for (const op of world.devnet.operators) op.faults.delayMs = 0;
    const paid = await answered;
    expect(paid.error).toBeNull();
    expect(await balance()).toBe(before - 1_000_000 - paid.result.fees_paid);
    expect(world.devnet.payeeInvoiceStatus(paymentHash)?.state).toBe('settled');
  });
});
