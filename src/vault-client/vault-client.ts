import type { Event } from 'nostr-tools/pure';
import type { Msat } from '../protocol/amounts.ts';
import type { Authorization } from '../protocol/authorization.ts';
import type { TlvRecord } from '../protocol/nwc-request.ts';
import type { TransferDestination } from '../protocol/transfer.ts';
import type { VaultErrorCode } from '../protocol/result.ts';
import type {
  VaultDeposit,
  VaultDepositHistory,
  VaultDepositStatus,
  VaultEvent,
  VaultInfo,
  VaultInvoice,
  VaultMetrics,
  VaultPayment,
} from '../protocol/vault-api.ts';

/**
 * A failed Vault API call. `code` is the operator's error code, or UNAVAILABLE when it could
 * not be reached. `outcomeUnknown` is true when the request may have been processed anyway
 * (a timeout or a connection lost after sending): the caller must ask for the outcome, never
 * assume failure.
 */
export class VaultError extends Error {
  readonly code: VaultErrorCode;
  readonly status: number | null;
  readonly outcomeUnknown: boolean;

  constructor(code: VaultErrorCode, message: string, options: { status?: number | null; outcomeUnknown?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'VaultError';
    this.code = code;
    this.status = options.status ?? null;
    this.outcomeUnknown = options.outcomeUnknown ?? false;
  }
}

export interface CreateInvoiceParams {
  /** Omitted: an amountless invoice (the proof says 0, "any amount"; the deposit gets what arrives). */
  amountMsat?: Msat;
  description?: string;
  descriptionHash?: string;
  expirySeconds?: number;
}

/** A hold invoice: the client keeps the preimage of `paymentHash` and settles or cancels. */
export interface CreateHoldInvoiceParams {
  amountMsat: Msat;
  paymentHash: string;
  description?: string;
  descriptionHash?: string;
  expirySeconds?: number;
  /** Blocks the held payment may wait for settlement (default 144). */
  minCltvExpiryDelta?: number;
}

interface PayParamsBase {
  amountMsat: Msat;
  maxFeeMsat: Msat;
  idempotencyKey: string;
  authorization: Authorization;
}

/** Pays a BOLT 11 invoice (signed as `pay_invoice`, or `pay` with a BOLT 11 instruction). */
export interface InvoicePayParams extends PayParamsBase {
  invoice: string;
  /** A share of a multi-part payment: `amountMsat` is this vault's part of `totalMsat`. */
  mpp?: { totalMsat: Msat };
  keysend?: undefined;
  lightningAddress?: undefined;
}

/** A keysend (signed as `pay_keysend`): preimage and TLV records exactly as the app signed them. */
export interface KeysendPayParams extends PayParamsBase {
  keysend: { destination: string; preimage?: string; tlvRecords?: readonly TlvRecord[] };
  invoice?: undefined;
  lightningAddress?: undefined;
}

/** A lightning address (signed as `pay`): the vault resolves it itself. */
export interface LightningAddressPayParams extends PayParamsBase {
  lightningAddress: string;
  invoice?: undefined;
  keysend?: undefined;
}

export type PayParams = InvoicePayParams | KeysendPayParams | LightningAddressPayParams;

/** A transfer to another deposit of the same owner (`POST /v0/deposits/:id/transfers`). */
export interface TransferParams {
  destination: TransferDestination;
  amountMsat: Msat;
  maxFeeMsat: Msat;
  idempotencyKey: string;
  /** The owner's grant for the connection the move is done for. */
  grant: Event;
  /** `rebalance` (the grant's capability), or the app's paying request the transfer prepares. */
  purpose: { type: 'rebalance' } | { type: 'payment'; invoice: string; authorization: Authorization };
}

export interface EventSubscription {
  close(): void;
}

/**
 * One vault operator, spoken to over the Vault API v0 (docs/vault-api.md). Every method
 * throws `VaultError` on failure and returns parsed, checked values on success.
 */
export interface VaultClient {
  readonly url: string;
  info(): Promise<VaultInfo>;
  openDeposit(open: Event): Promise<VaultDeposit>;
  depositStatus(depositId: string): Promise<VaultDepositStatus>;
  /**
   * The deposit's whole history (invoices, payments, maintenance charges), its newest signed
   * balance and the newest event seq the caller can see, read at one instant. Optional: older
   * operators lack it.
   */
  depositHistory?(depositId: string): Promise<VaultDepositHistory>;
  createInvoice(depositId: string, params: CreateInvoiceParams): Promise<VaultInvoice>;
  invoiceStatus(depositId: string, paymentHash: string): Promise<VaultInvoice>;
  /** A hold invoice (201, or 200 for the same request again). */
  createHoldInvoice(depositId: string, params: CreateHoldInvoiceParams): Promise<VaultInvoice>;
  /** Settles an accepted hold invoice with its preimage: the deposit is credited. */
  settleHoldInvoice(depositId: string, paymentHash: string, preimage: string): Promise<VaultInvoice>;
  /** Cancels a hold invoice: a held payment fails for its payer, nothing is credited. */
  cancelHoldInvoice(depositId: string, paymentHash: string): Promise<VaultInvoice>;
  pay(depositId: string, params: PayParams): Promise<VaultPayment>;
  /** Moves money to another deposit of the same owner; answers the payment record (`kind: transfer`). Optional: older operators lack it. */
  transfer?(depositId: string, params: TransferParams): Promise<VaultPayment>;
  /** Null when the operator never accepted a payment under this key (nothing was paid). */
  paymentStatus(depositId: string, idempotencyKey: string): Promise<VaultPayment | null>;
  pushGrant(depositId: string, grant: Event): Promise<{ connection: string; createdAt: number }>;
  lock(depositId: string, lock: Event): Promise<{ locked: boolean; createdAt: number }>;
  metrics(): Promise<VaultMetrics>;
  /**
   * Follows the operator's event stream from after `after`, reconnecting with backoff. The
   * handler is awaited before the next event is delivered, so a cursor saved in it is exact.
   */
  subscribeEvents(after: number, onEvent: (event: VaultEvent) => Promise<void>, onStatus?: (connected: boolean) => void): EventSubscription;
}
