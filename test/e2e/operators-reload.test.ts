import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { nsecEncode } from 'nostr-tools/nip19';
import { pino } from 'pino';
import { startBridge, type RunningBridge } from '../../src/app.ts';
import { rebalanceUser } from '../../src/deposits/rebalancer.ts';
import { openDatabase } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import type { Devnet, DevnetOperator } from '../../src/devnet/devnet.ts';
import { RETIRED_REASON } from '../../src/deposits/operators.ts';
import { operatorEntriesOf } from '../../src/ops/vaults-reload.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { readVaultsFile } from '../../src/vault-client/vaults-file.ts';
import { VaultError } from '../../src/vault-client/vault-client.ts';
import { createPostgresDatabase } from '../helpers/database.ts';
import { startTestDevnet } from '../helpers/devnet.ts';
import { freePorts, startProcess, waitForOutput, type RunningProcess } from '../helpers/process.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { runCli, waitFor } from '../helpers/world.ts';

type Entry = { name: string; url: string; node_pubkey?: string };

/** A vaults file for these operators and the devnet's auditors. */
function vaultsJson(devnet: Devnet, operators: Entry[]): string {
  return JSON.stringify({ operators, auditors: devnet.vaultsFile.auditors }, null, 2) + '\n';
}

const entry = (op: DevnetOperator): Entry => ({ name: op.name, url: op.url });

/** Writes the file the way deploy tools and many editors do: a new file renamed over the old one. */
function replaceFile(file: string, text: string): void {
  const next = `${file}.next`;
  writeFileSync(next, text);
  renameSync(next, file);
}

