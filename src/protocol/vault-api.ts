/**
 * The Vault API v0 wire shapes (docs/vault-api.md), shared by the bridge's client and the
 * reference operator. Amounts are decimal strings of msats on the wire and bigint once parsed.
 */
import { z } from 'zod';
import { msatString } from './amounts.ts';
import { authorizationSchema } from './authorization.ts';
import { compressedPubkeyHex, hex32 } from './hex.ts';
import { nostrEventSchema } from './nostr-event.ts';
import { tlvRecordsSchema } from './nwc-request.ts';
import { transferDestinationSchema } from './transfer.ts';
import { VAULT_ERROR_CODES, type VaultErrorCode } from './result.ts';
import { balanceUpdateSchema, vaultProofSchema } from './vault-proof.ts';
import { hex64 } from './hex.ts';

export const VAULT_API_VERSION = '0';
const unixSeconds = z.number().int().nonnegative();
const ppm = z.number().int().min(0).max(1_000_000);

export const networkSchema = z.enum(['mainnet', 'testnet', 'signet', 'regtest']);

export const vaultInfoSchema = z.object({
  version: z.literal(VAULT_API_VERSION),
  operator: z.object({ node_pubkey: compressedPubkeyHex, alias: z.string().max(64) }),
  peer: z.object({ node_pubkey: compressedPubkeyHex }),
  network: networkSchema,
  block_height: z.number().int().nonnegative(),
  vaults: z.array(z.object({ vault_id: hex32, channel_id: hex32, multisig_pubkey: hex32 })).min(1),
  fees: z.object({
    routing_base_msat: msatString,
    routing_ppm: ppm,
    /** Charged at the end of every `period_blocks`: the unit fee, plus `rate_fee_ppm` per `rate_period_blocks` of the balance, pro rata. */
    maintenance: z.object({
      unit_fee_msat: msatString,
      period_blocks: z.number().int().positive(),
      rate_fee_ppm: ppm,
      rate_period_blocks: z.number().int().positive(),
    }),
  }),
  limits: z.object({ min_invoice_msat: msatString, max_invoice_msat: msatString, max_deposit_msat: msatString }),
  auditors: z.array(hex32),
  request_max_age_seconds: z.number().int().positive(),
});
export type VaultInfo = z.output<typeof vaultInfoSchema>;

export const openDepositRequestSchema = z.object({ open: nostrEventSchema });

export const depositSchema = z.object({
  deposit_id: z.string().min(1).max(128),
  owner: hex32,
  vault_id: hex32,
  channel_id: hex32,
  multisig_pubkey: hex32,
  /** `vault_id@multisig_pubkey` */
  address: z.string(),
  created_at: unixSeconds,
});
export type VaultDeposit = z.output<typeof depositSchema>;

export const depositStatusSchema = z.object({
  deposit_id: z.string(),
  owner: hex32,
  balance_msat: msatString,
  /** Held for payments in flight (amount + fee limit). */
  reserved_msat: msatString,
  locked: z.boolean(),
  /** The newest balance both peers signed; null before the first change. */
  balance_update: balanceUpdateSchema.nullable(),
});
export type VaultDepositStatus = z.output<typeof depositStatusSchema>;

/**
 * `POST /v0/deposits/:id/invoices`. Without `amount_msat` the invoice is amountless: the payer
 * picks the amount, the vault proof carries `amount_msat` "0" ("any amount"), and the deposit
 * is credited with what arrives.
 */
export const createInvoiceRequestSchema = z.object({
  amount_msat: msatString.optional(),
  description: z.string().max(639).optional(),
  description_hash: hex32.optional(),
  expiry_seconds: z.number().int().positive().max(31_536_000).optional(),
});

/** Default and bounds of a hold invoice's `min_cltv_expiry_delta` (blocks). */
export const DEFAULT_HOLD_CLTV_EXPIRY_DELTA = 144;
export const MAX_HOLD_CLTV_EXPIRY_DELTA = 2016;

/**
 * `POST /v0/deposits/:id/hold-invoices`: an invoice for a payment hash whose preimage only the
 * client holds. A payment to it is held (`accepted`) until the client settles it with the
 * preimage or cancels it, or until its settle deadline (block height at acceptance +
 * `min_cltv_expiry_delta`) passes and the vault cancels it.
 */
export const createHoldInvoiceRequestSchema = z.object({
  amount_msat: msatString,
  payment_hash: hex32,
  description: z.string().max(639).optional(),
  description_hash: hex32.optional(),
  expiry_seconds: z.number().int().positive().max(31_536_000).optional(),
  min_cltv_expiry_delta: z.number().int().min(1).max(MAX_HOLD_CLTV_EXPIRY_DELTA).optional(),
});

/** `POST /v0/deposits/:id/invoices/:payment_hash/settle` */
export const settleInvoiceRequestSchema = z.object({ preimage: hex32 });

