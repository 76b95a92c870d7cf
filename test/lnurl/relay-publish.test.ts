import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finalizeEvent, generateSecretKey } from 'nostr-tools/pure';
import { startRelay, type DevnetRelay } from '../../src/devnet/relay.ts';
import { publishToRelay } from '../../src/lnurl/zap-receipts.ts';

/** Sending a zap receipt to one relay: a relay's answer, or a reason, never a throw. */
describe('publishing a receipt to a relay', () => {
  let relay: DevnetRelay;
  const receipt = finalizeEvent({ kind: 9735, created_at: 1_700_000_000, tags: [['p', 'ab'.repeat(32)]], content: '' }, generateSecretKey());

  beforeAll(async () => {
    relay = await startRelay({ port: 0 });
  });

  afterAll(async () => {
    await relay?.stop();
  });

  it('resolves null when the relay takes the event, and again when it already has it', async () => {
    expect(await publishToRelay(relay.url, receipt)).toBeNull();
    expect(await publishToRelay(relay.url, receipt)).toBeNull();
  });

  it("resolves with the relay's refusal", async () => {
    const other = finalizeEvent({ kind: 9735, created_at: 1_700_000_001, tags: [], content: '' }, generateSecretKey());
    const forged = { ...other, content: 'changed' };
    expect(await publishToRelay(relay.url, forged)).toEqual(expect.any(String));
  });

  it('resolves with a reason when nothing listens there', async () => {
    expect(await publishToRelay('ws://127.0.0.1:9', receipt)).toEqual(expect.any(String));
  });
});
