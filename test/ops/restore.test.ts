import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { nip19 } from 'nostr-tools';
import pg from 'pg';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { openDatabase } from '../../src/db/database.ts';
import { FinalityNotifier, type WalletContext } from '../../src/deposits/context.ts';
import { OperatorDirectory } from '../../src/deposits/operators.ts';
import { silentLogger } from '../../src/log.ts';
import { restoreUser } from '../../src/ops/restore.ts';
import type { VaultDeposit, VaultDepositHistory, VaultInfo, VaultInvoice } from '../../src/protocol/vault-api.ts';
import { signBalanceUpdate, vaultMultisigPubkey, type BalanceUpdate } from '../../src/protocol/vault-proof.ts';
import { fakeVaultClient } from '../helpers/stand-in-operator.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import { reconcile } from '../../src/deposits/reconcile.ts';
import { vaultHoldings } from '../../src/ops/holdings.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { VaultError } from '../../src/vault-client/vault-client.ts';
import { BACKENDS, openTestDatabase } from '../helpers/database.ts';
import { randomHex32 } from '../helpers/deposit-rows.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { fund } from '../helpers/wallet.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

/** A CLI command, also when it exits 1. */
async function cli(args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    return { code: 0, stdout: (await runCli(args)).stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '' };
  }
}

interface Listed {
  type: string;
  state: string;
  amount: number;
  fees_paid: number;
  payment_hash: string;
  description: string;
}

/** What a history entry must keep through a restore. */
const shape = (t: Listed) => `${t.type} ${t.state} ${t.amount} ${t.fees_paid} ${t.payment_hash}`;