export const invoiceStateSchema = z.enum(['pending', 'accepted', 'settled', 'canceled', 'expired']);
export type VaultInvoiceState = z.infer<typeof invoiceStateSchema>;

export const vaultInvoiceSchema = z.object({
  invoice: z.string(),
  payment_hash: hex32,
  amount_msat: msatString,
  description: z.string().nullable(),
  description_hash: hex32.nullable(),
  created_at: unixSeconds,
  expires_at: unixSeconds,
  /**
   * `pending` (payable), `accepted` (a hold invoice whose payment is held: not credited, the
   * payer's payment pending), `settled` (credited), `canceled` (a hold invoice canceled: the
   * held payment failed, nothing credited) or `expired` (never paid before `expires_at`).
   */
  state: invoiceStateSchema,
  settled_at: unixSeconds.nullable(),
  preimage: hex32.nullable(),
  proof: vaultProofSchema,
  /** Present once settled: the deposit's balance after the credit, signed by both peers. */
  balance_update: balanceUpdateSchema.nullable(),
  /** A hold invoice (optional on the wire: absent means false). */
  hold: z.boolean().optional(),
  /** When a hold invoice's payment was accepted (held), or null. */
  accepted_at: unixSeconds.nullable().optional(),
  /**
   * The block height before which a held payment must be settled or canceled (height at
   * acceptance + `min_cltv_expiry_delta`); the vault cancels it itself once the chain reaches
   * it. Null until accepted, and for ordinary invoices.
   */
  settle_deadline: z.number().int().nonnegative().nullable().optional(),
  /** A hold invoice's `min_cltv_expiry_delta` (blocks), or null for ordinary invoices. */
  min_cltv_expiry_delta: z.number().int().positive().nullable().optional(),
  /** When a hold invoice was canceled, or null. */
  canceled_at: unixSeconds.nullable().optional(),
  /**
   * The deposit's owner and the channel peer's signature that the deposit this invoice pays
   * into is theirs (`signOwnerAttestation`): what makes the invoice a transfer destination
   * another vault of the same user can check. Optional on the wire.
   */
  owner: hex32.optional(),
  owner_sig: hex64.optional(),
});
export type VaultInvoice = z.output<typeof vaultInvoiceSchema>;

/** A keysend: the node paid, the preimage (the vault picks one when absent), custom TLV records. */
export const keysendRequestSchema = z.strictObject({
  destination: compressedPubkeyHex,
  preimage: hex32.optional(),
  tlv_records: tlvRecordsSchema.optional(),
});

/** A lightning address the vault resolves itself (LUD-16), as the app signed it in `pay`. */
export const lnurlRequestSchema = z.strictObject({ address: z.string().min(3).max(320) });

/**
 * `POST /v0/deposits/:id/payments`: exactly one of `invoice` (BOLT 11), `keysend` or `lnurl`
 * names what is paid.
 */
export const payRequestSchema = z
  .object({
    invoice: z.string().min(1).max(8192).optional(),
    keysend: keysendRequestSchema.optional(),
    lnurl: lnurlRequestSchema.optional(),
    amount_msat: msatString,
    max_fee_msat: msatString,
    idempotency_key: z.string().min(1).max(128),
    authorization: authorizationSchema,
    /**
     * A part of a multi-part payment (BOLT 4 `basic_mpp`): `amount_msat` is this vault's part,
     * `total_msat` the invoice's amount that all parts together pay. Invoices only.
     */
    mpp: z.strictObject({ total_msat: msatString }).optional(),
  })
  .refine((b) => [b.invoice, b.keysend, b.lnurl].filter((t) => t !== undefined).length === 1, {
    message: 'give exactly one of invoice, keysend and lnurl',
  })
  .refine((b) => b.mpp === undefined || (b.invoice !== undefined && b.amount_msat > 0n && b.amount_msat <= b.mpp.total_msat), {
    message: 'a multi-part share pays an invoice, and is positive and at most its total',
  });
export type PayRequest = z.input<typeof payRequestSchema>;

/**
 * `POST /v0/deposits/:id/transfers`: moves money to another deposit of the same owner by
 * paying the destination vault's invoice. `purpose` says what authorizes it:
 * - `rebalance`: the owner's grant lists `rebalance` and names the destination's operator in
 *   `vault_operators` (a grant for every operator cannot authorize transfers);
 * - `payment`: the app's signed paying request (`payment.authorization`, for the invoice
 *   `payment.invoice`) that the transfer prepares; the transfer is at most the signed amount
 *   plus its fee limit, and spends the request id at this vault.
 */
