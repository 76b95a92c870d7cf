import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey } from 'nostr-tools/pure';
import { nip19 } from 'nostr-tools';
import pg from 'pg';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { fund } from '../helpers/wallet.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

/** `deposit-bridge holdings`, also when it exits 1 (an operator not reached). */
async function holdings(url: string, nsec: string): Promise<{ code: number; stdout: string }> {
  try {
    return { code: 0, stdout: (await runCli(['holdings', '--url', url, '--user-key', nsec])).stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '' };
  }
}

describe('deposit-bridge holdings', () => {
  let world: World | undefined;
  afterAll(async () => {
    await world?.stop();
  });

  it('shows what the vaults hold for the user, signed by both channel peers, the same before and after the bridge loses its database', async () => {
    world = await startWorld('postgres');
    const userKey = generateSecretKey();
    const nsec = nip19.nsecEncode(userKey);
    const client = new RawNwcClient((await runCli(['connect', '--url', world.bridge.url, '--user-key', nsec])).lastLine, 'nip44_v2');
    try {
      await fund(world, client, 7_000_000);
      const paid = await client.request('pay_invoice', { invoice: world.devnet.createPayeeInvoice(1_000_000n).invoice });
      expect(paid.error).toBeNull();
      const balance = (await client.request('get_balance')).result.balance as number;
      expect(balance).toBe(6_000_000 - (paid.result.fees_paid as number));

      const before = await holdings(world.bridge.url, nsec);
      expect(before.code).toBe(0);
      expect(before.stdout).toMatch(new RegExp(`^total ${balance} msat at 3 of 3 operators$`, 'm'));
      // Each operator's line is that deposit's balance at the bridge.
      const deposits = await world.bridge.wallet.db.selectFrom('deposits').innerJoin('vault_operators', 'vault_operators.node_pubkey', 'deposits.operator_pubkey').select(['vault_operators.name', 'deposits.remote_deposit_id', 'deposits.confirmed_msat']).execute();
      expect(deposits).toHaveLength(3);
      for (const d of deposits) expect(before.stdout).toContain(`deposit ${d.remote_deposit_id}  ${d.confirmed_msat} msat signed`);

      // The database is lost; the vaults still hold the money, and say so to the user's key.
      await world.bridge.stop();
      const admin = new pg.Client({ connectionString: world.databaseUrl });
      await admin.connect();
      await admin.query('drop schema public cascade; create schema public;');
      await admin.end();
      await world.restartBridge();
      await waitFor(async () => (await fetch(`${world!.bridge.url}/health`)).status === 200, 'bridge on an empty database');
      expect(await world.bridge.wallet.db.selectFrom('deposits').select('id').execute()).toEqual([]);
      const after = await holdings(world.bridge.url, nsec);
      expect(after.code).toBe(0);
      expect(after.stdout).toMatch(new RegExp(`^total ${balance} msat at 3 of 3 operators$`, 'm'));

      // An operator that does not answer is named, and the command fails.
      world.devnet.operators[0]!.faults.down = true;
      try {
        const partial = await holdings(world.bridge.url, nsec);
        expect(partial.code).toBe(1);
        expect(partial.stdout).toMatch(new RegExp(`^${world.devnet.operators[0]!.name}\\s+not reached`, 'm'));
        expect(partial.stdout).toMatch(/at 2 of 3 operators$/m);
      } finally {
        world.devnet.operators[0]!.faults.down = false;
      }
    } finally {
      client.close();
    }
  });
});