describe.each(BACKENDS)('deposit-bridge restore (%s)', (backend) => {
  let world: World | undefined;
  let worldDir = '';
  const clients: RawNwcClient[] = [];
  afterAll(async () => {
    for (const c of clients) c.close();
    await world?.stop();
    if (worldDir) rmSync(worldDir, { recursive: true, force: true });
  });

  /** The database is lost: every table dropped, the bridge started again on an empty one (same master key). */
  async function wipeDatabase(w: World): Promise<void> {
    await w.bridge.stop();
    if (backend === 'postgres') {
      const admin = new pg.Client({ connectionString: w.databaseUrl });
      await admin.connect();
      await admin.query('drop schema public cascade; create schema public;');
      await admin.end();
    } else {
      // The world keeps its PGlite files in the one directory made under our TMPDIR.
      const [made] = readdirSync(worldDir);
      const { db } = await openDatabase({ pgliteDir: path.join(worldDir, made!, 'pglite') });
      await sql`drop schema public cascade`.execute(db);
      await sql`create schema public`.execute(db);
      await db.destroy();
    }
    await w.restartBridge();
    await waitFor(async () => (await fetch(`${w.bridge.url}/health`)).status === 200, 'bridge on an empty database');
  }

  it('rebuilds balances and history from the vaults after the database is lost, credits nothing twice, changes nothing when run again, and names what it could not restore', async () => {
    worldDir = mkdtempSync(path.join(tmpdir(), 'bridge-restore-'));
    const tmp = process.env.TMPDIR;
    process.env.TMPDIR = worldDir;
    try {
      world = await startWorld(backend);
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
    }
    const w = world;
    const userKey = generateSecretKey();
    const nsec = nip19.nsecEncode(userKey);
    const uri = (await runCli(['connect', '--url', w.bridge.url, '--user-key', nsec, '--name', 'phone'])).lastLine;
    const client = new RawNwcClient(uri, 'nip44_v2');
    clients.push(client);
    const balance = async (c: RawNwcClient) => (await c.request('get_balance')).result.balance as number;
    const settledHistory = async (c: RawNwcClient) =>
      ((await c.request('list_transactions', { limit: 100 })).result.transactions as Listed[]).filter((t) => t.state === 'settled');
    const db = () => w.bridge.wallet.db;
    const signedTotal = async () => {
      const holdings = await vaultHoldings(w.bridge.url, userKey);
      expect(holdings.every((h) => h.error === undefined)).toBe(true);
      return Number(holdings.reduce((sum, h) => sum + (h.signedMsat ?? 0n), 0n));
    };

    // Money in two deposits (receiving goes to the lighter of equal operators), a payment from one,
    // a payment larger than either (a share from each), and one maintenance period.
    await fund(w, client, 5_000_000);
    await fund(w, client, 3_000_000);
    const paid = await client.request('pay_invoice', { invoice: w.devnet.createPayeeInvoice(1_000_000n, 'coffee').invoice });
    expect(paid.error).toBeNull();
    const fee = paid.result.fees_paid as number;
    expect(fee).toBeGreaterThan(0);
    const split = await client.request('pay_invoice', { invoice: w.devnet.createPayeeInvoice(5_000_000n, 'rent').invoice });
    expect(split.error).toBeNull();
    const splitFee = split.result.fees_paid as number;
    expect(await db().selectFrom('payment_parts').select('id').execute()).toHaveLength(2);
    const holding = (await vaultHoldings(w.bridge.url, userKey)).filter((h) => (h.signedMsat ?? 0n) > 0n).length;
    w.devnet.mineBlocks(144);
    const charges = () =>
      db()
        .selectFrom('transactions')
        .select(['amount_msat'])
        .where((eb) => eb(eb.ref('metadata', '->>').key('kind' as never), '=', 'maintenance_fee'))
        .execute();
    await waitFor(async () => (await charges()).length === holding, 'a maintenance fee on every deposit holding money');
    const charged = (await charges()).reduce((sum, c) => sum + Number(c.amount_msat), 0);
    const before = await balance(client);
    expect(before).toBe(8_000_000 - 1_000_000 - fee - 5_000_000 - splitFee - charged);
    expect(await signedTotal()).toBe(before);
    const historyBefore = (await settledHistory(client)).map(shape).sort();
    expect(historyBefore).toHaveLength(4 + holding);

    const file = path.join(worldDir, 'settings.json');
    await runCli(['export', '--url', w.bridge.url, '--user-key', nsec, '--out', file]);

    await wipeDatabase(w);
    expect(await db().selectFrom('deposits').select('id').execute()).toEqual([]);

    // Connections first (they open the deposits again, empty at the bridge), then balances and history.
    const imported = await cli(['import', file, '--url', w.bridge.url, '--user-key', nsec]);
    expect(imported.code).toBe(0);
    const restored = await cli(['restore', '--url', w.bridge.url, '--user-key', nsec]);
    expect(restored.code).toBe(0);
    expect(restored.stdout).toMatch(/^restored at 3 of 3 operators$/m);
    expect(restored.stdout).not.toMatch(/failed/);
    // 2 receipts, 1 payment, 2 shares of the other, the charges: spread over the deposits.
    const added = [...restored.stdout.matchAll(/(\d+) transactions restored/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(added).toBe(5 + holding);

    const again = new RawNwcClient(uri, 'nip44_v2');
    clients.push(again);
    expect(await balance(again)).toBe(before);
    expect(await signedTotal()).toBe(before);
    const historyAfter = await settledHistory(again);
    expect(historyAfter.map(shape).sort()).toEqual(historyBefore);
    expect(historyAfter.find((t) => t.type === 'outgoing' && t.amount === 1_000_000)).toMatchObject({ fees_paid: fee, description: 'coffee' });
    expect(historyAfter.filter((t) => t.type === 'incoming').map((t) => t.amount).sort()).toEqual([3_000_000, 5_000_000]);
    expect(historyAfter.find((t) => t.type === 'outgoing' && t.amount === 5_000_000)).toMatchObject({ fees_paid: splitFee, description: 'rent' });
    expect(historyAfter.filter((t) => /maintenance fee/.test(t.description))).toHaveLength(holding);
    // The shares are the restored payment's parts, one per deposit that paid one.
    expect(await db().selectFrom('payment_parts').select(['state', 'step']).execute()).toEqual([
      { state: 'settled', step: 'final' },
      { state: 'settled', step: 'final' },
    ]);

    // The bridge agrees with every vault, and the journal explains every cached balance.
    const agreement = async () => (await reconcile(w.bridge.wallet)).map((r) => r.status);
    expect(await agreement()).toEqual(['agrees', 'agrees', 'agrees']);
    const journalExplains = async () => {
      for (const d of await db().selectFrom('deposits').selectAll().execute()) {
        const sum = await db().selectFrom('journal_entries').select((eb) => eb.fn.sum<string>('confirmed_delta_msat').as('s')).where('deposit_id', '=', d.id).executeTakeFirstOrThrow();
        expect(BigInt(sum.s ?? 0)).toBe(d.confirmed_msat);
        expect(d.reserved_msat).toBe(0n);
      }
    };
    await journalExplains();

    // New money in and out is counted once, on top of the restored balance.
    await fund(w, again, 2_000_000);
    const paid2 = await again.request('pay_invoice', { invoice: w.devnet.createPayeeInvoice(500_000n).invoice });
    expect(paid2.error).toBeNull();
    const after = before + 2_000_000 - 500_000 - (paid2.result.fees_paid as number);
    expect(await balance(again)).toBe(after);
    expect(await signedTotal()).toBe(after);
    expect(await agreement()).toEqual(['agrees', 'agrees', 'agrees']);

    // Every event the vaults ever sent, delivered again from the start, credits and debits nothing.
    const rows = async () => ({
      transactions: Number((await db().selectFrom('transactions').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n),
      journal: Number((await db().selectFrom('journal_entries').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n),
    });
    const counted = await rows();
    await db().updateTable('vault_operators').set({ events_cursor: 0n }).execute();
    await w.restartBridge();
    const watcher = (url: string) => new HttpVaultClient({ url, secretKey: w.bridge.keys.vaultAuthSecret });
    for (const d of await db().selectFrom('deposits').innerJoin('vault_operators', 'vault_operators.node_pubkey', 'deposits.operator_pubkey').select(['url', 'remote_deposit_id', 'node_pubkey']).execute()) {
      const newest = (await watcher(d.url).depositHistory(d.remote_deposit_id)).events_seq;
      await waitFor(
        async () => Number((await db().selectFrom('vault_operators').select('events_cursor').where('node_pubkey', '=', d.node_pubkey).executeTakeFirstOrThrow()).events_cursor) >= newest,
        'every event delivered again',
      );
    }
    const replayed = new RawNwcClient(uri, 'nip44_v2');
    clients.push(replayed);
    expect(await balance(replayed)).toBe(after);
    expect(await rows()).toEqual(counted);
    expect(await agreement()).toEqual(['agrees', 'agrees', 'agrees']);

    // Run again: nothing changes.
    const second = await cli(['restore', '--url', w.bridge.url, '--user-key', nsec]);
    expect(second.code, second.stdout).toBe(0);
    expect(second.stdout.match(/\(balance unchanged\), 0 transactions restored/g)).toHaveLength(3);
    expect(await rows()).toEqual(counted);
    await journalExplains();

    // An operator that does not answer, and one whose history does not explain its signed balance, are named and left alone.
    const [down, lying] = w.devnet.operators;
    down!.faults.down = true;
    lying!.faults.misreportBalanceMsat = 1_000n;
    try {
      const partial = await cli(['restore', '--url', w.bridge.url, '--user-key', nsec]);
      expect(partial.code).toBe(1);
      expect(partial.stdout).toMatch(new RegExp(`^${down!.name}\\s+failed: not reached`, 'm'));
      expect(partial.stdout).toMatch(new RegExp(`^${lying!.name}\\s+failed: the history adds up to \\d+ msat but the signed balance is \\d+ msat`, 'm'));
      expect(partial.stdout).toMatch(/^restored at 1 of 3 operators$/m);
    } finally {
      down!.faults.down = false;
      lying!.faults.misreportBalanceMsat = 0n;
    }
    expect(await rows()).toEqual(counted);
    expect(await balance(replayed)).toBe(after);
  });

  it('serves a deposit history only to its owner and watchers', async () => {
    const w = world!;
    const deposit = await w.bridge.wallet.db.selectFrom('deposits').innerJoin('vault_operators', 'vault_operators.node_pubkey', 'deposits.operator_pubkey').select(['url', 'remote_deposit_id']).executeTakeFirstOrThrow();
    const stranger = new HttpVaultClient({ url: deposit.url, secretKey: generateSecretKey() });
    const refused = await stranger.depositHistory(deposit.remote_deposit_id).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(VaultError);
    expect((refused as VaultError).code).toBe('NOT_FOUND');
    const watcher = new HttpVaultClient({ url: deposit.url, secretKey: w.bridge.keys.vaultAuthSecret });
    const history = await watcher.depositHistory(deposit.remote_deposit_id);
    expect(history.deposit_id).toBe(deposit.remote_deposit_id);
    expect(history.events_seq).toBeGreaterThan(0);
  });

  it('restores only for the user who signs the request, with their own deposit-open statement', async () => {
    const url = `${world!.bridge.url}/api/restore`;
    const post = async (signer: Uint8Array | null, opener: Uint8Array) => {
      const body = JSON.stringify({ deposit_open: signDepositOpen(opener) });
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(signer ? { authorization: httpAuthHeader(signer, url, 'POST', body) } : {}) },
        body,
      });
      return { status: response.status, json: (await response.json()) as { error?: { code: string } } };
    };
    const someone = generateSecretKey();
    expect((await post(null, someone)).status).toBe(401);
    const other = await post(someone, generateSecretKey());
    expect(other.status).toBe(403);
    expect(other.json.error?.code).toBe('FORBIDDEN');
    expect(await world!.bridge.wallet.db.selectFrom('users').select('pubkey').where('pubkey', '=', getPublicKey(someone)).execute()).toEqual([]);
  });
});

/** An operator answering only what restore asks (info, open, history), with node keys of its own, so the checks run on real signatures. */
function fakeOperator(history: (deposit: VaultDeposit, sign: (balanceMsat: bigint, seq: number, keys?: 'wrong-peer') => BalanceUpdate) => VaultDepositHistory, owner?: string) {
  const operatorSecret = secp256k1.utils.randomSecretKey();
  const peerSecret = secp256k1.utils.randomSecretKey();
  const nodePubkey = bytesToHex(secp256k1.getPublicKey(operatorSecret, true));
  const peerPubkey = bytesToHex(secp256k1.getPublicKey(peerSecret, true));
  const vaultId = randomHex32();
  const channelId = randomHex32();
  const multisig = vaultMultisigPubkey(nodePubkey, peerPubkey, channelId, vaultId);
  const info: VaultInfo = {
    version: '0',
    operator: { node_pubkey: nodePubkey, alias: 'fake' },
    peer: { node_pubkey: peerPubkey },
    network: 'regtest',
    block_height: 101,
    vaults: [{ vault_id: vaultId, channel_id: channelId, multisig_pubkey: multisig }],
    fees: { routing_base_msat: 0n, routing_ppm: 0, maintenance: { unit_fee_msat: 0n, period_blocks: 144, rate_fee_ppm: 0, rate_period_blocks: 52_560 } },
    limits: { min_invoice_msat: 1n, max_invoice_msat: 10n ** 12n, max_deposit_msat: 10n ** 13n },
    auditors: [],
    request_max_age_seconds: 300,
  };
  const depositId = randomHex32();
  let opener = '';
  // The same history every time it is asked (as a real operator's, when nothing happened since).
  let answered: VaultDepositHistory | undefined;
  const client = fakeVaultClient('http://fake.invalid', {
    info: async () => info,
    openDeposit: async (open) => ((opener = open.pubkey), { deposit_id: depositId, owner: owner ?? open.pubkey, vault_id: vaultId, channel_id: channelId, multisig_pubkey: multisig, address: `${vaultId}@${multisig}`, created_at: 1_700_000_000 }),
    depositHistory: async (id) =>
      (answered ??= history({ deposit_id: id, owner: owner ?? opener, vault_id: vaultId, channel_id: channelId, multisig_pubkey: multisig, address: '', created_at: 1_700_000_000 }, (balanceMsat, seq, keys) =>
        signBalanceUpdate({ deposit_id: id, vault_id: vaultId, channel_id: channelId, balance_msat: balanceMsat, seq, created_at: 1_700_000_000 }, operatorSecret, keys ? secp256k1.utils.randomSecretKey() : peerSecret),
      )),
  });
  return client;
}

/** A settled invoice of the history, credited with `update`. */
function settledInvoice(deposit: VaultDeposit, amountMsat: bigint, update: BalanceUpdate): VaultInvoice {
  const paymentHash = randomHex32();
  return {
    invoice: 'lnbcrt1fake',
    payment_hash: paymentHash,
    amount_msat: amountMsat,
    description: 'fake',
    description_hash: null,
    created_at: 1_700_000_000,
    expires_at: 1_700_003_600,
    state: 'settled',
    settled_at: 1_700_000_100,
    preimage: randomHex32(),
    proof: { deposit_id: deposit.deposit_id, vault_id: deposit.vault_id, channel_id: deposit.channel_id, multisig_pubkey: deposit.multisig_pubkey, operator_node_pubkey: '02' + '11'.repeat(32), peer_node_pubkey: '03' + '22'.repeat(32), payment_hash: paymentHash, amount_msat: amountMsat, peer_sig: '00'.repeat(64) },
    balance_update: update,
  };
}

describe.each(BACKENDS)('restore checks what each operator says before writing anything (%s)', (backend) => {
  const cases: { name: string; history: Parameters<typeof fakeOperator>[0]; owner?: string; error: RegExp | null }[] = [
    {
      name: 'restores a history whose balance both channel peers signed',
      history: (d, sign) => {
        const update = sign(5_000n, 1);
        return { deposit_id: d.deposit_id, owner: d.owner, balance_msat: 5_000n, reserved_msat: 0n, balance_update: update, invoices: [settledInvoice(d, 5_000n, update)], payments: [], maintenance: [], events_seq: 3 };
      },
      error: null,
    },
    {
      name: 'refuses a balance update the channel peer did not sign',
      history: (d, sign) => {
        const update = sign(5_000n, 1, 'wrong-peer');
        return { deposit_id: d.deposit_id, owner: d.owner, balance_msat: 5_000n, reserved_msat: 0n, balance_update: update, invoices: [settledInvoice(d, 5_000n, update)], payments: [], maintenance: [], events_seq: 3 };
      },
      error: /does not verify for both channel peers/,
    },
    {
      name: 'refuses a balance the operator reports other than it signed',
      history: (d, sign) => {
        const update = sign(5_000n, 1);
        return { deposit_id: d.deposit_id, owner: d.owner, balance_msat: 6_000n, reserved_msat: 0n, balance_update: update, invoices: [settledInvoice(d, 5_000n, update)], payments: [], maintenance: [], events_seq: 3 };
      },
      error: /reports 6000 msat but signed 5000 msat/,
    },
    {
      name: 'waits for a payment in flight',
      history: (d, sign) => {
        const update = sign(5_000n, 1);
        return { deposit_id: d.deposit_id, owner: d.owner, balance_msat: 5_000n, reserved_msat: 1_100n, balance_update: update, invoices: [settledInvoice(d, 5_000n, update)], payments: [], maintenance: [], events_seq: 3 };
      },
      error: /in flight at the vault/,
    },
    {
      name: 'refuses a deposit of another owner',
      owner: '44'.repeat(32),
      history: (d, sign) => ({ deposit_id: d.deposit_id, owner: d.owner, balance_msat: 0n, reserved_msat: 0n, balance_update: sign(0n, 1), invoices: [], payments: [], maintenance: [], events_seq: 0 }),
      error: /another owner/,
    },
  ];

  it.each(cases)('$name', async ({ history, owner, error }) => {
    const { db, close } = await openTestDatabase(backend);
    try {
      const operators = new OperatorDirectory(db, () => fakeOperator(history, owner), silentLogger);
      await operators.connect([{ name: 'fake', url: 'http://fake.invalid' }]);
      const ctx: WalletContext = { db, operators, logger: silentLogger, finality: new FinalityNotifier(), stopping: new AbortController().signal, now: () => 1_700_000_200 };
      const userKey = generateSecretKey();
      const [outcome] = await restoreUser(ctx, getPublicKey(userKey), signDepositOpen(userKey));
      const deposits = await db.selectFrom('deposits').selectAll().execute();
      const transactions = await db.selectFrom('transactions').selectAll().execute();
      if (error) {
        expect(outcome?.error).toMatch(error);
        // Nothing written for the operator.
        expect(deposits).toEqual([]);
        expect(transactions).toEqual([]);
        return;
      }
      expect(outcome).toMatchObject({ balanceMsat: 5_000n, balanceChangeMsat: 5_000n, created: true, transactionsAdded: 1, eventsSeq: 3 });
      expect(outcome?.error).toBeUndefined();
      expect(deposits).toMatchObject([{ confirmed_msat: 5_000n, reserved_msat: 0n, vault_balance_msat: 5_000n, vault_balance_seq: 1 }]);
      expect(transactions).toMatchObject([{ type: 'incoming', state: 'settled', step: 'final', amount_msat: 5_000n }]);
      expect(await db.selectFrom('journal_entries').select(['kind', 'transaction_id', 'confirmed_delta_msat']).execute()).toEqual([
        { kind: 'credit', transaction_id: null, confirmed_delta_msat: 5_000n },
      ]);
      // Again: nothing changes.
      const [second] = await restoreUser(ctx, getPublicKey(userKey), signDepositOpen(userKey));
      expect(second).toMatchObject({ balanceChangeMsat: 0n, created: false, transactionsAdded: 0, transactionsKnown: 1 });
      expect(await db.selectFrom('journal_entries').select('id').execute()).toHaveLength(1);
      expect(await db.selectFrom('transactions').select('id').execute()).toHaveLength(1);
    } finally {
      await close();
    }
  });

  it('refuses a deposit-open statement of someone else than the caller', async () => {
    const { db, close } = await openTestDatabase(backend);
    try {
      const operators = new OperatorDirectory(db, () => fakeOperator((d, sign) => ({ deposit_id: d.deposit_id, owner: d.owner, balance_msat: 0n, reserved_msat: 0n, balance_update: sign(0n, 1), invoices: [], payments: [], maintenance: [], events_seq: 0 })), silentLogger);
      const ctx: WalletContext = { db, operators, logger: silentLogger, finality: new FinalityNotifier(), stopping: new AbortController().signal, now: () => 1_700_000_200 };
      await expect(restoreUser(ctx, getPublicKey(generateSecretKey()), signDepositOpen(generateSecretKey()))).rejects.toMatchObject({ code: 'FORBIDDEN' });
    } finally {
      await close();
    }
  });
});
