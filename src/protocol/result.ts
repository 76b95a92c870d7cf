/**
 * Error codes shared by the Vault API and the protocol checks (docs/vault-api.md, "Errors").
 * The bridge maps each onto a NIP-47 code.
 */
export const VAULT_ERROR_CODES = [
  'BAD_REQUEST',
  'UNAUTHORIZED',
  'SESSION_EXPIRED',
  'RESTRICTED',
  'EXPIRED',
  'QUOTA_EXCEEDED',
  'FEE_LIMIT',
  'REPLAYED',
  'STALE_GRANT',
  'LOCKED',
  'INSUFFICIENT_BALANCE',
  'NOT_FOUND',
  'INVOICE_EXPIRED',
  'WRONG_NETWORK',
  'CONFLICT',
  'UNAVAILABLE',
  'INTERNAL',
] as const;
export type VaultErrorCode = (typeof VAULT_ERROR_CODES)[number];

export interface ProtocolError {
  code: VaultErrorCode;
  message: string;
}

/** A value or the reason there is none: protocol checks return this instead of throwing. */
export type Result<T> = { ok: true; value: T } | { ok: false; error: ProtocolError };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(code: VaultErrorCode, message: string): Result<T> {
  return { ok: false, error: { code, message } };
}
