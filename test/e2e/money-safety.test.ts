import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NWCClient } from '@getalby/sdk';
import { finalizeEvent } from 'nostr-tools/pure';
import * as nip19 from 'nostr-tools/nip19';
import { Relay } from 'nostr-tools/relay';
import { buildAuthorization } from '../../src/protocol/authorization.ts';
import { budgetWindow } from '../../src/protocol/budget.ts';
import { grantTerms, signGrant } from '../../src/protocol/grant.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import { sharedKey } from '../../src/protocol/nwc-encryption.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw, fund, vaultPaymentActivity } from '../helpers/wallet.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

describe('money safety on the bridge', () => {
  let world: World;
  let client: RawNwcClient;
  let userKey: string;

  beforeAll(async () => {
    world = await startWorld('postgres', { extraRelays: 2 });
    const connected = await connectRaw(world, 'nip44_v2');
    client = connected.client;
    userKey = connected.userKey ?? '';
    await fund(world, client, 400_000_000);
  });

  afterAll(async () => {
    client?.close();
    await world?.stop();
  });

  const db = () => world.bridge.wallet.db;

  it('counts pending payments and their fee reserve against the budget: a 100 000 sat budget never has two 50 000 sat payments in flight', async () => {
    const budgeted = (await connectRaw(world, 'nip44_v2', ['--user-key', userKey, '--budget-sat', '100000', '--renewal', 'daily'])).client;
    try {
      for (const op of world.devnet.operators) op.faults.holdPayments = true;
      const invoices = Array.from({ length: 10 }, () => world.devnet.createPayeeInvoice(50_000_000n).invoice);
      const answers = invoices.map((invoice) => budgeted.request('pay_invoice', { invoice }));
      await waitFor(async () => {
        const rows = await db().selectFrom('audit_log').select('code').where('connection_pubkey', '=', budgeted.pubkey).execute();
        return rows.length === 9;
      }, 'nine refusals');
      const pending = await db().selectFrom('transactions').select('state').where('connection_pubkey', '=', budgeted.pubkey).execute();
      expect(pending).toEqual([{ state: 'pending' }]);
      for (const op of world.devnet.operators) {
        op.faults.holdPayments = false;
        op.releasePayments();
      }
      const results = await Promise.all(answers);
      expect(results.filter((r) => r.error === null)).toHaveLength(1);
      expect(results.filter((r) => r.error?.code === 'QUOTA_EXCEEDED')).toHaveLength(9);
    } finally {
      budgeted.close();
    }
  });

  it('reports the budget with get_budget (Alby extension) through the SDK', async () => {
    const out = await runCli(['connect', '--url', world.bridge.url, '--user-key', userKey, '--budget-sat', '20000', '--renewal', 'weekly']);
    const sdk = new NWCClient({ nostrWalletConnectUrl: out.lastLine });
    try {
      const payee = world.devnet.createPayeeInvoice(5_000_000n);
      const paid = await sdk.payInvoice({ invoice: payee.invoice });
      const budget = await sdk.getBudget();
      expect(budget).toEqual({
        used_budget: 5_000_000 + (paid.fees_paid ?? 0),
        total_budget: 20_000_000,
        renewal_period: 'weekly',
        renews_at: budgetWindow('weekly', Math.floor(Date.now() / 1000)).end,
      });
    } finally {
      sdk.close();
    }
    const unlimited = new NWCClient({ nostrWalletConnectUrl: (await runCli(['connect', '--url', world.bridge.url, '--user-key', userKey])).lastLine });
    try {
      expect(await unlimited.getBudget()).toEqual({});
    } finally {
      unlimited.close();
    }
  });

  it('never pays the same invoice twice: a second request gets the first outcome', async () => {
    const { invoice, paymentHash } = world.devnet.createPayeeInvoice(3_000_000n);
    const first = await client.request('pay_invoice', { invoice });
    expect(first.error).toBeNull();
    const activity = await vaultPaymentActivity(world);
    const again = await client.request('pay_invoice', { invoice });
    expect(again.error).toBeNull();
    expect(again.result).toEqual(first.result);
    // Also while the first is still in flight, from two requests at once.
    const second = world.devnet.createPayeeInvoice(2_000_000n);
    for (const op of world.devnet.operators) op.faults.holdPayments = true;
    const racing = [client.request('pay_invoice', { invoice: second.invoice }), client.request('pay_invoice', { invoice: second.invoice })];
    await waitFor(async () => (await db().selectFrom('transactions').select('step').where('payment_hash', '=', second.paymentHash).executeTakeFirst())?.step === 'sent', 'in flight');
    for (const op of world.devnet.operators) {
      op.faults.holdPayments = false;
      op.releasePayments();
    }
    const [a, b] = await Promise.all(racing);
    expect(a?.error).toBeNull();
    expect(b?.result).toEqual(a?.result);
    expect(await vaultPaymentActivity(world)).toBe(activity + 1);
    const rows = await db().selectFrom('transactions').select('id').where('payment_hash', 'in', [paymentHash, second.paymentHash]).execute();
    expect(rows).toHaveLength(2);
  });

  it('locks everything at once: the bridge refuses, the vaults refuse, until the user unlocks', async () => {
    const locked = await runCli(['lock', '--url', world.bridge.url, '--user-key', userKey]);
    expect(locked.lastLine).toBe('locked');
    expect(locked.stdout.match(/: locked/g)).toHaveLength(3);
    const refused = await client.request('pay_invoice', { invoice: world.devnet.createPayeeInvoice(1_000_000n).invoice });
    expect(refused.error?.code).toBe('RESTRICTED');
    expect(refused.error?.message).toMatch(/locked/);
    // Receiving still works while locked.
    expect((await client.request('make_invoice', { amount: 1_000 })).error).toBeNull();
    const unlocked = await runCli(['unlock', '--url', world.bridge.url, '--user-key', userKey]);
    expect(unlocked.lastLine).toBe('unlocked');
    expect((await client.request('pay_invoice', { invoice: world.devnet.createPayeeInvoice(1_000_000n).invoice })).error).toBeNull();
  });

  it('records every refused request with its reason, visible to its owner only (NIP-98)', async () => {
    await client.request('frobnicate');
    const mine = await runCli(['audit', '--url', world.bridge.url, '--user-key', userKey, '--limit', '5']);
    expect(mine.stdout).toMatch(/frobnicate\s+NOT_IMPLEMENTED/);
    expect(mine.stdout).toMatch(/pay_invoice\s+RESTRICTED\s+the owner has locked/);
    const stranger = await runCli(['audit', '--url', world.bridge.url, '--user-key', '1'.repeat(64)]);
    expect(stranger.stdout).toBe('');
    const unsigned = await fetch(`${world.bridge.url}/api/audit`);
    expect(unsigned.status).toBe(401);
  });

  it('does not execute a request older than the freshness window, and says why', async () => {
    const content = client.encrypt(JSON.stringify({ method: 'pay_invoice', params: { invoice: world.devnet.createPayeeInvoice(1_000_000n).invoice } }));
    const old = finalizeEvent(
      { kind: 23194, created_at: Math.floor(Date.now() / 1000) - 301, tags: [['p', client.walletPubkey], ['encryption', 'nip44_v2']], content },
      client.secret,
    );
    const activity = await vaultPaymentActivity(world);
    const response = await client.send(old);
    expect(response.error?.code).toBe('EXPIRED');
    expect(response.error?.message).toMatch(/older than 300 s/);
    expect(await vaultPaymentActivity(world)).toBe(activity);
  });

  it('pays once for the same request arriving from three relays at once', async () => {
    const { invoice, paymentHash } = world.devnet.createPayeeInvoice(4_000_000n);
    const event = client.signRequest(client.encrypt(JSON.stringify({ method: 'pay_invoice', params: { invoice } })));
    const relays = await Promise.all([world.devnet.relayUrl, ...world.extraRelays.map((r) => r.url)].map((url) => Relay.connect(url)));
    const answer = client.send(event);
    await Promise.all(relays.map((relay) => relay.publish(event)));
    expect((await answer).error).toBeNull();
    for (const relay of relays) relay.close();
    await new Promise((r) => setTimeout(r, 500));
    const rows = await db().selectFrom('transactions').select('id').where('payment_hash', '=', paymentHash).execute();
    expect(rows).toHaveLength(1);
    const responses = await db().selectFrom('nwc_requests').select('response_event').where('event_id', '=', event.id).execute();
    expect(responses).toHaveLength(1);
  });

  it('revokes a connection: the bridge answers UNAUTHORIZED, and a vault refuses the old grant even from a hostile bridge', async () => {
    const victim = await connectRaw(world, 'nip44_v2', ['--user-key', userKey]);
    try {
      expect((await victim.client.request('get_balance')).error).toBeNull();
      const oldGrant = (await db().selectFrom('connections').select('grant_event').where('pubkey', '=', victim.client.pubkey).executeTakeFirstOrThrow()).grant_event;
      // The grant in force is dated two seconds ahead (an edit this very second, or a fast clock):
      // the CLI's revocation, refused as not newer, is signed again a second later until it is.
      const secret = nip19.decode(userKey as `nsec1${string}`).data;
      const url = `${world.bridge.url}/api/connections`;
      const body = JSON.stringify({
        grant: signGrant(grantTerms(victim.client.pubkey, ['get_balance', 'pay_invoice']), secret, Math.floor(Date.now() / 1000) + 2),
        deposit_open: signDepositOpen(secret),
      });
      const edited = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: httpAuthHeader(secret, url, 'POST', body) }, body });
      expect(edited.status).toBeLessThan(300);
      const revoked = await runCli(['revoke', '--url', world.bridge.url, '--user-key', userKey, '--connection', victim.client.pubkey]);
      expect(revoked.lastLine).toBe('revoked');
      const refused = await victim.client.request('get_balance');
      expect(refused.error?.code).toBe('UNAUTHORIZED');
      expect(refused.error?.message).toMatch(/revoked/);

      // A hostile bridge still holding the old grant and a fresh request from the app.
      const { invoice } = world.devnet.createPayeeInvoice(1_000_000n);
      const request = victim.client.signRequest(victim.client.encrypt(JSON.stringify({ method: 'pay_invoice', params: { invoice } })));
      const deposit = await db().selectFrom('deposits').selectAll().where('user_pubkey', '=', oldGrant.pubkey).where('confirmed_msat', '>', 10_000_000n).executeTakeFirstOrThrow();
      const vault = new HttpVaultClient({ url: world.bridge.wallet.operators.get(deposit.operator_pubkey)!.url, secretKey: world.bridge.keys.vaultAuthSecret });
      const key = sharedKey('nip44_v2', victim.client.secret, victim.client.walletPubkey);
      const attempt = vault.pay(deposit.remote_deposit_id, {
        invoice,
        amountMsat: 1_000_000n,
        maxFeeMsat: 10_000n,
        idempotencyKey: request.id,
        authorization: buildAuthorization(oldGrant, request, 'nip44_v2', key),
      });
      await expect(attempt).rejects.toMatchObject({ code: 'STALE_GRANT' });
    } finally {
      victim.client.close();
    }
  });
});
