import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NWCClient } from '@getalby/sdk';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { recordIncident } from '../../src/deposits/incidents.ts';
import { transferBetween } from '../../src/deposits/transfers.ts';
import { grantTerms, signGrant, type GrantTerms } from '../../src/protocol/grant.ts';
import { bytesToHex } from '../../src/protocol/hex.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import { BACKENDS } from '../helpers/database.ts';
import { startWorld, waitFor, type World } from '../helpers/world.ts';

/** The account page's JSON API (src/http/account-routes.ts) over HTTP, on both databases. */
describe.each(BACKENDS)('account API, bridge on %s', (backend) => {
  let world: World;
  const userKey = generateSecretKey();
  const user = getPublicKey(userKey);
  const clients: NWCClient[] = [];
  let shop: { key: string; client: NWCClient; terms: GrantTerms; createdAt: number };
  let spare: { key: string; client: NWCClient; terms: GrantTerms; createdAt: number };
  let fee = 0n;

  const call = async (key: Uint8Array, method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<{ status: number; json: any }> => {
    const url = world.bridge.url + path;
    const text = body === undefined ? undefined : JSON.stringify(body);
    const response = await fetch(url, {
      method,
      headers: { authorization: httpAuthHeader(key, url, method, text), ...(text ? { 'content-type': 'application/json' } : {}) },
      ...(text ? { body: text } : {}),
    });
    return { status: response.status, json: await response.json() };
  };

  /** Registers a connection as the page does: secret made here, grant and deposit-open signed by the user. */
  const connect = async (name: string, overrides: Partial<GrantTerms>) => {
    const secret = generateSecretKey();
    const key = getPublicKey(secret);
    const info = (await (await fetch(`${world.bridge.url}/api/info`)).json()) as { methods: string[] };
    const terms = grantTerms(key, info.methods, { name, ...overrides });
    const createdAt = Math.floor(Date.now() / 1000) - 10;
    const registered = await call(userKey, 'POST', '/api/connections', { grant: signGrant(terms, userKey, createdAt), deposit_open: signDepositOpen(userKey) });
    expect(registered.status).toBe(201);
    const uri = new URL(`nostr+walletconnect://${registered.json.wallet_service_pubkey}`);
    for (const relay of registered.json.relays) uri.searchParams.append('relay', relay);
    uri.searchParams.set('secret', bytesToHex(secret));
    const client = new NWCClient({ nostrWalletConnectUrl: uri.toString() });
    clients.push(client);
    return { key, client, terms, createdAt };
  };

  beforeAll(async () => {
    world = await startWorld(backend);
    shop = await connect('shop', { budget: { amountMsat: 100_000_000n, renewal: 'monthly' }, maxAmountMsat: 50_000_000n });
    spare = await connect('spare', {});
    const invoice = await shop.client.makeInvoice({ amount: 30_000_000, description: 'top up' });
    expect((await world.devnet.payInvoice(invoice.invoice)).state).toBe('settled');
    await waitFor(async () => (await shop.client.getBalance()).balance === 30_000_000, 'the deposit credited');
    const payee = world.devnet.createPayeeInvoice(5_000_000n, 'tea');
    const paid = await shop.client.payInvoice({ invoice: payee.invoice });
    fee = BigInt(paid.fees_paid ?? 0);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await world?.stop();
  });

  it('totals and per-operator balances agree with the wallet; nothing in flight', async () => {
    const { status, json } = await call(userKey, 'GET', '/api/account');
    expect(status).toBe(200);
    const expected = 25_000_000n - fee;
    expect(json.user_pubkey).toBe(user);
    expect(json.known).toBe(true);
    expect(json.locked).toBe(false);
    expect(json.totals.available_msat).toBe(expected.toString());
    expect(BigInt((await shop.client.getBalance()).balance)).toBe(expected);
    expect(json.operators).toHaveLength(world.devnet.operators.length);
    const sum = json.operators.reduce((s: bigint, o: { available_msat: string }) => s + BigInt(o.available_msat), 0n);
    expect(sum).toBe(expected);
    for (const o of json.operators) {
      const op = world.bridge.wallet.operators.get(o.node_pubkey);
      expect(o).toMatchObject({ name: op?.name, score: op?.score, score_reasons: op?.scoreReasons, available: true });
      expect(o.fees.routing_ppm).toBe(op?.info.fees.routing_ppm);
    }
    expect(json.pending).toEqual([]);
  });

  it('history lists every transaction with its routing fee; fee totals add up', async () => {
    const { json } = await call(userKey, 'GET', '/api/account/transactions?limit=10');
    expect(json.transactions.map((t: { type: string; state: string; connection_name: string }) => [t.type, t.state, t.connection_name])).toEqual([
      ['outgoing', 'settled', 'shop'],
      ['incoming', 'settled', 'shop'],
    ]);
    expect(json.transactions[0]).toMatchObject({ amount_msat: '5000000', routing_fee_msat: fee.toString(), description: 'tea' });
    expect(json.fees).toEqual({ routing_msat: fee.toString(), maintenance_msat: '0', maintenance: [] });
    expect(json.next_before).toBeNull();
    const page = await call(userKey, 'GET', '/api/account/transactions?limit=1');
    expect(page.json.transactions).toHaveLength(1);
    const next = await call(userKey, 'GET', `/api/account/transactions?limit=1&before=${page.json.next_before}`);
    expect(next.json.transactions[0].type).toBe('incoming');
    expect((await call(userKey, 'GET', '/api/account/transactions?limit=0')).status).toBe(400);
  });

  it('balance over time: from zero, up by the deposit, down by payment and fee, ending at the balance', async () => {
    const { json } = await call(userKey, 'GET', '/api/account/balance-history?days=7');
    const points = json.points as { at: number; balance_msat: string }[];
    expect(points[0]?.balance_msat).toBe('0');
    expect(points[points.length - 1]?.balance_msat).toBe((25_000_000n - fee).toString());
    expect(points.map((p) => p.balance_msat)).toContain('30000000');
    for (let i = 1; i < points.length; i++) expect(points[i]!.at).toBeGreaterThanOrEqual(points[i - 1]!.at);
  });

  it('connections with their limits and use of the budget', async () => {
    const { json } = await call(userKey, 'GET', '/api/account/connections');
    const byName = new Map<string, any>(json.connections.map((c: { name: string }) => [c.name, c]));
    expect([...byName.keys()].sort()).toEqual(['shop', 'spare']);
    expect(byName.get('shop')).toMatchObject({
      pubkey: shop.key,
      revoked: false,
      max_amount_msat: '50000000',
      budget: { amount_msat: '100000000', renewal: 'monthly', used_msat: (5_000_000n + fee).toString() },
      last_hour: { payments: 1, amount_msat: '5000000' },
      wallet_service_pubkey: world.bridge.keys.forConnection(shop.key).pubkey,
    });
    expect(byName.get('shop').last_used_at).toEqual(expect.any(Number));
    expect(byName.get('spare')).toMatchObject({ budget: null, max_amount_msat: null, last_used_at: null });
  });

  it('lists a payment in flight with its fee reserve, and no longer once it settles', async () => {
    const payee = world.devnet.createPayeeInvoice(1_000_000n, 'held');
    for (const op of world.devnet.operators) op.faults.holdPayments = true;
    const paying = shop.client.payInvoice({ invoice: payee.invoice });
    try {
      await waitFor(async () => (await call(userKey, 'GET', '/api/account')).json.pending.length === 1, 'the payment in flight');
      const { json } = await call(userKey, 'GET', '/api/account');
      expect(json.pending[0]).toMatchObject({ type: 'outgoing', state: 'pending', amount_msat: '1000000', description: 'held', connection_name: 'shop' });
      const reserve = BigInt(json.pending[0].fee_reserve_msat);
      expect(reserve).toBeGreaterThan(0n);
      expect(json.totals.pending_out_msat).toBe((1_000_000n + reserve).toString());
      expect(BigInt(json.totals.reserved_msat)).toBe(1_000_000n + reserve);
    } finally {
      for (const op of world.devnet.operators) {
        op.faults.holdPayments = false;
        op.releasePayments();
      }
    }
    const paid = await paying;
    fee += BigInt(paid.fees_paid ?? 0);
    const after = await call(userKey, 'GET', '/api/account');
    expect(after.json.pending).toEqual([]);
    expect(after.json.totals.reserved_msat).toBe('0');
    expect(after.json.totals.available_msat).toBe((24_000_000n - fee).toString());
  });

  it('edits limits with a newer signed grant, and refuses grants that do not fit the route', async () => {
    const newer = shop.createdAt + 1;
    const wrongKey = await call(userKey, 'PUT', `/api/account/connections/${shop.key}`, { grant: signGrant({ ...spare.terms, maxAmountMsat: 1000n }, userKey, newer) });
    expect(wrongKey).toMatchObject({ status: 400, json: { error: { message: 'the grant is for another connection' } } });
    const revocation = await call(userKey, 'PUT', `/api/account/connections/${shop.key}`, { grant: signGrant({ ...shop.terms, revoked: true }, userKey, newer) });
    expect(revocation.status).toBe(400);
    const notMine = await call(generateSecretKey(), 'PUT', `/api/account/connections/${shop.key}`, { grant: signGrant({ ...shop.terms, maxAmountMsat: 1000n }, userKey, newer) });
    expect(notMine.status).toBe(404);

    const edited = await call(userKey, 'PUT', `/api/account/connections/${shop.key}`, { grant: signGrant({ ...shop.terms, maxAmountMsat: 2_000_000n }, userKey, newer) });
    expect(edited.status).toBe(200);
    expect(edited.json.connection).toMatchObject({ max_amount_msat: '2000000', grant_created_at: newer, budget: { amount_msat: '100000000' } });
    const stale = await call(userKey, 'PUT', `/api/account/connections/${shop.key}`, { grant: signGrant({ ...shop.terms, maxAmountMsat: 9_000_000n }, userKey, newer) });
    expect(stale.status).toBe(409);
    const tooBig = world.devnet.createPayeeInvoice(3_000_000n);
    await expect(shop.client.payInvoice({ invoice: tooBig.invoice })).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
  });

  it('revokes through its route; the NWC client is refused', async () => {
    expect((await spare.client.getBalance()).balance).toBeGreaterThan(0);
    const notRevoked = await call(userKey, 'POST', `/api/account/connections/${spare.key}/revoke`, { grant: signGrant(spare.terms, userKey, spare.createdAt + 1) });
    expect(notRevoked.status).toBe(400);
    const revoked = await call(userKey, 'POST', `/api/account/connections/${spare.key}/revoke`, { grant: signGrant({ ...spare.terms, revoked: true }, userKey, spare.createdAt + 2) });
    expect(revoked.status).toBe(200);
    expect(revoked.json.connection.revoked).toBe(true);
    await expect(spare.client.getBalance()).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it("incidents: the user's own with evidence, operator-wide ones without, never another user's", async () => {
    const op = world.devnet.operators[0]!;
    const other = world.devnet.operators[1]!;
    const ctx = world.bridge.wallet;
    await recordIncident(ctx, { operatorPubkey: op.nodePubkey, userPubkey: user, kind: 'fee_violation', message: 'charged 9 msat above the limit', evidence: { fee_msat: '9' } });
    await recordIncident(ctx, { operatorPubkey: other.nodePubkey, userPubkey: null, kind: 'balance_mismatch', message: 'operator-wide' });
    await recordIncident(ctx, { operatorPubkey: op.nodePubkey, userPubkey: getPublicKey(generateSecretKey()), kind: 'refused', message: 'someone else' });
    const { json } = await call(userKey, 'GET', '/api/account/incidents');
    expect(json.incidents.map((i: { message: string; mine: boolean; evidence: unknown }) => [i.message, i.mine, i.evidence])).toEqual([
      ['operator-wide', false, null],
      ['charged 9 msat above the limit', true, { fee_msat: '9' }],
    ]);
    expect(json.incidents[1].operator_name).toBe(op.name);
  });

  it('counts the maintenance fees operators charge apart from routing fees', async () => {
    const before = (await call(userKey, 'GET', '/api/account')).json;
    // A maintenance period (144 blocks) passes: each vault charges the deposits holding money,
    // reports maintenance_charged with a balance both peers signed, and the bridge books it.
    world.devnet.mineBlocks(144);
    await waitFor(async () => (await call(userKey, 'GET', '/api/account/transactions?limit=50')).json.fees.maintenance_msat !== '0', 'maintenance charged');
    const { json } = await call(userKey, 'GET', '/api/account/transactions?limit=50');
    const charges = json.transactions.filter((t: { kind: string }) => t.kind === 'maintenance_fee');
    expect(charges.length).toBeGreaterThan(0);
    for (const c of charges) expect(c).toMatchObject({ type: 'outgoing', state: 'settled', routing_fee_msat: '0', connection_name: null });
    const total = charges.reduce((sum: bigint, c: { amount_msat: string }) => sum + BigInt(c.amount_msat), 0n);
    expect(json.fees.maintenance_msat).toBe(total.toString());
    expect(json.fees.maintenance.map((m: { operator_pubkey: string }) => m.operator_pubkey).sort()).toEqual(charges.map((c: { operator_pubkey: string }) => c.operator_pubkey).sort());
    expect(json.fees.routing_msat).toBe(fee.toString()); // routing fees unchanged
    const after = (await call(userKey, 'GET', '/api/account')).json;
    expect(BigInt(after.totals.available_msat)).toBe(BigInt(before.totals.available_msat) - total);
  });

  it('shows a payment split across deposits with each part, its operator and fee', async () => {
    // May pay alone, and move money between the user's deposits (the grant's `rebalance`), used below.
    const served = ((await (await fetch(`${world.bridge.url}/api/info`)).json()) as { methods: string[] }).methods;
    const big = await connect('big', { methods: [...new Set([...served, 'rebalance'])], vaultOperators: world.devnet.operators.map((o) => o.nodePubkey) });
    const db = world.bridge.wallet.db;
    // Fill the deposits that hold nothing yet, so that no single deposit covers the payment.
    for (const d of await db.selectFrom('deposits').selectAll().where('user_pubkey', '=', user).where('confirmed_msat', '=', 0n).execute()) {
      const op = world.bridge.wallet.operators.get(d.operator_pubkey)!;
      const invoice = await op.client.createInvoice(d.remote_deposit_id, { amountMsat: 30_000_000n });
      expect((await world.devnet.payInvoice(invoice.invoice)).state).toBe('settled');
      await waitFor(async () => (await db.selectFrom('deposits').select('confirmed_msat').where('id', '=', d.id).executeTakeFirstOrThrow()).confirmed_msat === 30_000_000n, 'the credit');
    }
    const largest = (await db.selectFrom('deposits').select('confirmed_msat').where('user_pubkey', '=', user).orderBy('confirmed_msat', 'desc').executeTakeFirstOrThrow()).confirmed_msat;
    const amount = largest + 10_000_000n;
    const payee = world.devnet.createPayeeInvoice(amount, 'split');
    const paid = await big.client.payInvoice({ invoice: payee.invoice });
    const { json } = await call(userKey, 'GET', '/api/account/transactions?limit=1');
    const entry = json.transactions[0];
    expect(entry).toMatchObject({ kind: 'payment', type: 'outgoing', state: 'settled', amount_msat: amount.toString(), connection_name: 'big', routing_fee_msat: String(paid.fees_paid) });
    const parts = entry.parts as { operator_pubkey: string; amount_msat: string; routing_fee_msat: string; state: string }[];
    expect(parts.length).toBeGreaterThanOrEqual(2);
    expect(new Set(parts.map((p) => p.operator_pubkey)).size).toBe(parts.length);
    expect(parts.reduce((sum, p) => sum + BigInt(p.amount_msat), 0n)).toBe(amount);
    expect(parts.reduce((sum, p) => sum + BigInt(p.routing_fee_msat), 0n)).toBe(BigInt(paid.fees_paid ?? 0));
    expect(parts.every((p) => p.state === 'settled')).toBe(true);
    const single = (await call(userKey, 'GET', '/api/account/transactions?limit=50')).json.transactions.find((t: { description: string }) => t.description === 'tea');
    expect(single.parts).toEqual([]);
  });

  it("names a move between the user's own deposits as such, on both sides", async () => {
    const db = world.bridge.wallet.db;
    const grant = await db.selectFrom('connections').select('grant_event').where('user_pubkey', '=', user).where('name', '=', 'big').executeTakeFirstOrThrow();
    const deposits = await db.selectFrom('deposits').select(['id', 'confirmed_msat']).where('user_pubkey', '=', user).orderBy('confirmed_msat', 'desc').execute();
    const [from, to] = [deposits[0]!, deposits[deposits.length - 1]!];
    const total = BigInt((await call(userKey, 'GET', '/api/account')).json.totals.confirmed_msat);
    const moved = await transferBetween(world.bridge.wallet, {
      userPubkey: user,
      fromDepositId: from.id,
      toDepositId: to.id,
      amountMsat: 1_000_000n,
      maxFeeMsat: 10_000n, // the grant's default fee limit for this amount
      kind: 'rebalance',
      grantEvent: grant.grant_event,
      wait: true,
    });
    expect('reason' in moved ? moved.reason : moved.state).toBe('settled');
    const { json } = await call(userKey, 'GET', '/api/account/transactions?limit=2');
    expect(json.transactions.map((t: { kind: string; type: string; amount_msat: string }) => [t.kind, t.type, t.amount_msat]).sort()).toEqual([
      ['transfer', 'incoming', '1000000'],
      ['transfer', 'outgoing', '1000000'],
    ]);
    // The balance chart counts the move as its fee alone: no point with the money counted twice.
    const moveFee = BigInt(json.transactions.find((t: { type: string }) => t.type === 'outgoing').routing_fee_msat);
    const points = (await call(userKey, 'GET', '/api/account/balance-history?days=1')).json.points.map((p: { balance_msat: string }) => BigInt(p.balance_msat));
    expect(points.slice(-3)).toEqual([total, total - moveFee, total - moveFee]);
  });

  it('refuses unsigned requests and signatures for another route', async () => {
    for (const path of ['/api/account', '/api/account/transactions', '/api/account/balance-history', '/api/account/connections', '/api/account/incidents']) {
      const unsigned = await fetch(world.bridge.url + path);
      expect(unsigned.status).toBe(401);
      expect(await unsigned.json()).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    }
    const elsewhere = await fetch(`${world.bridge.url}/api/account`, { headers: { authorization: httpAuthHeader(userKey, `${world.bridge.url}/api/account/connections`, 'GET') } });
    expect(elsewhere.status).toBe(401);
  });
});