export const transferRequestSchema = z
  .object({
    destination: transferDestinationSchema,
    amount_msat: msatString,
    max_fee_msat: msatString,
    idempotency_key: z.string().min(1).max(128),
    purpose: z.enum(['rebalance', 'payment']),
    /** The owner's grant (for `payment`, the one in the authorization). */
    grant: nostrEventSchema,
    payment: z.strictObject({ invoice: z.string().min(1).max(8192), authorization: authorizationSchema }).optional(),
  })
  .refine((b) => (b.purpose === 'payment') === (b.payment !== undefined), { message: 'a payment transfer carries the payment it prepares, a rebalance none' })
  .refine((b) => b.amount_msat > 0n, { message: 'a transfer amount must be positive' });
export type TransferRequest = z.input<typeof transferRequestSchema>;

/**
 * Why a payment failed, in a payment record and a `payment_failed` event:
 * `FEE_LIMIT_EXCEEDED` (the route costs more than `max_fee_msat`), `NO_ROUTE` (payee unknown or
 * unreachable), `INVOICE_EXPIRED`, `ALREADY_PAID` (the payee took this hash before),
 * `REJECTED` (the payee refused, or anything else).
 */
export const PAYMENT_FAILURE_CODES = ['FEE_LIMIT_EXCEEDED', 'NO_ROUTE', 'INVOICE_EXPIRED', 'ALREADY_PAID', 'REJECTED'] as const;
export const paymentFailureCodeSchema = z.enum(PAYMENT_FAILURE_CODES);
export type PaymentFailureCode = z.infer<typeof paymentFailureCodeSchema>;

export const paymentStateSchema = z.enum(['pending', 'settled', 'failed']);

export const vaultPaymentSchema = z.object({
  idempotency_key: z.string(),
  payment_hash: hex32,
  state: paymentStateSchema,
  amount_msat: msatString,
  max_fee_msat: msatString,
  /** The routing fee charged; 0 unless settled. */
  fee_msat: msatString,
  preimage: hex32.nullable(),
  failure_reason: z.string().nullable(),
  /** Set on a failed payment (optional on the wire for older operators). */
  failure_code: paymentFailureCodeSchema.nullable().optional(),
  created_at: unixSeconds,
  settled_at: unixSeconds.nullable(),
  /** Present once final: the balance after the debit (or after the release), signed by both peers. */
  balance_update: balanceUpdateSchema.nullable(),
  /**
   * What was paid: `invoice`, `keysend`, `lnurl`, or `transfer` (to another deposit of the same
   * owner) (optional on the wire: absent means invoice).
   */
  kind: z.enum(['invoice', 'keysend', 'lnurl', 'transfer']).optional(),
  /** The BOLT 11 paid (for `lnurl`, the one the vault resolved); null for a keysend. */
  invoice: z.string().nullable().optional(),
  /** The payee node: the invoice's payee or the keysend destination. */
  destination: compressedPubkeyHex.nullable().optional(),
  /** For a part of a multi-part payment: the total all parts pay; null otherwise (optional on the wire). */
  mpp_total_msat: msatString.nullable().optional(),
});
export type VaultPayment = z.output<typeof vaultPaymentSchema>;

/** A maintenance fee as a deposit's history lists it: the charge and the balance both peers signed after it. */
export const maintenanceChargeSchema = z.object({
  fee_msat: msatString,
  from_height: z.number().int().nonnegative(),
  to_height: z.number().int().nonnegative(),
  charged_at: unixSeconds,
  balance_update: balanceUpdateSchema,
});
export type VaultMaintenanceCharge = z.output<typeof maintenanceChargeSchema>;

/**
 * A payment as a deposit's history lists it: the payment record, when it ended, and for a
 * transfer what moved it (`rebalance`, `payment`, or `operator` for a move on the operator's own
 * initiative) and where to (optional on the wire).
 */
export const historyPaymentSchema = vaultPaymentSchema.extend({
  finished_at: unixSeconds.nullable(),
  transfer_purpose: z.enum(['rebalance', 'payment', 'operator']).nullable().optional(),
});
export type VaultHistoryPayment = z.output<typeof historyPaymentSchema>;

/**
 * `GET /v0/deposits/:id/history`: everything a deposit went through, for a bridge that lost its
 * database. Read at one instant: `balance_update` is the newest balance both peers signed and
 * reflects every settled invoice, final payment and maintenance charge listed; `events_seq` is
 * the newest event seq the caller can see at that instant (0 when none).
 */
export const depositHistorySchema = z.object({
  deposit_id: z.string().min(1).max(128),
  owner: hex32,
  balance_msat: msatString,
  reserved_msat: msatString,
  balance_update: balanceUpdateSchema.nullable(),
  invoices: z.array(vaultInvoiceSchema),
  payments: z.array(historyPaymentSchema),
  maintenance: z.array(maintenanceChargeSchema),
  events_seq: z.number().int().nonnegative(),
});
export type VaultDepositHistory = z.output<typeof depositHistorySchema>;

