/**
 * Nostr event kinds used on the wire. The NWC and NIP-98 kinds are the NIPs' own; the
 * deposit-bridge kinds are this project's signed statements (docs/protocol.md).
 */
export const KIND = {
  nwcInfo: 13194,
  nwcRequest: 23194,
  nwcResponse: 23195,
  nwcNotificationNip04: 23196,
  nwcNotification: 23197,
  httpAuth: 27235,
  /** A user's grant for one connection key; parameterized replaceable, `d` = connection pubkey. */
  grant: 31347,
  /** A user's request to open a deposit at a vault operator. */
  depositOpen: 21348,
  /** A user's emergency lock (or unlock) of their deposits. */
  depositLock: 31349,
  /** An auditor's signed report on one operator. */
  auditorReport: 31350,
} as const;
