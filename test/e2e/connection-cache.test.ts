import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as nip19 from 'nostr-tools/nip19';
import { getPublicKey } from 'nostr-tools/pure';
import { registerConnection } from '../../src/deposits/connections.ts';
import { silentLogger } from '../../src/log.ts';
import { SERVED_METHODS } from '../../src/nwc/methods/registry.ts';
import { grantTerms, signGrant, type GrantTerms } from '../../src/protocol/grant.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import type { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw, fund } from '../helpers/wallet.ts';
import { startWorld, type World } from '../helpers/world.ts';

/**
 * The responder keeps connections in memory. A grant changed elsewhere (another instance, or
 * any writer of the database) must still be in force for the very next request, paying or not.
 */
describe('connections kept in memory', () => {
  let world: World;
  let client: RawNwcClient;
  let userSecret: Uint8Array;

  beforeAll(async () => {
    world = await startWorld('postgres');
    const connected = await connectRaw(world, 'nip44_v2');
    client = connected.client;
    userSecret = nip19.decode(connected.userKey as `nsec1${string}`).data as Uint8Array;
    await fund(world, client, 20_000_000);
  });

  afterAll(async () => {
    client?.close();
    await world?.stop();
  });

  /** A newer grant for the connection, written to the database as another instance would: this one's responder is not told. */
  async function grantElsewhere(overrides: Partial<GrantTerms>): Promise<void> {
    const row = await world.bridge.wallet.db.selectFrom('connections').select('grant_created_at').where('pubkey', '=', client.pubkey).executeTakeFirstOrThrow();
    const grantAt = Number(row.grant_created_at) + 1;
    await registerConnection(
      world.bridge.wallet.db,
      world.bridge.wallet.operators,
      SERVED_METHODS,
      {
        authPubkey: getPublicKey(userSecret),
        grantEvent: signGrant(grantTerms(client.pubkey, ['get_balance', 'pay_invoice', 'make_invoice'], overrides), userSecret, grantAt),
        depositOpenEvent: signDepositOpen(userSecret),
        servicePubkeyFor: () => client.walletPubkey,
      },
      silentLogger,
    );
  }

  it('pays under a per-payment maximum set elsewhere after the connection was kept, and no more', async () => {
    expect((await client.request('get_balance')).error).toBeNull();
    await grantElsewhere({ maxAmountMsat: 1_000_000n });
    const tooLarge = await client.request('pay_invoice', { invoice: world.devnet.createPayeeInvoice(2_000_000n).invoice });
    expect(tooLarge.error?.code).toBe('QUOTA_EXCEEDED');
    const allowed = await client.request('pay_invoice', { invoice: world.devnet.createPayeeInvoice(500_000n).invoice });
    expect(allowed.error).toBeNull();
  });

  it('refuses every request, read-only ones included, once the connection is revoked elsewhere', async () => {
    expect((await client.request('get_balance')).error).toBeNull();
    await grantElsewhere({ revoked: true });
    for (const [method, params] of [
      ['get_balance', {}],
      ['make_invoice', { amount: 1_000 }],
      ['pay_invoice', { invoice: world.devnet.createPayeeInvoice(100_000n).invoice }],
    ] as const) {
      const refused = await client.request(method, params);
      expect(refused.error?.code, method).toBe('UNAUTHORIZED');
      expect(refused.error?.message, method).toMatch(/revoked/);
    }
  });
});
