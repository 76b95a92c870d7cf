/**
 * The reference vault operator's state and rules (docs/vault-api.md), without HTTP: one vault
 * in the channel between its node N_A and a simulated peer N_B, deposits inside it, invoices
 * with vault proofs, payments checked against the user's authorization before any balance
 * decrease, balance updates signed by both peers, and an event log. State lives in SQLite; every
 * balance change is a ledger row, and balances are sums of the ledger.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import type { z } from 'zod';
import type { Event } from 'nostr-tools/pure';
import type { Msat } from '../protocol/amounts.ts';
import { REQUEST_MAX_AGE_SECONDS, verifyPaymentAuthorization } from '../protocol/authorization.ts';
import { budgetWindowStart, checkSpendLimits, GRANT_MAX_SKEW_SECONDS, parseGrant, VELOCITY_WINDOW_SECONDS } from '../protocol/grant.ts';
import { bytesToHex } from '../protocol/hex.ts';
import { decodePayableInvoice } from '../protocol/invoice.ts';
import { fail, ok, type Result, type VaultErrorCode } from '../protocol/result.ts';
import { verifyDepositLock, verifyDepositOpen } from '../protocol/user-statements.ts';
import {
  VAULT_API_VERSION,
  type createInvoiceRequestSchema,
  type depositSchema,
  type depositStatusSchema,
  type payRequestSchema,
  vaultEventSchema,
  type VaultEvent,
  type vaultInfoSchema,
  type vaultInvoiceSchema,
  type vaultMetricsSchema,
  type vaultPaymentSchema,
} from '../protocol/vault-api.ts';
import { signBalanceUpdate, signVaultProof, vaultMultisigPubkey, type balanceUpdateSchema } from '../protocol/vault-proof.ts';
import { silentLogger, type Logger } from '../log.ts';
import {
  buildInvoice,
  newPaymentSecrets,
  nodePubkeyOf,
  type LightningNetwork,
  type PaymentOutcome,
  type ReceiveOutcome,
  type RoutingPolicy,
} from './lightning-network.ts';
import { bigint, int, intOrNull, openDatabase, text, textOrNull, transaction } from './sqlite.ts';
import { VaultFaults } from './vault-faults.ts';

/** Wire shapes as the schemas read them (msats as decimal strings). */
export type WireInfo = z.input<typeof vaultInfoSchema>;
export type WireDeposit = z.input<typeof depositSchema>;
export type WireDepositStatus = z.input<typeof depositStatusSchema>;
export type WireInvoice = z.input<typeof vaultInvoiceSchema>;
export type WirePayment = z.input<typeof vaultPaymentSchema>;
export type WireEvent = z.input<typeof vaultEventSchema>;
export type WireMetrics = z.input<typeof vaultMetricsSchema>;
type WireBalanceUpdate = z.input<typeof balanceUpdateSchema>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type WireEventData = DistributiveOmit<WireEvent, 'seq'>;

export type CreateInvoiceBody = z.output<typeof createInvoiceRequestSchema>;
export type PayBody = z.output<typeof payRequestSchema>;

/** What the devnet's operators accept: invoices from 1 sat to 1 BTC, deposits up to 10 BTC. */
const LIMITS = {
  minInvoiceMsat: 1_000n,
  maxInvoiceMsat: 100_000_000_000n,
  maxDepositMsat: 1_000_000_000_000n,
};

export interface VaultOperatorOptions {
  /** Also the node alias. */
  name: string;
  /** SQLite file; null keeps the operator in memory. */
  dbPath: string | null;
  nodeSecret: Uint8Array;
  /** The channel peer's node key, held by the devnet to co-sign proofs and balance updates. */
  peerSecret: Uint8Array;
  network: LightningNetwork;
  routingPolicy: RoutingPolicy;
  /** Auditor pubkeys listed in /v0/info. */
  auditors: string[];
  /** How long a payment call waits for the network before answering `pending`. */
  paymentWaitMs?: number;
  logger?: Logger;
}

