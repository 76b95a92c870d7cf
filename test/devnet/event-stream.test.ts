/**
 * The event stream's keep-alive, on an operator assembled from its parts: pings on an idle
 * stream, and a client that reconnects when the stream goes silent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey } from 'nostr-tools/pure';
import { LightningNetwork } from '../../src/devnet/lightning-network.ts';
import { VaultOperator } from '../../src/devnet/vault-operator.ts';
import { startVaultServer, type VaultServer } from '../../src/devnet/vault-server.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { eventually } from '../helpers/devnet.ts';

describe('event stream keep-alive', () => {
  let network: LightningNetwork;
  let operator: VaultOperator;
  const servers: VaultServer[] = [];

  beforeAll(() => {
    network = new LightningNetwork({ dbPath: null });
    operator = new VaultOperator({
      name: 'solo',
      dbPath: null,
      nodeSecret: network.secretKey('solo'),
      peerSecret: network.secretKey('solo-peer'),
      network,
      routingPolicy: { baseMsat: 0n, ppm: 0 },
      auditors: [],
    });
  });
  afterAll(async () => {
    for (const server of servers) await server.close();
    network.close();
    operator.close();
  });

  it('sends `: ping` comments on an idle stream', async () => {
    const server = await startVaultServer({ operator, host: '127.0.0.1', port: 0, pingIntervalMs: 30 });
    servers.push(server);
    const url = `${server.url}/v0/events?after=0`;
    const controller = new AbortController();
    const response = await fetch(url, { headers: { authorization: httpAuthHeader(generateSecretKey(), url, 'GET') }, signal: controller.signal });
    const reader = response.body?.getReader();
    if (!reader) throw new Error('no body');
    let text = '';
    const decoder = new TextDecoder();
    while ((text.match(/: ping\n\n/g) ?? []).length < 2) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
    }
    controller.abort();
    expect(text.startsWith(': connected\n\n')).toBe(true);
    expect((text.match(/: ping\n\n/g) ?? []).length).toBeGreaterThanOrEqual(2);
  });

  it('reconnects a stream that stays silent longer than the idle timeout', async () => {
    const server = await startVaultServer({ operator, host: '127.0.0.1', port: 0, pingIntervalMs: 60_000 });
    servers.push(server);
    const client = new HttpVaultClient({ url: server.url, secretKey: generateSecretKey(), streamIdleTimeoutMs: 150, reconnectDelayMs: { initial: 10, max: 20 } });
    const status: boolean[] = [];
    const subscription = client.subscribeEvents(0, async () => undefined, (connected) => status.push(connected));
    try {
      await eventually(() => status.length >= 3, 'a reconnect after silence', 3_000);
      expect(status.slice(0, 3)).toEqual([true, false, true]);
    } finally {
      subscription.close();
    }
  });
});
