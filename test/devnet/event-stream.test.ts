/**
 * The event stream: its keep-alive, on an operator assembled from its parts (pings on an idle
 * stream, a client that reconnects when the stream goes silent), and which events each caller
 * is sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey } from 'nostr-tools/pure';
import { LightningNetwork } from '../../src/devnet/lightning-network.ts';
import { VaultOperator } from '../../src/devnet/vault-operator.ts';
import { startVaultServer, type VaultServer } from '../../src/devnet/vault-server.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import type { VaultEvent } from '../../src/protocol/vault-api.ts';
import { newParty } from '../helpers/authorization.ts';
import { eventually, startTestDevnet } from '../helpers/devnet.ts';

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

describe('who sees which events', () => {
  let devnet: Devnet;
  beforeAll(async () => {
    devnet = await startTestDevnet({ operators: 1, operatorPorts: [0] });
  });
  afterAll(async () => {
    await devnet.stop();
  });

  it("streams a caller the events of the deposits it watches or owns, and none of others', past many pages of them", async () => {
    const url = devnet.operators[0]?.url ?? '';
    const bridgeKey = generateSecretKey();
    const otherBridgeKey = generateSecretKey();
    const bridge = new HttpVaultClient({ url, secretKey: bridgeKey, reconnectDelayMs: { initial: 20, max: 100 } });
    const otherBridge = new HttpVaultClient({ url, secretKey: otherBridgeKey, reconnectDelayMs: { initial: 20, max: 100 } });
    const mine = newParty();
    const theirs = newParty();
    const myDeposit = (await bridge.openDeposit(signDepositOpen(mine.user.secretKey))).deposit_id;
    const theirDeposit = (await otherBridge.openDeposit(signDepositOpen(theirs.user.secretKey))).deposit_id;
    const pay = async (client: HttpVaultClient, depositId: string) => {
      const invoice = await client.createInvoice(depositId, { amountMsat: 1_000n });
      expect((await devnet.payInvoice(invoice.invoice)).state).toBe('settled');
    };
    await pay(bridge, myDeposit);
    // More foreign events than one page of the operator's reads (200), then one of ours.
    for (let i = 0; i < 230; i++) await pay(otherBridge, theirDeposit);
    await pay(bridge, myDeposit);

    const streamed = (client: HttpVaultClient) => {
      const events: VaultEvent[] = [];
      const subscription = client.subscribeEvents(0, async (event) => {
        events.push(event);
      });
      return { events, close: () => subscription.close() };
    };
    const ours = streamed(bridge);
    const owner = streamed(new HttpVaultClient({ url, secretKey: mine.user.secretKey }));
    const others = streamed(otherBridge);
    try {
      await eventually(() => ours.events.length === 2 && owner.events.length === 2 && others.events.length === 230, 'every stream caught up');
      // A new event of ours reaches the live stream too.
      await pay(bridge, myDeposit);
      await eventually(() => ours.events.length === 3, 'the live event');
      for (const events of [ours.events, owner.events]) expect(new Set(events.map((e) => e.deposit_id))).toEqual(new Set([myDeposit]));
      expect(new Set(others.events.map((e) => e.deposit_id))).toEqual(new Set([theirDeposit]));
      for (const events of [ours.events, others.events]) expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => a - b));
      expect(ours.events[1]!.seq - ours.events[0]!.seq).toBeGreaterThan(230);
    } finally {
      for (const s of [ours, owner, others]) s.close();
    }
  });
});
