import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { NWCClient } from '@getalby/sdk';
import pg from 'pg';
import { createPostgresDatabase } from '../helpers/database.ts';
import { servicePorts, startProcess, waitForOutput, type RunningProcess } from '../helpers/process.ts';
import { runCli, waitFor } from '../helpers/world.ts';

const running: RunningProcess[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-service-'));
  dirs.push(dir);
  return dir;
}

function start(args: string[], env: Record<string, string>): RunningProcess {
  const proc = startProcess(args, env);
  running.push(proc);
  return proc;
}

describe('npm start with no configuration (local mode)', () => {
  it('runs bridge, relay, vaults and auditor in one process, keeps everything across a restart, stops in order on SIGTERM', async () => {
    const { httpPort, relayPort, devnetPort } = await servicePorts();
    const env = { DATA_DIR: tempDir(), HTTP_PORT: String(httpPort), RELAY_PORT: String(relayPort), DEVNET_PORT: String(devnetPort) };
    const url = `http://127.0.0.1:${httpPort}`;

    let service = start(['start'], env);
    await waitForOutput(service, /deposit-bridge is running \(embedded database/);
    expect(service.stdout()).toContain(`npx deposit-bridge connect --url ${url}`);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const devnet = (await (await fetch(`${url}/api/devnet`)).json()) as { relay_url: string; operators: { url: string; node_pubkey: string }[] };
    expect(devnet.relay_url).toBe(`ws://127.0.0.1:${relayPort}`);
    expect(devnet.operators).toHaveLength(3);
    for (const op of devnet.operators) expect(op.node_pubkey).toMatch(/^0[23][0-9a-f]{64}$/);

    const uri = (await runCli(['connect', '--url', url])).lastLine;
    let wallet = new NWCClient({ nostrWalletConnectUrl: uri });
    const invoice = await wallet.makeInvoice({ amount: 7_000_000 });
    await runCli(['devnet', 'pay', invoice.invoice, '--url', url]);
    await waitFor(async () => (await wallet.getBalance()).balance === 7_000_000, 'funded');
    wallet.close();

    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);

    service = start(['start'], env);
    await waitForOutput(service, /deposit-bridge is running/);
    await waitFor(async () => (await fetch(`${url}/health`)).status === 200, 'health after restart');
    wallet = new NWCClient({ nostrWalletConnectUrl: uri }); // the same URI still works
    expect((await wallet.getBalance()).balance).toBe(7_000_000);
    expect((await wallet.lookupInvoice({ payment_hash: invoice.payment_hash })).state).toBe('settled');
    wallet.close();
    service.child.kill('SIGINT');
    expect(await service.exited).toBe(0);
  });
});

describe('a bridge configured with DATABASE_URL, NWC_RELAYS and VAULTS_FILE', () => {
  it('uses them, starts no devnet part, and survives SIGKILL while the vaults keep running', async () => {
    const { httpPort, relayPort, devnetPort } = await servicePorts();
    const devnet = start(['devnet'], { DATA_DIR: tempDir(), RELAY_PORT: String(relayPort), DEVNET_PORT: String(devnetPort) });
    const relays = (await waitForOutput(devnet, /^NWC_RELAYS=(\S+)$/m))[1]!;
    const vaultsFile = (await waitForOutput(devnet, /^VAULTS_FILE=(\S+)$/m))[1]!;
    const devnetUrl = `http://127.0.0.1:${devnetPort}`;

    const pg = await createPostgresDatabase();
    try {
      const env = {
        DATABASE_URL: pg.url,
        NWC_RELAYS: relays,
        VAULTS_FILE: vaultsFile,
        DATA_DIR: tempDir(),
        HTTP_PORT: String(httpPort),
        MASTER_KEY: randomBytes(32).toString('hex'),
      };
      const url = `http://127.0.0.1:${httpPort}`;
      let bridge = start(['start'], env);
      await waitForOutput(bridge, /deposit-bridge is running \(PostgreSQL\)/);
      await waitFor(async () => (await fetch(`${url}/health`)).status === 200, 'health');
      expect((await fetch(`${url}/api/devnet`)).status).toBe(404);
      expect(bridge.stdout()).not.toContain('devnet:');

      const uri = (await runCli(['connect', '--url', url])).lastLine;
      let wallet = new NWCClient({ nostrWalletConnectUrl: uri });
      const invoice = await wallet.makeInvoice({ amount: 9_000_000 });
      await runCli(['devnet', 'pay', invoice.invoice, '--url', devnetUrl]);
      await waitFor(async () => (await wallet.getBalance()).balance === 9_000_000, 'funded');
      wallet.close();

      bridge.child.kill('SIGKILL');
      await bridge.exited;
      bridge = start(['start'], env);
      await waitFor(async () => (await fetch(`${url}/health`)).status === 200, 'health after SIGKILL');
      wallet = new NWCClient({ nostrWalletConnectUrl: uri });
      expect((await wallet.getBalance()).balance).toBe(9_000_000);
      const payee = (await runCli(['devnet', 'invoice', '2000', '--url', devnetUrl])).lastLine;
      const paid = await wallet.payInvoice({ invoice: payee });
      expect(paid.preimage).toMatch(/^[0-9a-f]{64}$/);
      wallet.close();
      bridge.child.kill('SIGTERM');
      expect(await bridge.exited).toBe(0);
    } finally {
      await pg.drop();
    }
    devnet.child.kill('SIGTERM');
    expect(await devnet.exited).toBe(0);
  });
});

describe('deposit-bridge migrate', () => {
  it('migrates a PostgreSQL database and exits, and a second run has nothing to do', async () => {
    const database = await createPostgresDatabase();
    try {
      for (let run = 0; run < 2; run++) {
        const migrate = start(['migrate'], { DATABASE_URL: database.url, DATA_DIR: tempDir() });
        expect(await migrate.exited).toBe(0);
      }
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ name: string }>('select name from kysely_migration order by name');
        const files = readdirSync(path.resolve(import.meta.dirname, '../../migrations')).map((f) => f.replace(/\.ts$/, '')).sort();
        expect(files.length).toBeGreaterThan(0);
        expect(rows.map((r) => r.name)).toEqual(files);
        const tables = await client.query<{ table_name: string }>("select table_name from information_schema.tables where table_schema = 'public' order by table_name");
        expect(tables.rows.map((r) => r.table_name)).toEqual(
          expect.arrayContaining(['connections', 'deposits', 'journal_entries', 'nwc_requests', 'transactions', 'users', 'vault_operators']),
        );
      } finally {
        await client.end();
      }
    } finally {
      await database.drop();
    }
  });
});
