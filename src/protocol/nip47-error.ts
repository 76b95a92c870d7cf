import type { VaultErrorCode } from './result.ts';

/**
 * NIP-47 error codes: the spec's, plus BAD_REQUEST and EXPIRED as Alby Hub sends them, the
 * per-method PAYMENT_FAILED and NOT_FOUND, FEE_LIMIT_EXCEEDED for a route dearer than the app's
 * `max_fee`, and NWC-321's UNSUPPORTED_PAYMENT_INSTRUCTION and UNSUPPORTED_NETWORK.
 */
export type Nip47ErrorCode =
  | 'RATE_LIMITED'
  | 'NOT_IMPLEMENTED'
  | 'INSUFFICIENT_BALANCE'
  | 'QUOTA_EXCEEDED'
  | 'RESTRICTED'
  | 'UNAUTHORIZED'
  | 'INTERNAL'
  | 'UNSUPPORTED_ENCRYPTION'
  | 'OTHER'
  | 'PAYMENT_FAILED'
  | 'NOT_FOUND'
  | 'BAD_REQUEST'
  | 'EXPIRED'
  | 'FEE_LIMIT_EXCEEDED'
  | 'UNSUPPORTED_PAYMENT_INSTRUCTION'
  | 'UNSUPPORTED_NETWORK';

/** A failure to report to a NIP-47 client, with a message safe to show it. */
export class Nip47Error extends Error {
  readonly code: Nip47ErrorCode;

  constructor(code: Nip47ErrorCode, message: string) {
    super(message);
    this.name = 'Nip47Error';
    this.code = code;
  }
}

/** The NIP-47 code a vault refusal is reported with (docs/vault-api.md, "Errors"). */
export const NIP47_CODE_FOR_VAULT_ERROR: Record<VaultErrorCode, Nip47ErrorCode> = {
  BAD_REQUEST: 'BAD_REQUEST',
  WRONG_NETWORK: 'BAD_REQUEST',
  INVOICE_EXPIRED: 'BAD_REQUEST',
  UNAUTHORIZED: 'UNAUTHORIZED',
  // The bridge's own session with the operator, not the user's authorization: the client opens a new one and sends again first.
  SESSION_EXPIRED: 'INTERNAL',
  INSUFFICIENT_BALANCE: 'INSUFFICIENT_BALANCE',
  RESTRICTED: 'RESTRICTED',
  EXPIRED: 'EXPIRED',
  QUOTA_EXCEEDED: 'QUOTA_EXCEEDED',
  FEE_LIMIT: 'RESTRICTED',
  NOT_FOUND: 'NOT_FOUND',
  REPLAYED: 'RESTRICTED',
  STALE_GRANT: 'UNAUTHORIZED',
  CONFLICT: 'INTERNAL',
  LOCKED: 'RESTRICTED',
  INTERNAL: 'INTERNAL',
  UNAVAILABLE: 'INTERNAL',
};
