/** A devnet on a data dir keeps its whole state across stop() and a new startDevnet(). */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey } from 'nostr-tools/pure';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { feeLimitFor, DEFAULT_FEE_LIMIT } from '../../src/protocol/amounts.ts';
import type { VaultEvent } from '../../src/protocol/vault-api.ts';
import { AuditorClient } from '../../src/vault-client/auditor-client.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { parseVaultsFile } from '../../src/vault-client/vaults-file.ts';
import { newParty, payAuthorization, signTestGrant } from '../helpers/authorization.ts';
import { eventually, fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';

const SAT = 1000n;

function portOf(url: string): number {
  return Number(new URL(url).port);
}

describe('devnet persistence', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'devnet-persist-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('keeps node keys, vaults, balances, invoices, payments, events and reports across a restart', async () => {
    const bridgeKey = generateSecretKey();
    const party = newParty();
    let devnet: Devnet = await startTestDevnet({ dataDir, operators: 2, operatorPorts: [0, 0], paymentWaitMs: 200, auditIntervalMs: 50, auditWindowMs: 200 });
    const first = devnet;
    const client = () => new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: bridgeKey });

    const depositId = await fundedDeposit(devnet, client(), party.user, 50_000n * SAT);
    const incoming = await client().createInvoice(depositId, { amountMsat: 2_000n * SAT });
    const payee = devnet.createPayeeInvoice(3_000n * SAT, 'before restart');
    // A payment held at stop time must still complete after the restart, once.
    const op = devnet.operators[0];
    if (!op) throw new Error('no operator');
    op.faults.holdPayments = true;
    const held = await client().pay(depositId, {
      invoice: payee.invoice,
      amountMsat: 3_000n * SAT,
      maxFeeMsat: feeLimitFor(3_000n * SAT, DEFAULT_FEE_LIMIT),
      idempotencyKey: 'held-over-restart',
      authorization: payAuthorization(party, signTestGrant(party), payee.invoice),
    });
    expect(held.state).toBe('pending');
    const before = await client().depositStatus(depositId);
    expect(before.reserved_msat).toBe(3_000n * SAT + feeLimitFor(3_000n * SAT, DEFAULT_FEE_LIMIT));
    const fileBefore = parseVaultsFile(readFileSync(join(dataDir, 'devnet', 'vaults.json'), 'utf8'));
    expect(fileBefore).toEqual({ ok: true, value: devnet.vaultsFile });
    const auditor = () => new AuditorClient({ url: devnet.auditors[0]?.url ?? '', pubkey: devnet.auditors[0]?.pubkey ?? '' });
    let reportIds: string[] = [];
    await eventually(async () => {
      reportIds = (await auditor().reports(op.nodePubkey, 0)).reports.map((r) => r.event.id);
      return reportIds.length > 0;
    }, 'an auditor report');
    await devnet.stop();

    devnet = await startTestDevnet({
      dataDir,
      operators: 2,
      relayPort: portOf(first.relayUrl),
      controlPort: portOf(first.controlUrl),
      operatorPorts: first.operators.map((o) => portOf(o.url)),
      auditorPort: portOf(first.auditors[0]?.url ?? ''),
    });
    try {
      expect(devnet.operators.map((o) => [o.name, o.url, o.nodePubkey, o.peerNodePubkey, o.vaultId, o.channelId, o.multisigPubkey])).toEqual(
        first.operators.map((o) => [o.name, o.url, o.nodePubkey, o.peerNodePubkey, o.vaultId, o.channelId, o.multisigPubkey]),
      );
      expect(devnet.auditors).toEqual(first.auditors);
      expect(devnet.relayUrl).toBe(first.relayUrl);
      expect(devnet.vaultsFile).toEqual(first.vaultsFile);
      const reportsAfter = (await auditor().reports(op.nodePubkey, 0)).reports.map((r) => r.event.id);
      expect(reportsAfter.slice(0, reportIds.length)).toEqual(reportIds);

      // The held payment is resent after the restart and settles exactly once.
      await eventually(async () => (await client().paymentStatus(depositId, 'held-over-restart'))?.state === 'settled', 'held payment settles');
      const after = await client().depositStatus(depositId);
      const fee = 1000n + 3_000n; // vault-a: 1000 msat + 1000 ppm of 3 000 000 msat
      expect(after.balance_msat).toBe(50_000n * SAT - 3_000n * SAT - fee);
      expect(after.reserved_msat).toBe(0n);
      expect(after.balance_update?.seq).toBe((before.balance_update?.seq ?? 0) + 1);
      expect(devnet.payeeInvoiceStatus(payee.paymentHash)).toMatchObject({ state: 'settled', amountMsat: 3_000n * SAT });

      // The invoice made before the restart is still payable into the same deposit.
      expect((await client().invoiceStatus(depositId, incoming.payment_hash)).state).toBe('pending');
      expect((await devnet.payInvoice(incoming.invoice)).state).toBe('settled');
      expect((await client().depositStatus(depositId)).balance_msat).toBe(after.balance_msat + 2_000n * SAT);

      // The event log survived: a stream from 0 replays the funding from before the restart.
      const events: VaultEvent[] = [];
      const subscription = client().subscribeEvents(0, async (e) => {
        events.push(e);
      });
      await eventually(() => events.filter((e) => e.type === 'invoice_settled').length === 2 && events.some((e) => e.type === 'payment_settled'), 'replayed events');
      subscription.close();
      expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => a - b));
    } finally {
      await devnet.stop();
    }
  });
});