describe('vault operators added and removed while running (the vaults file)', () => {
  let devnet: Devnet;
  let bridge: RunningBridge;
  let drop: (() => Promise<void>) | undefined;
  let dir = '';
  let file = '';
  const logs: Record<string, unknown>[] = [];
  const clients: RawNwcClient[] = [];
  const userKey = generateSecretKey();
  const user = getPublicKey(userKey);
  /** A user who registers while vault-a is removed. */
  const otherKey = generateSecretKey();
  let client: RawNwcClient;
  let a: DevnetOperator;
  let b: DevnetOperator;
  /** An invoice made at vault-a before it was removed, paid only afterwards. */
  let openAtA = { invoice: '', paymentHash: '' };

  const db = () => bridge.wallet.db;
  const listed = async () => ((await (await fetch(`${bridge.url}/api/operators`)).json()) as { operators: { name: string; url: string }[] }).operators;
  const listedNames = async () => (await listed()).map((o) => o.name).sort();
  const balance = async (c = client) => (await c.request('get_balance')).result.balance as number;
  const depositsOf = (pubkey: string) =>
    db()
      .selectFrom('deposits')
      .innerJoin('vault_operators', 'vault_operators.node_pubkey', 'deposits.operator_pubkey')
      .select(['vault_operators.name', 'deposits.confirmed_msat'])
      .where('deposits.user_pubkey', '=', pubkey)
      .orderBy('vault_operators.name')
      .execute();
  /** The operator whose deposit a transaction of the user is on. */
  const operatorOf = async (paymentHash: string, type: 'incoming' | 'outgoing') =>
    (
      await db()
        .selectFrom('transactions')
        .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
        .innerJoin('vault_operators', 'vault_operators.node_pubkey', 'deposits.operator_pubkey')
        .select('vault_operators.name')
        .where('transactions.payment_hash', '=', paymentHash)
        .where('transactions.type', '=', type)
        .executeTakeFirstOrThrow()
    ).name;
  const connect = async (key: Uint8Array) => {
    const uri = (await runCli(['connect', '--url', bridge.url, '--user-key', nsecEncode(key), '--name', 'phone'])).lastLine;
    const c = new RawNwcClient(uri, 'nip44_v2');
    clients.push(c);
    return c;
  };
  /** make_invoice, paid by the devnet's outside payer, credited; returns the invoice's payment hash. */
  const receive = async (amountMsat: number) => {
    const before = await balance();
    const made = await client.request('make_invoice', { amount: amountMsat });
    expect(made.error).toBeNull();
    expect((await devnet.payInvoice(made.result.invoice)).state).toBe('settled');
    await waitFor(async () => (await balance()) === before + amountMsat, 'the credit');
    return made.result.payment_hash as string;
  };

  beforeAll(async () => {
    devnet = await startTestDevnet();
    [a, b] = [devnet.operators[0]!, devnet.operators[1]!];
    dir = mkdtempSync(path.join(tmpdir(), 'bridge-vaults-'));
    file = path.join(dir, 'vaults.json');
    writeFileSync(file, vaultsJson(devnet, [entry(a)]));
    const pg = await createPostgresDatabase();
    drop = pg.drop;
    const { db: database } = await openDatabase({ databaseUrl: pg.url });
    await migrateToLatest(database);
    const vaults = readVaultsFile(file);
    bridge = await startBridge({
      db: database,
      masterKey: crypto.getRandomValues(new Uint8Array(32)),
      relays: [devnet.relayUrl],
      operators: operatorEntriesOf(vaults),
      auditors: vaults.auditors,
      httpHost: '127.0.0.1',
      httpPort: 0,
      alias: 'reload-test',
      drainTimeoutMs: 500,
      // The bridge's own log lines, to check what it says about a removal.
      logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }),
      vaultsFile: file,
      vaultsFileDebounceMs: 100,
    });
    client = await connect(userKey);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await bridge?.stop();
    await devnet?.stop();
    await drop?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('connects an operator added to the file, opens the existing users’ deposits there, and new receives go there', async () => {
    expect(await listedNames()).toEqual(['vault-a']);
    await receive(5_000_000);
    expect(await depositsOf(user)).toEqual([{ name: 'vault-a', confirmed_msat: 5_000_000n }]);
    const open = await client.request('make_invoice', { amount: 300_000 });
    openAtA = { invoice: open.result.invoice, paymentHash: open.result.payment_hash };
    expect(await operatorOf(openAtA.paymentHash, 'incoming')).toBe('vault-a');

    replaceFile(file, vaultsJson(devnet, [entry(a), entry(b)]));
    await waitFor(async () => (await listedNames()).join() === 'vault-a,vault-b', 'vault-b listed');
    // The user signed their deposit-open statement once; the bridge opens the new deposit with it.
    await waitFor(async () => (await depositsOf(user)).length === 2, 'a deposit at vault-b');

    // vault-b holds nothing yet, so the allocation prefers it; its event stream credits it.
    const atB = await receive(1_000_000);
    expect(await operatorOf(atB, 'incoming')).toBe('vault-b');
    expect(await depositsOf(user)).toEqual([
      { name: 'vault-a', confirmed_msat: 5_000_000n },
      { name: 'vault-b', confirmed_msat: 1_000_000n },
    ]);
    // The user lets the bridge rebalance between the operators it has now (the grant names both).
    await runCli(['connect', '--url', bridge.url, '--user-key', nsecEncode(userKey), '--name', 'rebalancing', '--rebalance']);
  });

  it('a removed operator gets nothing new, finishes what is in flight there, and its money is still shown and spendable', async () => {
    // A payment in flight at vault-a (the fuller deposit pays) when it is removed.
    a.faults.holdPayments = true;
    const held = devnet.createPayeeInvoice(500_000n, 'in flight at removal');
    const paying = client.request('pay_invoice', { invoice: held.invoice });
    try {
      await waitFor(async () => (await db().selectFrom('transactions').select('state').where('payment_hash', '=', held.paymentHash).where('step', '=', 'sent').execute()).length === 1, 'the payment sent');
      expect(await operatorOf(held.paymentHash, 'outgoing')).toBe('vault-a');

      replaceFile(file, vaultsJson(devnet, [entry(b)]));
      await waitFor(async () => (await listedNames()).join() === 'vault-b', 'vault-a no longer listed');
      expect(bridge.wallet.operators.get(a.nodePubkey)?.retired).toBe(true);
    } finally {
      a.faults.holdPayments = false;
      a.releasePayments();
    }
    const paid = await paying;
    expect(paid.error).toBeNull();
    expect(paid.result.preimage).toMatch(/^[0-9a-f]{64}$/);
    const fee = BigInt(paid.result.fees_paid as number);
    const atA = 5_000_000n - 500_000n - fee;

    // The removal is logged with what happens to the money there.
    const removal = logs.find((l) => l.operator === 'vault-a' && String(l.msg).startsWith('vault operator removed'));
    expect(String(removal?.msg)).toContain("the money it holds is still its users'");

    // New invoices: none at vault-a, though it holds most of the money.
    const incomingAtA = () =>
      db().selectFrom('transactions').innerJoin('deposits', 'deposits.id', 'transactions.deposit_id').select('transactions.id').where('deposits.operator_pubkey', '=', a.nodePubkey).where('type', '=', 'incoming').execute();
    const invoicesBefore = (await incomingAtA()).length;
    for (let i = 0; i < 3; i++) {
      const made = await client.request('make_invoice', { amount: 100_000 });
      expect(made.error).toBeNull();
      expect(await operatorOf(made.result.payment_hash, 'incoming')).toBe('vault-b');
    }
    expect((await incomingAtA()).length).toBe(invoicesBefore);
    // Whatever path would choose it, its client refuses to put new money there.
    const refused = await bridge.wallet.operators
      .get(a.nodePubkey)!
      .client.createInvoice('any', { amountMsat: 1_000n })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(VaultError);
    expect((refused as VaultError).code).toBe('RESTRICTED');

    // A new user gets no deposit there.
    await connect(otherKey);
    expect((await depositsOf(getPublicKey(otherKey))).map((d) => d.name)).toEqual(['vault-b']);

    // Its balance is still the user's: in get_balance and on the account API, with the reason.
    expect(BigInt(await balance())).toBe(atA + 1_000_000n);
    const url = `${bridge.url}/api/account`;
    const account = (await (await fetch(url, { headers: { authorization: httpAuthHeader(userKey, url, 'GET') } })).json()) as {
      operators: { name: string; available_msat: string; score: number; score_reasons: string[] }[];
    };
    expect(account.operators.find((o) => o.name === 'vault-a')).toMatchObject({ available_msat: atA.toString(), score: 0, score_reasons: [RETIRED_REASON] });

    // An invoice made there before the removal and paid after: the event stream, still followed
    // for what the removed operator holds, credits it without anyone asking.
    expect((await devnet.payInvoice(openAtA.invoice)).state).toBe('settled');
    await expect
      .poll(async () => (await db().selectFrom('transactions').select('state').where('payment_hash', '=', openAtA.paymentHash).executeTakeFirstOrThrow()).state, { timeout: 10_000 })
      .toBe('settled');
    expect(BigInt(await balance())).toBe(atA + 300_000n + 1_000_000n);

    // And it can still be paid from: the removed operator's deposit is spent first (its target is 0).
    const payee = devnet.createPayeeInvoice(2_000_000n, 'paid from a removed operator');
    const out = await client.request('pay_invoice', { invoice: payee.invoice });
    expect(out.error).toBeNull();
    expect(await operatorOf(payee.paymentHash, 'outgoing')).toBe('vault-a');
    expect(devnet.payeeInvoiceStatus(payee.paymentHash)?.state).toBe('settled');

    // The rebalancer drains it (as an operator below the score floor) for a user who allows it.
    const [depositAtA] = await db().selectFrom('deposits').select(['id', 'confirmed_msat']).where('user_pubkey', '=', user).where('operator_pubkey', '=', a.nodePubkey).execute();
    const move = await rebalanceUser(bridge.wallet, user);
    expect(move).toMatchObject({ kind: 'drain', fromDepositId: depositAtA!.id, result: { state: 'settled' } });
    const left = await db().selectFrom('deposits').select('confirmed_msat').where('id', '=', depositAtA!.id).executeTakeFirstOrThrow();
    expect(left.confirmed_msat).toBeLessThan(depositAtA!.confirmed_msat - move!.amountMsat + 1n);
  });

  it('an invalid file is logged with the reason and ignored: the operators in use stay', async () => {
    const before = { listed: await listedNames(), retired: bridge.wallet.operators.retired().map((o) => o.name) };
    const invalidLogs = () => logs.filter((l) => l.msg === 'vaults file not reloaded: keeping the operators in use');
    const seen = invalidLogs().length;
    // Written in place (truncate, write): the watch sees it too.
    writeFileSync(file, '{ "operators": [ ');
    await waitFor(() => invalidLogs().length > seen, 'the invalid file logged');
    expect(String(invalidLogs().at(-1)?.reason)).toContain('is not valid JSON');
    expect({ listed: await listedNames(), retired: bridge.wallet.operators.retired().map((o) => o.name) }).toEqual(before);

    for (const [operators, reason] of [
      [[entry(b), { ...entry(a), name: 'vault-b' }], 'operator names must be unique'],
      [[{ name: 'vault-b', url: 'ftp://vault-b' }], 'at operators.0.url'],
      [[{ ...entry(b), node_pubkey: 'not-a-key' }], 'at operators.0.node_pubkey'],
    ] as const) {
      replaceFile(file, vaultsJson(devnet, [...operators]));
      const outcome = await bridge.reloadVaults();
      expect(outcome.status).toBe('invalid');
      expect(outcome.status === 'invalid' && outcome.reason).toContain(reason);
    }
    expect(await listedNames()).toEqual(before.listed);
    const made = await client.request('make_invoice', { amount: 1_000 });
    expect(made.error).toBeNull();

    replaceFile(file, vaultsJson(devnet, [entry(b)]));
    expect(await bridge.reloadVaults()).toEqual({ status: 'applied', added: [], removed: [], auditors: devnet.vaultsFile.auditors.length });
  });

  it('honours pins, treats a changed URL as a removal plus an addition, and takes removed operators back', async () => {
    // A pin that the operator's node key does not match: not used.
    const c = devnet.operators[2]!;
    replaceFile(file, vaultsJson(devnet, [entry(b), { ...entry(c), node_pubkey: a.nodePubkey }]));
    expect(await bridge.reloadVaults()).toMatchObject({ status: 'applied', added: ['vault-c'], removed: [] });
    expect(await listedNames()).toEqual(['vault-b']);
    expect(logs.some((l) => l.operator === 'vault-c' && l.msg === 'vault operator node key does not match its pin; not used')).toBe(true);

    // The name vault-b now at another URL: the operator there is another one (the devnet's third);
    // the old vault-b is removed (what it holds stays), the new one added and followed.
    replaceFile(file, vaultsJson(devnet, [{ name: 'vault-b', url: c.url }]));
    expect(await bridge.reloadVaults()).toMatchObject({ status: 'applied', added: ['vault-b'], removed: ['vault-b', 'vault-c'] });
    expect(await listed()).toEqual([expect.objectContaining({ name: 'vault-b', url: c.url })]);
    expect(bridge.wallet.operators.get(b.nodePubkey)?.retired).toBe(true);
    expect(bridge.wallet.operators.get(c.nodePubkey)?.retired).toBeUndefined();
    const nodesOf = async (pubkey: string) =>
      (await db().selectFrom('deposits').select('operator_pubkey').where('user_pubkey', '=', pubkey).execute()).map((d) => d.operator_pubkey);
    await waitFor(async () => (await nodesOf(user)).includes(c.nodePubkey), 'a deposit at the new URL');
    const atNew = await receive(200_000);
    expect((await db().selectFrom('transactions').innerJoin('deposits', 'deposits.id', 'transactions.deposit_id').select('deposits.operator_pubkey').where('payment_hash', '=', atNew).executeTakeFirstOrThrow()).operator_pubkey).toBe(c.nodePubkey);

    // vault-a and vault-b back in the file: in use again with their scores, and followed again
    // (a payment to either is credited by its event stream, without a lookup).
    replaceFile(file, vaultsJson(devnet, [entry(a), entry(b)]));
    await waitFor(async () => (await listedNames()).join() === 'vault-a,vault-b', 'vault-a and vault-b listed again');
    for (const op of [a, b]) {
      expect(bridge.wallet.operators.get(op.nodePubkey)?.retired).toBeUndefined();
      expect(bridge.wallet.operators.get(op.nodePubkey)?.score).toBeGreaterThan(0);
    }
    expect(bridge.wallet.operators.get(c.nodePubkey)?.retired).toBe(true);
    const back = await receive(300_000);
    expect([a.nodePubkey, b.nodePubkey]).toContain(
      (await db().selectFrom('transactions').innerJoin('deposits', 'deposits.id', 'transactions.deposit_id').select('deposits.operator_pubkey').where('payment_hash', '=', back).executeTakeFirstOrThrow()).operator_pubkey,
    );
    // The user who registered while vault-a was removed gets a deposit there now, opened with their statement.
    await waitFor(async () => (await nodesOf(getPublicKey(otherKey))).includes(a.nodePubkey), 'a deposit at vault-a for the newer user');
  });
});

