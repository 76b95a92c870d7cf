import { z } from 'zod';
import type { Event } from 'nostr-tools/pure';
import { hex32, compressedPubkeyHex } from './hex.ts';
import { msatString, msatToString, DEFAULT_FEE_LIMIT, feeLimitFor, type FeeLimit, type Msat } from './amounts.ts';
import { budgetRenewalSchema, budgetWindow, type BudgetRenewal } from './budget.ts';
import { KIND } from './kinds.ts';
import { hasValidSignature, signEvent, tagValue } from './nostr-event.ts';
import { fail, ok, type Result } from './result.ts';
import { parseLightningAddress } from './payment-target.ts';
import { REBALANCE_CAPABILITY } from './transfer.ts';
import type { PaymentTarget, SignedPayment } from './authorization.ts';

/**
 * The one place a grant may send money (docs/sweep.md): a keysend to one node, or a NWC-321
 * `pay` to one lightning address. A grant carrying one authorizes payments to it and nothing else.
 */
export type GrantDestination = { type: 'keysend'; node: string } | { type: 'lightning_address'; address: string };

/** What a user allows one connection key to do. Signed by the user as a kind 31347 event. */
export interface Grant {
  /** The user key that signed the grant and owns the deposits. */
  userPubkey: string;
  /** The connection (app) key the grant is for. */
  connectionPubkey: string;
  name: string;
  methods: string[];
  budget: { amountMsat: Msat; renewal: BudgetRenewal } | null;
  /** Largest single payment (amount, fees excluded), or null for no limit beyond the budget. */
  maxAmountMsat: Msat | null;
  feeLimit: FeeLimit;
  /** Unix seconds after which the grant no longer authorizes anything, or null. */
  expiresAt: number | null;
  /** Operator node keys this connection may spend at, or null for every operator. */
  vaultOperators: string[] | null;
  /** At most this many payments and this much (amounts, fees excluded) in any rolling hour. */
  velocity: { paymentsPerHour: number | null; amountMsatPerHour: Msat | null } | null;
  revoked: boolean;
  /** The grant's version: a newer grant for the same connection replaces an older one. */
  createdAt: number;
  /**
   * The only destination payments may go to; absent (older grants) for any destination the
   * methods allow. Absent rather than null, so grants read before it existed compare equal.
   */
  destination?: GrantDestination;
}

/** A lightning address in a grant: checked and kept in its lowercased `name@host` form. */
const grantAddressSchema = z
  .string()
  .max(320)
  .transform((text, ctx) => {
    const address = parseLightningAddress(text);
    if (!address.ok) {
      ctx.addIssue({ code: 'custom', message: `destination address: ${address.error.message}` });
      return z.NEVER;
    }
    return address.value.address;
  });

const grantDestinationSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('keysend'), node: compressedPubkeyHex }),
  z.strictObject({ type: z.literal('lightning_address'), address: grantAddressSchema }),
]);

const grantContentSchema = z.strictObject({
  v: z.literal(1),
  connection: hex32,
  name: z.string().max(200),
  methods: z.array(z.string().regex(/^[a-z_]{1,64}$/)).max(64),
  budget: z.strictObject({ amount_msat: msatString, renewal: budgetRenewalSchema }).nullable(),
  max_amount_msat: msatString.nullable(),
  fee_limit: z.strictObject({ base_msat: msatString, ppm: z.number().int().min(0).max(1_000_000) }),
  expires_at: z.number().int().positive().nullable(),
  vault_operators: z.array(compressedPubkeyHex).max(100).nullable(),
  velocity: z
    .strictObject({ payments_per_hour: z.number().int().positive().nullable(), amount_msat_per_hour: msatString.nullable() })
    .nullable()
    .default(null),
  revoked: z.boolean(),
  // Optional: grants signed before destinations existed have none (null is read as none too).
  destination: grantDestinationSchema.nullable().optional(),
});

export type GrantTerms = Omit<Grant, 'userPubkey' | 'createdAt'>;

/** Default terms: every listed method, no budget, the default fee limit, no expiry. */
export function grantTerms(connectionPubkey: string, methods: string[], overrides: Partial<GrantTerms> = {}): GrantTerms {
  return {
    connectionPubkey,
    name: '',
    methods,
    budget: null,
    maxAmountMsat: null,
    feeLimit: DEFAULT_FEE_LIMIT,
    expiresAt: null,
    vaultOperators: null,
    velocity: null,
    revoked: false,
    ...overrides,
  };
}

