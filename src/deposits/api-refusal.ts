/** HTTP-facing error codes of the bridge's own API (its JSON bodies: `{"error": {"code", "message"}}`). */
export type ApiErrorCode = 'BAD_REQUEST' | 'UNAUTHORIZED' | 'FORBIDDEN' | 'NOT_FOUND' | 'CONFLICT' | 'UNAVAILABLE';

const STATUS: Record<ApiErrorCode, number> = { BAD_REQUEST: 400, UNAUTHORIZED: 401, FORBIDDEN: 403, NOT_FOUND: 404, CONFLICT: 409, UNAVAILABLE: 503 };

/** A request to the bridge's HTTP API refused for a reason the caller can act on. */
export class ApiRefusal extends Error {
  readonly code: ApiErrorCode;
  readonly status: number;

  constructor(code: ApiErrorCode, message: string) {
    super(message);
    this.name = 'ApiRefusal';
    this.code = code;
    this.status = STATUS[code];
  }
}
