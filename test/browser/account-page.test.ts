import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NWCClient } from '@getalby/sdk';
import { generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure';
import { npubEncode, nsecEncode } from 'nostr-tools/nip19';
import type { Page } from 'playwright-core';
import { buildWeb } from '../../web/build.ts';
import { grantTerms, signGrant } from '../../src/protocol/grant.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { rebalanceUser } from '../../src/deposits/rebalancer.ts';
import { hexToBytes } from '../../src/protocol/hex.ts';
import { startWorld, waitFor, type World } from '../helpers/world.ts';
import { launchBrowser, type TestBrowser } from './browser.ts';

const SAT_MSAT = 1000n;

/** How the pages write an amount of msats (web/src/format.ts), for whole sats. */
function satText(msat: bigint): string {
  const whole = (msat / 1000n).toLocaleString('en-US');
  const rest = msat % 1000n;
  return `${rest === 0n ? whole : `${whole}.${rest.toString().padStart(3, '0').replace(/0+$/, '')}`} sat`;
}

/** The NIP-47 error code an NWCClient call was refused with. */
async function refusal(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : `no code: ${String(error)}`;
  }
  return 'not refused';
}

/** The secret's public key in a connection URI. */
function connectionKey(uri: string): string {
  const secret = new URL(uri.replace('nostr+walletconnect://', 'http://')).searchParams.get('secret');
  if (!secret) throw new Error('no secret in the URI');
  return getPublicKey(hexToBytes(secret));
}