/** Signs a grant with the user's secret key. `createdAt` defaults to now. */
export function signGrant(terms: GrantTerms, userSecretKey: Uint8Array, createdAt = Math.floor(Date.now() / 1000)): Event {
  const content = {
    v: 1,
    connection: terms.connectionPubkey,
    name: terms.name,
    methods: terms.methods,
    budget: terms.budget ? { amount_msat: msatToString(terms.budget.amountMsat), renewal: terms.budget.renewal } : null,
    max_amount_msat: terms.maxAmountMsat === null ? null : msatToString(terms.maxAmountMsat),
    fee_limit: { base_msat: msatToString(terms.feeLimit.baseMsat), ppm: terms.feeLimit.ppm },
    expires_at: terms.expiresAt,
    vault_operators: terms.vaultOperators,
    ...(terms.velocity
      ? {
          velocity: {
            payments_per_hour: terms.velocity.paymentsPerHour,
            amount_msat_per_hour: terms.velocity.amountMsatPerHour === null ? null : msatToString(terms.velocity.amountMsatPerHour),
          },
        }
      : {}),
    revoked: terms.revoked,
    // Written only when set, so grants without one are byte for byte what they always were.
    ...(terms.destination ? { destination: terms.destination } : {}),
  };
  return signEvent(
    {
      kind: KIND.grant,
      created_at: createdAt,
      tags: [
        ['d', terms.connectionPubkey],
        ['p', terms.connectionPubkey],
      ],
      content: JSON.stringify(content),
    },
    userSecretKey,
  );
}

/**
 * Checks a grant event's kind, signature and content. Does not judge expiry or revocation
 * (see `grantInForce`), because a revoked grant is still a valid statement to store.
 */
export function parseGrant(event: Event): Result<Grant> {
  if (event.kind !== KIND.grant) return fail('UNAUTHORIZED', `grant must be kind ${KIND.grant}`);
  if (!hasValidSignature(event)) return fail('UNAUTHORIZED', 'grant signature is invalid');
  let json: unknown;
  try {
    json = JSON.parse(event.content);
  } catch {
    return fail('BAD_REQUEST', 'grant content is not JSON');
  }
  const parsed = grantContentSchema.safeParse(json);
  if (!parsed.success) return fail('BAD_REQUEST', `grant content is invalid: ${parsed.error.issues[0]?.message ?? 'unknown'}`);
  const c = parsed.data;
  if (tagValue(event, 'd') !== c.connection) return fail('BAD_REQUEST', 'grant d tag must be the connection pubkey');
  // Rebalancing pays vault invoices, which a destination forbids: the two cannot be meant together.
  if (c.destination && c.methods.includes(REBALANCE_CAPABILITY)) return fail('BAD_REQUEST', 'a grant with a destination cannot allow rebalancing');
  return ok({
    userPubkey: event.pubkey,
    connectionPubkey: c.connection,
    name: c.name,
    methods: c.methods,
    budget: c.budget ? { amountMsat: c.budget.amount_msat, renewal: c.budget.renewal } : null,
    maxAmountMsat: c.max_amount_msat,
    feeLimit: { baseMsat: c.fee_limit.base_msat, ppm: c.fee_limit.ppm },
    expiresAt: c.expires_at,
    vaultOperators: c.vault_operators,
    velocity: c.velocity ? { paymentsPerHour: c.velocity.payments_per_hour, amountMsatPerHour: c.velocity.amount_msat_per_hour } : null,
    revoked: c.revoked,
    createdAt: event.created_at,
    ...(c.destination ? { destination: c.destination } : {}),
  });
}

/**
 * Whether the grant lets money go to `target` (docs/sweep.md). A grant without a destination
 * allows any target its methods do; one with a destination allows only a keysend to exactly that
 * node, or a lightning address payment to exactly that address (compared lowercased), and
 * refuses every other target, invoices included, with RESTRICTED. The bridge runs it before
 * admitting a payment and every vault again before paying.
 */
export function grantAllowsTarget(grant: Pick<Grant, 'destination'>, target: PaymentTarget): Result<void> {
  const destination = grant.destination;
  if (destination === undefined) return ok(undefined);
  switch (destination.type) {
    case 'keysend':
      if (target.type === 'keysend' && target.destination === destination.node) return ok(undefined);
      return fail('RESTRICTED', `this connection may pay only a keysend to ${destination.node}`);
    case 'lightning_address': {
      const address = target.type === 'lightning_address' ? parseLightningAddress(target.address) : null;
      if (address?.ok && address.value.address === destination.address) return ok(undefined);
      return fail('RESTRICTED', `this connection may pay only the lightning address ${destination.address}`);
    }
  }
}

