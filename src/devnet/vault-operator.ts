/**
 * The reference vault operator's state and rules (docs/vault-api.md), without HTTP: one vault
 * in the channel between its node N_A and a simulated peer N_B, deposits inside it, invoices
 * (fixed-amount, amountless, and hold invoices) with vault proofs, payments (invoices,
 * keysends, lightning addresses it resolves itself) checked against the user's authorization
 * before any balance decrease, balance updates signed by both peers, and an event log. State
 * lives in SQLite; every balance change is a ledger row, and balances are sums of the ledger.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import type { z } from 'zod';
import type { Event } from 'nostr-tools/pure';
import type { Msat } from '../protocol/amounts.ts';
import { REQUEST_MAX_AGE_SECONDS, verifyPaymentAuthorization, type PaymentTarget } from '../protocol/authorization.ts';
import { budgetWindowStart, checkSpendLimits, GRANT_MAX_SKEW_SECONDS, grantAllowsTarget, grantInForce, parseGrant, VELOCITY_WINDOW_SECONDS } from '../protocol/grant.ts';
import { bytesToHex, hexToBytes } from '../protocol/hex.ts';
import { decodeInvoice, decodePayableInvoice, type DecodedInvoice } from '../protocol/invoice.ts';
import { resolveLightningAddress, type ResolvedLightningAddress } from '../protocol/lnurl.ts';
import { canonicalTlvRecords, tlvRecordsSchema, tlvRecordsToWire, type TlvRecord } from '../protocol/nwc-request.ts';
import type { LightningAddress } from '../protocol/payment-target.ts';
import { fail, ok, type Result, type VaultErrorCode } from '../protocol/result.ts';
import { verifyDepositLock, verifyDepositOpen } from '../protocol/user-statements.ts';
import {
  DEFAULT_HOLD_CLTV_EXPIRY_DELTA,
  VAULT_API_VERSION,
  type createHoldInvoiceRequestSchema,
  type createInvoiceRequestSchema,
  type depositSchema,
  type depositStatusSchema,
  type payRequestSchema,
  vaultEventSchema,
  type vaultInfoSchema,
  type vaultInvoiceSchema,
  type vaultMetricsSchema,
  type vaultPaymentSchema,
  paymentFailureCodeSchema,
  type PaymentFailureCode,
} from '../protocol/vault-api.ts';
import { signBalanceUpdate, signVaultProof, vaultMultisigPubkey, type balanceUpdateSchema } from '../protocol/vault-proof.ts';
import { feeLimitFor } from '../protocol/amounts.ts';
import { REBALANCE_CAPABILITY, signOwnerAttestation, verifyTransferDestination } from '../protocol/transfer.ts';
import { movedDestinationSchema, type transferRequestSchema } from '../protocol/vault-api.ts';
import { silentLogger, type Logger } from '../log.ts';
import {
  buildInvoice,
  newPaymentSecrets,
  nodePubkeyOf,
  paymentHashOf,
  type IncomingPayment,
  type LightningNetwork,
  type PaymentOutcome,
  type ReceiveOutcome,
  type RoutingPolicy,
} from './lightning-network.ts';
import { bigint, bigintOrNull, int, intOrNull, openDatabase, statement, text, textOrNull, transaction } from './sqlite.ts';
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
export type CreateHoldInvoiceBody = z.output<typeof createHoldInvoiceRequestSchema>;
export type PayBody = z.output<typeof payRequestSchema>;
export type TransferBody = z.output<typeof transferRequestSchema>;

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
  /** How often held payments are checked against their settle deadline (default 1 000 ms; mined blocks are checked at once). */
  holdCheckIntervalMs?: number;
  /** Per request to a lightning address's server (default 10 000 ms). */
  lnurlTimeoutMs?: number;
  /** The maintenance fee schedule (default: the paper's, DEVNET_MAINTENANCE). */
  maintenance?: MaintenanceSchedule;
  logger?: Logger;
}

/**
 * What a deposit costs to keep, charged at the end of every `periodBlocks`: a unit fee, plus the
 * rate (ppm per `ratePeriodBlocks`) on the balance, pro rata for the period.
 */
export interface MaintenanceSchedule {
  unitFeeMsat: Msat;
  periodBlocks: number;
  rateFeePpm: number;
  ratePeriodBlocks: number;
}

/** The paper's example: 1 000 msat per 144 blocks (a day), 0.27 % per 52 560 blocks (a year). */
export const DEVNET_MAINTENANCE: MaintenanceSchedule = { unitFeeMsat: 1_000n, periodBlocks: 144, rateFeePpm: 2_700, ratePeriodBlocks: 52_560 };

