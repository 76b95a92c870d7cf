import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay } from '../../src/devnet/relay.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

const CONNECTIONS = 10_000;

describe(`one instance with ${CONNECTIONS} connections`, () => {
  let world: World;
  let uri: URL;

  beforeAll(async () => {
    world = await startWorld('postgres', { extraRelays: 1 });
    uri = new URL((await runCli(['connect', '--url', world.bridge.url])).lastLine);
    // The rest are written straight into the database, as many users would have registered them.
    const db = world.bridge.wallet.db;
    const owner = (await db.selectFrom('users').select(['pubkey', 'deposit_open_event']).executeTakeFirstOrThrow()).pubkey;
    const grant = (await db.selectFrom('connections').select('grant_event').executeTakeFirstOrThrow()).grant_event;
    for (let i = 0; i < CONNECTIONS; i += 1_000) {
      await db
        .insertInto('connections')
        .values(
          Array.from({ length: 1_000 }, () => ({
            pubkey: randomBytes(32).toString('hex'),
            user_pubkey: owner,
            name: 'bulk',
            grant_event: JSON.stringify(grant),
            grant_created_at: 1,
            methods: JSON.stringify(['get_info']),
            budget_msat: null,
            budget_renewal: null,
            max_amount_msat: null,
            fee_base_msat: 10_000n,
            fee_ppm: 10_000,
            expires_at: null,
            vault_operators: JSON.stringify(null),
            revoked: false,
            service_pubkey: randomBytes(32).toString('hex'),
            // Already announced: the test is about subscriptions, not a backlog of info events.
            info_published_at: new Date(),
          })),
        )
        .execute();
    }
    world.bridge = await world.restartBridge();
  }, 180_000);

  afterAll(async () => {
    await world?.stop();
  });

  /** A raw client of the registered connection on one relay only. */
  function clientOn(relay: string): RawNwcClient {
    const only = new URL(uri);
    only.searchParams.delete('relay');
    only.searchParams.set('relay', relay);
    return new RawNwcClient(only.toString(), 'nip44_v2');
  }

  it('opens at most a handful of subscriptions per relay, and still answers', async () => {
    await waitFor(async () => (await fetch(`${world.bridge.url}/health`)).status === 200, 'healthy');
    for (const counts of [world.devnet.relaySubscriptionCounts(), world.extraRelays[0]!.subscriptionCounts()]) {
      // One socket from the bridge per relay, holding every service key in a few REQs.
      const bridgeSocket = Math.max(...counts);
      expect(bridgeSocket).toBeGreaterThan(0);
      expect(bridgeSocket).toBeLessThanOrEqual(5);
    }
    const client = clientOn(world.devnet.relayUrl);
    try {
      expect((await client.request('get_info')).error).toBeNull();
    } finally {
      client.close();
    }
  });

  it('loses no request sent while it is still reconnecting after a relay restart', async () => {
    const extra = world.extraRelays[0]!;
    await extra.stop();
    world.extraRelays[0] = await startRelay({ port: extra.port });
    // Sent at once, before the bridge is back: the relay keeps them, the bridge asks since a while back.
    const client = clientOn(extra.url);
    try {
      const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => client.request('get_balance', { n: i })));
      expect(answers.map((a) => a.error)).toEqual(Array(5).fill(null));
      await waitFor(() => world.extraRelays[0]!.subscriptionCounts().some((n) => n > 0 && n <= 5), 'bridge resubscribed');
    } finally {
      client.close();
    }
  });
});
