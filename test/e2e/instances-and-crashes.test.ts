import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { Relay } from 'nostr-tools/relay';
import type { Event } from 'nostr-tools/pure';
import { openDatabase } from '../../src/db/database.ts';
import { startDevnet } from '../../src/devnet/devnet.ts';
import { createPostgresDatabase } from '../helpers/database.ts';
import { freePorts, startProcess, type RunningProcess } from '../helpers/process.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw, fund } from '../helpers/wallet.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

/** Every kind 23195 event the relay carries from `author`, grouped by the request they answer. */
async function collectResponses(relayUrl: string, author: string): Promise<{ byRequest: Map<string, Set<string>>; close: () => void }> {
  const relay = await Relay.connect(relayUrl);
  const byRequest = new Map<string, Set<string>>();
  relay.subscribe([{ kinds: [23195], authors: [author] }], {
    onevent: (event: Event) => {
      const request = event.tags.find((t) => t[0] === 'e')?.[1];
      if (!request) return;
      const ids = byRequest.get(request) ?? new Set();
      ids.add(event.id);
      byRequest.set(request, ids);
    },
  });
  return { byRequest, close: () => relay.close() };
}

describe('two bridge instances on one PostgreSQL and one relay', () => {
  let world: World | undefined;
  afterAll(async () => {
    await world?.stop();
  });

  it('answer each request exactly once and pay each invoice once', async () => {
    world = await startWorld('postgres');
    const second = await world.startAnotherInstance();
    await waitFor(async () => (await fetch(`${second.url}/health`)).status === 200, 'second instance healthy');
    const { client } = await connectRaw(world, 'nip44_v2');
    await fund(world, client, 100_000_000);
    const responses = await collectResponses(world.devnet.relayUrl, client.walletPubkey);
    try {
      const invoices = Array.from({ length: 10 }, () => world!.devnet.createPayeeInvoice(1_000_000n));
      const requests = [
        ...invoices.map(({ invoice }) => client.signRequest(client.encrypt(JSON.stringify({ method: 'pay_invoice', params: { invoice } })))),
        ...Array.from({ length: 10 }, (_, i) => client.signRequest(client.encrypt(JSON.stringify({ method: 'get_balance', params: { n: i } })))),
      ];
      const answers = await Promise.all(requests.map((event) => client.send(event)));
      expect(answers.filter((a) => a.error !== null)).toEqual([]);
      await new Promise((r) => setTimeout(r, 1_000));
      for (const event of requests) expect(responses.byRequest.get(event.id)?.size).toBe(1);
      const rows = await world.bridge.wallet.db.selectFrom('transactions').select('payment_hash').where('type', '=', 'outgoing').execute();
      expect(rows.map((r) => r.payment_hash).sort()).toEqual(invoices.map((i) => i.paymentHash).sort());
      for (const { paymentHash } of invoices) expect(world.devnet.payeeInvoiceStatus(paymentHash)?.state).toBe('settled');
    } finally {
      responses.close();
      client.close();
    }
  });
});

describe('a bridge killed (SIGKILL) while payments are in flight', () => {
  const dirs: string[] = [];
  const processes: RunningProcess[] = [];
  afterAll(() => {
    for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('finishes every payment as the vault says after restart, and the journal matches what the vaults signed', async () => {
    const devnet = await startDevnet({ dataDir: null, relayPort: 0, controlPort: 0, operatorPorts: [0, 0, 0], auditorPort: 0 });
    const pg = await createPostgresDatabase();
    const dir = mkdtempSync(path.join(tmpdir(), 'bridge-kill-'));
    dirs.push(dir);
    try {
      const vaultsFile = path.join(dir, 'vaults.json');
      writeFileSync(vaultsFile, JSON.stringify(devnet.vaultsFile));
      const [httpPort] = await freePorts(1);
      const env = {
        DATABASE_URL: pg.url,
        NWC_RELAYS: devnet.relayUrl,
        VAULTS_FILE: vaultsFile,
        DATA_DIR: dir,
        HTTP_PORT: String(httpPort),
        MASTER_KEY: randomBytes(32).toString('hex'),
        REQUEST_LEASE_SECONDS: '2',
      };
      const url = `http://127.0.0.1:${httpPort}`;
      const startBridgeProcess = async () => {
        const proc = startProcess(['start'], env);
        processes.push(proc);
        await waitFor(async () => (await fetch(`${url}/health`)).status === 200, 'bridge healthy', 60_000);
        return proc;
      };
      let bridge = await startBridgeProcess();
      const client = new RawNwcClient((await runCli(['connect', '--url', url])).lastLine, 'nip44_v2');
      const made = await client.request('make_invoice', { amount: 50_000_000 });
      await devnet.payInvoice(made.result.invoice);
      await waitFor(async () => (await client.request('get_balance')).result.balance === 50_000_000, 'funded');

      for (const op of devnet.operators) op.faults.holdPayments = true;
      const invoices = Array.from({ length: 5 }, () => devnet.createPayeeInvoice(2_000_000n));
      const answers = invoices.map(({ invoice }) => client.request('pay_invoice', { invoice }));
      const { db } = await openDatabase({ databaseUrl: pg.url, poolSize: 2 });
      try {
        await waitFor(async () => (await db.selectFrom('transactions').select('step').where('type', '=', 'outgoing').where('step', '=', 'sent').execute()).length === 5, 'five payments at the vault');
        bridge.child.kill('SIGKILL');
        await bridge.exited;
        // The vault settles them while the bridge is dead.
        for (const op of devnet.operators) {
          op.faults.holdPayments = false;
          op.releasePayments();
        }
        bridge = await startBridgeProcess();
        const results = await Promise.all(answers);
        expect(results.map((r) => r.error)).toEqual(Array(5).fill(null));
        const rows = await db.selectFrom('transactions').select(['state', 'step']).where('type', '=', 'outgoing').execute();
        expect(rows).toEqual(Array(5).fill({ state: 'settled', step: 'final' }));
        const deposits = await db.selectFrom('deposits').select(['reserved_msat']).execute();
        for (const d of deposits) expect(d.reserved_msat).toBe(0n);
        const fees = results.reduce((sum, r) => sum + (r.result.fees_paid as number), 0);
        expect((await client.request('get_balance')).result.balance).toBe(50_000_000 - 5 * 2_000_000 - fees);
      } finally {
        await db.destroy();
      }
      bridge.child.kill('SIGTERM');
      await bridge.exited;
      const report = await runReconcile(env);
      expect(report.code).toBe(0);
      expect(report.stdout).toMatch(/deposit\(s\) checked, 0 differ/);
      client.close();
    } finally {
      await pg.drop();
      await devnet.stop();
    }
  });
});

/** `deposit-bridge reconcile` with the bridge's environment. */
async function runReconcile(env: Record<string, string>): Promise<{ code: number | null; stdout: string }> {
  const proc = startProcess(['reconcile'], env);
  const code = await proc.exited;
  return { code, stdout: proc.stdout() };
}
