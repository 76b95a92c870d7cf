import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { nsecEncode } from 'nostr-tools/nip19';
import type { Page } from 'playwright-core';
import { buildWeb } from '../../web/build.ts';
import type { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw, fund } from '../helpers/wallet.ts';
import { startWorld, type World } from '../helpers/world.ts';
import { launchBrowser, type TestBrowser } from './browser.ts';

/** How the pages write an amount of msats (web/src/format.ts). */
function satText(msat: bigint): string {
  const whole = (msat / 1000n).toLocaleString('en-US');
  const rest = msat % 1000n;
  return `${rest === 0n ? whole : `${whole}.${rest.toString().padStart(3, '0').replace(/0+$/, '')}`} sat`;
}

describe('restoring from the vault operators on the account page (chromium)', () => {
  let world: World;
  let browser: TestBrowser;
  let page: Page;
  let client: RawNwcClient;
  const userKey = generateSecretKey();
  const user = getPublicKey(userKey);
  const db = () => world.bridge.wallet.db;

  /** The user's deposits as the bridge has them: operator, balance, the balance the vault signed. */
  const deposits = () =>
    db()
      .selectFrom('deposits')
      .select(['operator_pubkey', 'confirmed_msat', 'vault_balance_msat'])
      .where('user_pubkey', '=', user)
      .orderBy('operator_pubkey')
      .execute();

  /**
   * Part of the bridge's database is lost: the user's transactions and journal, one deposit row,
   * and the balances of the others (as a restore from an old snapshot or a bad migration would leave them).
   */
  async function wipeUserRows(): Promise<void> {
    const ids = (await db().selectFrom('deposits').select('id').where('user_pubkey', '=', user).execute()).map((d) => d.id);
    const txIds = (await db().selectFrom('transactions').select('id').where('user_pubkey', '=', user).execute()).map((t) => t.id);
    await db().transaction().execute(async (trx) => {
      if (txIds.length > 0) await trx.deleteFrom('notifications').where('transaction_id', 'in', txIds).execute();
      await trx.deleteFrom('payment_parts').where('deposit_id', 'in', ids).execute();
      await trx.deleteFrom('journal_entries').where('deposit_id', 'in', ids).execute();
      await trx.deleteFrom('transactions').where('user_pubkey', '=', user).execute();
      // Lost balances, not changes of money: the journal trigger (migration 0011) is bypassed, as a bad restore would.
      await sql`set local session_replication_role = replica`.execute(trx);
      await trx.updateTable('deposits').set({ confirmed_msat: 0n, reserved_msat: 0n, vault_balance_msat: null, vault_balance_seq: null }).where('id', 'in', ids).execute();
      await trx.deleteFrom('deposits').where('id', '=', ids[0]!).execute();
    });
  }

  const restoreButton = () => page.getByRole('button', { name: 'Restore from vault operators' });
  const outcome = (name: string) => page.getByRole('list', { name: 'What each operator restored' }).getByRole('listitem').filter({ hasText: `${name}:` });

  beforeAll(async () => {
    await buildWeb();
    world = await startWorld('postgres');
    browser = await launchBrowser({ nip07Key: userKey });
    page = await browser.newPage();
  });

  afterAll(async () => {
    client?.close();
    await browser?.close();
    await world?.stop();
  });

  it('signs the deposit-open statement in the page, restores balances and history, and shows each operator’s outcome', async () => {
    client = (await connectRaw(world, 'nip44_v2', ['--user-key', nsecEncode(userKey)])).client;
    // Money at two operators (the lighter of equal operators receives), and a payment.
    await fund(world, client, 5_000_000);
    await fund(world, client, 3_000_000);
    const paid = await client.request('pay_invoice', { invoice: world.devnet.createPayeeInvoice(1_000_000n, 'coffee').invoice });
    expect(paid.error).toBeNull();
    const balance = BigInt((await client.request('get_balance')).result.balance as number);
    const before = await deposits();
    expect(before.filter((d) => d.confirmed_msat > 0n)).toHaveLength(2);
    const historyBefore = (await db().selectFrom('transactions').select(['type', 'state', 'amount_msat', 'payment_hash']).where('user_pubkey', '=', user).orderBy('payment_hash').execute()).map(
      (t) => `${t.type} ${t.state} ${t.amount_msat} ${t.payment_hash}`,
    );
    expect(historyBefore).toHaveLength(3);

    await page.goto(`${world.bridge.url}/account`);
    await page.getByRole('button', { name: 'Sign in with a browser signer (NIP-07)' }).click();
    await page.locator('#total-available').getByText(satText(balance), { exact: true }).waitFor();

    await wipeUserRows();
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.locator('#total-available').getByText('0 sat', { exact: true }).waitFor();
    await page.locator('#history').getByText('No transactions yet.').waitFor();

    // The bridge refuses a statement not signed by the user (FORBIDDEN): the page's signer signed it.
    await restoreButton().click();
    await page.locator('#status').getByText(`Restored from ${world.devnet.operators.length} vault operators.`).waitFor();

    // One line per operator: the signed balance, how far it moved, what was written.
    for (const op of world.devnet.operators) {
      const was = before.find((d) => d.operator_pubkey === op.nodePubkey)!;
      const line = outcome(op.name);
      await line.waitFor();
      const text = await line.textContent();
      expect(text).toContain(`restored. Balance ${satText(was.confirmed_msat)} as both channel peers signed it`);
      expect(await line.getAttribute('data-ok')).toBe('true');
      if (was.confirmed_msat > 0n) expect(text).toContain(`+${satText(was.confirmed_msat)} at this bridge`);
      else expect(text).toContain('(unchanged)');
    }
    const texts = await page.locator('#restore-result li').allTextContents();
    const added = texts.reduce((sum, t) => sum + Number(/(\d+) transactions? added/.exec(t)?.[1] ?? 'NaN'), 0);
    expect(added).toBe(historyBefore.length);
    expect(texts.filter((t) => t.includes('deposit recorded again'))).toHaveLength(1);

    // The balances are refreshed on the page, and the bridge holds what it held before.
    await page.locator('#total-available').getByText(satText(balance), { exact: true }).waitFor();
    await page.locator('#history').getByText('coffee').waitFor();
    expect(await page.locator('#history tbody tr').count()).toBe(historyBefore.length);
    expect((await deposits()).map((d) => [d.operator_pubkey, d.confirmed_msat])).toEqual(before.map((d) => [d.operator_pubkey, d.confirmed_msat]));
    expect(BigInt((await client.request('get_balance')).result.balance as number)).toBe(balance);
    const historyAfter = (await db().selectFrom('transactions').select(['type', 'state', 'amount_msat', 'payment_hash']).where('user_pubkey', '=', user).orderBy('payment_hash').execute()).map(
      (t) => `${t.type} ${t.state} ${t.amount_msat} ${t.payment_hash}`,
    );
    expect(historyAfter).toEqual(historyBefore);
    await browser.screenshot(page, 'account-restored');
    expect(browser.problems).toEqual([]);
  });

  it('restoring again changes nothing, and an operator that does not answer is named with the reason', async () => {
    const down = world.devnet.operators[2]!;
    down.faults.down = true;
    try {
      await restoreButton().click();
      await page.locator('#status[data-kind="error"]').getByText(`${down.name} not (see why below)`, { exact: false }).waitFor();
      const failed = outcome(down.name);
      expect(await failed.getAttribute('data-ok')).toBe('false');
      expect(await failed.textContent()).toMatch(/not restored: not reached: .*offline/);
      for (const op of world.devnet.operators.filter((o) => o !== down)) {
        const text = await outcome(op.name).textContent();
        expect(text).toContain('(unchanged)');
        expect(text).toContain('0 transactions added');
      }
      await browser.screenshot(page, 'account-restore-failure');
    } finally {
      down.faults.down = false;
    }
    // Up again: pressing again restores there too, still changing nothing.
    await restoreButton().click();
    await page.locator('#status[data-kind="ok"]').getByText(`Restored from ${world.devnet.operators.length} vault operators.`).waitFor();
    expect(await outcome(down.name).getAttribute('data-ok')).toBe('true');
    expect(await outcome(down.name).textContent()).toContain('0 transactions added');
  });
});
