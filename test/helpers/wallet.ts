import { expect } from 'vitest';
import { generateSecretKey } from 'nostr-tools/pure';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { RawNwcClient } from './raw-nwc-client.ts';
import { runCli, waitFor, type World } from './world.ts';

/**
 * Connects through the CLI (a new user unless `--user-key` is among `args`) and returns a raw
 * client for the connection and the user key the CLI generated, if it did.
 */
export async function connectRaw(world: World, encryption: 'nip04' | 'nip44_v2', args: string[] = []): Promise<{ client: RawNwcClient; userKey: string | undefined }> {
  const out = await runCli(['connect', '--url', world.bridge.url, ...args]);
  return { client: new RawNwcClient(out.lastLine, encryption), userKey: /(nsec1[0-9a-z]+)/.exec(out.stderr)?.[1] };
}

/** Funds a connection: make_invoice, paid by the devnet's outside payer, then waits for the credit. */
export async function fund(world: World, client: RawNwcClient, amountMsat: number): Promise<void> {
  const before = (await client.request('get_balance')).result.balance as number;
  const made = await client.request('make_invoice', { amount: amountMsat });
  expect(made.error).toBeNull();
  await world.devnet.payInvoice(made.result.invoice);
  await waitFor(async () => (await client.request('get_balance')).result.balance === before + amountMsat, 'funding');
}

/** Payments the devnet's vault operators have made or refused, summed: proof a vault was (not) called. */
export async function vaultPaymentActivity(world: World): Promise<number> {
  let total = 0;
  for (const op of world.devnet.operators) {
    const client = new HttpVaultClient({ url: op.url, secretKey: generateSecretKey() });
    const m = await client.metrics();
    total += m.payments_settled + m.payments_failed + m.authorizations_refused;
  }
  return total;
}

/** Funds one deposit with exactly `amountMsat`: an invoice of its vault paid by the devnet's outside payer. */
export async function fundDeposit(world: World, depositId: bigint, amountMsat: bigint): Promise<void> {
  const db = world.bridge.wallet.db;
  const deposit = await db.selectFrom('deposits').selectAll().where('id', '=', depositId).executeTakeFirstOrThrow();
  const op = world.bridge.wallet.operators.get(deposit.operator_pubkey)!;
  const invoice = await op.client.createInvoice(deposit.remote_deposit_id, { amountMsat });
  expect((await world.devnet.payInvoice(invoice.invoice)).state).toBe('settled');
  await waitFor(
    async () => (await db.selectFrom('deposits').select('confirmed_msat').where('id', '=', depositId).executeTakeFirstOrThrow()).confirmed_msat === deposit.confirmed_msat + amountMsat,
    'the credit',
  );
}
