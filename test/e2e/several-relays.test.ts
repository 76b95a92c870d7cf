import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NWCClient } from '@getalby/sdk';
import { startRelay } from '../../src/devnet/relay.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

describe('a bridge on several relays', () => {
  let world: World;
  let uri: URL;

  beforeAll(async () => {
    world = await startWorld('pglite', { extraRelays: 1 });
    uri = new URL((await runCli(['connect', '--url', world.bridge.url])).lastLine);
  });

  afterAll(async () => {
    await world?.stop();
  });

  /** An SDK client that knows only `relay`. */
  function clientOn(relay: string): NWCClient {
    const only = new URL(uri);
    only.searchParams.delete('relay');
    only.searchParams.set('relay', relay);
    return new NWCClient({ nostrWalletConnectUrl: only.toString() });
  }

  it('lists every relay in the URI and answers on each of them', async () => {
    expect(uri.searchParams.getAll('relay')).toEqual([world.devnet.relayUrl, world.extraRelays[0]!.url]);
    for (const relay of uri.searchParams.getAll('relay')) {
      const client = clientOn(relay);
      expect((await client.getBalance()).balance).toBe(0);
      client.close();
    }
  });

  it('keeps answering on one relay while another is down, and comes back on it after a restart', async () => {
    const extra = world.extraRelays[0]!;
    await extra.stop();
    const relays = async () => ((await (await fetch(`${world.bridge.url}/health`)).json()) as { relays: { url: string; live: boolean }[] }).relays;
    await waitFor(async () => (await relays()).find((r) => r.url === extra.url)?.live === false, 'the bridge to notice the relay is gone');
    expect(await relays()).toEqual([
      { url: world.devnet.relayUrl, live: true },
      { url: extra.url, live: false },
    ]);
    const onDevnet = clientOn(world.devnet.relayUrl);
    expect((await onDevnet.getInfo()).network).toBe('regtest');
    onDevnet.close();

    // The same port again: the bridge reconnects, resubscribes, and publishes its info event anew.
    world.extraRelays[0] = await startRelay({ port: extra.port, repository: extra.repository });
    await waitFor(async () => (await relays()).find((r) => r.url === extra.url)?.live === true, 'the bridge back on the restarted relay', 30_000);
    await waitFor(async () => {
      const client = clientOn(extra.url);
      try {
        return (await client.getBalance()).balance === 0;
      } finally {
        client.close();
      }
    }, 'answers on the restarted relay', 30_000);
  });
});