const NETWORK = 'regtest';
/** The schema `#migrate` brings a database to (PRAGMA user_version). */
const SCHEMA_VERSION = 2;
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
  readonly #maintenance: MaintenanceSchedule;
  readonly #auditors: string[];
  readonly #paymentWaitMs: number;
  readonly #lnurlTimeoutMs: number;
  readonly #log: Logger;
  readonly #holdTimer: NodeJS.Timeout;
  readonly #stopBlocks: () => void;
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
    this.#maintenance = options.maintenance ?? DEVNET_MAINTENANCE;
    this.#auditors = options.auditors;
    this.#paymentWaitMs = options.paymentWaitMs ?? 2_000;
    this.#lnurlTimeoutMs = options.lnurlTimeoutMs ?? 10_000;
    this.#log = (options.logger ?? silentLogger).child({ operator: options.name });
    this.#migrate();
    this.nodePubkey = nodePubkeyOf(this.#nodeSecret);
    this.peerNodePubkey = nodePubkeyOf(this.#peerSecret);
    this.vaultId = this.#meta('vault_id', () => bytesToHex(randomBytes(32)));
    this.channelId = this.#meta('channel_id', () => bytesToHex(randomBytes(32)));
    this.multisigPubkey = vaultMultisigPubkey(this.nodePubkey, this.peerNodePubkey, this.channelId, this.vaultId);
    this.faults = new VaultFaults(() => this.#faultsChanged());
    this.faults.setMover((depositId, destination) => this.moveDeposit(depositId, destination));
    this.#network.addNode(this.nodePubkey, {
      policy: this.#policy,
      online: () => !this.faults.down && !this.#closed,
      receive: (payment) => this.#receive(payment),
    });
    // Held payments past their settle deadline are canceled: on every mined block, and on a timer for wall-time blocks.
    // Maintenance fees fall due the same way, by block height.
    this.#stopBlocks = this.#network.onBlocks(() => {
      this.#expireHolds();
      this.#chargeMaintenance();
    });
    this.#holdTimer = setInterval(() => {
      this.#expireHolds();
      this.#chargeMaintenance();
    }, options.holdCheckIntervalMs ?? 1_000);
    this.#holdTimer.unref();
    this.#expireHolds();
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
        reason TEXT NOT NULL CHECK (reason IN ('invoice', 'payment', 'routing_fee', 'maintenance')),
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
    this.#migrateMultiVault();
    this.#migrateMaintenance();
    this.#migrateLookups();
    const versionRow = this.#db.prepare('PRAGMA user_version').get();
    const version = versionRow ? int(versionRow, 'user_version') : 0;
    if (version >= SCHEMA_VERSION) return;
    transaction(this.#db, () => {
      // Version 1 (no user_version) had invoices and payments without hold invoices, amountless
      // invoices, keysends, lightning addresses and failure codes: the tables are rebuilt.
      const v1 = this.#db.prepare("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'invoices'").get() !== undefined;
      if (v1) this.#db.exec('ALTER TABLE invoices RENAME TO invoices_v1; ALTER TABLE payments RENAME TO payments_v1;');
      this.#db.exec(`
        CREATE TABLE invoices (
          payment_hash TEXT PRIMARY KEY,
          deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id),
          invoice TEXT NOT NULL,
          -- 0: amountless ("any amount"); received_msat is what arrived.
          amount_msat INTEGER NOT NULL,
          received_msat INTEGER,
          description TEXT,
          description_hash TEXT,
          -- A hold invoice's preimage is the client's: unknown until it settles.
          preimage TEXT,
          hold INTEGER NOT NULL DEFAULT 0 CHECK (hold IN (0, 1)),
          min_cltv_expiry_delta INTEGER,
          peer_sig TEXT NOT NULL,
          created_at INTEGER NOT NULL,
          expires_at INTEGER NOT NULL,
          accepted_at INTEGER,
          settle_deadline INTEGER,
          settled_at INTEGER,
          canceled_at INTEGER,
          balance_seq INTEGER,
          CHECK (hold = 1 OR preimage IS NOT NULL)
        ) STRICT;
        CREATE TABLE payments (
          deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id),
          idempotency_key TEXT NOT NULL,
          fingerprint TEXT NOT NULL,
          request_id TEXT NOT NULL,
          owner TEXT NOT NULL,
          connection TEXT NOT NULL,
          kind TEXT NOT NULL DEFAULT 'invoice' CHECK (kind IN ('invoice', 'keysend', 'lnurl')),
          payment_hash TEXT NOT NULL,
          -- The BOLT 11 paid (for lnurl the one resolved); null for a keysend.
          invoice TEXT,
          destination TEXT NOT NULL,
          keysend_preimage TEXT,
          tlv_records TEXT,
          lnurl_address TEXT,
          amount_msat INTEGER NOT NULL,
          max_fee_msat INTEGER NOT NULL,
          fee_msat INTEGER NOT NULL DEFAULT 0,
          state TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'failed')),
          preimage TEXT,
          failure_reason TEXT,
          failure_code TEXT,
          created_at INTEGER NOT NULL,
          finished_at INTEGER,
          balance_seq INTEGER,
          PRIMARY KEY (deposit_id, idempotency_key),
          CHECK ((kind = 'keysend') = (invoice IS NULL)),
          CHECK ((kind = 'keysend') = (keysend_preimage IS NOT NULL))
        ) STRICT;
      `);
      if (v1) {
        this.#db.exec(`
          INSERT INTO invoices (payment_hash, deposit_id, invoice, amount_msat, received_msat, description, description_hash, preimage, peer_sig, created_at, expires_at, settled_at, balance_seq)
          SELECT payment_hash, deposit_id, invoice, amount_msat, CASE WHEN settled_at IS NULL THEN NULL ELSE amount_msat END, description, description_hash, preimage, peer_sig, created_at, expires_at, settled_at, balance_seq
          FROM invoices_v1;
          INSERT INTO payments (deposit_id, idempotency_key, fingerprint, request_id, owner, connection, kind, payment_hash, invoice, destination, amount_msat, max_fee_msat, fee_msat, state, preimage, failure_reason, failure_code, created_at, finished_at, balance_seq)
          SELECT deposit_id, idempotency_key, fingerprint, request_id, owner, connection, 'invoice', payment_hash, invoice, '', amount_msat, max_fee_msat, fee_msat, state, preimage, failure_reason, CASE state WHEN 'failed' THEN 'REJECTED' END, created_at, finished_at, balance_seq
          FROM payments_v1;
          DROP TABLE invoices_v1;
          DROP TABLE payments_v1;
        `);
        const update = this.#db.prepare('UPDATE payments SET destination = ? WHERE deposit_id = ? AND idempotency_key = ?');
        for (const row of this.#db.prepare("SELECT deposit_id, idempotency_key, invoice FROM payments WHERE destination = ''").all()) {
          const decoded = decodeInvoice(text(row, 'invoice'));
          update.run(decoded.ok ? decoded.value.payeeNodeKey : '', text(row, 'deposit_id'), text(row, 'idempotency_key'));
        }
      }
      this.#db.exec(`
        CREATE INDEX payments_by_request ON payments (request_id);
        CREATE INDEX payments_by_connection ON payments (owner, connection, created_at);
        CREATE INDEX payments_pending ON payments (state) WHERE state = 'pending';
        CREATE INDEX invoices_held ON invoices (settle_deadline) WHERE accepted_at IS NOT NULL AND settled_at IS NULL AND canceled_at IS NULL;
        PRAGMA user_version = ${SCHEMA_VERSION};
      `);
    });
    this.#migrateMultiVault();
    this.#migrateLookups();
  }

  /**
   * Indexes of what every payment looks up, whatever the schema version: a deposit's balance
   * summed from the index alone, and its payments in flight without reading its settled ones.
   */
  #migrateLookups(): void {
    this.#db.exec(`
      CREATE INDEX IF NOT EXISTS ledger_sum_by_deposit ON ledger (deposit_id, delta_msat);
      DROP INDEX IF EXISTS ledger_by_deposit;
    `);
    const hasPayments = this.#db.prepare("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'payments'").get() !== undefined;
    if (hasPayments) this.#db.exec("CREATE INDEX IF NOT EXISTS payments_pending_by_deposit ON payments (deposit_id) WHERE state = 'pending'");
  }

  /**
   * Columns for multi-part payments and transfers (docs/multi-vault.md), added where missing
   * whatever the schema version: `mpp_total_msat` (a part's total), `transfer_purpose`
   * (`rebalance`, `payment` or `operator` for a transfer to another deposit) and
   * `transfer_destination` (the destination's proof, as JSON).
   */
  #migrateMultiVault(): void {
    const hasPayments = this.#db.prepare("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'payments'").get() !== undefined;
    // A new database: the versioned migration creates the table, then calls this again.
    if (!hasPayments) return;
    const columns = this.#db.prepare('PRAGMA table_info(payments)').all().map((c) => text(c, 'name'));
    if (!columns.includes('mpp_total_msat')) this.#db.exec('ALTER TABLE payments ADD COLUMN mpp_total_msat INTEGER');
    if (!columns.includes('transfer_purpose')) this.#db.exec('ALTER TABLE payments ADD COLUMN transfer_purpose TEXT');
    if (!columns.includes('transfer_destination')) this.#db.exec('ALTER TABLE payments ADD COLUMN transfer_destination TEXT');
  }

  /**
   * The maintenance ledger, whatever the schema version: `maintenance` (the height each deposit
   * is charged through), and a ledger that accepts the `maintenance` reason (rebuilt if older).
   */
  #migrateMaintenance(): void {
    transaction(this.#db, () => {
      const ledger = this.#db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'ledger'").get();
      if (ledger && !text(ledger, 'sql').includes("'maintenance'")) {
        this.#db.exec(`
          ALTER TABLE ledger RENAME TO ledger_old;
          CREATE TABLE ledger (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            deposit_id TEXT NOT NULL REFERENCES deposits (deposit_id),
            delta_msat INTEGER NOT NULL,
            reason TEXT NOT NULL CHECK (reason IN ('invoice', 'payment', 'routing_fee', 'maintenance')),
            reference TEXT NOT NULL,
            created_at INTEGER NOT NULL
          ) STRICT;
          INSERT INTO ledger SELECT * FROM ledger_old;
          DROP TABLE ledger_old;
          CREATE INDEX IF NOT EXISTS ledger_by_deposit ON ledger (deposit_id);
        `);
      }
      this.#db.exec(`
        CREATE TABLE IF NOT EXISTS maintenance (
          deposit_id TEXT PRIMARY KEY REFERENCES deposits (deposit_id),
          charged_through INTEGER NOT NULL
        ) STRICT;
      `);
    });
  }

  #meta(key: string, make: () => string): string {
    this.#db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run(key, make());
    const row = this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(key);
    if (!row) throw new Error(`meta ${key} missing`);
    return text(row, 'value');
  }

  /** Reads rows with every INTEGER as bigint, so msat columns never pass through a JS number. */
  #all(sql: string, ...params: SQLInputValue[]) {
    return statement(this.#db, sql).all(...params);
  }

  #get(sql: string, ...params: SQLInputValue[]) {
    return statement(this.#db, sql).get(...params);
  }

  #run(sql: string, ...params: SQLInputValue[]): void {
    statement(this.#db, sql).run(...params);
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
        maintenance: {
          unit_fee_msat: this.#maintenance.unitFeeMsat.toString(),
          period_blocks: this.#maintenance.periodBlocks,
          rate_fee_ppm: this.#maintenance.rateFeePpm,
          rate_period_blocks: this.#maintenance.ratePeriodBlocks,
        },
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
    const canceledAt = intOrNull(row, 'canceled_at');
    const acceptedAt = intOrNull(row, 'accepted_at');
    const expiresAt = int(row, 'expires_at');
    const amount = bigint(row, 'amount_msat');
    const received = bigintOrNull(row, 'received_msat');
    const hold = int(row, 'hold') === 1;
    const balanceSeq = intOrNull(row, 'balance_seq');
    const state = canceledAt !== null ? 'canceled' : settledAt !== null ? 'settled' : acceptedAt !== null ? 'accepted' : expiresAt <= nowSeconds() ? 'expired' : 'pending';
    return {
      invoice: text(row, 'invoice'),
      payment_hash: paymentHash,
      // An amountless invoice shows what it received once paid.
      amount_msat: (amount === 0n && received !== null ? received : amount).toString(),
      description: textOrNull(row, 'description'),
      description_hash: textOrNull(row, 'description_hash'),
      created_at: int(row, 'created_at'),
      expires_at: expiresAt,
      state,
      settled_at: settledAt,
      preimage: settledAt === null ? null : textOrNull(row, 'preimage'),
      proof: {
        ...this.#proofFields(depositId, paymentHash),
        amount_msat: amount.toString(),
        peer_sig: text(row, 'peer_sig'),
      },
      balance_update: balanceSeq === null ? null : this.#balanceUpdate(depositId, balanceSeq),
      hold,
      accepted_at: acceptedAt,
      settle_deadline: intOrNull(row, 'settle_deadline'),
      min_cltv_expiry_delta: hold ? intOrNull(row, 'min_cltv_expiry_delta') : null,
      canceled_at: canceledAt,
      ...this.#ownerAttestation(depositId, paymentHash),
    };
  }

  /** The channel peer's statement that the deposit is its owner's: makes an invoice a transfer destination. */
  #ownerAttestation(depositId: string, paymentHash: string): { owner: string; owner_sig: string } | Record<string, never> {
    const row = this.#get('SELECT owner FROM deposits WHERE deposit_id = ?', depositId);
    if (!row) return {};
    return signOwnerAttestation(depositId, text(row, 'owner'), paymentHash, this.#peerSecret);
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
    const kind = text(row, 'kind');
    if (kind !== 'invoice' && kind !== 'keysend' && kind !== 'lnurl') throw new TypeError(`payment kind ${kind}`);
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
      failure_code: failureCodeOf(textOrNull(row, 'failure_code')),
      created_at: int(row, 'created_at'),
      settled_at: state === 'settled' ? intOrNull(row, 'finished_at') : null,
      balance_update: balanceSeq === null ? null : this.#balanceUpdate(depositId, balanceSeq),
      kind: textOrNull(row, 'transfer_purpose') === null ? kind : 'transfer',
      invoice: textOrNull(row, 'invoice'),
      destination: textOrNull(row, 'destination') || null,
      mpp_total_msat: bigintOrNull(row, 'mpp_total_msat')?.toString() ?? null,
    };
  }

  /**
   * `GET /v0/deposits/:id/history`: every invoice, payment and maintenance charge of the
   * deposit, its newest signed balance (as `depositStatus` reports it) and the newest event seq
   * `caller` can see. node:sqlite is synchronous, so all of it is read at one instant.
   */
  depositHistory(caller: string, depositId: string): Result<z.input<typeof import('../protocol/vault-api.ts').depositHistorySchema>> {
    const status = this.depositStatus(caller, depositId);
    if (!status.ok) return status;
    const invoices = this.#all('SELECT payment_hash FROM invoices WHERE deposit_id = ? ORDER BY created_at, payment_hash', depositId)
      .map((row) => this.#invoiceWire(depositId, text(row, 'payment_hash')))
      .filter((i) => i !== null);
    const payments = this.#all('SELECT idempotency_key, finished_at, transfer_purpose FROM payments WHERE deposit_id = ? ORDER BY created_at, idempotency_key', depositId).flatMap((row) => {
      const payment = this.#paymentWire(depositId, text(row, 'idempotency_key'));
      const purpose = textOrNull(row, 'transfer_purpose');
      const transferPurpose: 'rebalance' | 'payment' | 'operator' | null = purpose === 'rebalance' || purpose === 'payment' || purpose === 'operator' ? purpose : null;
      return payment === null ? [] : [{ ...payment, finished_at: intOrNull(row, 'finished_at'), transfer_purpose: transferPurpose }];
    });
    const maintenance = this.#all(
      "SELECT seq, data, created_at FROM events WHERE deposit_id = ? AND json_extract(data, '$.type') = 'maintenance_charged' ORDER BY seq",
      depositId,
    ).flatMap((row) => {
      const event = vaultEventSchema.parse({ seq: int(row, 'seq'), ...JSON.parse(text(row, 'data')) });
      if (event.type !== 'maintenance_charged') return [];
      return [
        {
          fee_msat: event.fee_msat.toString(),
          from_height: event.from_height,
          to_height: event.to_height,
          charged_at: int(row, 'created_at'),
          balance_update: { ...event.balance_update, balance_msat: event.balance_update.balance_msat.toString() },
        },
      ];
    });
    const newest = this.#get(
      `SELECT COALESCE(MAX(seq), 0) AS seq FROM events
       WHERE deposit_id IN (SELECT deposit_id FROM deposits WHERE owner = ? UNION SELECT deposit_id FROM watchers WHERE watcher = ?)`,
      caller,
      caller,
    );
    return ok({
      deposit_id: depositId,
      owner: status.value.owner,
      balance_msat: status.value.balance_msat,
      reserved_msat: status.value.reserved_msat,
      balance_update: status.value.balance_update,
      invoices,
      payments,
      maintenance,
      events_seq: newest ? int(newest, 'seq') : 0,
    });
  }

  /**
   * The next `limit` events after `after` as `caller` sees them: those on deposits it watches or
   * owns, each as its wire JSON (the stored event, written by this operator in the Vault API's
   * form, with its seq put first, not parsed and written again). `through` is the last seq
   * examined and `examined` how many were: a stream reads on from `through`, so each event is
   * looked at once, by key lookups, however many deposits the caller watches and however few of
   * the events are its own.
   */
  eventsFor(caller: string, after: number, limit: number): { events: { seq: number; json: string }[]; through: number; examined: number } {
    const rows = this.#all(
      `SELECT seq,
         CASE WHEN EXISTS (SELECT 1 FROM watchers WHERE watchers.deposit_id = events.deposit_id AND watchers.watcher = ?)
           OR EXISTS (SELECT 1 FROM deposits WHERE deposits.deposit_id = events.deposit_id AND deposits.owner = ?)
         THEN data END AS data
       FROM events WHERE seq > ? ORDER BY seq LIMIT ?`,
      caller,
      caller,
      after,
      limit,
    );
    const events: { seq: number; json: string }[] = [];
    let through = after;
    for (const row of rows) {
      through = int(row, 'seq');
      const data = textOrNull(row, 'data');
      if (data !== null) events.push({ seq: through, json: `{"seq":${through},${data.slice(1)}` });
    }
    return { events, through, examined: rows.length };
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
      if (!existing) {
        this.#run('INSERT INTO deposits (deposit_id, owner, created_at) VALUES (?, ?, ?)', depositId, owner.value, createdAt);
        this.#run('INSERT INTO maintenance (deposit_id, charged_through) VALUES (?, ?)', depositId, this.#network.blockHeight());
      }
      // Watchers accumulate: a statement replayed by someone else adds a reader, never removes one.
      this.#run('INSERT OR IGNORE INTO watchers (deposit_id, watcher) VALUES (?, ?)', depositId, caller);
      return ok({ created: !existing, deposit: this.#depositWire(depositId, owner.value, createdAt) });
    });
  }

  /**
   * An invoice paying into the deposit, with a vault proof by the channel peer. Without
   * `amount_msat` it is amountless: the proof says "0" (any amount) and the deposit is credited
   * with what arrives.
   */
  createInvoice(caller: string, depositId: string, body: CreateInvoiceBody): Result<WireInvoice> {
    const deposit = this.#visibleDeposit(caller, depositId);
    if (!deposit.ok) return deposit;
    const amount = body.amount_msat ?? null;
    const checked = this.#checkInvoiceRequest(amount, body);
    if (!checked.ok) return checked;
    const { preimage, paymentHash, paymentSecret } = newPaymentSecrets();
    return ok(this.#issueInvoice(depositId, { amount, paymentHash, paymentSecret, preimage, hold: null, body }));
  }

  #checkInvoiceRequest(amount: Msat | null, body: { description?: string | undefined; description_hash?: string | undefined }): Result<void> {
    if (amount !== null && amount < LIMITS.minInvoiceMsat) return fail('BAD_REQUEST', `amount below the minimum of ${LIMITS.minInvoiceMsat} msat`);
    if (amount !== null && amount > LIMITS.maxInvoiceMsat) return fail('BAD_REQUEST', `amount above the maximum of ${LIMITS.maxInvoiceMsat} msat`);
    if (body.description !== undefined && body.description_hash !== undefined) {
      return fail('BAD_REQUEST', 'give description or description_hash, not both');
    }
    return ok(undefined);
  }

  /** Builds, signs (invoice by N_A, proof by N_B) and stores an invoice; returns its wire form. */
  #issueInvoice(
    depositId: string,
    p: {
      amount: Msat | null;
      paymentHash: string;
      paymentSecret: string;
      preimage: string | null;
      /** A hold invoice's min_cltv_expiry_delta, or null for an ordinary invoice. */
      hold: number | null;
      body: { description?: string | undefined; description_hash?: string | undefined; expiry_seconds?: number | undefined };
    },
  ): WireInvoice {
    const createdAt = nowSeconds();
    const expiry = p.body.expiry_seconds ?? DEFAULT_INVOICE_EXPIRY_SECONDS;
    const descriptionHash = p.body.description_hash ?? null;
    const description = descriptionHash === null ? (p.body.description ?? '') : null;
    const invoice = buildInvoice({
      nodeSecret: this.#nodeSecret,
      amountMsat: p.amount,
      paymentHash: p.paymentHash,
      paymentSecret: p.paymentSecret,
      description,
      descriptionHash,
      timestamp: createdAt,
      expirySeconds: expiry,
      ...(p.hold === null ? {} : { minFinalCltvExpiry: p.hold }),
      basicMpp: !this.faults.noMppInvoices,
    });
    // The invalidProof fault: a random key signs in place of the channel peer.
    const proofSigner = this.faults.invalidProof ? randomBytes(32) : this.#peerSecret;
    const proof = signVaultProof({ ...this.#proofFields(depositId, p.paymentHash), amount_msat: p.amount ?? 0n }, proofSigner);
    this.#run(
      `INSERT INTO invoices (payment_hash, deposit_id, invoice, amount_msat, description, description_hash, preimage, hold, min_cltv_expiry_delta, peer_sig, created_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      p.paymentHash,
      depositId,
      invoice,
      p.amount ?? 0n,
      description,
      descriptionHash,
      p.preimage,
      p.hold === null ? 0 : 1,
      p.hold,
      proof.peer_sig,
      createdAt,
      createdAt + expiry,
    );
    const wire = this.#invoiceWire(depositId, p.paymentHash);
    if (wire === null) throw new Error('invoice vanished after insert');
    return wire;
  }

  /**
   * A hold invoice for the client's payment hash. The same request again (same deposit, hash,
   * amount, description, expiry and CLTV delta) returns the existing invoice (`created`
   * false); any other use of a known payment hash is CONFLICT.
   */
  createHoldInvoice(caller: string, depositId: string, body: CreateHoldInvoiceBody): Result<{ created: boolean; invoice: WireInvoice }> {
    const deposit = this.#visibleDeposit(caller, depositId);
    if (!deposit.ok) return deposit;
    const checked = this.#checkInvoiceRequest(body.amount_msat, body);
    if (!checked.ok) return checked;
    const delta = body.min_cltv_expiry_delta ?? DEFAULT_HOLD_CLTV_EXPIRY_DELTA;
    return transaction(this.#db, () => {
      const existing = this.#get('SELECT * FROM invoices WHERE payment_hash = ?', body.payment_hash);
      if (existing) {
        const descriptionHash = body.description_hash ?? null;
        const same =
          text(existing, 'deposit_id') === depositId &&
          int(existing, 'hold') === 1 &&
          bigint(existing, 'amount_msat') === body.amount_msat &&
          textOrNull(existing, 'description_hash') === descriptionHash &&
          textOrNull(existing, 'description') === (descriptionHash === null ? (body.description ?? '') : null) &&
          int(existing, 'expires_at') - int(existing, 'created_at') === (body.expiry_seconds ?? DEFAULT_INVOICE_EXPIRY_SECONDS) &&
          intOrNull(existing, 'min_cltv_expiry_delta') === delta;
        if (!same) return fail('CONFLICT', 'an invoice with this payment hash already exists');
        const wire = this.#invoiceWire(depositId, body.payment_hash);
        if (wire === null) throw new Error('hold invoice vanished');
        return ok({ created: false, invoice: wire });
      }
      const invoice = this.#issueInvoice(depositId, {
        amount: body.amount_msat,
        paymentHash: body.payment_hash,
        paymentSecret: bytesToHex(randomBytes(32)),
        preimage: null,
        hold: delta,
        body,
      });
      this.#log.info({ deposit: depositId, payment_hash: body.payment_hash }, 'hold invoice created');
      return ok({ created: true, invoice });
    });
  }

  /**
   * Settles a held payment with its preimage: credits the deposit with the amount held, signs
   * the balance with both peers, emits `invoice_settled`, and hands the preimage to the payer.
   * Settling a settled invoice again with its preimage returns it unchanged.
   */
  settleHoldInvoice(caller: string, depositId: string, paymentHash: string, preimage: string): Result<WireInvoice> {
    const deposit = this.#visibleDeposit(caller, depositId);
    if (!deposit.ok) return deposit;
    if (paymentHashOf(hexToBytes(preimage)) !== paymentHash) return fail('BAD_REQUEST', 'the preimage does not hash to this payment hash');
    // A payment past its settle deadline is canceled first, never settled.
    this.#expireHolds();
    const settled = transaction(this.#db, (): Result<boolean> => {
      const row = this.#get('SELECT * FROM invoices WHERE deposit_id = ? AND payment_hash = ?', depositId, paymentHash);
      if (!row) return fail('NOT_FOUND', 'no such invoice');
      if (int(row, 'hold') !== 1) return fail('BAD_REQUEST', 'not a hold invoice');
      if (intOrNull(row, 'settled_at') !== null) return ok(false);
      if (intOrNull(row, 'canceled_at') !== null) return fail('BAD_REQUEST', 'the hold invoice was canceled');
      if (intOrNull(row, 'accepted_at') === null) return fail('BAD_REQUEST', 'no payment is held for this invoice yet');
      if (!this.#network.isHeld(this.nodePubkey, paymentHash)) {
        return fail('UNAVAILABLE', 'the held payment is not back since a restart (its payer has not resent it); settle again later');
      }
      const amount = bigintOrNull(row, 'received_msat') ?? bigint(row, 'amount_msat');
      const now = nowSeconds();
      if (this.faults.skipCredit) {
        this.#run('UPDATE invoices SET settled_at = ?, preimage = ? WHERE payment_hash = ?', now, preimage, paymentHash);
        this.#log.warn({ deposit: depositId, payment_hash: paymentHash }, 'fault: held payment taken without credit');
        return ok(true);
      }
      this.#credit(depositId, amount, 'invoice', paymentHash, now);
      const update = this.#signBalance(depositId, now);
      this.#run('UPDATE invoices SET settled_at = ?, preimage = ?, balance_seq = ? WHERE payment_hash = ?', now, preimage, update.seq, paymentHash);
      this.#emit(depositId, {
        type: 'invoice_settled',
        deposit_id: depositId,
        payment_hash: paymentHash,
        amount_msat: amount.toString(),
        preimage,
        settled_at: now,
        balance_update: update,
      });
      this.#log.info({ deposit: depositId, payment_hash: paymentHash, amount_msat: amount.toString() }, 'hold invoice settled');
      return ok(true);
    });
    if (!settled.ok) return settled;
    if (settled.value) {
      // After the commit: the payer's payment settles in this same turn.
      this.#network.resolveHeld(this.nodePubkey, paymentHash, { ok: true, preimage });
      this.#notify();
    }
    const wire = this.#invoiceWire(depositId, paymentHash);
    if (wire === null) throw new Error('hold invoice vanished');
    return ok(wire);
  }

  /**
   * Cancels a hold invoice (pending or accepted): a held payment fails for its payer, nothing is
   * credited, `invoice_canceled` is emitted. Canceling a canceled invoice returns it unchanged;
   * a settled one cannot be canceled.
   */
  cancelHoldInvoice(caller: string, depositId: string, paymentHash: string): Result<WireInvoice> {
    const deposit = this.#visibleDeposit(caller, depositId);
    if (!deposit.ok) return deposit;
    const canceled = transaction(this.#db, (): Result<boolean> => {
      const row = this.#get('SELECT hold, settled_at, canceled_at FROM invoices WHERE deposit_id = ? AND payment_hash = ?', depositId, paymentHash);
      if (!row) return fail('NOT_FOUND', 'no such invoice');
      if (int(row, 'hold') !== 1) return fail('BAD_REQUEST', 'not a hold invoice');
      if (intOrNull(row, 'settled_at') !== null) return fail('BAD_REQUEST', 'the hold invoice is settled');
      if (intOrNull(row, 'canceled_at') !== null) return ok(false);
      this.#cancelHold(depositId, paymentHash, 'canceled by the client');
      return ok(true);
    });
    if (!canceled.ok) return canceled;
    if (canceled.value) this.#afterCancel(paymentHash, 'hold invoice canceled');
    const wire = this.#invoiceWire(depositId, paymentHash);
    if (wire === null) throw new Error('hold invoice vanished');
    return ok(wire);
  }

  /** Inside a transaction: marks a hold invoice canceled and emits `invoice_canceled`. */
  #cancelHold(depositId: string, paymentHash: string, why: string): void {
    this.#run('UPDATE invoices SET canceled_at = ? WHERE payment_hash = ?', nowSeconds(), paymentHash);
    this.#emit(depositId, { type: 'invoice_canceled', deposit_id: depositId, payment_hash: paymentHash });
    this.#log.info({ deposit: depositId, payment_hash: paymentHash, reason: why }, 'hold invoice canceled');
  }

  /** After a cancel's commit: the held payment (if any) fails for its payer. */
  #afterCancel(paymentHash: string, reason: string): void {
    this.#network.resolveHeld(this.nodePubkey, paymentHash, { ok: false, reason, code: 'REJECTED' });
    this.#notify();
  }

  /** Cancels every held payment whose settle deadline the chain has reached. */
  #expireHolds(): void {
    if (this.#closed) return;
    const height = this.#network.blockHeight();
    const due = this.#all(
      `SELECT deposit_id, payment_hash FROM invoices
       WHERE accepted_at IS NOT NULL AND settled_at IS NULL AND canceled_at IS NULL AND settle_deadline <= ?`,
      height,
    );
    for (const row of due) {
      const depositId = text(row, 'deposit_id');
      const paymentHash = text(row, 'payment_hash');
      const canceled = transaction(this.#db, () => {
        const still = this.#get('SELECT 1 AS held FROM invoices WHERE payment_hash = ? AND settled_at IS NULL AND canceled_at IS NULL', paymentHash);
        if (!still) return false;
        this.#cancelHold(depositId, paymentHash, `settle deadline reached at block ${height}`);
        return true;
      });
      if (canceled) this.#afterCancel(paymentHash, 'hold invoice canceled: settle deadline reached');
    }
  }

  /**
   * Charges every deposit the maintenance fee for each whole period since it was last charged:
   * one ledger row, a balance both peers sign, and a `maintenance_charged` event. Never more
   * than the balance.
   */
  #chargeMaintenance(): void {
    if (this.#closed) return;
    const { unitFeeMsat, periodBlocks, rateFeePpm, ratePeriodBlocks } = this.#maintenance;
    const height = this.#network.blockHeight();
    // Deposits from before the schedule existed start being charged now.
    this.#run('INSERT OR IGNORE INTO maintenance (deposit_id, charged_through) SELECT deposit_id, ? FROM deposits', height);
    const due = this.#all('SELECT deposit_id, charged_through FROM maintenance WHERE charged_through + ? <= ?', periodBlocks, height);
    let charged = false;
    for (const row of due) {
      const depositId = text(row, 'deposit_id');
      transaction(this.#db, () => {
        const from = int(this.#get('SELECT charged_through FROM maintenance WHERE deposit_id = ?', depositId)!, 'charged_through');
        const periods = Math.floor((height - from) / periodBlocks);
        if (periods < 1) return;
        const to = from + periods * periodBlocks;
        this.#run('UPDATE maintenance SET charged_through = ? WHERE deposit_id = ?', to, depositId);
        const balance = this.#balance(depositId) - this.#reserved(depositId);
        if (balance <= 0n) return;
        const blocks = BigInt(periods * periodBlocks);
        const due = BigInt(periods) * unitFeeMsat + (balance * BigInt(rateFeePpm) * blocks) / (BigInt(ratePeriodBlocks) * 1_000_000n);
        const fee = due < balance ? due : balance;
        if (fee <= 0n) return;
        const now = nowSeconds();
        this.#credit(depositId, -fee, 'maintenance', `${from}-${to}`, now);
        const update = this.#signBalance(depositId, now);
        this.#emit(depositId, { type: 'maintenance_charged', deposit_id: depositId, fee_msat: fee.toString(), from_height: from, to_height: to, balance_update: update });
        this.#log.info({ deposit: depositId, fee_msat: fee.toString(), from_height: from, to_height: to }, 'maintenance fee charged');
        charged = true;
      });
    }
    if (charged) this.#notify();
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
   * Pays from a deposit: an invoice, a keysend, or a lightning address the vault resolves
   * itself (LUD-16; the bridge never supplies that invoice). Admission (authorization, newest
   * grant, replay, budget, lock, balance) and the reservation happen in one synchronous
   * transaction; then the payment goes out and the call waits briefly for its end. A retry with
   * the same key and body returns the same payment and pays nothing.
   */
  async pay(caller: string, depositId: string, body: PayBody): Promise<Result<{ created: boolean; payment: WirePayment }>> {
    let resolved: ResolvedLightningAddress | null = null;
    if (body.lnurl !== undefined) {
      const preflight = this.#lnurlPreflight(caller, depositId, body);
      if (!preflight.ok) return preflight;
      if (preflight.value !== null) {
        const { address, payerNote } = preflight.value;
        const answer = await resolveLightningAddress(address, body.amount_msat, {
          network: NETWORK,
          nowSec: nowSeconds(),
          comment: payerNote,
          timeoutMs: this.#lnurlTimeoutMs,
        });
        if (this.#closed) return fail('UNAVAILABLE', 'the operator is stopping');
        if (!answer.ok) return this.#refuse(depositId, body, answer.error.code, answer.error.message);
        resolved = answer.value;
      }
    }
    const admitted = this.#admit(caller, depositId, body, resolved);
    if (!admitted.ok) return admitted;
    if (admitted.value.created) this.#dispatch(depositId, body.idempotency_key, false);
    await this.#waitFinal(depositId, body.idempotency_key);
    const payment = this.#paymentWire(depositId, body.idempotency_key);
    if (payment === null) throw new Error('payment vanished after admission');
    return ok({ created: admitted.value.created, payment });
  }

  /**
   * Moves money to another deposit of the same owner (docs/vault-api.md, "Transfers"): pays the
   * destination vault's invoice after checking its vault proof and owner attestation, and what
   * authorizes the move (the grant's `rebalance`, or the app's paying request it prepares).
   * Idempotent on the key like a payment; answers the payment record (`kind: "transfer"`).
   */
  async transfer(caller: string, depositId: string, body: TransferBody): Promise<Result<{ created: boolean; payment: WirePayment }>> {
    const admitted = this.#admitTransfer(caller, depositId, body);
    if (!admitted.ok) return admitted;
    if (admitted.value.created) this.#dispatch(depositId, body.idempotency_key, false);
    await this.#waitFinal(depositId, body.idempotency_key);
    const payment = this.#paymentWire(depositId, body.idempotency_key);
    if (payment === null) throw new Error('transfer vanished after admission');
    return ok({ created: admitted.value.created, payment });
  }

  /** A payment or transfer already admitted under this key: the same body is a repeat, another a conflict. */
  #repeatOf(depositId: string, key: string, fingerprint: string): Result<{ created: false }> | null {
    const existing = this.#get('SELECT fingerprint FROM payments WHERE deposit_id = ? AND idempotency_key = ?', depositId, key);
    if (!existing) return null;
    return text(existing, 'fingerprint') === fingerprint ? ok({ created: false }) : fail('CONFLICT', 'this idempotency key was used with another request body');
  }

  #admitTransfer(caller: string, depositId: string, body: TransferBody): Result<{ created: boolean }> {
    return transaction(this.#db, () => {
      const deposit = this.#visibleDeposit(caller, depositId);
      if (!deposit.ok) return deposit;
      const refusing = this.faults.refusePayments;
      if (refusing !== null) return fail(refusing, `fault: the operator refuses payments (${refusing})`);
      const owner = deposit.value.owner;
      const key = body.idempotency_key;
      const fingerprint = transferFingerprint(body);
      const repeated = this.#repeatOf(depositId, key, fingerprint);
      if (repeated) return repeated;
      const requestIdOf = body.payment?.authorization.request.id ?? null;
      const refuse = (code: VaultErrorCode, message: string): Result<never> => {
        this.#run(
          'INSERT INTO refusals (deposit_id, idempotency_key, request_id, code, message, created_at) VALUES (?, ?, ?, ?, ?, ?)',
          depositId,
          key,
          requestIdOf,
          code,
          message,
          nowSeconds(),
        );
        this.#log.info({ deposit: depositId, code, reason: message }, 'transfer refused');
        return fail(code, message);
      };
      const now = nowSeconds();
      const amount = body.amount_msat;
      const parsedGrant = parseGrant(body.grant);
      if (!parsedGrant.ok) return refuse(parsedGrant.error.code, parsedGrant.error.message);
      const grant = parsedGrant.value;
      if (grant.userPubkey !== owner) return refuse('UNAUTHORIZED', 'grant is not signed by the deposit owner');
      const inForce = grantInForce(grant, now);
      if (!inForce.ok) return refuse(inForce.error.code, inForce.error.message);
      const destination = verifyTransferDestination(body.destination, { owner, amountMsat: amount, network: NETWORK, nowSec: now });
      if (!destination.ok) return refuse(destination.error.code, destination.error.message);
      const to = destination.value;
      // A transfer pays a vault invoice: a grant naming its one destination allows none.
      const allowedTarget = grantAllowsTarget(grant, { type: 'invoice', invoice: to.invoice.paymentRequest });
      if (!allowedTarget.ok) return refuse(allowedTarget.error.code, allowedTarget.error.message);
      if (to.operatorNodePubkey === this.nodePubkey) return refuse('BAD_REQUEST', 'a transfer goes to another vault operator');
      if (grant.vaultOperators !== null && !(grant.vaultOperators.includes(to.operatorNodePubkey) && grant.vaultOperators.includes(this.nodePubkey))) {
        return refuse('RESTRICTED', 'the grant does not allow this vault operator or the destination operator');
      }
      if (body.max_fee_msat > feeLimitFor(amount, grant.feeLimit)) {
        return refuse('FEE_LIMIT', `fee limit ${body.max_fee_msat} msat is above the grant's ${feeLimitFor(amount, grant.feeLimit)} msat for this amount`);
      }
      let requestId: string;
      if (body.purpose === 'rebalance') {
        if (!grant.methods.includes(REBALANCE_CAPABILITY)) return refuse('RESTRICTED', 'the grant does not allow rebalancing');
        // With no operator list, a bridge could name a vault of its own as the destination.
        if (grant.vaultOperators === null) return refuse('RESTRICTED', 'a rebalancing grant must name the vault operators money may move between');
        requestId = `rebalance:${key}`;
      } else {
        const payment = body.payment;
        if (payment === undefined) return refuse('BAD_REQUEST', 'a payment transfer carries the payment it prepares');
        if (payment.authorization.grant.id !== body.grant.id) return refuse('BAD_REQUEST', 'the grant is not the one of the payment authorization');
        const paid = decodePayableInvoice(payment.invoice, NETWORK, now);
        if (!paid.ok) return refuse(paid.error.code, paid.error.message);
        if (paid.value.amountMsat === null) return refuse('BAD_REQUEST', 'a transfer prepares a payment of an invoice with an amount');
        const authorized = verifyPaymentAuthorization(payment.authorization, {
          depositOwner: owner,
          operatorNodePubkey: this.nodePubkey,
          target: { type: 'invoice', invoice: payment.invoice },
          amountMsat: paid.value.amountMsat,
          maxFeeMsat: 0n,
          nowSec: now,
        });
        if (!authorized.ok) return refuse(authorized.error.code, authorized.error.message);
        const grantFee = feeLimitFor(paid.value.amountMsat, grant.feeLimit);
        const feeCap = authorized.value.maxFeeCapMsat !== null && authorized.value.maxFeeCapMsat < grantFee ? authorized.value.maxFeeCapMsat : grantFee;
        // At most what the app signed plus its fee limit: the request bounds the transfer.
        if (amount > paid.value.amountMsat + feeCap) return refuse('UNAUTHORIZED', 'the transfer is larger than the payment it prepares plus its fee limit');
        requestId = authorized.value.requestId;
        if (this.#get('SELECT 1 AS spent FROM payments WHERE request_id = ? LIMIT 1', requestId)) {
          return refuse('REPLAYED', 'this request was already spent under another idempotency key');
        }
      }
      const grantStored = this.#storeGrant(body.grant, owner, grant.connectionPubkey);
      if (!grantStored.ok) return refuse(grantStored.error.code, grantStored.error.message);
      if (this.#locked(owner)) return refuse('LOCKED', 'the owner has locked their deposits');
      const available = this.#balance(depositId) - this.#reserved(depositId);
      if (available < amount + body.max_fee_msat) {
        return refuse('INSUFFICIENT_BALANCE', `available ${available} msat is less than amount + fee limit ${amount + body.max_fee_msat} msat`);
      }
      this.#insertTransfer(depositId, key, fingerprint, requestId, owner, to, amount, body.max_fee_msat, body.purpose, now);
      this.#log.info({ deposit: depositId, purpose: body.purpose, to: to.proof.deposit_id, amount_msat: amount.toString() }, 'transfer accepted');
      return ok({ created: true });
    });
  }

  /** Inside a transaction: a transfer as a payment row; `connection` is empty, so no app's budget counts it. */
  #insertTransfer(
    depositId: string,
    key: string,
    fingerprint: string,
    requestId: string,
    owner: string,
    to: { invoice: DecodedInvoice; proof: { operator_node_pubkey: string; deposit_id: string; vault_id: string } },
    amount: Msat,
    maxFee: Msat,
    purpose: 'rebalance' | 'payment' | 'operator',
    now: number,
  ): void {
    this.#run(
      `INSERT INTO payments (deposit_id, idempotency_key, fingerprint, request_id, owner, connection, kind, payment_hash, invoice, destination,
         amount_msat, max_fee_msat, state, created_at, transfer_purpose, transfer_destination)
       VALUES (?, ?, ?, ?, ?, '', 'invoice', ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`,
      depositId,
      key,
      fingerprint,
      requestId,
      owner,
      to.invoice.paymentHash,
      to.invoice.paymentRequest,
      to.invoice.payeeNodeKey,
      amount,
      maxFee,
      now,
      purpose,
      JSON.stringify({ operator_node_pubkey: to.proof.operator_node_pubkey, deposit_id: to.proof.deposit_id, vault_id: to.proof.vault_id }),
    );
  }

  /**
   * The operator moves a deposit to another vault on its own initiative (devnet: through
   * `faults.moveDeposit`): pays the destination's invoice from the deposit's available balance,
   * which must cover its amount and the routing fee, after checking it is a vault invoice for
   * a deposit of the same owner. When it settles, `deposit_moved` is emitted.
   */
  async moveDeposit(depositId: string, destination: TransferBody['destination']): Promise<Result<WirePayment>> {
    const admitted = transaction(this.#db, (): Result<string> => {
      const row = this.#get('SELECT owner FROM deposits WHERE deposit_id = ?', depositId);
      if (!row) return fail('NOT_FOUND', 'no such deposit');
      const owner = text(row, 'owner');
      const decoded = decodeInvoice(destination.invoice);
      if (!decoded.ok || decoded.value.amountMsat === null) return fail('BAD_REQUEST', 'the destination needs an invoice with an amount');
      const now = nowSeconds();
      const to = verifyTransferDestination(destination, { owner, amountMsat: decoded.value.amountMsat, network: NETWORK, nowSec: now });
      if (!to.ok) return to;
      const amount = decoded.value.amountMsat;
      const maxFee = this.#balance(depositId) - this.#reserved(depositId) - amount;
      if (maxFee < 0n) return fail('INSUFFICIENT_BALANCE', 'the deposit does not hold the amount to move');
      const key = `operator-move:${to.value.invoice.paymentHash}`;
      if (!this.#get('SELECT 1 AS found FROM payments WHERE deposit_id = ? AND idempotency_key = ?', depositId, key)) {
        this.#insertTransfer(depositId, key, key, key, owner, to.value, amount, maxFee, 'operator', now);
      }
      return ok(key);
    });
    if (!admitted.ok) return admitted;
    this.#dispatch(depositId, admitted.value, true);
    await this.#waitFinal(depositId, admitted.value);
    const payment = this.#paymentWire(depositId, admitted.value);
    if (payment === null) throw new Error('move vanished after admission');
    return ok(payment);
  }

  /** Records a refused payment request (code, reason, request id) and answers the refusal. */
  #refuse(depositId: string, body: PayBody, code: VaultErrorCode, message: string): Result<never> {
    this.#run(
      'INSERT INTO refusals (deposit_id, idempotency_key, request_id, code, message, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      depositId,
      body.idempotency_key,
      body.authorization.request.id,
      code,
      message,
      nowSeconds(),
    );
    this.#log.info({ deposit: depositId, code, reason: message }, 'payment refused');
    return fail(code, message);
  }

  /**
   * Before resolving a lightning address (an HTTP round trip, outside any transaction): the
   * checks that need no state, so nothing is fetched for a request that cannot pay. Null when
   * a payment under this key exists already (admission answers it; nothing is resolved again).
   */
  #lnurlPreflight(caller: string, depositId: string, body: PayBody): Result<{ address: LightningAddress; payerNote: string | null } | null> {
    const deposit = this.#visibleDeposit(caller, depositId);
    if (!deposit.ok) return deposit;
    const refusing = this.faults.refusePayments;
    if (refusing !== null) return fail(refusing, `fault: the operator refuses payments (${refusing})`);
    if (this.#get('SELECT 1 AS found FROM payments WHERE deposit_id = ? AND idempotency_key = ?', depositId, body.idempotency_key)) return ok(null);
    const target = this.#targetOf(body);
    const authorized = verifyPaymentAuthorization(body.authorization, {
      depositOwner: deposit.value.owner,
      operatorNodePubkey: this.nodePubkey,
      target,
      amountMsat: body.amount_msat,
      maxFeeMsat: body.max_fee_msat,
      nowSec: nowSeconds(),
    });
    if (!authorized.ok) return this.#refuse(depositId, body, authorized.error.code, authorized.error.message);
    // Before resolving anything: an address the grant does not name is never even asked.
    const allowedTarget = grantAllowsTarget(authorized.value.grant, target);
    if (!allowedTarget.ok) return this.#refuse(depositId, body, allowedTarget.error.code, allowedTarget.error.message);
    if (authorized.value.target !== 'lightning_address') throw new Error('a lightning address target authorized as another');
    return ok({ address: authorized.value.lightningAddress, payerNote: authorized.value.payerNote });
  }

  /** What the body asks to pay, as the authorization check takes it. */
  #targetOf(body: PayBody): PaymentTarget {
    if (body.invoice !== undefined) return { type: 'invoice', invoice: body.invoice };
    if (body.keysend !== undefined) {
      return { type: 'keysend', destination: body.keysend.destination, preimage: body.keysend.preimage ?? null, tlvRecords: body.keysend.tlv_records ?? [] };
    }
    if (body.lnurl !== undefined) return { type: 'lightning_address', address: body.lnurl.address };
    throw new Error('payment body without a target');
  }

  #admit(caller: string, depositId: string, body: PayBody, resolved: ResolvedLightningAddress | null): Result<{ created: boolean }> {
    return transaction(this.#db, () => {
      const deposit = this.#visibleDeposit(caller, depositId);
      if (!deposit.ok) return deposit;
      const refusing = this.faults.refusePayments;
      if (refusing !== null) return fail(refusing, `fault: the operator refuses payments (${refusing})`);
      const owner = deposit.value.owner;
      const key = body.idempotency_key;
      const fingerprint = payFingerprint(body);
      const repeated = this.#repeatOf(depositId, key, fingerprint);
      if (repeated) return repeated;
      const refuse = (code: VaultErrorCode, message: string): Result<never> => this.#refuse(depositId, body, code, message);

      const now = nowSeconds();
      const amount = body.amount_msat;
      const target = this.#targetOf(body);
      // The invoice to pay: the one in the body, or the one this vault resolved; none for a keysend.
      let invoice: DecodedInvoice | null = null;
      if (target.type === 'invoice') {
        const decoded = decodePayableInvoice(target.invoice, NETWORK, now);
        if (!decoded.ok) return refuse(decoded.error.code, decoded.error.message);
        // A multi-part share pays part of the invoice; the total is what the app signed.
        if (body.mpp !== undefined && !decoded.value.basicMpp) return refuse('BAD_REQUEST', 'the invoice does not allow multi-part payments');
        if (decoded.value.amountMsat !== null && decoded.value.amountMsat !== (body.mpp?.total_msat ?? amount)) {
          return refuse('BAD_REQUEST', body.mpp ? 'mpp.total_msat must be the invoice amount' : 'amount_msat must be the invoice amount');
        }
        invoice = decoded.value;
      } else if (target.type === 'lightning_address') {
        if (resolved === null) return fail('INTERNAL', 'the lightning address was not resolved');
        const decoded = decodePayableInvoice(resolved.invoice.paymentRequest, NETWORK, now);
        if (!decoded.ok) return refuse(decoded.error.code, `the invoice the lightning address returned: ${decoded.error.message}`);
        invoice = decoded.value;
      }
      const authorized = verifyPaymentAuthorization(body.authorization, {
        depositOwner: owner,
        operatorNodePubkey: this.nodePubkey,
        target,
        // For a multi-part share, the app signed the total: each share is bounded by it.
        amountMsat: body.mpp?.total_msat ?? amount,
        maxFeeMsat: body.max_fee_msat,
        nowSec: now,
      });
      if (!authorized.ok) return refuse(authorized.error.code, authorized.error.message);
      const { grant, requestId, connectionPubkey } = authorized.value;
      const allowedTarget = grantAllowsTarget(grant, target);
      if (!allowedTarget.ok) return refuse(allowedTarget.error.code, allowedTarget.error.message);
      // The per-payment maximum bounds what the app asked for, not a share of it.
      if (body.mpp !== undefined && grant.maxAmountMsat !== null && body.mpp.total_msat > grant.maxAmountMsat) {
        return refuse('QUOTA_EXCEEDED', `payment of ${body.mpp.total_msat} msat is above this connection's maximum of ${grant.maxAmountMsat} msat`);
      }

      const grantStored = this.#storeGrant(body.authorization.grant, owner, connectionPubkey);
      if (!grantStored.ok) return refuse(grantStored.error.code, grantStored.error.message);
      if (this.#get('SELECT 1 AS spent FROM payments WHERE request_id = ? LIMIT 1', requestId)) {
        return refuse('REPLAYED', 'this request was already spent under another idempotency key');
      }
      // Only what the grant limits is counted: no history is read for a limit it does not set.
      const used =
        grant.budget === null
          ? undefined
          : this.#get(
              `SELECT COALESCE(SUM(CASE state WHEN 'settled' THEN amount_msat + fee_msat WHEN 'pending' THEN amount_msat + max_fee_msat ELSE 0 END), 0) AS used
               FROM payments WHERE owner = ? AND connection = ? AND created_at >= ?`,
              owner,
              connectionPubkey,
              budgetWindowStart(grant, now),
            );
      const hour =
        grant.velocity === null
          ? undefined
          : this.#get(
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

      let paymentHash: string;
      let destination: string;
      let keysendPreimage: string | null = null;
      let tlvRecords: string | null = null;
      if (invoice !== null) {
        paymentHash = invoice.paymentHash;
        destination = invoice.payeeNodeKey;
      } else if (target.type === 'keysend') {
        // The app's preimage, or one the vault picks: the payment hash is its SHA-256.
        keysendPreimage = target.preimage ?? bytesToHex(randomBytes(32));
        paymentHash = paymentHashOf(hexToBytes(keysendPreimage));
        destination = target.destination;
        tlvRecords = JSON.stringify(tlvRecordsToWire(canonicalTlvRecords(target.tlvRecords)));
      } else {
        throw new Error('a payment without an invoice that is not a keysend');
      }
      const kind = target.type === 'invoice' ? 'invoice' : target.type === 'keysend' ? 'keysend' : 'lnurl';
      this.#run(
        `INSERT INTO payments (deposit_id, idempotency_key, fingerprint, request_id, owner, connection, kind, payment_hash, invoice, destination,
           keysend_preimage, tlv_records, lnurl_address, amount_msat, max_fee_msat, state, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)`,
        depositId,
        key,
        fingerprint,
        requestId,
        owner,
        connectionPubkey,
        kind,
        paymentHash,
        invoice?.paymentRequest ?? null,
        destination,
        keysendPreimage,
        tlvRecords,
        authorized.value.target === 'lightning_address' ? authorized.value.lightningAddress.address : null,
        amount,
        body.max_fee_msat,
        now,
      );
      if (body.mpp !== undefined) {
        this.#run('UPDATE payments SET mpp_total_msat = ? WHERE deposit_id = ? AND idempotency_key = ?', body.mpp.total_msat, depositId, key);
      }
      this.#log.info({ deposit: depositId, kind, payment_hash: paymentHash, amount_msat: amount.toString() }, 'payment accepted');
      return ok({ created: true });
    });
  }

  /** Sends a pending payment unless payments are held (`force` releases a held one). */
  #dispatch(depositId: string, key: string, force: boolean): void {
    const id = waiterKey(depositId, key);
    if (this.#closed || this.#sending.has(id)) return;
    if (this.faults.holdPayments && !force) return;
    const row = this.#get(
      "SELECT kind, invoice, destination, keysend_preimage, tlv_records, amount_msat, max_fee_msat, mpp_total_msat FROM payments WHERE deposit_id = ? AND idempotency_key = ? AND state = 'pending'",
      depositId,
      key,
    );
    if (!row) return;
    if (this.faults.failPayments !== null) {
      this.#finish(depositId, key, { state: 'failed', paymentHash: null, reason: this.faults.failPayments, code: 'REJECTED' });
      return;
    }
    this.#sending.add(id);
    const amountMsat = bigint(row, 'amount_msat');
    const maxFeeMsat = bigint(row, 'max_fee_msat');
    const keysendPreimage = textOrNull(row, 'keysend_preimage');
    const mppTotal = bigintOrNull(row, 'mpp_total_msat');
    const request =
      keysendPreimage !== null
        ? {
            payerPubkey: this.nodePubkey,
            keysend: { destination: text(row, 'destination'), preimage: keysendPreimage, tlvRecords: tlvRecordsFromJson(textOrNull(row, 'tlv_records')) },
            amountMsat,
            maxFeeMsat,
          }
        : { payerPubkey: this.nodePubkey, invoice: text(row, 'invoice'), amountMsat, maxFeeMsat, ...(mppTotal === null ? {} : { mpp: { totalMsat: mppTotal } }) };
    this.#network.send(request, (outcome) => {
      this.#sending.delete(id);
      this.#finish(depositId, key, outcome);
    });
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
        "SELECT payment_hash, amount_msat, max_fee_msat, invoice, transfer_purpose, transfer_destination FROM payments WHERE deposit_id = ? AND idempotency_key = ? AND state = 'pending'",
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
        const movedTo = textOrNull(row, 'transfer_purpose') === 'operator' ? textOrNull(row, 'transfer_destination') : null;
        if (movedTo !== null) {
          const to = movedDestinationSchema.parse(JSON.parse(movedTo));
          this.#emit(depositId, {
            type: 'deposit_moved',
            deposit_id: depositId,
            payment_hash: paymentHash,
            amount_msat: amount.toString(),
            fee_msat: fee.toString(),
            invoice: textOrNull(row, 'invoice') ?? '',
            destination: { operator_node_pubkey: to.operator_node_pubkey, deposit_id: to.deposit_id, vault_id: to.vault_id },
            balance_update: update,
          });
        }
        this.#log.info({ deposit: depositId, payment_hash: paymentHash, fee_msat: fee.toString() }, 'payment settled');
      } else {
        const seq = this.#latestSeq(depositId);
        this.#run(
          "UPDATE payments SET state = 'failed', failure_reason = ?, failure_code = ?, finished_at = ?, balance_seq = ? WHERE deposit_id = ? AND idempotency_key = ?",
          outcome.reason,
          outcome.code,
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
          failure_code: outcome.code,
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

  /**
   * The network's side: a payment arrives for one of this node's invoices. An ordinary invoice
   * credits the deposit at once; a hold invoice holds it (`accepted`) until settled or canceled.
   * A keysend has no deposit to go to and is refused.
   */
  #receive(payment: IncomingPayment): ReceiveOutcome {
    if (this.#closed) return { ok: false, reason: 'node is offline', code: 'NO_ROUTE' };
    if (payment.keysend !== null) return { ok: false, reason: 'no deposit for keysend', code: 'REJECTED' };
    const { paymentHash, amountMsat } = payment;
    const outcome = transaction(this.#db, (): ReceiveOutcome => {
      const row = this.#get('SELECT * FROM invoices WHERE payment_hash = ?', paymentHash);
      if (!row) return { ok: false, reason: 'unknown payment hash', code: 'REJECTED' };
      if (intOrNull(row, 'canceled_at') !== null) return { ok: false, reason: 'invoice canceled', code: 'REJECTED' };
      if (intOrNull(row, 'settled_at') !== null) return { ok: false, reason: 'invoice already paid', code: 'ALREADY_PAID' };
      const hold = int(row, 'hold') === 1;
      if (hold && intOrNull(row, 'accepted_at') !== null) {
        // One payment is held per hash; after a restart its payer sends it again and it is held again.
        if (this.#network.isHeld(this.nodePubkey, paymentHash)) return { ok: false, reason: 'a payment for this invoice is already held', code: 'ALREADY_PAID' };
        if (bigintOrNull(row, 'received_msat') !== amountMsat) return { ok: false, reason: 'incorrect payment amount', code: 'REJECTED' };
        return { ok: 'held' };
      }
      const now = nowSeconds();
      if (int(row, 'expires_at') <= now) return { ok: false, reason: 'invoice expired', code: 'INVOICE_EXPIRED' };
      const invoiceAmount = bigint(row, 'amount_msat');
      // 0 is an amountless invoice: any amount up to the invoice maximum.
      if (invoiceAmount !== 0n && invoiceAmount !== amountMsat) return { ok: false, reason: 'incorrect payment amount', code: 'REJECTED' };
      if (invoiceAmount === 0n && (amountMsat <= 0n || amountMsat > LIMITS.maxInvoiceMsat)) return { ok: false, reason: 'amount out of range', code: 'REJECTED' };
      const depositId = text(row, 'deposit_id');
      if (this.#balance(depositId) + amountMsat > LIMITS.maxDepositMsat) return { ok: false, reason: 'deposit limit reached', code: 'REJECTED' };
      if (hold) {
        const delta = intOrNull(row, 'min_cltv_expiry_delta') ?? DEFAULT_HOLD_CLTV_EXPIRY_DELTA;
        const deadline = this.#network.blockHeight() + delta;
        this.#run('UPDATE invoices SET accepted_at = ?, received_msat = ?, settle_deadline = ? WHERE payment_hash = ?', now, amountMsat, deadline, paymentHash);
        this.#emit(depositId, {
          type: 'hold_invoice_accepted',
          deposit_id: depositId,
          payment_hash: paymentHash,
          amount_msat: amountMsat.toString(),
          settle_deadline: deadline,
        });
        this.#log.info({ deposit: depositId, payment_hash: paymentHash, settle_deadline: deadline }, 'hold invoice accepted');
        return { ok: 'held' };
      }
      const preimage = text(row, 'preimage');
      if (this.faults.skipCredit) {
        this.#run('UPDATE invoices SET settled_at = ?, received_msat = ? WHERE payment_hash = ?', now, amountMsat, paymentHash);
        this.#log.warn({ deposit: depositId, payment_hash: paymentHash }, 'fault: payment taken without credit');
        return { ok: true, preimage };
      }
      this.#credit(depositId, amountMsat, 'invoice', paymentHash, now);
      const update = this.#signBalance(depositId, now);
      this.#run('UPDATE invoices SET settled_at = ?, received_msat = ?, balance_seq = ? WHERE payment_hash = ?', now, amountMsat, update.seq, paymentHash);
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
    if (outcome.ok !== false) this.#notify();
    return outcome;
  }

  /** Inside a transaction: one ledger row (negative for a debit). */
  #credit(depositId: string, deltaMsat: Msat, reason: 'invoice' | 'payment' | 'routing_fee' | 'maintenance', reference: string, now: number): void {
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
    clearInterval(this.#holdTimer);
    this.#stopBlocks();
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
  const target =
    body.invoice !== undefined
      ? body.invoice.trim().toLowerCase()
      : body.keysend !== undefined
        ? JSON.stringify(['keysend', body.keysend.destination, body.keysend.preimage ?? null, tlvRecordsToWire(body.keysend.tlv_records ?? [])])
        : JSON.stringify(['lnurl', body.lnurl?.address.trim().toLowerCase() ?? '']);
  const fields = [target, body.amount_msat.toString(), body.max_fee_msat.toString(), auth.grant.id, auth.request.id, auth.encryption, auth.key];
  if (body.mpp !== undefined) fields.push(`mpp:${body.mpp.total_msat}`);
  return bytesToHex(sha256(new TextEncoder().encode(JSON.stringify(fields))));
}

/** What makes two transfer requests "the same body" for idempotency. */
function transferFingerprint(body: TransferBody): string {
  const fields = [
    'transfer',
    body.purpose,
    body.destination.invoice.trim().toLowerCase(),
    body.amount_msat.toString(),
    body.max_fee_msat.toString(),
    body.grant.id,
    body.payment?.authorization.request.id ?? '',
    body.payment?.authorization.key ?? '',
  ];
  return bytesToHex(sha256(new TextEncoder().encode(JSON.stringify(fields))));
}

/** TLV records as stored (the wire form); a stored value that does not parse is a bug, so this throws. */
function tlvRecordsFromJson(json: string | null): TlvRecord[] {
  return json === null ? [] : tlvRecordsSchema.parse(JSON.parse(json));
}

function failureCodeOf(code: string | null): PaymentFailureCode | null {
  return code === null ? null : paymentFailureCodeSchema.parse(code);
}
