import type { Event } from 'nostr-tools/pure';
import type { Msat } from '../protocol/amounts.ts';
import type { Authorization } from '../protocol/authorization.ts';
import type { VaultErrorCode } from '../protocol/result.ts';
import type {
  VaultDeposit,
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
  amountMsat: Msat;
  description?: string;
  descriptionHash?: string;
  expirySeconds?: number;
}

export interface PayParams {
  invoice: string;
  amountMsat: Msat;
  maxFeeMsat: Msat;
  idempotencyKey: string;
  authorization: Authorization;
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
  createInvoice(depositId: string, params: CreateInvoiceParams): Promise<VaultInvoice>;
  invoiceStatus(depositId: string, paymentHash: string): Promise<VaultInvoice>;
  pay(depositId: string, params: PayParams): Promise<VaultPayment>;
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
