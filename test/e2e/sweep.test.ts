/**
 * Sweeps end to end (docs/sweep.md), on the devnet with a real bridge: a user sets "keep at most
 * X, sweep the rest to my node / lightning address" with the CLI or over NIP-98, the sweep job
 * pays the excess through the ordinary payment pipeline (reserved, journaled, fee-bounded, one
 * transaction), the destination receives it, nothing more happens until there is more to sweep,
 * a failed sweep is tried again, at most one is in flight per user, and --off stops it. The
 * bridge holds the sweep connection's secret, but that connection can pay nothing else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { openConnectionSecret, sweepOnce } from '../../src/deposits/sweep.ts';
import { feeLimitFor, DEFAULT_FEE_LIMIT } from '../../src/protocol/amounts.ts';
import { grantTerms, parseGrant, signGrant, type GrantDestination } from '../../src/protocol/grant.ts';
import { bytesToHex } from '../../src/protocol/hex.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import { BACKENDS } from '../helpers/database.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { fundDeposit, vaultPaymentActivity } from '../helpers/wallet.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

const SAT = 1000n;

/** A NIP-98 signed call to the bridge's /api/sweep. */
async function sweepApi(world: World, userKey: Uint8Array, method: 'GET' | 'PUT', body?: unknown): Promise<{ status: number; json: any }> {
  const url = `${world.bridge.url}/api/sweep`;
  const text = body === undefined ? undefined : JSON.stringify(body);
  const res = await fetch(url, {
    method,
    headers: { ...(text === undefined ? {} : { 'content-type': 'application/json' }), authorization: httpAuthHeader(userKey, url, method, text) },
    ...(text === undefined ? {} : { body: text }),
  });
  return { status: res.status, json: await res.json() };
}

/** What `deposit-bridge sweep` sends, made here so the test knows the secret. */
function sweepBody(userKey: Uint8Array, destination: GrantDestination, keepMaxMsat: bigint, minSweepMsat: bigint, methods?: string[]) {
  const secret = generateSecretKey();
  const grant = signGrant(grantTerms(getPublicKey(secret), methods ?? [destination.type === 'keysend' ? 'pay_keysend' : 'pay'], { name: 'sweep', destination }), userKey);
  return {
    secret,
    body: {
      grant,
      deposit_open: signDepositOpen(userKey),
      connection_secret: bytesToHex(secret),
      policy: { keep_max_msat: keepMaxMsat.toString(), min_sweep_msat: minSweepMsat.toString() },
    },
  };
}


async function firstDeposit(world: World, user: string) {
  return world.bridge.wallet.db.selectFrom('deposits').selectAll().where('user_pubkey', '=', user).orderBy('id').executeTakeFirstOrThrow();
}

/** The user's money in deposits: confirmed, and available (confirmed − reserved). */
async function holdings(world: World, user: string): Promise<{ confirmed: bigint; reserved: bigint }> {
  const row = await world.bridge.wallet.db
    .selectFrom('deposits')
    .select([sql<bigint>`coalesce(sum(confirmed_msat), 0)::bigint`.as('confirmed'), sql<bigint>`coalesce(sum(reserved_msat), 0)::bigint`.as('reserved')])
    .where('user_pubkey', '=', user)
    .executeTakeFirstOrThrow();
  return { confirmed: row.confirmed, reserved: row.reserved };
}

function outgoing(world: World, user: string) {
  return world.bridge.wallet.db.selectFrom('transactions').selectAll().where('user_pubkey', '=', user).where('type', '=', 'outgoing').orderBy('id').execute();
}