describe('deposit-bridge start with VAULTS_FILE', () => {
  let devnet: Devnet | undefined;
  let proc: RunningProcess | undefined;
  let drop: (() => Promise<void>) | undefined;
  let dir = '';
  afterAll(async () => {
    if (proc && proc.child.exitCode === null) proc.child.kill('SIGKILL');
    await devnet?.stop();
    await drop?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('re-reads the file on SIGHUP and keeps running', async () => {
    devnet = await startTestDevnet();
    dir = mkdtempSync(path.join(tmpdir(), 'bridge-vaults-'));
    const file = path.join(dir, 'vaults.json');
    writeFileSync(file, vaultsJson(devnet, [entry(devnet.operators[0]!)]));
    const pg = await createPostgresDatabase();
    drop = pg.drop;
    const [httpPort] = await freePorts(1);
    const url = `http://127.0.0.1:${httpPort}`;
    proc = startProcess(['start'], {
      DATABASE_URL: pg.url,
      NWC_RELAYS: devnet.relayUrl,
      VAULTS_FILE: file,
      DATA_DIR: path.join(dir, 'data'),
      HTTP_PORT: String(httpPort),
      MASTER_KEY: randomBytes(32).toString('hex'),
    });
    await waitForOutput(proc, /deposit-bridge is running \(PostgreSQL\)/);
    const names = async () => ((await (await fetch(`${url}/api/operators`)).json()) as { operators: { name: string }[] }).operators.map((o) => o.name).sort().join();
    expect(await names()).toBe('vault-a');

    writeFileSync(file, vaultsJson(devnet, devnet.operators.map(entry)));
    proc.child.kill('SIGHUP');
    await waitFor(async () => (await names()) === 'vault-a,vault-b,vault-c', 'the operators of the new file');
    expect(proc.child.exitCode).toBeNull();
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });
});