const NETWORK = 'regtest';
const MAINTENANCE_PERIOD_BLOCKS = 144;
const DEFAULT_INVOICE_EXPIRY_SECONDS = 3600;

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export class VaultOperator {
  readonly name: string;
  readonly nodePubkey: string;
  readonly peerNodePubkey: string;
  readonly vaultId: string;
  readonly channelId: string;
  readonly multisigPubkey: string;
  readonly faults: VaultFaults;
  readonly startedAt = nowSeconds();

  readonly #db: DatabaseSync;
  readonly #nodeSecret: Uint8Array;
  readonly #peerSecret: Uint8Array;
  readonly #network: LightningNetwork;
  readonly #policy: RoutingPolicy;
  readonly #auditors: string[];
  readonly #paymentWaitMs: number;
  readonly #log: Logger;
  readonly #listeners = new Set<() => void>();
  readonly #waiters = new Map<string, Set<() => void>>();
  /** Payments handed to the network and not yet back. */
  readonly #sending = new Set<string>();
  #closed = false;

  constructor(options: VaultOperatorOptions) {
    this.name = options.name;
    this.#db = openDatabase(options.dbPath);
    this.#nodeSecret = options.nodeSecret;
    this.#peerSecret = options.peerSecret;
    this.#network = options.network;
    this.#policy = options.routingPolicy;
    this.#auditors = options.auditors;
    this.#paymentWaitMs = options.paymentWaitMs ?? 2_000;
    this.#log = (options.logger ?? silentLogger).child({ operator: options.name });
    this.#migrate();
    this.nodePubkey = nodePubkeyOf(this.#nodeSecret);
    this.peerNodePubkey = nodePubkeyOf(this.#peerSecret);
    this.vaultId = this.#meta('vault_id', () => bytesToHex(randomBytes(32)));
    this.channelId = this.#meta('channel_id', () => bytesToHex(randomBytes(32)));
    this.multisigPubkey = vaultMultisigPubkey(this.nodePubkey, this.peerNodePubkey, this.channelId, this.vaultId);
    this.faults = new VaultFaults(() => this.#faultsChanged());
    this.#network.addNode(this.nodePubkey, {
      policy: this.#policy,
      online: () => !this.faults.down && !this.#closed,
      receive: (hash, amount) => this.#receive(hash, amount),
    });
    // Payments accepted before a restart and not finished are sent now.
    this.#dispatchPending(false);
  }

  #migrate(): void {
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS deposits (
        deposit_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS watchers (
        deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id),
        watcher TEXT NOT NULL,
        PRIMARY KEY (deposit_id, watcher)
      ) STRICT;
      CREATE INDEX IF NOT EXISTS watchers_by_watcher ON watchers (watcher);
      CREATE TABLE IF NOT EXISTS ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id),
        delta_msat INTEGER NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('invoice', 'payment', 'routing_fee')),
        reference TEXT NOT NULL,
        created_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS ledger_by_deposit ON ledger (deposit_id);
      CREATE TABLE IF NOT EXISTS balance_updates (
        deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id),
        seq INTEGER NOT NULL,
        balance_msat INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        operator_sig TEXT NOT NULL,
        peer_sig TEXT NOT NULL,
        PRIMARY KEY (deposit_id, seq)
      ) STRICT;
      CREATE TABLE IF NOT EXISTS invoices (
        payment_hash TEXT PRIMARY KEY,
        deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id),
        invoice TEXT NOT NULL,
        amount_msat INTEGER NOT NULL,
        description TEXT,
        description_hash TEXT,
        preimage TEXT NOT NULL,
        peer_sig TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        settled_at INTEGER,
        balance_seq INTEGER
      ) STRICT;
      CREATE TABLE IF NOT EXISTS payments (
        deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id),
        idempotency_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        request_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        connection TEXT NOT NULL,
        payment_hash TEXT NOT NULL,
        invoice TEXT NOT NULL,
        amount_msat INTEGER NOT NULL,
        max_fee_msat INTEGER NOT NULL,
        fee_msat INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'failed')),
        preimage TEXT,
        failure_reason TEXT,
        created_at INTEGER NOT NULL,
        finished_at INTEGER,
        balance_seq INTEGER,
        PRIMARY KEY (deposit_id, idempotency_key)
      ) STRICT;
      CREATE INDEX IF NOT EXISTS payments_by_request ON payments (request_id);
      CREATE INDEX IF NOT EXISTS payments_by_connection ON payments (owner, connection, created_at);
      CREATE INDEX IF NOT EXISTS payments_pending ON payments (state) WHERE state = 'pending';
      CREATE TABLE IF NOT EXISTS grants (
        owner TEXT NOT NULL,
        connection TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (owner, connection)
      ) STRICT;
      CREATE TABLE IF NOT EXISTS locks (
        owner TEXT PRIMARY KEY,
        locked INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        event TEXT NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id),
        data TEXT NOT NULL,
        created_at INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS refusals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id),
        idempotency_key TEXT NOT NULL,
        request_id TEXT,
        code TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at INTEGER NOT NULL
      ) STRICT;
    `);
  }

  #meta(key: string, make: () => string): string {
    this.#db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run(key, make());
    const row = this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(key);
    if (!row) throw new Error(`meta ${key} missing`);
    return text(row, 'value');
  }

  /** Reads rows with every INTEGER as bigint, so msat columns never pass through a JS number. */
  #all(sql: string, ...params: SQLInputValue[]) {
    const statement = this.#db.prepare(sql);
    statement.setReadBigInts(true);
    return statement.all(...params);
  }

  #get(sql: string, ...params: SQLInputValue[]) {
    const statement = this.#db.prepare(sql);
    statement.setReadBigInts(true);
    return statement.get(...params);
  }

  #run(sql: string, ...params: SQLInputValue[]): void {
    this.#db.prepare(sql).run(...params);
  }

  /** Called when events were written or faults changed; listeners re-read what concerns them. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }

  #faultsChanged(): void {
    if (!this.faults.holdPayments) this.#dispatchPending(false);
    this.#notify();
  }

  // ---------------------------------------------------------------- reads

  info(): WireInfo {
    return {
      version: VAULT_API_VERSION,
      operator: { node_pubkey: this.nodePubkey, alias: this.name },
      peer: { node_pubkey: this.peerNodePubkey },
      network: NETWORK,
      block_height: this.#network.blockHeight(),
      vaults: [{ vault_id: this.vaultId, channel_id: this.channelId, multisig_pubkey: this.multisigPubkey }],
      fees: {
        routing_base_msat: this.#policy.baseMsat.toString(),
        routing_ppm: this.#policy.ppm,
        maintenance: { unit_fee_msat: '0', rate_fee_ppm: 0, period_blocks: MAINTENANCE_PERIOD_BLOCKS },
      },
      limits: {
        min_invoice_msat: LIMITS.minInvoiceMsat.toString(),
        max_invoice_msat: LIMITS.maxInvoiceMsat.toString(),
        max_deposit_msat: LIMITS.maxDepositMsat.toString(),
      },
      auditors: this.#auditors,
      request_max_age_seconds: REQUEST_MAX_AGE_SECONDS,
    };
  }

  metrics(): WireMetrics {
    const count = (sql: string) => {
      const row = this.#get(sql);
      return row ? int(row, 'n') : 0;
    };
    const total = this.#get('SELECT COALESCE(SUM(delta_msat), 0) AS total FROM ledger');
    const totalMsat = total ? bigint(total, 'total') : 0n;
    return {
      started_at: this.startedAt,
      deposits: count('SELECT COUNT(*) AS n FROM deposits'),
      total_balance_msat: totalMsat.toString(),
      reserve_msat: ((totalMsat * BigInt(this.faults.reservePpm)) / 1_000_000n).toString(),
      invoices_settled: count('SELECT COUNT(*) AS n FROM invoices WHERE settled_at IS NOT NULL'),
      payments_settled: count("SELECT COUNT(*) AS n FROM payments WHERE state = 'settled'"),
      payments_failed: count("SELECT COUNT(*) AS n FROM payments WHERE state = 'failed'"),
      authorizations_refused: count('SELECT COUNT(*) AS n FROM refusals'),
    };
  }

  /** The deposit if `caller` may see it (its owner or a watcher); NOT_FOUND otherwise. */
  #visibleDeposit(caller: string, depositId: string): Result<{ depositId: string; owner: string; createdAt: number }> {
    const row = this.#get(
      `SELECT d.deposit_id, d.owner, d.created_at FROM deposits d
       WHERE d.deposit_id = ? AND (d.owner = ? OR EXISTS (SELECT 1 FROM watchers w WHERE w.deposit_id = d.deposit_id AND w.watcher = ?))`,
      depositId,
      caller,
      caller,
    );
    if (!row) return fail('NOT_FOUND', 'no such deposit');
    return ok({ depositId: text(row, 'deposit_id'), owner: text(row, 'owner'), createdAt: int(row, 'created_at') });
  }

  #depositWire(depositId: string, owner: string, createdAt: number): WireDeposit {
    return {
      deposit_id: depositId,
      owner,
      vault_id: this.vaultId,
      channel_id: this.channelId,
      multisig_pubkey: this.multisigPubkey,
      address: `${this.vaultId}@${this.multisigPubkey}`,
      created_at: createdAt,
    };
  }

  #balance(depositId: string): Msat {
    const row = this.#get('SELECT COALESCE(SUM(delta_msat), 0) AS balance FROM ledger WHERE deposit_id = ?', depositId);
    return row ? bigint(row, 'balance') : 0n;
  }

  /** Amount + fee limit of the deposit's payments in flight. */
  #reserved(depositId: string): Msat {
    const row = this.#get(
      "SELECT COALESCE(SUM(amount_msat + max_fee_msat), 0) AS reserved FROM payments WHERE deposit_id = ? AND state = 'pending'",
      depositId,
    );
    return row ? bigint(row, 'reserved') : 0n;
  }

  #locked(owner: string): boolean {
    const row = this.#get('SELECT locked FROM locks WHERE owner = ?', owner);
    return row ? int(row, 'locked') === 1 : false;
  }

  #balanceUpdate(depositId: string, seq: number | null): WireBalanceUpdate | null {
    const row =
      seq === null
        ? this.#get('SELECT * FROM balance_updates WHERE deposit_id = ? ORDER BY seq DESC LIMIT 1', depositId)
        : this.#get('SELECT * FROM balance_updates WHERE deposit_id = ? AND seq = ?', depositId, seq);
    if (!row) return null;
    return {
      deposit_id: depositId,
      vault_id: this.vaultId,
      channel_id: this.channelId,
      balance_msat: bigint(row, 'balance_msat').toString(),
      seq: int(row, 'seq'),
      created_at: int(row, 'created_at'),
      operator_sig: text(row, 'operator_sig'),
      peer_sig: text(row, 'peer_sig'),
    };
  }

  #latestSeq(depositId: string): number | null {
    const row = this.#get('SELECT MAX(seq) AS seq FROM balance_updates WHERE deposit_id = ?', depositId);
    return row ? intOrNull(row, 'seq') : null;
  }

  depositStatus(caller: string, depositId: string): Result<WireDepositStatus> {
    const deposit = this.#visibleDeposit(caller, depositId);
    if (!deposit.ok) return deposit;
    const misreport = this.faults.misreportBalanceMsat;
    const newest = this.#balanceUpdate(depositId, null);
    let balance = this.#balance(depositId);
    let update = newest;
    if (misreport !== 0n) {
      // The misreportBalanceMsat fault: both peers sign a false figure for the newest seq.
      balance = balance + misreport < 0n ? 0n : balance + misreport;
      update = this.#signedBalance(depositId, balance, newest?.seq ?? 0, newest?.created_at ?? deposit.value.createdAt);
    }
    return ok({
      deposit_id: depositId,
      owner: deposit.value.owner,
      balance_msat: balance.toString(),
      reserved_msat: this.#reserved(depositId).toString(),
      locked: this.#locked(deposit.value.owner),
      balance_update: update,
    });
  }

  invoiceStatus(caller: string, depositId: string, paymentHash: string): Result<WireInvoice> {
    const deposit = this.#visibleDeposit(caller, depositId);
    if (!deposit.ok) return deposit;
    const invoice = this.#invoiceWire(depositId, paymentHash);
    return invoice === null ? fail('NOT_FOUND', 'no such invoice') : ok(invoice);
  }

  #invoiceWire(depositId: string, paymentHash: string): WireInvoice | null {
    const row = this.#get('SELECT * FROM invoices WHERE deposit_id = ? AND payment_hash = ?', depositId, paymentHash);
    if (!row) return null;
    const settledAt = intOrNull(row, 'settled_at');
    const expiresAt = int(row, 'expires_at');
    const amount = bigint(row, 'amount_msat');
    const balanceSeq = intOrNull(row, 'balance_seq');
    return {
      invoice: text(row, 'invoice'),
      payment_hash: paymentHash,
      amount_msat: amount.toString(),
      description: textOrNull(row, 'description'),
      description_hash: textOrNull(row, 'description_hash'),
      created_at: int(row, 'created_at'),
      expires_at: expiresAt,
      state: settledAt !== null ? 'settled' : expiresAt <= nowSeconds() ? 'expired' : 'pending',
      settled_at: settledAt,
      preimage: settledAt === null ? null : text(row, 'preimage'),
      proof: {
        ...this.#proofFields(depositId, paymentHash),
        amount_msat: amount.toString(),
        peer_sig: text(row, 'peer_sig'),
      },
      balance_update: balanceSeq === null ? null : this.#balanceUpdate(depositId, balanceSeq),
    };
  }

  #proofFields(depositId: string, paymentHash: string) {
    return {
      deposit_id: depositId,
      vault_id: this.vaultId,
      channel_id: this.channelId,
      multisig_pubkey: this.multisigPubkey,
      operator_node_pubkey: this.nodePubkey,
      peer_node_pubkey: this.peerNodePubkey,
      payment_hash: paymentHash,
    };
  }

  paymentStatus(caller: string, depositId: string, idempotencyKey: string): Result<WirePayment> {
    const deposit = this.#visibleDeposit(caller, depositId);
    if (!deposit.ok) return deposit;
    const payment = this.#paymentWire(depositId, idempotencyKey);
    return payment === null ? fail('NOT_FOUND', 'no payment under this idempotency key') : ok(payment);
  }

  #paymentWire(depositId: string, idempotencyKey: string): WirePayment | null {
    const row = this.#get('SELECT * FROM payments WHERE deposit_id = ? AND idempotency_key = ?', depositId, idempotencyKey);
    if (!row) return null;
    const state = text(row, 'state');
    if (state !== 'pending' && state !== 'settled' && state !== 'failed') throw new TypeError(`payment state ${state}`);
    const balanceSeq = intOrNull(row, 'balance_seq');
    return {
      idempotency_key: idempotencyKey,
      payment_hash: text(row, 'payment_hash'),
      state,
      amount_msat: bigint(row, 'amount_msat').toString(),
      max_fee_msat: bigint(row, 'max_fee_msat').toString(),
      fee_msat: bigint(row, 'fee_msat').toString(),
      preimage: textOrNull(row, 'preimage'),
      failure_reason: textOrNull(row, 'failure_reason'),
      created_at: int(row, 'created_at'),
      settled_at: state === 'settled' ? intOrNull(row, 'finished_at') : null,
      balance_update: balanceSeq === null ? null : this.#balanceUpdate(depositId, balanceSeq),
    };
  }

  /**
   * Events after `after` on deposits `caller` owns or watches, oldest first (amounts as bigint).
   */
  eventsFor(caller: string, after: number, limit: number): VaultEvent[] {
    const rows = this.#all(
      `SELECT seq, data FROM events
       WHERE seq > ? AND deposit_id IN (SELECT deposit_id FROM deposits WHERE owner = ? UNION SELECT deposit_id FROM watchers WHERE watcher = ?)
       ORDER BY seq LIMIT ?`,
      after,
      caller,
      caller,
      limit,
    );
    return rows.map((row) => vaultEventSchema.parse({ seq: int(row, 'seq'), ...JSON.parse(text(row, 'data')) }));
  }

  // ---------------------------------------------------------------- writes

  /** Opens the owner's deposit (or finds it) and makes `caller` one of its watchers. */
  openDeposit(caller: string, open: Event): Result<{ created: boolean; deposit: WireDeposit }> {
    const owner = verifyDepositOpen(open);
    if (!owner.ok) return owner;
    return transaction(this.#db, () => {
      const existing = this.#get('SELECT deposit_id, created_at FROM deposits WHERE owner = ?', owner.value);
      const depositId = existing ? text(existing, 'deposit_id') : bytesToHex(randomBytes(16));
      const createdAt = existing ? int(existing, 'created_at') : nowSeconds();
      if (!existing) this.#run('INSERT INTO deposits (deposit_id, owner, created_at) VALUES (?, ?, ?)', depositId, owner.value, createdAt);
      // Watchers accumulate: a statement replayed by someone else adds a reader, never removes one.
      this.#run('INSERT OR IGNORE INTO watchers (deposit_id, watcher) VALUES (?, ?)', depositId, caller);
      return ok({ created: !existing, deposit: this.#depositWire(depositId, owner.value, createdAt) });
    });
  }

  createInvoice(caller: string, depositId: string, body: CreateInvoiceBody): Result<WireInvoice> {
    const deposit = this.#visibleDeposit(caller, depositId);
    if (!deposit.ok) return deposit;
    const amount = body.amount_msat;
    if (amount < LIMITS.minInvoiceMsat) return fail('BAD_REQUEST', `amount below the minimum of ${LIMITS.minInvoiceMsat} msat`);
    if (amount > LIMITS.maxInvoiceMsat) return fail('BAD_REQUEST', `amount above the maximum of ${LIMITS.maxInvoiceMsat} msat`);
    if (body.description !== undefined && body.description_hash !== undefined) {
      return fail('BAD_REQUEST', 'give description or description_hash, not both');
    }
    const { preimage, paymentHash, paymentSecret } = newPaymentSecrets();
    const createdAt = nowSeconds();
    const expiry = body.expiry_seconds ?? DEFAULT_INVOICE_EXPIRY_SECONDS;
    const descriptionHash = body.description_hash ?? null;
    const description = descriptionHash === null ? (body.description ?? '') : null;
    const invoice = buildInvoice({
      nodeSecret: this.#nodeSecret,
      amountMsat: amount,
      paymentHash,
      paymentSecret,
      description,
      descriptionHash,
      timestamp: createdAt,
      expirySeconds: expiry,
    });
    // The invalidProof fault: a random key signs in place of the channel peer.
    const proofSigner = this.faults.invalidProof ? randomBytes(32) : this.#peerSecret;
    const proof = signVaultProof({ ...this.#proofFields(depositId, paymentHash), amount_msat: amount }, proofSigner);
    this.#run(
      `INSERT INTO invoices (payment_hash, deposit_id, invoice, amount_msat, description, description_hash, preimage, peer_sig, created_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      paymentHash,
      depositId,
      invoice,
      amount,
      description,
      descriptionHash,
      preimage,
      proof.peer_sig,
      createdAt,
      createdAt + expiry,
    );
    const wire = this.#invoiceWire(depositId, paymentHash);
    if (wire === null) throw new Error('invoice vanished after insert');
    return ok(wire);
  }

  /** Stores a grant as the newest for its connection; an older one is STALE_GRANT. */
  pushGrant(caller: string, depositId: string, event: Event): Result<{ connection: string; created_at: number }> {
    const deposit = this.#visibleDeposit(caller, depositId);
    if (!deposit.ok) return deposit;
    const grant = parseGrant(event);
    if (!grant.ok) return grant;
    if (grant.value.userPubkey !== deposit.value.owner) return fail('UNAUTHORIZED', 'grant is not signed by the deposit owner');
    return transaction(this.#db, () => {
      const stored = this.#storeGrant(event, grant.value.userPubkey, grant.value.connectionPubkey);
      if (!stored.ok) return stored;
      return ok({ connection: grant.value.connectionPubkey, created_at: event.created_at });
    });
  }

  /** Inside a transaction: refuses a grant older than the newest known, stores a newer one. */
  #storeGrant(event: Event, owner: string, connection: string): Result<void> {
    const row = this.#get('SELECT created_at, event_id FROM grants WHERE owner = ? AND connection = ?', owner, connection);
    if (row) {
      const newest = int(row, 'created_at');
      if (event.created_at < newest) return fail('STALE_GRANT', 'a newer grant for this connection is known');
      if (event.created_at === newest) {
        // Two different grants with one timestamp: keep the first, so the order of arrival cannot be used to swap them.
        return text(row, 'event_id') === event.id ? ok(undefined) : fail('STALE_GRANT', 'another grant with the same created_at is known');
      }
    }
    this.#run(
      `INSERT INTO grants (owner, connection, created_at, event_id, event) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (owner, connection) DO UPDATE SET created_at = excluded.created_at, event_id = excluded.event_id, event = excluded.event`,
      owner,
      connection,
      event.created_at,
      event.id,
      JSON.stringify(event),
    );
    return ok(undefined);
  }

  /** Applies the owner's lock statement if it is the newest; answers the state in force. */
  lock(caller: string, depositId: string, event: Event): Result<{ locked: boolean; created_at: number }> {
    const deposit = this.#visibleDeposit(caller, depositId);
    if (!deposit.ok) return deposit;
    const lock = verifyDepositLock(event);
    if (!lock.ok) return lock;
    if (lock.value.owner !== deposit.value.owner) return fail('UNAUTHORIZED', 'lock is not signed by the deposit owner');
    // Newest wins, so a statement from a fast clock would outrank the owner's next one.
    if (lock.value.createdAt > nowSeconds() + GRANT_MAX_SKEW_SECONDS) return fail('BAD_REQUEST', 'the lock is dated in the future');
    const result = transaction(this.#db, () => {
      const row = this.#get('SELECT locked, created_at FROM locks WHERE owner = ?', lock.value.owner);
      const current = row ? { locked: int(row, 'locked') === 1, createdAt: int(row, 'created_at') } : null;
      // Newest wins; on a tie, locking wins, the safe side.
      const newer = current === null || lock.value.createdAt > current.createdAt || (lock.value.createdAt === current.createdAt && lock.value.locked && !current.locked);
      if (!newer) return { locked: current.locked, created_at: current.createdAt };
      this.#run(
        `INSERT INTO locks (owner, locked, created_at, event) VALUES (?, ?, ?, ?)
         ON CONFLICT (owner) DO UPDATE SET locked = excluded.locked, created_at = excluded.created_at, event = excluded.event`,
        lock.value.owner,
        lock.value.locked ? 1 : 0,
        lock.value.createdAt,
        JSON.stringify(event),
      );
      if ((current?.locked ?? false) !== lock.value.locked) {
        this.#emit(depositId, { type: 'lock_changed', deposit_id: depositId, locked: lock.value.locked });
      }
      return { locked: lock.value.locked, created_at: lock.value.createdAt };
    });
    this.#notify();
    this.#log.info({ deposit: depositId, locked: result.locked }, 'deposit lock');
    return ok(result);
  }

  /**
   * Pays an invoice from a deposit. Admission (authorization, newest grant, replay, budget,
   * lock, balance) and the reservation happen in one synchronous transaction; then the payment
   * goes out and the call waits briefly for its end. A retry with the same key and body returns
   * the same payment and pays nothing.
   */
  async pay(caller: string, depositId: string, body: PayBody): Promise<Result<{ created: boolean; payment: WirePayment }>> {
    const admitted = this.#admit(caller, depositId, body);
    if (!admitted.ok) return admitted;
    if (admitted.value.created) this.#dispatch(depositId, body.idempotency_key, false);
    await this.#waitFinal(depositId, body.idempotency_key);
    const payment = this.#paymentWire(depositId, body.idempotency_key);
    if (payment === null) throw new Error('payment vanished after admission');
    return ok({ created: admitted.value.created, payment });
  }

  #admit(caller: string, depositId: string, body: PayBody): Result<{ created: boolean }> {
    return transaction(this.#db, () => {
      const deposit = this.#visibleDeposit(caller, depositId);
      if (!deposit.ok) return deposit;
      const refusing = this.faults.refusePayments;
      if (refusing !== null) return fail(refusing, `fault: the operator refuses payments (${refusing})`);
      const owner = deposit.value.owner;
      const key = body.idempotency_key;
      const fingerprint = payFingerprint(body);
      const existing = this.#get('SELECT fingerprint FROM payments WHERE deposit_id = ? AND idempotency_key = ?', depositId, key);
      if (existing) {
        return text(existing, 'fingerprint') === fingerprint
          ? ok({ created: false })
          : fail('CONFLICT', 'this idempotency key was used with another request body');
      }

      const refuse = (code: VaultErrorCode, message: string): Result<never> => {
        this.#run(
          'INSERT INTO refusals (deposit_id, idempotency_key, request_id, code, message, created_at) VALUES (?, ?, ?, ?, ?, ?)',
          depositId,
          key,
          body.authorization.request.id,
          code,
          message,
          nowSeconds(),
        );
        this.#log.info({ deposit: depositId, code, reason: message }, 'payment refused');
        return fail(code, message);
      };

      const now = nowSeconds();
      const invoice = decodePayableInvoice(body.invoice, NETWORK, now);
      if (!invoice.ok) return refuse(invoice.error.code, invoice.error.message);
      const amount = body.amount_msat;
      if (invoice.value.amountMsat !== null && invoice.value.amountMsat !== amount) {
        return refuse('BAD_REQUEST', 'amount_msat must be the invoice amount');
      }
      const authorized = verifyPaymentAuthorization(body.authorization, {
        depositOwner: owner,
        operatorNodePubkey: this.nodePubkey,
        invoice: body.invoice,
        amountMsat: amount,
        maxFeeMsat: body.max_fee_msat,
        nowSec: now,
      });
      if (!authorized.ok) return refuse(authorized.error.code, authorized.error.message);
      const { grant, requestId, connectionPubkey } = authorized.value;

      const grantStored = this.#storeGrant(body.authorization.grant, owner, connectionPubkey);
      if (!grantStored.ok) return refuse(grantStored.error.code, grantStored.error.message);
      if (this.#get('SELECT 1 AS spent FROM payments WHERE request_id = ? LIMIT 1', requestId)) {
        return refuse('REPLAYED', 'this request was already spent under another idempotency key');
      }
      const used = this.#get(
        `SELECT COALESCE(SUM(CASE state WHEN 'settled' THEN amount_msat + fee_msat WHEN 'pending' THEN amount_msat + max_fee_msat ELSE 0 END), 0) AS used
         FROM payments WHERE owner = ? AND connection = ? AND created_at >= ?`,
        owner,
        connectionPubkey,
        budgetWindowStart(grant, now),
      );
      const hour = this.#get(
        `SELECT COUNT(*) AS payments, COALESCE(SUM(amount_msat), 0) AS amount
         FROM payments WHERE owner = ? AND connection = ? AND created_at >= ? AND state IN ('pending', 'settled')`,
        owner,
        connectionPubkey,
        now - VELOCITY_WINDOW_SECONDS,
      );
      const limits = checkSpendLimits(grant, amount, body.max_fee_msat, {
        usedMsat: used ? bigint(used, 'used') : 0n,
        lastHour: { payments: hour ? int(hour, 'payments') : 0, amountMsat: hour ? bigint(hour, 'amount') : 0n },
      });
      if (!limits.ok) return refuse(limits.error.code, limits.error.message);
      if (this.#locked(owner)) return refuse('LOCKED', 'the owner has locked their deposits');
      const available = this.#balance(depositId) - this.#reserved(depositId);
      if (available < amount + body.max_fee_msat) {
        return refuse('INSUFFICIENT_BALANCE', `available ${available} msat is less than amount + fee limit ${amount + body.max_fee_msat} msat`);
      }

      this.#run(
        `INSERT INTO payments (deposit_id, idempotency_key, fingerprint, request_id, owner, connection, payment_hash, invoice, amount_msat, max_fee_msat, state, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)`,
        depositId,
        key,
        fingerprint,
        requestId,
        owner,
        connectionPubkey,
        invoice.value.paymentHash,
        invoice.value.paymentRequest,
        amount,
        body.max_fee_msat,
        now,
      );
      this.#log.info({ deposit: depositId, payment_hash: invoice.value.paymentHash, amount_msat: amount.toString() }, 'payment accepted');
      return ok({ created: true });
    });
  }

  /** Sends a pending payment unless payments are held (`force` releases a held one). */
  #dispatch(depositId: string, key: string, force: boolean): void {
    const id = waiterKey(depositId, key);
    if (this.#closed || this.#sending.has(id)) return;
    if (this.faults.holdPayments && !force) return;
    const row = this.#get("SELECT invoice, amount_msat, max_fee_msat FROM payments WHERE deposit_id = ? AND idempotency_key = ? AND state = 'pending'", depositId, key);
    if (!row) return;
    if (this.faults.failPayments !== null) {
      this.#finish(depositId, key, { state: 'failed', paymentHash: null, reason: this.faults.failPayments });
      return;
    }
    this.#sending.add(id);
    this.#network.send(
      { payerPubkey: this.nodePubkey, invoice: text(row, 'invoice'), amountMsat: bigint(row, 'amount_msat'), maxFeeMsat: bigint(row, 'max_fee_msat') },
      (outcome) => {
        this.#sending.delete(id);
        this.#finish(depositId, key, outcome);
      },
    );
  }

  #dispatchPending(force: boolean): void {
    for (const row of this.#all("SELECT deposit_id, idempotency_key FROM payments WHERE state = 'pending' ORDER BY created_at")) {
      this.#dispatch(text(row, 'deposit_id'), text(row, 'idempotency_key'), force);
    }
  }

  /** Sends every payment held by the `holdPayments` fault (new ones stay held while it is on). */
  releasePayments(): void {
    this.#dispatchPending(true);
  }

  /** Records a payment's end: debit amount and fee and sign the new balance, or release the reservation. */
  #finish(depositId: string, key: string, outcome: PaymentOutcome): void {
    if (this.#closed) return;
    transaction(this.#db, () => {
      const row = this.#get(
        "SELECT payment_hash, amount_msat, max_fee_msat FROM payments WHERE deposit_id = ? AND idempotency_key = ? AND state = 'pending'",
        depositId,
        key,
      );
      if (!row) return;
      const paymentHash = text(row, 'payment_hash');
      const now = nowSeconds();
      if (outcome.state === 'settled') {
        const amount = bigint(row, 'amount_msat');
        let fee = outcome.feeMsat;
        if (this.faults.overchargeFeeMsat > 0n) {
          // The overchargeFeeMsat fault: charge more than the route cost, past the fee limit, but never into
          // what the deposit's other payments in flight hold (so no balance goes below zero).
          const heldByOthers = this.#reserved(depositId) - amount - bigint(row, 'max_fee_msat');
          const room = this.#balance(depositId) - heldByOthers - amount - fee;
          fee += this.faults.overchargeFeeMsat < room ? this.faults.overchargeFeeMsat : room > 0n ? room : 0n;
          this.#log.warn({ deposit: depositId, payment_hash: paymentHash, fee_msat: fee.toString() }, 'fault: fee overcharged');
        }
        this.#credit(depositId, -amount, 'payment', paymentHash, now);
        if (fee > 0n) this.#credit(depositId, -fee, 'routing_fee', paymentHash, now);
        const update = this.#signBalance(depositId, now);
        this.#run(
          "UPDATE payments SET state = 'settled', fee_msat = ?, preimage = ?, finished_at = ?, balance_seq = ? WHERE deposit_id = ? AND idempotency_key = ?",
          fee,
          outcome.preimage,
          now,
          update.seq,
          depositId,
          key,
        );
        this.#emit(depositId, {
          type: 'payment_settled',
          deposit_id: depositId,
          idempotency_key: key,
          payment_hash: paymentHash,
          amount_msat: amount.toString(),
          fee_msat: fee.toString(),
          preimage: outcome.preimage,
          balance_update: update,
        });
        this.#log.info({ deposit: depositId, payment_hash: paymentHash, fee_msat: fee.toString() }, 'payment settled');
      } else {
        const seq = this.#latestSeq(depositId);
        this.#run(
          "UPDATE payments SET state = 'failed', failure_reason = ?, finished_at = ?, balance_seq = ? WHERE deposit_id = ? AND idempotency_key = ?",
          outcome.reason,
          now,
          seq,
          depositId,
          key,
        );
        this.#emit(depositId, {
          type: 'payment_failed',
          deposit_id: depositId,
          idempotency_key: key,
          payment_hash: paymentHash,
          failure_reason: outcome.reason,
          balance_update: seq === null ? null : this.#balanceUpdate(depositId, seq),
        });
        this.#log.info({ deposit: depositId, payment_hash: paymentHash, reason: outcome.reason }, 'payment failed');
      }
    });
    this.#notify();
    const id = waiterKey(depositId, key);
    for (const wake of this.#waiters.get(id) ?? []) wake();
    this.#waiters.delete(id);
  }

  /** The network's side: a payment arrives for one of this node's invoices. */
  #receive(paymentHash: string, amountMsat: Msat): ReceiveOutcome {
    if (this.#closed) return { ok: false, reason: 'node is offline' };
    const outcome = transaction(this.#db, (): ReceiveOutcome => {
      const row = this.#get('SELECT deposit_id, amount_msat, preimage, expires_at, settled_at FROM invoices WHERE payment_hash = ?', paymentHash);
      if (!row) return { ok: false, reason: 'unknown payment hash' };
      if (intOrNull(row, 'settled_at') !== null) return { ok: false, reason: 'invoice already paid' };
      const now = nowSeconds();
      if (int(row, 'expires_at') <= now) return { ok: false, reason: 'invoice expired' };
      if (bigint(row, 'amount_msat') !== amountMsat) return { ok: false, reason: 'incorrect payment amount' };
      const depositId = text(row, 'deposit_id');
      if (this.#balance(depositId) + amountMsat > LIMITS.maxDepositMsat) return { ok: false, reason: 'deposit limit reached' };
      const preimage = text(row, 'preimage');
      if (this.faults.skipCredit) {
        this.#run('UPDATE invoices SET settled_at = ? WHERE payment_hash = ?', now, paymentHash);
        this.#log.warn({ deposit: depositId, payment_hash: paymentHash }, 'fault: payment taken without credit');
        return { ok: true, preimage };
      }
      this.#credit(depositId, amountMsat, 'invoice', paymentHash, now);
      const update = this.#signBalance(depositId, now);
      this.#run('UPDATE invoices SET settled_at = ?, balance_seq = ? WHERE payment_hash = ?', now, update.seq, paymentHash);
      this.#emit(depositId, {
        type: 'invoice_settled',
        deposit_id: depositId,
        payment_hash: paymentHash,
        amount_msat: amountMsat.toString(),
        preimage,
        settled_at: now,
        balance_update: update,
      });
      this.#log.info({ deposit: depositId, payment_hash: paymentHash, amount_msat: amountMsat.toString() }, 'invoice settled');
      return { ok: true, preimage };
    });
    if (outcome.ok) this.#notify();
    return outcome;
  }

  /** Inside a transaction: one ledger row (negative for a debit). */
  #credit(depositId: string, deltaMsat: Msat, reason: 'invoice' | 'payment' | 'routing_fee', reference: string, now: number): void {
    this.#run('INSERT INTO ledger (deposit_id, delta_msat, reason, reference, created_at) VALUES (?, ?, ?, ?, ?)', depositId, deltaMsat, reason, reference, now);
  }

  /** Inside a transaction: both peers sign the deposit's balance from the ledger, with the next seq. */
  #signBalance(depositId: string, now: number): WireBalanceUpdate {
    const seq = (this.#latestSeq(depositId) ?? 0) + 1;
    const balance = this.#balance(depositId);
    const signed = this.#signedBalance(depositId, balance, seq, now);
    this.#run(
      'INSERT INTO balance_updates (deposit_id, seq, balance_msat, created_at, operator_sig, peer_sig) VALUES (?, ?, ?, ?, ?, ?)',
      depositId,
      seq,
      balance,
      now,
      signed.operator_sig,
      signed.peer_sig,
    );
    return signed;
  }

  /** A balance update signed by both peers (stored by the caller, or not). */
  #signedBalance(depositId: string, balance: Msat, seq: number, createdAt: number): WireBalanceUpdate {
    const signed = signBalanceUpdate(
      { deposit_id: depositId, vault_id: this.vaultId, channel_id: this.channelId, balance_msat: balance, seq, created_at: createdAt },
      this.#nodeSecret,
      this.#peerSecret,
    );
    return { ...signed, balance_msat: balance.toString() };
  }

  /** Inside a transaction: appends an event; listeners are told after the commit. */
  #emit(depositId: string, data: WireEventData): void {
    this.#run('INSERT INTO events (deposit_id, data, created_at) VALUES (?, ?, ?)', depositId, JSON.stringify(data), nowSeconds());
  }

  #waitFinal(depositId: string, key: string): Promise<void> {
    const id = waiterKey(depositId, key);
    const row = this.#get("SELECT 1 AS pending FROM payments WHERE deposit_id = ? AND idempotency_key = ? AND state = 'pending'", depositId, key);
    if (!row || this.#paymentWaitMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waiters.get(id)?.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, this.#paymentWaitMs);
      const set = this.#waiters.get(id) ?? new Set();
      set.add(wake);
      this.#waiters.set(id, set);
    });
  }

  /** Stops taking payments and closes the store. Payments still pending are sent after a restart. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#network.removeNode(this.nodePubkey);
    for (const set of this.#waiters.values()) for (const wake of set) wake();
    this.#waiters.clear();
    this.#listeners.clear();
    this.#db.close();
  }
}

function waiterKey(depositId: string, key: string): string {
  return `${depositId}\u0000${key}`;
}

/** What makes two payment requests "the same body" for idempotency. */
function payFingerprint(body: PayBody): string {
  const auth = body.authorization;
  const fields = [body.invoice.trim().toLowerCase(), body.amount_msat.toString(), body.max_fee_msat.toString(), auth.grant.id, auth.request.id, auth.encryption, auth.key];
  return bytesToHex(sha256(new TextEncoder().encode(JSON.stringify(fields))));
}