/** Each deposit's balance equals its journal and what both channel peers signed at its vault; nothing reserved. */
async function expectBooksAgree(world: World, user: string): Promise<void> {
  const db = world.bridge.wallet.db;
  for (const d of await db.selectFrom('deposits').selectAll().where('user_pubkey', '=', user).execute()) {
    const sums = await db
      .selectFrom('journal_entries')
      .select([sql<bigint>`coalesce(sum(confirmed_delta_msat), 0)::bigint`.as('confirmed'), sql<bigint>`coalesce(sum(reserved_delta_msat), 0)::bigint`.as('reserved')])
      .where('deposit_id', '=', d.id)
      .executeTakeFirstOrThrow();
    expect(sums).toEqual({ confirmed: d.confirmed_msat, reserved: d.reserved_msat });
    expect(d.reserved_msat).toBe(0n);
    const status = await world.bridge.wallet.operators.get(d.operator_pubkey)!.client.depositStatus(d.remote_deposit_id);
    expect(status.balance_msat).toBe(d.confirmed_msat);
  }
}

describe.each(BACKENDS)('sweeping, on the devnet, bridge on %s', (backend) => {
  let world: World;

  beforeAll(async () => {
    world = await startWorld(backend);
  });
  afterAll(async () => {
    await world?.stop();
  });

  it('sweeps everything above keep-max to the user\'s node by keysend once, set and stopped with the CLI', async () => {
    const userKey = generateSecretKey();
    const user = getPublicKey(userKey);
    const ctx = world.bridge.wallet;
    const payee = world.devnet.payeeNodePubkey;
    const set = await runCli(['sweep', '--url', world.bridge.url, '--user-key', bytesToHex(userKey), '--keep-max', '100000', '--to', payee, '--min', '10000']);
    expect(set.stdout).toMatch(/sweep set: keep at most 100000 sat/);

    // Stored: the policy, and the secret sealed so that only this bridge's master key opens it.
    const row = await ctx.db.selectFrom('sweep_policies').selectAll().where('user_pubkey', '=', user).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ keep_max_msat: 100_000n * SAT, min_sweep_msat: 10_000n * SAT, in_flight_request: null });
    expect(set.lastLine).toBe(row.connection_pubkey);
    const secret = openConnectionSecret({ encryptedSecret: row.encrypted_secret, encryptionPubkey: row.encryption_pubkey }, world.bridge.keys.forConnection(row.connection_pubkey).secret, row.connection_pubkey);
    expect(secret).not.toBeNull();
    expect(JSON.stringify(row, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))).not.toContain(bytesToHex(secret!));
    expect(openConnectionSecret({ encryptedSecret: row.encrypted_secret, encryptionPubkey: row.encryption_pubkey }, generateSecretKey(), row.connection_pubkey)).toBeNull();
    const shown = await sweepApi(world, userKey, 'GET');
    expect(shown.json.sweep).toMatchObject({ connection_pubkey: row.connection_pubkey, destination: { type: 'keysend', node: payee }, keep_max_msat: '100000000', min_sweep_msat: '10000000' });
    expect(JSON.stringify(shown.json)).not.toContain(bytesToHex(secret!));
    const connection = await ctx.db.selectFrom('connections').selectAll().where('pubkey', '=', row.connection_pubkey).executeTakeFirstOrThrow();
    expect(connection.methods).toEqual(['pay_keysend']);
    const grant = parseGrant(connection.grant_event);
    expect(grant.ok && grant.value.destination).toEqual({ type: 'keysend', node: payee });
    // Capped, so a holder of the secret cannot waste routing fees on endless sweeps.
    expect(grant.ok && grant.value.velocity).toEqual({ paymentsPerHour: 12, amountMsatPerHour: null });

    // Below keep-max: nothing to do.
    const deposit = await firstDeposit(world, user);
    await fundDeposit(world, deposit.id, 90_000n * SAT);
    expect(await sweepOnce(ctx, world.bridge.keys)).toEqual([]);
    await fundDeposit(world, deposit.id, 210_000n * SAT);

    const [swept, ...more] = await sweepOnce(ctx, world.bridge.keys);
    expect(more).toEqual([]);
    if (swept?.state !== 'settled') throw new Error(`sweep did not settle: ${JSON.stringify(swept, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`);
    const amount = 200_000n * SAT;
    const feeLimit = feeLimitFor(amount, DEFAULT_FEE_LIMIT);
    expect(swept).toMatchObject({ userPubkey: user, amountMsat: amount });
    expect(swept.feeMsat).toBeGreaterThan(0n);
    expect(swept.feeMsat).toBeLessThanOrEqual(feeLimit);

    // The user keeps at most keep-max (the fee came out of it, within the fee limit).
    const after = await holdings(world, user);
    expect(after.confirmed).toBe(300_000n * SAT - amount - swept.feeMsat);
    expect(after.confirmed).toBeLessThanOrEqual(100_000n * SAT);
    expect(after.confirmed).toBeGreaterThanOrEqual(100_000n * SAT - feeLimit);
    // The node received it, by keysend.
    expect(world.devnet.payeeKeysend(swept.paymentHash)).toMatchObject({ amountMsat: amount });

    // One transaction of the sweep connection, with its fee; its journal entries add up.
    const txs = await outgoing(world, user);
    expect(txs).toHaveLength(1);
    const tx = txs[0]!;
    expect(tx).toMatchObject({ id: swept.transactionId, state: 'settled', connection_pubkey: row.connection_pubkey, amount_msat: amount, fee_msat: swept.feeMsat, fee_reserve_msat: feeLimit, payment_hash: swept.paymentHash });
    expect(tx.metadata).toMatchObject({ sweep: { keep_max_msat: '100000000' }, keysend: { destination: payee } });
    const entries = await ctx.db.selectFrom('journal_entries').select(['kind', 'confirmed_delta_msat', 'reserved_delta_msat']).where('transaction_id', '=', tx.id).orderBy('id').execute();
    expect(entries).toEqual([
      { kind: 'reserve', confirmed_delta_msat: 0n, reserved_delta_msat: amount + feeLimit },
      { kind: 'debit', confirmed_delta_msat: -(amount + swept.feeMsat), reserved_delta_msat: -(amount + feeLimit) },
    ]);
    await expectBooksAgree(world, user);
    expect((await ctx.db.selectFrom('sweep_policies').select('in_flight_request').where('user_pubkey', '=', user).executeTakeFirstOrThrow()).in_flight_request).toBeNull();

    // A second pass finds nothing above keep-max.
    expect(await sweepOnce(ctx, world.bridge.keys)).toEqual([]);
    expect(await outgoing(world, user)).toHaveLength(1);

    // --off: the secret is forgotten and the connection revoked; more money stays put.
    const off = await runCli(['sweep', '--off', '--url', world.bridge.url, '--user-key', bytesToHex(userKey)]);
    expect(off.stdout).toMatch(/sweep off; connection [0-9a-f]{64} revoked/);
    expect(await ctx.db.selectFrom('sweep_policies').select('user_pubkey').where('user_pubkey', '=', user).executeTakeFirst()).toBeUndefined();
    expect((await ctx.db.selectFrom('connections').select('revoked').where('pubkey', '=', row.connection_pubkey).executeTakeFirstOrThrow()).revoked).toBe(true);
    expect((await sweepApi(world, userKey, 'GET')).json).toEqual({ sweep: null });
    await fundDeposit(world, deposit.id, 200_000n * SAT);
    expect(await sweepOnce(ctx, world.bridge.keys)).toEqual([]);
    expect(await outgoing(world, user)).toHaveLength(1);
  });

  it('sweeps to a lightning address set over NIP-98, tries a failed sweep again, and keeps one sweep in flight per user', async () => {
    const userKey = generateSecretKey();
    const user = getPublicKey(userKey);
    const ctx = world.bridge.wallet;
    const address = world.devnet.lightningAddress;
    const { body } = sweepBody(userKey, { type: 'lightning_address', address }, 50_000n * SAT, 1_000n * SAT);
    const set = await sweepApi(world, userKey, 'PUT', body);
    expect(set.status).toBe(201);
    expect(set.json.sweep).toMatchObject({ destination: { type: 'lightning_address', address }, keep_max_msat: '50000000' });

    const deposit = await firstDeposit(world, user);
    const op = world.devnet.operators.find((o) => o.nodePubkey === deposit.operator_pubkey)!;
    await fundDeposit(world, deposit.id, 150_000n * SAT);

    // The vault fails the payment: the sweep fails, its reservation is released, and the next pass tries again.
    op.faults.failPayments = 'no route to the destination';
    let failed;
    try {
      [failed] = await sweepOnce(ctx, world.bridge.keys);
    } finally {
      op.faults.failPayments = null;
    }
    expect(failed).toMatchObject({ state: 'failed', code: 'PAYMENT_FAILED', amountMsat: 100_000n * SAT });
    expect(await holdings(world, user)).toEqual({ confirmed: 150_000n * SAT, reserved: 0n });
    expect((await outgoing(world, user)).map((t) => t.state)).toEqual(['failed']);

    const [swept] = await sweepOnce(ctx, world.bridge.keys);
    if (swept?.state !== 'settled') throw new Error(`sweep did not settle: ${swept?.state}`);
    expect(swept.amountMsat).toBe(100_000n * SAT);
    expect(world.devnet.payeeInvoiceStatus(swept.paymentHash)).toMatchObject({ state: 'settled', amountMsat: 100_000n * SAT });
    expect((await outgoing(world, user)).map((t) => t.state)).toEqual(['failed', 'settled']);
    expect((await holdings(world, user)).confirmed).toBe(50_000n * SAT - swept.feeMsat);

    // Held at the vault: the sweep stays in flight across passes, and no second one starts.
    await fundDeposit(world, deposit.id, 100_000n * SAT);
    op.faults.holdPayments = true;
    try {
      const [first] = await sweepOnce(ctx, world.bridge.keys, { waitMs: 300 });
      expect(first).toMatchObject({ state: 'pending', userPubkey: user });
      const [again] = await sweepOnce(ctx, world.bridge.keys, { waitMs: 300 });
      expect(again).toMatchObject({ state: 'pending', requestId: first!.requestId });
      const txs = await outgoing(world, user);
      expect(txs.map((t) => t.state)).toEqual(['failed', 'settled', 'pending']);
      expect(txs[2]!.request_event_id).toBe(first!.requestId);
    } finally {
      op.faults.holdPayments = false;
    }
    await waitFor(async () => (await outgoing(world, user))[2]?.state === 'settled', 'the held sweep to settle');
    // The pass after it finds the claim of a final sweep and nothing left to sweep.
    expect(await sweepOnce(ctx, world.bridge.keys)).toEqual([]);
    expect((await ctx.db.selectFrom('sweep_policies').select('in_flight_request').where('user_pubkey', '=', user).executeTakeFirstOrThrow()).in_flight_request).toBeNull();
    expect((await outgoing(world, user)).length).toBe(3);
    await expectBooksAgree(world, user);
  });

  it('keeps the sweep connection to its destination: the route refuses other grants, and the bridge refuses its other payments before any vault', async () => {
    const userKey = generateSecretKey();
    const user = getPublicKey(userKey);
    const payee = world.devnet.payeeNodePubkey;
    const toNode: GrantDestination = { type: 'keysend', node: payee };

    const noDestination = sweepBody(userKey, toNode, 0n, 1n).body;
    noDestination.grant = signGrant(grantTerms(getPublicKey(generateSecretKey()), ['pay_keysend'], { name: 'sweep' }), userKey);
    expect(await sweepApi(world, userKey, 'PUT', noDestination)).toMatchObject({ status: 400, json: { error: { message: expect.stringMatching(/must name its destination/) } } });
    const wideMethods = sweepBody(userKey, toNode, 0n, 1n, ['pay_keysend', 'pay_invoice']).body;
    expect(await sweepApi(world, userKey, 'PUT', wideMethods)).toMatchObject({ status: 400, json: { error: { message: expect.stringMatching(/allows exactly \["pay_keysend"\]/) } } });
    const wrongSecret = { ...sweepBody(userKey, toNode, 0n, 1n).body, connection_secret: bytesToHex(generateSecretKey()) };
    expect(await sweepApi(world, userKey, 'PUT', wrongSecret)).toMatchObject({ status: 400, json: { error: { message: expect.stringMatching(/connection_secret/) } } });
    expect(await sweepApi(world, generateSecretKey(), 'PUT', sweepBody(userKey, toNode, 0n, 1n).body)).toMatchObject({ status: 403 });
    expect(await world.bridge.wallet.db.selectFrom('sweep_policies').select('user_pubkey').where('user_pubkey', '=', user).execute()).toEqual([]);

    // A sweep connection whose secret this test knows, and an app's connection under a grant
    // naming the same node with every paying method: what a holder of either secret can do.
    const { secret, body } = sweepBody(userKey, toNode, 0n, 1n);
    expect((await sweepApi(world, userKey, 'PUT', body)).status).toBe(201);
    // A newer grant for the sweep connection that drops the destination (a page editing its limits) is refused.
    const widened = signGrant(grantTerms(getPublicKey(secret), ['pay_keysend'], { name: 'sweep' }), userKey, Math.floor(Date.now() / 1000) + 1);
    const editUrl = `${world.bridge.url}/api/account/connections/${getPublicKey(secret)}`;
    const edit = JSON.stringify({ grant: widened });
    const edited = await fetch(editUrl, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: httpAuthHeader(userKey, editUrl, 'PUT', edit) }, body: edit });
    expect(edited.status).toBe(400);
    expect(await edited.json()).toMatchObject({ error: { message: expect.stringMatching(/must keep naming its destination/) } });
    const stored = await world.bridge.wallet.db.selectFrom('connections').select('grant_event').where('pubkey', '=', getPublicKey(secret)).executeTakeFirstOrThrow();
    expect(stored.grant_event.id).toBe(body.grant.id);
    const appSecret = generateSecretKey();
    const appGrant = signGrant(grantTerms(getPublicKey(appSecret), ['pay_invoice', 'pay', 'pay_keysend'], { name: 'app', destination: toNode }), userKey);
    const url = `${world.bridge.url}/api/connections`;
    const registration = JSON.stringify({ grant: appGrant, deposit_open: signDepositOpen(userKey) });
    expect((await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: httpAuthHeader(userKey, url, 'POST', registration) }, body: registration })).status).toBe(201);
    const clientOf = async (connectionSecret: Uint8Array) => {
      const row = await world.bridge.wallet.db.selectFrom('connections').select('service_pubkey').where('pubkey', '=', getPublicKey(connectionSecret)).executeTakeFirstOrThrow();
      return new RawNwcClient(`nostr+walletconnect://${row.service_pubkey}?relay=${encodeURIComponent(world.devnet.relayUrl)}&secret=${bytesToHex(connectionSecret)}`, 'nip44_v2');
    };
    const sweepClient = await clientOf(secret);
    const app = await clientOf(appSecret);
    try {
      await fundDeposit(world, (await firstDeposit(world, user)).id, 50_000n * SAT);
      const activity = await vaultPaymentActivity(world);
      const invoice = world.devnet.createPayeeInvoice(1_000n * SAT).invoice;
      const otherNode = world.devnet.operators[0]!.nodePubkey;
      const attempts = [
        await app.request('pay_invoice', { invoice }),
        await app.request('pay', { payment: invoice }),
        await app.request('pay_keysend', { amount: 1_000_000, pubkey: otherNode }),
        await app.request('pay', { payment: world.devnet.lightningAddress, amount: 1_000_000 }),
        await sweepClient.request('pay_keysend', { amount: 1_000_000, pubkey: otherNode }),
      ];
      expect(attempts.map((a) => [a.error?.code, a.error?.message])).toEqual(attempts.map(() => ['RESTRICTED', `this connection may pay only a keysend to ${payee}`]));
      // Refused by the bridge itself: no vault was asked.
      expect(await vaultPaymentActivity(world)).toBe(activity);
      expect(await outgoing(world, user)).toEqual([]);
      // What they were made for still works.
      expect((await sweepClient.request('pay_keysend', { amount: 1_000_000, pubkey: payee })).error).toBeNull();
      expect((await app.request('pay_keysend', { amount: 1_000_000, pubkey: payee })).error).toBeNull();
      expect((await outgoing(world, user)).map((t) => t.state)).toEqual(['settled', 'settled']);
    } finally {
      sweepClient.close();
      app.close();
    }
  });
});
