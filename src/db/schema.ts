import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { NostrEvent } from '../protocol/nostr-event.ts';

/** A timestamptz column: written as a Date or left to its default, read as a Date. */
type CreatedAt = ColumnType<Date, Date | undefined, never>;
type UpdatedAt = ColumnType<Date, Date | undefined, Date>;
type Json<T> = ColumnType<T, string, string>;
/** Unix seconds in a BIGINT column (no 2038 limit): read as bigint, written as number or bigint. */
type UnixTime = ColumnType<bigint, number | bigint, number | bigint>;
/** A column with a default: may be left out of an insert. */
type Defaulted<T> = ColumnType<T, T | undefined, T>;

export interface UsersTable {
  pubkey: string;
  /** The user's signed deposit-open statement, kept to open deposits at operators added later. */
  deposit_open_event: Json<NostrEvent>;
  /** The emergency lock: while set, no payment leaves any of the user's deposits. */
  locked: Defaulted<boolean>;
  lock_event: ColumnType<NostrEvent | null, string | null | undefined, string | null>;
  lock_created_at: ColumnType<bigint | null, number | bigint | null | undefined, number | bigint | null>;
  created_at: CreatedAt;
}

export interface VaultOperatorsTable {
  node_pubkey: string;
  name: string;
  url: string;
  peer_node_pubkey: string;
  network: string;
  /** The operator's last /v0/info, as received. */
  info: Json<unknown>;
  score: number;
  score_reasons: Json<string[]>;
  /** Seq of the last vault event applied. */
  events_cursor: bigint;
  available: boolean;
  last_seen_at: Date | null;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface DepositsTable {
  id: Generated<bigint>;
  user_pubkey: string;
  operator_pubkey: string;
  remote_deposit_id: string;
  vault_id: string;
  channel_id: string;
  multisig_pubkey: string;
  /** Settled balance as the bridge's journal has it. */
  confirmed_msat: bigint;
  /** Held for outgoing payments in flight: amount + fee limit. */
  reserved_msat: bigint;
  /** The newest balance both channel peers signed, and its sequence number. */
  vault_balance_msat: bigint | null;
  vault_balance_seq: number | null;
  /**
   * The journal entry an UPDATE of the money columns writes (migration 0011's trigger): its kind
   * and transaction, set by that UPDATE, read and cleared by the trigger, so always null when read.
   */
  journal_kind: ColumnType<null, never, JournalKind | null>;
  journal_transaction_id: ColumnType<null, never, bigint | null>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface ConnectionsTable {
  pubkey: string;
  user_pubkey: string;
  name: string;
  grant_event: Json<NostrEvent>;
  grant_created_at: UnixTime;
  methods: Json<string[]>;
  budget_msat: bigint | null;
  budget_renewal: string | null;
  max_amount_msat: bigint | null;
  fee_base_msat: bigint;
  fee_ppm: number;
  expires_at: UnixTime | null;
  vault_operators: Json<string[] | null>;
  velocity_payments_per_hour: Defaulted<number | null>;
  velocity_amount_msat_per_hour: Defaulted<bigint | null>;
  /** This connection's own wallet service key, or null for the bridge-wide key (older connections). */
  service_pubkey: Defaulted<string | null>;
  info_published_at: Defaulted<Date | null>;
  /** How many payments of this connection were admitted: each admission compares and increments it (migration 0013). */
  admission_seq: Defaulted<bigint>;
  /** The last request of a kind that leaves no `nwc_requests` row (read-only), to the minute (migration 0014). */
  last_used_at: Defaulted<Date | null>;
  revoked: boolean;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface NwcRequestsTable {
  event_id: string;
  connection_pubkey: string;
  event: Json<NostrEvent>;
  method: string | null;
  state: 'processing' | 'done';
  response_event: Json<NostrEvent> | null;
  /** The instance answering it, until `lease_until`; after that another may take it over. */
  claimed_by: Defaulted<string | null>;
  lease_until: Defaulted<Date>;
  received_at: CreatedAt;
  finished_at: Date | null;
}

export type TransactionType = 'incoming' | 'outgoing';
export type TransactionState = 'pending' | 'accepted' | 'settled' | 'failed' | 'expired';
/** Where an outgoing payment is: reserved (vault not yet called), sent (vault may have it), final. */
export type PaymentStep = 'reserved' | 'sent' | 'final';

export interface TransactionsTable {
  id: Generated<bigint>;
  user_pubkey: string;
  deposit_id: bigint;
  connection_pubkey: string | null;
  type: TransactionType;
  state: TransactionState;
  step: PaymentStep;
  payment_hash: string;
  invoice: string;
  description: string | null;
  description_hash: string | null;
  preimage: string | null;
  amount_msat: bigint;
  /** Routing fee charged (settled payments). */
  fee_msat: bigint;
  /** Fee limit reserved while the payment is in flight. */
  fee_reserve_msat: bigint;
  request_event_id: string | null;
  idempotency_key: string | null;
  failure_reason: string | null;
  /** Why a payment failed, as the vault classified it (e.g. FEE_LIMIT_EXCEEDED). */
  failure_code: Defaulted<string | null>;
  /** A hold invoice: paid only when the user settles it with the preimage. */
  hold: Defaulted<boolean>;
  /** Block height by which a held payment must be settled or canceled. */
  settle_deadline: ColumnType<bigint | null, number | bigint | null | undefined, number | bigint | null>;
  metadata: Json<Record<string, unknown> | null>;
  created_at: UnixTime;
  expires_at: UnixTime | null;
  settled_at: UnixTime | null;
  updated_at: UpdatedAt;
}

export type JournalKind = 'reserve' | 'release' | 'debit' | 'credit';

/** Every change of a deposit's money columns, in the same database transaction as the change. */
export interface JournalEntriesTable {
  id: Generated<bigint>;
  deposit_id: bigint;
  transaction_id: bigint | null;
  kind: JournalKind;
  confirmed_delta_msat: bigint;
  reserved_delta_msat: bigint;
  created_at: CreatedAt;
}

/** Every refused request, with why: the user's audit log. */
export interface AuditLogTable {
  id: Generated<bigint>;
  user_pubkey: string;
  connection_pubkey: string | null;
  request_event_id: string | null;
  method: string | null;
  code: string;
  message: string;
  created_at: CreatedAt;
}

export type IncidentKind = 'fee_violation' | 'invalid_invoice' | 'balance_mismatch' | 'refused' | 'invalid_balance_update' | 'uncredited_payment';

/** Incidents that prove an operator took money it does not account for: its score goes to zero. */
export const INTEGRITY_INCIDENTS: readonly IncidentKind[] = ['uncredited_payment'];

/** Misbehaviour the bridge observed at an operator, with its evidence. */
export interface OperatorIncidentsTable {
  id: Generated<bigint>;
  operator_pubkey: string;
  user_pubkey: string | null;
  kind: IncidentKind;
  message: string;
  evidence: Json<unknown> | null;
  created_at: CreatedAt;
}

export type NotificationType = 'payment_received' | 'payment_sent' | 'hold_invoice_accepted';

/** The notification outbox. */
export interface NotificationsTable {
  id: Generated<bigint>;
  connection_pubkey: string;
  transaction_id: bigint;
  type: NotificationType;
  /** The signed kind 23197 (NIP-44) and 23196 (NIP-04) events, once built. */
  events: ColumnType<NostrEvent[] | null, string | null | undefined, string | null>;
  published_at: Defaulted<Date | null>;
  created_at: CreatedAt;
}

/** A user's lightning address (LUD-16): `name@<the bridge's host>`, one per user. */
export interface LightningAddressesTable {
  name: string;
  user_pubkey: string;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

/** A verified auditor report, kept 90 days. */
export interface AuditorReportsTable {
  id: Generated<bigint>;
  auditor_pubkey: string;
  operator_pubkey: string;
  window_start: bigint;
  window_end: bigint;
  content: Json<unknown>;
  event: Json<NostrEvent>;
  received_at: CreatedAt;
}

/** The bridge's own observations of an operator's Vault API, per hour. */
export interface OperatorObservationsTable {
  operator_pubkey: string;
  hour_start: Date;
  calls: ColumnType<number, number | undefined, number>;
  failures: ColumnType<number, number | undefined, number>;
  /** Calls answered after more than the slow-call threshold (docs/reputation.md). */
  slow_calls: ColumnType<number, number | undefined, number>;
  latency_ms_total: ColumnType<bigint, bigint | undefined, bigint>;
}

/** A user's spreading rules; no row: the defaults. */
export interface AllocationPoliciesTable {
  user_pubkey: string;
  max_share_ppm: number;
  test_amount_msat: bigint;
  trusted_score: number;
  min_score: number;
  exponent: number;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

/** An invoice handed out over LNURL-pay, and for a zap (NIP-57) its request and receipt. */
export interface LnurlInvoicesTable {
  transaction_id: bigint;
  payment_hash: string;
  address_name: string;
  /** The kind 9734 zap request exactly as received (the invoice's description hash is its SHA-256), or null. */
  zap_request: string | null;
  zap_relays: ColumnType<string[] | null, string | null | undefined, string | null>;
  /** The kind 9735 zap receipt, built once the invoice settled, then published. */
  zap_receipt: ColumnType<NostrEvent | null, string | null | undefined, string | null>;
  zap_attempts: Defaulted<number>;
  zap_next_attempt_at: Defaulted<Date>;
  zap_last_error: Defaulted<string | null>;
  zap_published_at: Defaulted<Date | null>;
  created_at: CreatedAt;
}

export type PaymentPartState = 'pending' | 'settled' | 'failed';

/** One part of a multi-part payment (docs/multi-vault.md): the share one deposit pays of its transaction. */
export interface PaymentPartsTable {
  id: Generated<bigint>;
  transaction_id: bigint;
  deposit_id: bigint;
  amount_msat: bigint;
  /** This part's share of the payment's fee limit, reserved with the amount. */
  fee_reserve_msat: bigint;
  fee_msat: Defaulted<bigint>;
  idempotency_key: string;
  state: PaymentPartState;
  step: PaymentStep;
  preimage: string | null;
  failure_reason: string | null;
  failure_code: string | null;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export type TransferPurpose = 'rebalance' | 'payment' | 'drain' | 'operator';

/** Money moved between one user's own deposits: an outgoing transaction on one, an incoming on the other. */
export interface TransfersTable {
  id: Generated<bigint>;
  user_pubkey: string;
  purpose: TransferPurpose;
  from_deposit_id: bigint;
  to_deposit_id: bigint | null;
  amount_msat: bigint;
  max_fee_msat: bigint;
  outgoing_transaction_id: bigint | null;
  incoming_transaction_id: bigint | null;
  request_event_id: string | null;
  state: PaymentPartState;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

/**
 * A user's sweep policy (docs/sweep.md): at most `keep_max_msat` stays in deposits, the rest is
 * paid to the destination the sweep connection's grant names, in sweeps of at least `min_sweep_msat`.
 */
export interface SweepPoliciesTable {
  user_pubkey: string;
  connection_pubkey: string;
  keep_max_msat: bigint;
  min_sweep_msat: bigint;
  /** The connection secret, NIP-44 v2 sealed to the connection's wallet service key (`encryption_pubkey` the sealing side). */
  encrypted_secret: string;
  encryption_pubkey: string;
  /** The signed request of the sweep in flight, or null: at most one per user. */
  in_flight_request: ColumnType<NostrEvent | null, string | null | undefined, string | null>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface Database {
  users: UsersTable;
  vault_operators: VaultOperatorsTable;
  deposits: DepositsTable;
  connections: ConnectionsTable;
  nwc_requests: NwcRequestsTable;
  transactions: TransactionsTable;
  journal_entries: JournalEntriesTable;
  payment_parts: PaymentPartsTable;
  transfers: TransfersTable;
  audit_log: AuditLogTable;
  operator_incidents: OperatorIncidentsTable;
  notifications: NotificationsTable;
  auditor_reports: AuditorReportsTable;
  operator_observations: OperatorObservationsTable;
  allocation_policies: AllocationPoliciesTable;
  lightning_addresses: LightningAddressesTable;
  lnurl_invoices: LnurlInvoicesTable;
  sweep_policies: SweepPoliciesTable;
}

export type DepositRow = Selectable<DepositsTable>;
export type ConnectionRow = Selectable<ConnectionsTable>;
export type TransactionRow = Selectable<TransactionsTable>;
export type PaymentPartRow = Selectable<PaymentPartsTable>;
export type TransferRow = Selectable<TransfersTable>;
export type NewTransaction = Insertable<TransactionsTable>;
export type TransactionUpdate = Updateable<TransactionsTable>;
export type VaultOperatorRow = Selectable<VaultOperatorsTable>;
export type NwcRequestRow = Selectable<NwcRequestsTable>;
export type SweepPolicyRow = Selectable<SweepPoliciesTable>;
