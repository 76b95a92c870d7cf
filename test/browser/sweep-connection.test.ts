import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import type { Page } from 'playwright-core';
import { parseGrant } from '../../src/protocol/grant.ts';
import { buildWeb } from '../../web/build.ts';
import { runCli, startWorld, type World } from '../helpers/world.ts';
import { launchBrowser, type TestBrowser } from './browser.ts';

describe('the sweep connection on the account page (chromium)', () => {
  let world: World;
  let browser: TestBrowser;
  let page: Page;
  const userKey = generateSecretKey();
  const user = getPublicKey(userKey);

  beforeAll(async () => {
    await buildWeb();
    world = await startWorld('pglite');
    browser = await launchBrowser({ nip07Key: userKey });
    page = await browser.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await world?.stop();
  });

  it('shows where it may pay, and edits its limits with a grant that keeps naming that one destination', async () => {
    const payee = world.devnet.payeeNodePubkey;
    await runCli(['sweep', '--url', world.bridge.url, '--user-key', bytesToHex(userKey), '--keep-max', '100000', '--to', payee]);
    const row = () =>
      world.bridge.wallet.db.selectFrom('connections').select(['pubkey', 'grant_event', 'max_amount_msat']).where('user_pubkey', '=', user).where('name', '=', 'sweep').executeTakeFirstOrThrow();
    const before = await row();

    await page.goto(`${world.bridge.url}/account`);
    await page.getByRole('button', { name: 'Sign in with a browser signer (NIP-07)' }).click();
    await page.locator('#connections').getByText(`pays only node ${payee.slice(0, 8)}`).waitFor();

    await page.getByRole('button', { name: 'Edit limits of sweep' }).click();
    await page.locator('#edit-form').waitFor({ state: 'visible' });
    await page.locator('#e-max').fill('500');
    await page.getByRole('button', { name: 'Sign and save limits' }).click();
    await page.locator('#connections').getByText('at most 500 sat a payment').waitFor();

    const after = await row();
    expect(after.max_amount_msat).toBe(500_000n);
    const grantOf = (event: unknown) => {
      const parsed = parseGrant((typeof event === 'string' ? JSON.parse(event) : event) as Event);
      if (!parsed.ok) throw new Error(parsed.error.message);
      return parsed.value;
    };
    expect(grantOf(after.grant_event).createdAt).toBeGreaterThan(grantOf(before.grant_event).createdAt);
    expect(grantOf(after.grant_event).destination).toEqual({ type: 'keysend', node: payee });
    await browser.screenshot(page, 'account-sweep-connection');
  });
});
