/** A devnet on a data dir keeps its whole state across stop() and a new startDevnet(). */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { sha256 } from '@noble/hashes/sha2.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey } from 'nostr-tools/pure';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { buildInvoice, LightningNetwork, newPaymentSecrets } from '../../src/devnet/lightning-network.ts';
import { VaultOperator } from '../../src/devnet/vault-operator.ts';
import { feeLimitFor, DEFAULT_FEE_LIMIT } from '../../src/protocol/amounts.ts';
import { bytesToHex } from '../../src/protocol/hex.ts';
import type { VaultEvent } from '../../src/protocol/vault-api.ts';
import { AuditorClient } from '../../src/vault-client/auditor-client.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { parseVaultsFile } from '../../src/vault-client/vaults-file.ts';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
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
      auditorPorts: first.auditors.map((a) => portOf(a.url)),
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

  it('keeps a payment held by a hold invoice across a restart: the payer sends it again, it is held again, and settles once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'devnet-hold-'));
    const bridgeKey = generateSecretKey();
    const alice = newParty();
    const bob = newParty();
    let devnet: Devnet = await startTestDevnet({ dataDir: dir, operators: 2, operatorPorts: [0, 0], paymentWaitMs: 100 });
    const first = devnet;
    const client = (i: number) => new HttpVaultClient({ url: devnet.operators[i]?.url ?? '', secretKey: bridgeKey });
    try {
      const aliceDeposit = await fundedDeposit(devnet, client(0), alice.user, 20_000n * SAT);
      const bobDeposit = (await client(1).openDeposit(signDepositOpen(bob.user.secretKey))).deposit_id;
      const preimage = generateSecretKey();
      const paymentHash = bytesToHex(sha256(preimage));
      const amount = 5_000n * SAT;
      const hold = await client(1).createHoldInvoice(bobDeposit, { amountMsat: amount, paymentHash, minCltvExpiryDelta: 20 });
      const payment = await client(0).pay(aliceDeposit, {
        invoice: hold.invoice,
        amountMsat: amount,
        maxFeeMsat: feeLimitFor(amount, DEFAULT_FEE_LIMIT),
        idempotencyKey: 'held-by-hold-invoice',
        authorization: payAuthorization(alice, signTestGrant(alice), hold.invoice),
      });
      expect(payment.state).toBe('pending');
      await eventually(async () => (await client(1).invoiceStatus(bobDeposit, paymentHash)).state === 'accepted', 'accepted');
      const accepted = await client(1).invoiceStatus(bobDeposit, paymentHash);
      const mined = devnet.mineBlocks(3);
      await devnet.stop();

      devnet = await startTestDevnet({ dataDir: dir, operators: 2, controlPort: portOf(first.controlUrl), operatorPorts: first.operators.map((o) => portOf(o.url)) });
      // Mined blocks are kept; the hold invoice is still accepted with its deadline.
      expect(devnet.blockHeight()).toBeGreaterThanOrEqual(mined);
      expect(await client(1).invoiceStatus(bobDeposit, paymentHash)).toMatchObject({ state: 'accepted', settle_deadline: accepted.settle_deadline });
      // Alice's vault sends the pending payment again; Bob's vault holds it again (settling works then).
      await eventually(async () => {
        try {
          return (await client(1).settleHoldInvoice(bobDeposit, paymentHash, bytesToHex(preimage))).state === 'settled';
        } catch (error) {
          if (error instanceof Error && 'code' in error && error.code === 'UNAVAILABLE') return false;
          throw error;
        }
      }, 'settle after the payer resent');
      await eventually(async () => (await client(0).paymentStatus(aliceDeposit, 'held-by-hold-invoice'))?.state === 'settled', 'payer settles');
      expect((await client(0).paymentStatus(aliceDeposit, 'held-by-hold-invoice'))?.preimage).toBe(bytesToHex(preimage));
      expect((await client(1).depositStatus(bobDeposit)).balance_msat).toBe(amount);
      expect((await client(0).depositStatus(aliceDeposit)).balance_msat).toBe(20_000n * SAT - amount - (1_000n + 5_000n));
    } finally {
      await devnet.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('opens a vault database of the first schema: invoices and payments are rebuilt, nothing lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vault-v1-'));
    // The network's chain table of the first release had no count of mined blocks.
    const chain = new DatabaseSync(join(dir, 'network.sqlite'));
    chain.exec(`CREATE TABLE chain (id INTEGER PRIMARY KEY CHECK (id = 1), genesis_ms INTEGER NOT NULL) STRICT; INSERT INTO chain VALUES (1, ${Date.now()});`);
    chain.close();
    const network = new LightningNetwork({ dbPath: join(dir, 'network.sqlite') });
    expect(network.blockHeight()).toBe(101);
    expect(network.mineBlocks(2)).toBe(103);
    const nodeSecret = network.secretKey('vault-x');
    const payeeSecret = network.secretKey('someone');
    try {
      const dbPath = join(dir, 'vault-x.sqlite');
      const now = Math.floor(Date.now() / 1000);
      const owner = newParty().user.pubkey;
      const incoming = newPaymentSecrets();
      const outgoing = newPaymentSecrets();
      const invoiceOf = (secret: Uint8Array, hash: string, paymentSecret: string) =>
        buildInvoice({ nodeSecret: secret, amountMsat: 21_000n, paymentHash: hash, paymentSecret, description: 'v1', descriptionHash: null, timestamp: now, expirySeconds: 3600 });
      const old = new DatabaseSync(dbPath);
      old.exec(`${V1_SCHEMA}
        INSERT INTO deposits VALUES ('dep-1', '${owner}', ${now});
        INSERT INTO ledger (deposit_id, delta_msat, reason, reference, created_at) VALUES ('dep-1', 21000, 'invoice', '${incoming.paymentHash}', ${now});
        INSERT INTO invoices VALUES ('${incoming.paymentHash}', 'dep-1', '${invoiceOf(nodeSecret, incoming.paymentHash, incoming.paymentSecret)}', 21000, 'v1', NULL, '${incoming.preimage}', '${'ab'.repeat(64)}', ${now}, ${now + 3600}, ${now}, NULL);
        INSERT INTO payments VALUES ('dep-1', 'key-1', 'fp', 'req-1', '${owner}', 'conn', '${outgoing.paymentHash}', '${invoiceOf(payeeSecret, outgoing.paymentHash, outgoing.paymentSecret)}', 21000, 100, 0, 'failed', NULL, 'no route', ${now}, ${now}, NULL);
      `);
      old.close();
      const operator = new VaultOperator({ name: 'vault-x', dbPath, nodeSecret, peerSecret: network.secretKey('vault-x-peer'), network, routingPolicy: { baseMsat: 0n, ppm: 0 }, auditors: [] });
      try {
        const invoice = operator.invoiceStatus(owner, 'dep-1', incoming.paymentHash);
        expect(invoice).toMatchObject({ ok: true, value: { state: 'settled', amount_msat: '21000', preimage: incoming.preimage, hold: false } });
        const payment = operator.paymentStatus(owner, 'dep-1', 'key-1');
        expect(payment).toMatchObject({
          ok: true,
          value: { state: 'failed', failure_reason: 'no route', failure_code: 'REJECTED', kind: 'invoice', payment_hash: outgoing.paymentHash, destination: bytesToHex(secp256k1PublicKey(payeeSecret)) },
        });
        expect(operator.metrics()).toMatchObject({ deposits: 1, total_balance_msat: '21000', invoices_settled: 1, payments_failed: 1 });
        // New kinds of rows fit the rebuilt tables.
        expect(operator.createInvoice(owner, 'dep-1', {}).ok).toBe(true);
      } finally {
        operator.close();
      }
      // A second open finds the current schema and changes nothing.
      const again = new VaultOperator({ name: 'vault-x', dbPath, nodeSecret, peerSecret: network.secretKey('vault-x-peer'), network, routingPolicy: { baseMsat: 0n, ppm: 0 }, auditors: [] });
      expect(again.paymentStatus(owner, 'dep-1', 'key-1').ok).toBe(true);
      again.close();
    } finally {
      network.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function secp256k1PublicKey(secret: Uint8Array): Uint8Array {
  return secp256k1.getPublicKey(secret, true);
}

/** The vault operator's tables as the first devnet release created them. */
const V1_SCHEMA = `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
  CREATE TABLE deposits (deposit_id TEXT PRIMARY KEY, owner TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL) STRICT;
  CREATE TABLE ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT, deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id), delta_msat INTEGER NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('invoice', 'payment', 'routing_fee')), reference TEXT NOT NULL, created_at INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE invoices (
    payment_hash TEXT PRIMARY KEY, deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id), invoice TEXT NOT NULL, amount_msat INTEGER NOT NULL,
    description TEXT, description_hash TEXT, preimage TEXT NOT NULL, peer_sig TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    settled_at INTEGER, balance_seq INTEGER
  ) STRICT;
  CREATE TABLE payments (
    deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id), idempotency_key TEXT NOT NULL, fingerprint TEXT NOT NULL, request_id TEXT NOT NULL,
    owner TEXT NOT NULL, connection TEXT NOT NULL, payment_hash TEXT NOT NULL, invoice TEXT NOT NULL, amount_msat INTEGER NOT NULL,
    max_fee_msat INTEGER NOT NULL, fee_msat INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'failed')),
    preimage TEXT, failure_reason TEXT, created_at INTEGER NOT NULL, finished_at INTEGER, balance_seq INTEGER,
    PRIMARY KEY (deposit_id, idempotency_key)
  ) STRICT;
  CREATE INDEX payments_by_request ON payments (request_id);
  CREATE INDEX payments_by_connection ON payments (owner, connection, created_at);
  CREATE INDEX payments_pending ON payments (state) WHERE state = 'pending';
`;
