/**
 * v1 operators in the vaults file (docs/vault-api-v1.md, "How the bridge uses v1 operators"):
 * the bridge, started as `npm start` with VAULTS_FILE, lists them at /api/info and never calls
 * them; `deposit-bridge holdings` asks them with the user's own key and opens nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey } from 'nostr-tools/pure';
import { nsecEncode } from 'nostr-tools/nip19';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import { V1DepositServiceClient } from '../../src/vault-client/v1-deposit-service.ts';
import { v1SignerFromSecretKey } from '../../src/vault-client/v1-signing.ts';
import { createPostgresDatabase } from '../helpers/database.ts';
import { startTestDevnet } from '../helpers/devnet.ts';
import { freePorts, startProcess, waitForOutput, type RunningProcess } from '../helpers/process.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { startV1DepositServer, type V1DepositServer } from '../helpers/v1-deposit-server.ts';
import { runCli, waitFor } from '../helpers/world.ts';

type Info = { operators: { name: string; url: string }[]; v1_operators: { name: string; url: string; node_pubkey: string | null }[] };

/** `deposit-bridge holdings`, also when it exits 1. */
async function holdings(url: string, key: Uint8Array): Promise<{ code: number; stdout: string }> {
  try {
    return { code: 0, stdout: (await runCli(['holdings', '--url', url, '--user-key', nsecEncode(key)])).stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '' };
  }
}