describe('account page and web wallet in a real browser (chromium)', () => {
  let world: World;
  let browser: TestBrowser;
  let account: Page;
  const userKey = generateSecretKey();
  const user = getPublicKey(userKey);
  let appUri = '';
  let app: NWCClient | undefined;
  let pos: NWCClient | undefined;
  let outgoingFee = 0n;

  /** A call to the bridge's API signed by `key` (NIP-98), as the page makes it. */
  const signed = (key: Uint8Array, method: 'GET' | 'PUT' | 'POST', path: string, body?: unknown) => {
    const url = world.bridge.url + path;
    const text = body === undefined ? undefined : JSON.stringify(body);
    return fetch(url, {
      method,
      headers: { authorization: httpAuthHeader(key, url, method, text), ...(text ? { 'content-type': 'application/json' } : {}) },
      ...(text ? { body: text } : {}),
    });
  };

  /** Clicks Refresh on the account page and waits until every panel has loaded again. */
  const refreshAccount = async () => {
    const before = await account.locator('body').getAttribute('data-loaded');
    await account.getByRole('button', { name: 'Refresh' }).click();
    // The page stamps <body data-loaded> when every panel has loaded (no eval: the CSP forbids it).
    await account.locator(`body[data-loaded]:not([data-loaded="${before ?? ''}"])`).waitFor({ state: 'attached' });
  };

  beforeAll(async () => {
    await buildWeb();
    world = await startWorld('pglite');
    browser = await launchBrowser({ nip07Key: userKey });
    account = await browser.newPage();
  });

  afterAll(async () => {
    app?.close();
    pos?.close();
    await browser?.close();
    await world?.stop();
  });

  it('serves the pages with a strict Content-Security-Policy and no inline code', async () => {
    const root = await fetch(`${world.bridge.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/account');
    for (const page of ['/account', '/wallet']) {
      const response = await fetch(world.bridge.url + page);
      expect(response.status).toBe(200);
      const csp = response.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).toContain(`connect-src 'self' ${world.devnet.relayUrl}`);
      const html = await response.text();
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // every script is a file
      expect(html).not.toMatch(/\sstyle=|\son[a-z]+=/); // no inline styles or handlers
      expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org)/); // nothing from another host
    }
    const bundle = await fetch(`${world.bridge.url}/assets/account.js`);
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get('content-type')).toMatch(/^text\/javascript/);
  });

  it('signs in with a NIP-07 signer; the key stays with the signer', async () => {
    await account.goto(`${world.bridge.url}/account`);
    // Every form control has a label (names come from the labels, as a screen reader reads them).
    const unlabeled = await account.evaluate<string[]>("[...document.querySelectorAll('input, select, textarea')].filter((e) => e.labels.length === 0).map((e) => e.id)");
    expect(unlabeled).toEqual([]);
    // By keyboard: skip link, the two page links, then the first sign-in button; Enter presses it.
    for (let i = 0; i < 4; i++) await account.keyboard.press('Tab');
    expect(await account.locator(':focus').textContent()).toBe('Sign in with a browser signer (NIP-07)');
    await account.keyboard.press('Enter');
    await account.locator('#who').getByText(npubEncode(user)).waitFor();
    await account.locator('#lock-state').getByText('No deposits yet').waitFor();
    await account.locator('#operators').getByText('No deposits yet.').waitFor();
    await browser.screenshot(account, 'account-signed-in');
    expect(browser.problems).toEqual([]);
  });

  it('creates a connection: secret made and grant signed in the page, URI and QR shown once', async () => {
    await account.getByLabel('Name').fill('browser-app');
    await account.getByLabel('Budget (sat, empty for none)').first().fill('100000');
    await account.getByLabel('Largest payment (sat, empty for none)').first().fill('50000');
    await account.getByRole('button', { name: 'Create connection' }).click();
    await account.locator('#created').waitFor({ state: 'visible' });
    appUri = await account.locator('#created-uri').inputValue();
    expect(appUri).toMatch(/^nostr\+walletconnect:\/\/[0-9a-f]{64}\?relay=ws%3A%2F%2F127\.0\.0\.1%3A\d+&secret=[0-9a-f]{64}$/);
    expect(await account.locator('#created-qr img').getAttribute('src')).toMatch(/^data:image\/svg\+xml/);
    await browser.screenshot(account, 'account-connection-created');

    // The bridge holds the grant the user signed, for the key of the secret only the page saw.
    const appKey = connectionKey(appUri);
    const row = await world.bridge.wallet.db.selectFrom('connections').selectAll().where('pubkey', '=', appKey).executeTakeFirstOrThrow();
    expect(row.user_pubkey).toBe(user);
    expect(verifyEvent(row.grant_event)).toBe(true);
    expect(row.budget_msat).toBe(100_000n * 1000n);
    expect(row.budget_renewal).toBe('monthly');
    expect(row.max_amount_msat).toBe(50_000n * 1000n);
    expect(row.methods).toContain('pay_invoice');
    expect(row.methods).toContain('notifications');

    // A real NWC client takes the URI.
    app = new NWCClient({ nostrWalletConnectUrl: appUri });
    expect((await app.getInfo()).pubkey).toBe(world.bridge.keys.forConnection(appKey).pubkey);
    expect((await app.getBalance()).balance).toBe(0);

    // Shown once: dismissed, it is gone from the page.
    await account.getByRole('button', { name: 'I have saved it' }).click();
    expect(await account.locator('#created').isHidden()).toBe(true);
    expect(await account.locator('#created-uri').inputValue()).toBe('');
    await account.locator('#connections').getByText('browser-app').waitFor();
    await account.locator('#connections').getByText('budget 0 sat used of 100,000 sat monthly; at most 50,000 sat a payment').waitFor();
  });

  it('offers the BTCPay Server connection string, for a receive-only connection', async () => {
    await account.getByLabel('Name').fill('pos');
    await account.getByLabel('Allowed').selectOption('receive');
    await account.getByLabel('Show it as').selectOption('btcpay');
    await account.getByRole('button', { name: 'Create connection' }).click();
    await account.locator('#created').waitFor({ state: 'visible' });
    const text = await account.locator('#created-uri').inputValue();
    expect(text).toMatch(/^type=nwc;key=nostr\+walletconnect:\/\/[0-9a-f]{64}\?relay=/);
    await account.getByRole('button', { name: 'I have saved it' }).click();
    pos = new NWCClient({ nostrWalletConnectUrl: text.slice('type=nwc;key='.length) });
    const info = await pos.getInfo();
    expect(info.methods).toContain('make_invoice');
    expect(info.methods).not.toContain('pay_invoice');
    await account.locator('#connections').getByText('pos', { exact: true }).waitFor();
  });

  it('the web wallet, an NWC client in the page, receives a devnet payment and pays an invoice', async () => {
    const wallet = await browser.newPage();
    await wallet.goto(`${world.bridge.url}/wallet`);
    await wallet.getByLabel('Connection (nostr+walletconnect://…)').fill(appUri);
    await wallet.getByRole('button', { name: 'Connect', exact: true }).click();
    await wallet.locator('#balance').getByText('0 sat', { exact: true }).waitFor();

    // Receive: the invoice comes from a vault; the devnet's outside payer pays it.
    await wallet.getByLabel('Amount (sat)').fill('50000');
    await wallet.getByLabel('Description').fill('from the devnet');
    await wallet.getByRole('button', { name: 'Make invoice' }).click();
    await wallet.locator('#invoice-box').waitFor({ state: 'visible' });
    const invoice = await wallet.locator('#invoice').inputValue();
    expect(invoice).toMatch(/^lnbcrt500u1/);
    expect(await wallet.locator('#invoice-qr img').count()).toBe(1);
    const paid = await world.devnet.payInvoice(invoice);
    expect(paid.state).toBe('settled');
    // The payment_received notification arrives over the relay; the page reacts by itself.
    await wallet.locator('#notifications').getByText('Received 50,000 sat').waitFor();
    await wallet.locator('#invoice-state').getByText('Paid.').waitFor();
    await wallet.locator('#balance').getByText('50,000 sat', { exact: true }).waitFor();

    // Pay a pasted invoice of the devnet's outside payee.
    const payee = world.devnet.createPayeeInvoice(10_000n * 1000n, 'coffee');
    await wallet.getByLabel('Invoice to pay').fill(payee.invoice);
    await wallet.getByRole('button', { name: 'Pay', exact: true }).click();
    await wallet.locator('#pay-result').getByText(/^Paid\./).waitFor();
    expect(world.devnet.payeeInvoiceStatus(payee.paymentHash)?.state).toBe('settled');
    const tx = await world.bridge.wallet.db
      .selectFrom('transactions')
      .select(['fee_msat', 'state'])
      .where('payment_hash', '=', payee.paymentHash)
      .where('type', '=', 'outgoing')
      .executeTakeFirstOrThrow();
    expect(tx.state).toBe('settled');
    outgoingFee = tx.fee_msat;
    expect(outgoingFee).toBeGreaterThan(0n);
    await wallet.locator('#notifications').getByText('Sent 10,000 sat').waitFor();
    await wallet.locator('#balance').getByText(satText(40_000n * 1000n - outgoingFee), { exact: true }).waitFor();
    await wallet.locator('#transactions').getByText('coffee').waitFor();
    await wallet.locator('#transactions').getByText('from the devnet').waitFor();
    await browser.screenshot(wallet, 'wallet');
    expect(browser.problems).toEqual([]);
    await wallet.close();
  });

  it('shows balances per operator with scores and reasons, history with fees, and the balance chart', async () => {
    await refreshAccount();
    const expected = 40_000n * 1000n - outgoingFee;
    await account.locator('#total-available').getByText(satText(expected), { exact: true }).waitFor();
    const operatorRows = account.locator('#operators tbody tr');
    expect(await operatorRows.count()).toBe(world.devnet.operators.length);
    for (const op of world.devnet.operators) await account.locator('#operators').getByText(op.name, { exact: true }).waitFor();
    // Each operator's score and the reasons for it, as the bridge holds them now.
    for (const op of world.bridge.wallet.operators.all()) {
      const opRow = account.locator('#operators tbody tr', { hasText: op.name });
      expect(await opRow.locator('.reasons li').allTextContents()).toEqual(op.scoreReasons);
      expect(await opRow.locator('td').nth(4).textContent()).toBe(op.score.toFixed(2));
    }
    await account.locator('#routing-fees').getByText(satText(outgoingFee), { exact: true }).waitFor();
    await account.locator('#maintenance-fees').getByText('0 sat', { exact: true }).waitFor();
    const history = account.locator('#history tbody tr');
    expect(await history.count()).toBe(2);
    await account.locator('#history').getByText('coffee').waitFor();
    // The balance chart is an SVG with a title, and its numbers are in a table too.
    expect(await account.locator('#balance-chart title').textContent()).toBe('Your balance over time');
    expect(await account.locator('#balance-chart path.line').getAttribute('d')).toMatch(/^M [\d.]+ [\d.]+( L [\d.]+ [\d.]+)+$/);
    await account.locator('#balance-history').getByText(satText(expected)).first().waitFor({ state: 'attached' });
    await browser.screenshot(account, 'account-balances');
  });

  it('edits limits with a new grant signed in the page: the lower maximum holds at once', async () => {
    await account.getByRole('button', { name: 'Edit limits of browser-app' }).click();
    await account.locator('#edit-form').waitFor({ state: 'visible' });
    await account.locator('#e-max').fill('1000');
    await account.getByRole('button', { name: 'Sign and save limits' }).click();
    await account.locator('#connections').getByText('at most 1,000 sat a payment').waitFor();
    const row = await world.bridge.wallet.db.selectFrom('connections').select(['max_amount_msat', 'budget_msat']).where('pubkey', '=', connectionKey(appUri)).executeTakeFirstOrThrow();
    expect(row.max_amount_msat).toBe(1_000_000n);
    expect(row.budget_msat).toBe(100_000_000n); // the rest of the grant kept
    const above = world.devnet.createPayeeInvoice(5_000n * SAT_MSAT);
    expect(await refusal(app!.payInvoice({ invoice: above.invoice }))).toBe('QUOTA_EXCEEDED');
  });

  it('locks: a payment is refused and shows in the refused attempts; unlock lets it through', async () => {
    await account.getByRole('button', { name: 'Lock all payments' }).click();
    await account.locator('#lock-state[data-locked="true"]').waitFor();
    const small = world.devnet.createPayeeInvoice(500n * SAT_MSAT, 'while locked');
    expect(await refusal(app!.payInvoice({ invoice: small.invoice }))).toBe('RESTRICTED');
    expect(world.devnet.payeeInvoiceStatus(small.paymentHash)?.state).toBe('pending');
    await refreshAccount();
    await account.locator('#audit').getByText('the owner has locked their deposits', { exact: false }).first().waitFor();
    await account.locator('#audit').getByText('QUOTA_EXCEEDED').waitFor(); // the refusal of the edit test, too
    await browser.screenshot(account, 'account-locked');
    await account.getByRole('button', { name: 'Unlock payments' }).click();
    await account.locator('#lock-state[data-locked="false"]').waitFor();
    const after = world.devnet.createPayeeInvoice(500n * SAT_MSAT, 'after unlock');
    await app!.payInvoice({ invoice: after.invoice });
    expect(world.devnet.payeeInvoiceStatus(after.paymentHash)?.state).toBe('settled');
  });

  it('revokes a connection: its NWC client is refused from then on', async () => {
    expect((await pos!.getBalance()).balance).toBeGreaterThan(0);
    await account.getByRole('button', { name: 'Revoke pos' }).click();
    await account.getByRole('button', { name: 'Yes, revoke pos' }).click();
    await account.locator('#status').getByText('Connection pos revoked.').waitFor();
    const row = account.locator('#connections tbody tr', { hasText: 'pos' });
    await row.getByText('revoked', { exact: true }).waitFor();
    expect(await refusal(pos!.getBalance())).toBe('UNAUTHORIZED');
    // The other connection still works.
    expect((await app!.getBalance()).balance).toBeGreaterThan(0);
    await browser.screenshot(account, 'account-revoked');
    expect(browser.problems).toEqual([]);
  });

  it('shows the maintenance fees the operators charge, apart from routing fees', async () => {
    world.devnet.mineBlocks(144); // one maintenance period
    const charged = async () => {
      const rows = await world.bridge.wallet.db
        .selectFrom('transactions')
        .select(['amount_msat', 'metadata'])
        .where('user_pubkey', '=', user)
        .where('type', '=', 'outgoing')
        .execute();
      return rows.filter((r) => r.metadata?.kind === 'maintenance_fee').reduce((sum, r) => sum + r.amount_msat, 0n);
    };
    await waitFor(async () => (await charged()) > 0n, 'a maintenance fee booked');
    await refreshAccount();
    await account.locator('#maintenance-fees').getByText(satText(await charged()), { exact: true }).waitFor();
    await account.locator('#history').getByText('maintenance fee', { exact: true }).first().waitFor();
    const routing = await world.bridge.wallet.db
      .selectFrom('transactions')
      .select(['fee_msat'])
      .where('user_pubkey', '=', user)
      .where('type', '=', 'outgoing')
      .where('state', '=', 'settled')
      .execute();
    await account.locator('#routing-fees').getByText(satText(routing.reduce((sum, r) => sum + r.fee_msat, 0n)), { exact: true }).waitFor();
    await browser.screenshot(account, 'account-maintenance');
  });

  it('shows target vs actual share and edits the allocation policy (when the bridge serves them)', async (ctx) => {
    const probe = await signed(userKey, 'GET', '/api/allocation');
    // GET /api/allocation and /api/policy come from the allocation work (issue 4); until then
    // the page says they are not offered, which is checked here instead.
    if (probe.status === 404) {
      await account.locator('#allocation').getByText('does not report allocation targets yet').waitFor();
      await account.locator('#policy-note').getByText('does not offer allocation policies yet').waitFor();
      ctx.skip();
      return;
    }
    await refreshAccount();
    const bars = account.locator('#share-chart rect.bar-actual');
    expect(await bars.count()).toBe(world.devnet.operators.length + 1); // one per operator, one in the legend
    await account.locator('#policy-form').waitFor({ state: 'visible' });
    await account.getByLabel('Largest share at one operator (%)').fill('40');
    await account.getByRole('button', { name: 'Save policy' }).click();
    await account.locator('#status').getByText('Policy saved.').waitFor();
    const policy: unknown = await (await signed(userKey, 'GET', '/api/policy')).json();
    expect(policy).toMatchObject({ max_share_ppm: 400_000 });
    await browser.screenshot(account, 'account-allocation');
  });

  it('turns automatic rebalancing on with a grant for the bridge alone, and off again', async () => {
    await account.getByRole('button', { name: 'Let the bridge move money between my operators' }).click();
    await account.locator('#rebalancing-state').getByText(/^On: /).waitFor();
    const grants = await world.bridge.wallet.db.selectFrom('connections').selectAll().where('user_pubkey', '=', user).where('revoked', '=', false).execute();
    const rebalancing = grants.filter((g) => g.methods.includes('rebalance'));
    expect(rebalancing).toHaveLength(1);
    expect(rebalancing[0]!.methods).toEqual(['rebalance']);
    expect([...(rebalancing[0]!.vault_operators ?? [])].sort()).toEqual(world.devnet.operators.map((o) => o.nodePubkey).sort());
    // The rebalancer now may move money towards the targets (here all of it sits at one operator).
    const move = await rebalanceUser(world.bridge.wallet, user);
    expect(move?.result.state).toBe('settled');
    await refreshAccount();
    expect(await account.locator('#history tbody tr', { hasText: 'moved between your deposits' }).count()).toBe(2);
    await browser.screenshot(account, 'account-rebalancing');
    await account.getByRole('button', { name: 'Stop automatic rebalancing' }).click();
    await account.locator('#rebalancing-state').getByText(/^Off: /).waitFor();
    expect(await rebalanceUser(world.bridge.wallet, user)).toBeNull();
  });

  it('signs in with a key typed into the page, and says so when the browser has no key saved', async () => {
    const page = await browser.newPage();
    await page.goto(`${world.bridge.url}/account`);
    // Headless chromium stores password credentials but never hands one back (no password manager).
    await page.getByRole('button', { name: 'Use the key saved in this browser' }).click();
    await page.locator('#error').getByText('No key is saved in this browser').waitFor();
    const other = generateSecretKey();
    await page.getByLabel('Your secret key (nsec1… or hex)').fill(nsecEncode(other));
    await page.getByRole('button', { name: 'Sign in with this key' }).click();
    await page.locator('#who').getByText(npubEncode(getPublicKey(other))).waitFor();
    await page.locator('#connections').getByText('No connections yet.').waitFor();
    expect(await page.locator('#signin-key').inputValue()).toBe(''); // not left in the form
    await page.close();
  });

  it("answers only the signer's own account, and only to NIP-98 signed requests", async () => {
    const unsigned = await fetch(`${world.bridge.url}/api/account`);
    expect(unsigned.status).toBe(401);
    const wrongUrl = await fetch(`${world.bridge.url}/api/account`, { headers: { authorization: httpAuthHeader(userKey, `${world.bridge.url}/api/audit`, 'GET') } });
    expect(wrongUrl.status).toBe(401);
    const stranger = generateSecretKey();
    const theirs = await signed(stranger, 'GET', '/api/account/connections');
    expect(await theirs.json()).toEqual({ connections: [] });
    const mine = await signed(userKey, 'GET', '/api/account/connections');
    expect(((await mine.json()) as { connections: unknown[] }).connections).toHaveLength(3); // two apps, the rebalancing grant
    // A stranger's revocation of this user's connection, validly signed by the stranger.
    const appKey = connectionKey(appUri);
    const revokeOthers = await signed(stranger, 'POST', `/api/account/connections/${appKey}/revoke`, { grant: signGrant(grantTerms(appKey, [], { revoked: true }), stranger) });
    expect(revokeOthers.status).toBe(404);
    expect((await app!.getBalance()).balance).toBeGreaterThan(0);
  });

  it('rate limits the account API per client address', async () => {
    let status = 0;
    let body: unknown;
    for (let i = 0; i < 400 && status !== 429; i++) {
      const response = await fetch(`${world.bridge.url}/api/account`);
      status = response.status;
      body = await response.json();
    }
    expect(status).toBe(429);
    expect(body).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    // Other routes are not limited by it.
    expect((await fetch(`${world.bridge.url}/api/info`)).status).toBe(200);
  });
});