export const grantRequestSchema = z.object({ grant: nostrEventSchema });
export const grantResponseSchema = z.object({ connection: hex32, created_at: unixSeconds });

export const lockRequestSchema = z.object({ lock: nostrEventSchema });
export const lockResponseSchema = z.object({ locked: z.boolean(), created_at: unixSeconds });

/** Where a deposit was moved: the destination deposit as its vault proof names it. */
export const movedDestinationSchema = z.object({ operator_node_pubkey: compressedPubkeyHex, deposit_id: z.string().min(1).max(128), vault_id: hex32 });

export const vaultEventSchema = z.discriminatedUnion('type', [
  z.object({
    seq: z.number().int().positive(),
    type: z.literal('invoice_settled'),
    deposit_id: z.string(),
    payment_hash: hex32,
    amount_msat: msatString,
    preimage: hex32,
    settled_at: unixSeconds,
    balance_update: balanceUpdateSchema,
  }),
  z.object({
    seq: z.number().int().positive(),
    type: z.literal('payment_settled'),
    deposit_id: z.string(),
    idempotency_key: z.string(),
    payment_hash: hex32,
    amount_msat: msatString,
    fee_msat: msatString,
    preimage: hex32,
    balance_update: balanceUpdateSchema,
  }),
  z.object({
    seq: z.number().int().positive(),
    type: z.literal('payment_failed'),
    deposit_id: z.string(),
    idempotency_key: z.string(),
    payment_hash: hex32,
    failure_reason: z.string(),
    failure_code: paymentFailureCodeSchema.optional(),
    balance_update: balanceUpdateSchema.nullable(),
  }),
  z.object({ seq: z.number().int().positive(), type: z.literal('lock_changed'), deposit_id: z.string(), locked: z.boolean() }),
  z.object({
    seq: z.number().int().positive(),
    type: z.literal('hold_invoice_accepted'),
    deposit_id: z.string(),
    payment_hash: hex32,
    /** The amount held. */
    amount_msat: msatString,
    /** Block height before which it must be settled or canceled. */
    settle_deadline: z.number().int().nonnegative(),
  }),
  z.object({ seq: z.number().int().positive(), type: z.literal('invoice_canceled'), deposit_id: z.string(), payment_hash: hex32 }),
  /** The maintenance fee for blocks `from_height` to `to_height`, taken from the deposit. */
  z.object({
    seq: z.number().int().positive(),
    type: z.literal('maintenance_charged'),
    deposit_id: z.string(),
    fee_msat: msatString,
    from_height: z.number().int().nonnegative(),
    to_height: z.number().int().nonnegative(),
    balance_update: balanceUpdateSchema,
  }),
  /**
   * The operator moved (part of) the deposit to another vault on its own initiative (a channel
   * closing, a vault retired): `amount_msat` left the deposit, plus `fee_msat`, paying
   * `invoice` of the destination vault; `destination` names it as its proof does.
   */
  z.object({
    seq: z.number().int().positive(),
    type: z.literal('deposit_moved'),
    deposit_id: z.string(),
    payment_hash: hex32,
    amount_msat: msatString,
    fee_msat: msatString,
    invoice: z.string(),
    destination: movedDestinationSchema,
    balance_update: balanceUpdateSchema,
  }),
]);
export type VaultEvent = z.output<typeof vaultEventSchema>;

export const vaultMetricsSchema = z.object({
  started_at: unixSeconds,
  deposits: z.number().int().nonnegative(),
  total_balance_msat: msatString,
  reserve_msat: msatString,
  invoices_settled: z.number().int().nonnegative(),
  payments_settled: z.number().int().nonnegative(),
  payments_failed: z.number().int().nonnegative(),
  authorizations_refused: z.number().int().nonnegative(),
});
export type VaultMetrics = z.output<typeof vaultMetricsSchema>;

export const errorBodySchema = z.object({
  error: z.object({ code: z.enum(VAULT_ERROR_CODES), message: z.string() }),
});

/** The HTTP status each Vault API error code is sent with. */
export const VAULT_ERROR_STATUS: Record<VaultErrorCode, number> = {
  BAD_REQUEST: 400,
  WRONG_NETWORK: 400,
  INVOICE_EXPIRED: 400,
  UNAUTHORIZED: 401,
  SESSION_EXPIRED: 401,
  INSUFFICIENT_BALANCE: 402,
  RESTRICTED: 403,
  EXPIRED: 403,
  QUOTA_EXCEEDED: 403,
  FEE_LIMIT: 403,
  NOT_FOUND: 404,
  REPLAYED: 409,
  STALE_GRANT: 409,
  CONFLICT: 409,
  LOCKED: 423,
  INTERNAL: 500,
  UNAVAILABLE: 503,
};
