import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startWorld, type World } from '../helpers/world.ts';

/** Requests /api/account as one client behind the proxy until refused; the status of the last. */
async function exhaust(world: World, client: string): Promise<number> {
  let status = 0;
  for (let i = 0; i < 400 && status !== 429; i++) {
    const response = await fetch(`${world.bridge.url}/api/account`, { headers: { 'x-forwarded-for': client } });
    status = response.status;
    await response.body?.cancel();
  }
  return status;
}

const statusOf = async (world: World, client: string) => {
  const response = await fetch(`${world.bridge.url}/api/account`, { headers: { 'x-forwarded-for': client } });
  await response.body?.cancel();
  return response.status;
};

describe('TRUST_PROXY', () => {
  it('reads true, a hop count or a list of proxy addresses, and refuses anything else', () => {
    expect(loadConfig({}).trustProxy).toBeUndefined();
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBeUndefined();
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, fdaa::/16' }).trustProxy).toEqual(['10.0.0.0/8', 'fdaa::/16']);
    expect(() => loadConfig({ TRUST_PROXY: 'the proxy' })).toThrow(/TRUST_PROXY/);
    expect(() => loadConfig({ TRUST_PROXY: '0' })).toThrow(/TRUST_PROXY/);
  });

  describe('behind one proxy hop', () => {
    let world: World;
    beforeAll(async () => {
      world = await startWorld('pglite', { trustProxy: 1 });
    });
    afterAll(async () => world?.stop());

    it('rate limits each client address the proxy forwards for, not the proxy as a whole', async () => {
      expect(await exhaust(world, '203.0.113.7')).toBe(429);
      expect(await statusOf(world, '203.0.113.7')).toBe(429);
      expect(await statusOf(world, '198.51.100.20')).not.toBe(429);
    });
  });

  describe('unset', () => {
    let world: World;
    beforeAll(async () => {
      world = await startWorld('pglite');
    });
    afterAll(async () => world?.stop());

    it('believes no X-Forwarded-For: a client cannot escape its limit by naming another address', async () => {
      expect(await exhaust(world, '203.0.113.7')).toBe(429);
      expect(await statusOf(world, '198.51.100.20')).toBe(429);
    });
  });
});
