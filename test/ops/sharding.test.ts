import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningBridge } from '../../src/app.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { inShard, shardSchema, type Shard } from '../../src/nwc/shard.ts';
import type { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw } from '../helpers/wallet.ts';
import { startWorld, type World } from '../helpers/world.ts';

/** How many get_info requests an instance has answered, from its own /metrics. */
async function getInfoAnswered(bridge: RunningBridge): Promise<number> {
  const text = await (await fetch(`${bridge.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('deposit_bridge_nwc_requests_total{') && l.includes('method="get_info"') && l.includes('outcome="success"'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('SHARD', () => {
  it('reads <index>/<count> and refuses what cannot be a shard', () => {
    expect(shardSchema.parse('1/3')).toEqual({ index: 1, count: 3 });
    for (const bad of ['3/3', '1', '-1/2', '0/0', 'a/b', '1/2/3']) expect(shardSchema.safeParse(bad).success, bad).toBe(false);
  });

  it('comes from the SHARD variable, and a bad one stops the start with the reason', () => {
    expect(loadConfig({ SHARD: '1/2' }).shard).toEqual({ index: 1, count: 2 });
    expect(loadConfig({}).shard).toBeUndefined();
    expect(() => loadConfig({ SHARD: '2/2' })).toThrow(ConfigError);
  });

  it('gives every key to exactly one of the shards, in ranges of about equal size', () => {
    const count = 3;
    const sizes = [0, 0, 0];
    for (let i = 0; i < 3000; i++) {
      const key = crypto.getRandomValues(new Uint8Array(32)).reduce((hex, b) => hex + b.toString(16).padStart(2, '0'), '');
      const owners = [0, 1, 2].filter((index) => inShard(key, { index, count }));
      expect(owners).toHaveLength(1);
      sizes[owners[0]!]! += 1;
    }
    for (const size of sizes) expect(size).toBeGreaterThan(800);
    expect(inShard('ff'.repeat(32), { index: 2, count: 3 })).toBe(true);
    expect(inShard('00'.repeat(32), { index: 0, count: 3 })).toBe(true);
  });
});

describe('two instances sharing the connections by key range, on PostgreSQL', () => {
  let world: World;
  let other: RunningBridge;
  const shards: Shard[] = [
    { index: 0, count: 2 },
    { index: 1, count: 2 },
  ];
  const clients: { client: RawNwcClient; servicePubkey: string }[] = [];
  let healthWithNoConnections = 0;

  beforeAll(async () => {
    world = await startWorld('postgres', { instance: { shard: shards[0] } });
    other = await world.startAnotherInstance({ shard: shards[1] });
    healthWithNoConnections = (await fetch(`${other.url}/health`)).status;
    // Registered at the first instance, whichever shard they fall in.
    for (let i = 0; i < 8; i++) {
      const { client } = await connectRaw(world, 'nip44_v2');
      clients.push({ client, servicePubkey: client.walletPubkey });
    }
  });

  afterAll(async () => {
    for (const { client } of clients) client.close();
    await world?.stop();
  });

  it('is healthy before any connection falls in its range', () => {
    expect(healthWithNoConnections).toBe(200);
  });

  it('answers every connection from the one instance whose key range holds its wallet service key', async () => {
    const instances = [world.bridge, other];
    for (const { client, servicePubkey } of clients) {
      const before = await Promise.all(instances.map(getInfoAnswered));
      const answer = await client.request('get_info');
      expect(answer.error).toBeNull();
      const after = await Promise.all(instances.map(getInfoAnswered));
      const owner = shards.findIndex((shard) => inShard(servicePubkey, shard));
      expect(after[owner]).toBe(before[owner]! + 1);
      expect(after[1 - owner]).toBe(before[1 - owner]);
    }
  });
});