describe('v1 operators in the vaults file', () => {
  let devnet: Devnet;
  let v1: V1DepositServer;
  let proc: RunningProcess | undefined;
  let drop: (() => Promise<void>) | undefined;
  let dir = '';
  let file = '';
  let url = '';
  const clients: RawNwcClient[] = [];
  /** Has a funded v1 deposit (opened with the user's own key, not through the bridge). */
  const funded = generateSecretKey();
  const fundedDepositId = v1SignerFromSecretKey(funded).pubkey;
  /** Has no v1 deposit. */
  const other = generateSecretKey();
  const otherDepositId = v1SignerFromSecretKey(other).pubkey;
  /** HTTP requests the simulated v1 operator had had before the bridge started. */
  let before = 0;

  /** `pin`: the v1 entry's node_pubkey, the simulated operator's own by default. */
  const vaultsJson = (withV1: boolean, pin: string = v1.nodePubkey) =>
    JSON.stringify({
      operators: [...devnet.operators.map((o) => ({ name: o.name, url: o.url, node_pubkey: o.nodePubkey })), ...(withV1 ? [{ name: 'v1-sim', url: v1.url, protocol: 'v1', node_pubkey: pin }] : [])],
      auditors: devnet.vaultsFile.auditors,
    });
  const info = async () => (await (await fetch(`${url}/api/info`)).json()) as Info;

  beforeAll(async () => {
    devnet = await startTestDevnet();
    v1 = await startV1DepositServer();
    // The user funds a v1 deposit with their own tools: open, invoice, paid from outside.
    const own = new V1DepositServiceClient({ url: v1.url, signers: [v1SignerFromSecretKey(funded)] });
    const deposit = await own.openDeposit(signDepositOpen(funded));
    expect(deposit.deposit_id).toBe(fundedDepositId);
    v1.credit((await own.createInvoice(fundedDepositId, { amountMsat: 21_000n })).payment_hash);
    before = v1.requests.length;

    dir = mkdtempSync(path.join(tmpdir(), 'bridge-v1-'));
    file = path.join(dir, 'vaults.json');
    writeFileSync(file, vaultsJson(true));
    const pg = await createPostgresDatabase();
    drop = pg.drop;
    const [httpPort] = await freePorts(1);
    url = `http://127.0.0.1:${httpPort}`;
    proc = startProcess(['start'], {
      DATABASE_URL: pg.url,
      NWC_RELAYS: devnet.relayUrl,
      VAULTS_FILE: file,
      DATA_DIR: path.join(dir, 'data'),
      HTTP_PORT: String(httpPort),
      MASTER_KEY: randomBytes(32).toString('hex'),
      LOG_LEVEL: 'info',
    });
    await waitForOutput(proc, /deposit-bridge is running \(PostgreSQL\)/);
  }, 90_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    if (proc && proc.child.exitCode === null) proc.child.kill('SIGKILL');
    await v1?.stop();
    await devnet?.stop();
    await drop?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("lists the v1 operator at /api/info apart from the bridge's operators, and says so at the start", async () => {
    const listed = await info();
    expect(listed.operators.map((o) => o.name).sort()).toEqual(devnet.operators.map((o) => o.name).sort());
    expect(listed.operators.some((o) => o.url === v1.url)).toBe(false);
    expect(listed.v1_operators).toEqual([{ name: 'v1-sim', url: v1.url, node_pubkey: v1.nodePubkey }]);
    const line = proc!.stdout().split('\n').find((l) => l.includes('"operator":"v1-sim"'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ url: v1.url, protocol: 'v1', msg: expect.stringMatching(/listed for the owner's own tools only/) });
  });

  it('never calls the v1 operator while users register, receive and pay', async () => {
    const uri = (await runCli(['connect', '--url', url, '--user-key', nsecEncode(funded), '--name', 'phone'])).lastLine;
    const client = new RawNwcClient(uri, 'nip44_v2');
    clients.push(client);
    const made = await client.request('make_invoice', { amount: 3_000_000 });
    expect(made.error).toBeNull();
    expect((await devnet.payInvoice(made.result.invoice as string)).state).toBe('settled');
    await waitFor(async () => (await client.request('get_balance')).result.balance === 3_000_000, 'the credit');
    const paid = await client.request('pay_invoice', { invoice: devnet.createPayeeInvoice(1_000_000n).invoice });
    expect(paid.error).toBeNull();
    // Not a single HTTP request, on any path (not even /v0/info): the bridge has nothing to do there.
    expect(v1.requests.slice(before)).toEqual([]);
  });

  it("shows the user's v1 balance with holdings, as the operator's word only, asked with the user's key", async () => {
    const balance = (await clients[0]!.request('get_balance')).result.balance as number;
    const out = await holdings(url, funded);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^v1-sim\s+deposit [0-9a-f]{66}  21000 msat, the operator's word only: v1 has no balance signed by both channel peers  \[v1\]$/m);
    expect(out.stdout).toContain(`deposit ${fundedDepositId}  21000 msat`);
    expect(out.stdout).toMatch(/^v1 total 21000 msat at 1 of 1 v1 operators: the operator's word only/m);
    // The v0 total stays what both channel peers signed; the unsigned v1 balance is not added to it.
    expect(out.stdout).toMatch(new RegExp(`^total ${balance} msat at 3 of 3 operators$`, 'm'));
    for (const name of devnet.operators.map((o) => o.name)) expect(out.stdout).toMatch(new RegExp(`^${name}\\s+deposit .* msat signed .*\\[v0\\]$`, 'm'));
    // Read only: one GetDepositStatus signed by the user's key, nothing opened.
    expect(v1.verified.filter((c) => c.pubkey === fundedDepositId).map((c) => c.method)).toEqual(['OpenDeposit', 'CreateInvoice', 'GetDepositStatus']);
  });

  it('shows none for a user without a v1 deposit, and opens none', async () => {
    const out = await holdings(url, other);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^v1-sim\s+no deposit \(none opened\)  \[v1\]$/m);
    expect(out.stdout).toMatch(/^v1 total 0 msat at 1 of 1 v1 operators/m);
    const asked = v1.received.filter((r) => r.body.pubkey === otherDepositId).map((r) => r.method);
    expect(asked).toEqual(['GetDepositStatus']);
    const own = new V1DepositServiceClient({ url: v1.url, signers: [v1SignerFromSecretKey(other)] });
    await expect(own.depositStatus(otherDepositId)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('names a v1 operator that does not answer, and fails', async () => {
    v1.tamper = () => ({ broken: true });
    try {
      const out = await holdings(url, funded);
      expect(out.code).toBe(1);
      expect(out.stdout).toMatch(/^v1-sim\s+not reached: .*\[v1\]$/m);
      expect(out.stdout).toMatch(/^v1 total 0 msat at 0 of 1 v1 operators/m);
    } finally {
      v1.tamper = null;
    }
  });

  it('keeps v1 operators out of the directory on reload, and lists what the file says', async () => {
    const seen = v1.requests.length;
    writeFileSync(file, vaultsJson(false));
    proc!.child.kill('SIGHUP');
    await waitFor(async () => (await info()).v1_operators.length === 0, 'the v1 operator unlisted');
    writeFileSync(file, vaultsJson(true));
    proc!.child.kill('SIGHUP');
    await waitFor(async () => (await info()).v1_operators.length === 1, 'the v1 operator listed again');
    const listed = await info();
    expect(listed.v1_operators).toEqual([{ name: 'v1-sim', url: v1.url, node_pubkey: v1.nodePubkey }]);
    expect(listed.operators).toHaveLength(devnet.operators.length);
    expect(listed.operators.some((o) => o.name === 'v1-sim')).toBe(false);
    // Give a wrongly connected operator time to be called: the directory connects at once on reload.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(v1.requests.slice(seen)).toEqual([]);
  });

  it("passes the file's pin on to holdings, which refuses another node answering at that URL", async () => {
    const elsewhere = devnet.operators[0]!.nodePubkey;
    writeFileSync(file, vaultsJson(true, elsewhere));
    proc!.child.kill('SIGHUP');
    await waitFor(async () => (await info()).v1_operators[0]?.node_pubkey === elsewhere, 'the new pin listed');
    try {
      const out = await holdings(url, funded);
      expect(out.code).toBe(1);
      expect(out.stdout).toMatch(/^v1-sim\s+not reached: .*is not the pinned.*\[v1\]$/m);
    } finally {
      writeFileSync(file, vaultsJson(true));
      proc!.child.kill('SIGHUP');
      await waitFor(async () => (await info()).v1_operators[0]?.node_pubkey === v1.nodePubkey, 'the right pin listed again');
    }
  });
});