/** The target of a payment as the app signed it, in the form `grantAllowsTarget` and vaults take. */
export function signedPaymentTarget(signed: SignedPayment): PaymentTarget {
  switch (signed.target) {
    case 'invoice':
      return { type: 'invoice', invoice: signed.invoice.paymentRequest };
    case 'keysend':
      return { type: 'keysend', destination: signed.destination, preimage: signed.preimage, tlvRecords: signed.tlvRecords };
    case 'lightning_address':
      return { type: 'lightning_address', address: signed.address.address };
  }
}

/** How far ahead of the checker's clock a grant may be dated. */
export const GRANT_MAX_SKEW_SECONDS = 60;

/**
 * Whether the grant authorizes anything at `nowSec`: not revoked, not expired, and not dated
 * in the future (newest wins, so a grant from a fast clock would block a later revocation).
 */
export function grantInForce(grant: Grant, nowSec: number): Result<Grant> {
  if (grant.createdAt > nowSec + GRANT_MAX_SKEW_SECONDS) return fail('BAD_REQUEST', 'the grant is dated in the future');
  if (grant.revoked) return fail('UNAUTHORIZED', 'the connection was revoked by its owner');
  if (grant.expiresAt !== null && grant.expiresAt <= nowSec) return fail('EXPIRED', 'the connection grant has expired');
  return ok(grant);
}

/** What a connection has already committed: in the budget window, and in the last hour. */
export interface SpendUsage {
  /** Sum over settled payments of amount + fee, and over pending ones of amount + fee limit. */
  usedMsat: Msat;
  /** Payments settled or pending created in the last 3600 s, and their amounts (fees excluded). */
  lastHour: { payments: number; amountMsat: Msat };
}

/** The rolling window a grant's velocity limits apply to. */
export const VELOCITY_WINDOW_SECONDS = 3600;

/**
 * The spending limits of a grant, applied identically by the bridge (first) and by the vault
 * (again, on its own records): per-payment maximum, fee limit, budget for the window.
 * `maxFeeMsat` is the fee limit the payment will carry; it counts against the budget.
 */
export function checkSpendLimits(grant: Grant, amountMsat: Msat, maxFeeMsat: Msat, usage: SpendUsage): Result<void> {
  if (amountMsat <= 0n) return fail('BAD_REQUEST', 'payment amount must be positive');
  if (maxFeeMsat < 0n) return fail('BAD_REQUEST', 'fee limit must not be negative');
  if (grant.maxAmountMsat !== null && amountMsat > grant.maxAmountMsat) {
    return fail('QUOTA_EXCEEDED', `payment of ${amountMsat} msat is above this connection's maximum of ${grant.maxAmountMsat} msat`);
  }
  const allowedFee = feeLimitFor(amountMsat, grant.feeLimit);
  if (maxFeeMsat > allowedFee) {
    return fail('FEE_LIMIT', `fee limit ${maxFeeMsat} msat is above the grant's ${allowedFee} msat for this amount`);
  }
  const velocity = grant.velocity;
  if (velocity?.paymentsPerHour != null && usage.lastHour.payments + 1 > velocity.paymentsPerHour) {
    return fail('QUOTA_EXCEEDED', `velocity exceeded: at most ${velocity.paymentsPerHour} payments an hour`);
  }
  if (velocity?.amountMsatPerHour != null && usage.lastHour.amountMsat + amountMsat > velocity.amountMsatPerHour) {
    return fail('QUOTA_EXCEEDED', `velocity exceeded: at most ${velocity.amountMsatPerHour} msat an hour`);
  }
  if (grant.budget !== null && usage.usedMsat + amountMsat + maxFeeMsat > grant.budget.amountMsat) {
    return fail(
      'QUOTA_EXCEEDED',
      `budget exceeded: ${usage.usedMsat} msat used of ${grant.budget.amountMsat} msat this ${grant.budget.renewal} period`,
    );
  }
  return ok(undefined);
}

/** The start of the grant's current budget window (0 when it has no budget or never renews). */
export function budgetWindowStart(grant: Grant, nowSec: number): number {
  return grant.budget ? budgetWindow(grant.budget.renewal, nowSec).start : 0;
}
