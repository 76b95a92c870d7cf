import { z } from 'zod';
import type { Event } from 'nostr-tools/pure';
import type { Msat } from './amounts.ts';
import { grantInForce, parseGrant, type Grant } from './grant.ts';
import { bytesToHex, hex32, hexToBytes } from './hex.ts';
import { decodeInvoice, type DecodedInvoice } from './invoice.ts';
import { KIND } from './kinds.ts';
import { hasValidSignature, nostrEventSchema, tagValue } from './nostr-event.ts';
import {
  isPayingMethod,
  nwcRequestBodySchema,
  payInvoiceParamsSchema,
  payKeysendParamsSchema,
  payParamsSchema,
  sameTlvRecords,
  type TlvRecord,
} from './nwc-request.ts';
import { parseLightningAddress, parsePaymentInstruction, type LightningAddress } from './payment-target.ts';
import { decryptContent, requestEncryption, type NwcEncryption } from './nwc-encryption.ts';
import { fail, ok, type Result } from './result.ts';

/**
 * What a vault needs to decrease a balance: the user's grant, the app's request exactly as
 * signed, and the key that decrypts it (proof of the plaintext the app signed).
 */
export const authorizationSchema = z.strictObject({
  grant: nostrEventSchema,
  request: nostrEventSchema,
  encryption: z.enum(['nip44_v2', 'nip04']),
  /** Hex NIP-44 conversation key of (connection, wallet service), or the NIP-04 shared secret. */
  key: hex32,
});
export type Authorization = z.infer<typeof authorizationSchema>;

export function buildAuthorization(grant: Event, request: Event, encryption: NwcEncryption, key: Uint8Array): Authorization {
  return { grant, request, encryption, key: bytesToHex(key) };
}

/**
 * Whether a request is past its NIP-40 `expiration` tag. A tag that is not a unix time counts
 * as expired: a request that cannot say until when it holds is not acted on.
 */
export function requestExpired(request: Pick<Event, 'tags'>, nowSec: number): boolean {
  const expiration = tagValue(request, 'expiration');
  if (expiration === undefined) return false;
  return !/^[0-9]{1,15}$/.test(expiration) || Number(expiration) <= nowSec;
}

/** How far back a request's created_at may lie when a vault first sees it. */
export const REQUEST_MAX_AGE_SECONDS = 300;
/** How far ahead of the vault's clock a request's created_at may lie. */
export const REQUEST_MAX_SKEW_SECONDS = 60;

/**
 * What a vault is asked to pay, to be matched against what the app signed:
 * - `invoice`: a BOLT 11 (signed as `pay_invoice`, or as `pay` with a BOLT 11 instruction);
 * - `keysend`: a spontaneous payment to a node (signed as `pay_keysend`); `preimage` null when
 *   the app gave none (the vault picks it), `tlvRecords` empty when it gave none;
 * - `lightning_address`: an address the vault resolves itself (signed as `pay`).
 */
export type PaymentTarget =
  | { type: 'invoice'; invoice: string }
  | { type: 'keysend'; destination: string; preimage: string | null; tlvRecords: readonly TlvRecord[] }
  | { type: 'lightning_address'; address: string };

interface PaymentToAuthorizeBase {
  depositOwner: string;
  operatorNodePubkey: string;
  /** The amount being paid (fees excluded). */
  amountMsat: Msat;
  /** The fee limit the payment carries (`max_fee_msat`). */
  maxFeeMsat: Msat;
  nowSec: number;
}

/** An invoice payment: the original form, `invoice` being the BOLT 11 paid. */
export interface InvoicePaymentToAuthorize extends PaymentToAuthorizeBase {
  invoice: string;
  target?: undefined;
}

/** Any payment, by its target. */
export interface TargetPaymentToAuthorize extends PaymentToAuthorizeBase {
  target: PaymentTarget;
  invoice?: undefined;
}

/** The payment a vault is asked to make, to be matched against the authorization. */
export type PaymentToAuthorize = InvoicePaymentToAuthorize | TargetPaymentToAuthorize;

/**
 * What the app's signed plaintext asks to pay (`parseSignedPayment`). `amountMsat` is the
 * amount it authorizes: the invoice's, or `params.amount` for an amountless invoice (or the
 * BIP-321 `amount`), a keysend or a lightning address. `maxFeeMsat` is the app's own
 * `params.max_fee`, or null.
 */
export type SignedPayment =
  | {
      method: 'pay_invoice' | 'pay';
      target: 'invoice';
      invoice: DecodedInvoice;
      amountMsat: Msat;
      maxFeeMsat: Msat | null;
      metadata: Record<string, unknown> | undefined;
    }
  | {
      method: 'pay_keysend';
      target: 'keysend';
      destination: string;
      preimage: string | null;
      tlvRecords: TlvRecord[];
      amountMsat: Msat;
      maxFeeMsat: Msat | null;
      metadata: Record<string, unknown> | undefined;
    }
  | {
      method: 'pay';
      target: 'lightning_address';
      address: LightningAddress;
      /** NWC-321 `payer_note`, passed on as a LUD-12 comment; null when absent or empty. */
      payerNote: string | null;
      amountMsat: Msat;
      maxFeeMsat: Msat | null;
      metadata: Record<string, unknown> | undefined;
    };

function paramsError(method: string, error: z.ZodError): Result<never> {
  const issue = error.issues[0];
  const path = issue && issue.path.length > 0 ? `.${issue.path.join('.')}` : '';
  return fail('BAD_REQUEST', `${method} params${path} are invalid: ${issue?.message ?? 'unknown problem'}`);
}

/**
 * Reads what a paying NIP-47 request (`pay_invoice`, `pay_keysend`, NWC-321 `pay`) asks to
 * pay, with the amount rules of each: an invoice's own amount, or `params.amount` for an
 * amountless one (a different `params.amount` is BAD_REQUEST); `params.amount` (> 0) required
 * for keysend and lightning addresses; a BIP-321 `amount` must agree with the others; a
 * `payer_note` only where it can be delivered (not with a BOLT 11). The bridge and vaults run
 * this same function. Does not check network or expiry of an invoice.
 */
export function parseSignedPayment(body: { method: string; params: Record<string, unknown> }): Result<SignedPayment> {
  switch (body.method) {
    case 'pay_invoice': {
      const params = payInvoiceParamsSchema.safeParse(body.params);
      if (!params.success) return paramsError(body.method, params.error);
      const decoded = decodeInvoice(params.data.invoice);
      if (!decoded.ok) return decoded;
      const amount = invoiceAmount(decoded.value, params.data.amount, null);
      if (!amount.ok) return amount;
      return ok({
        method: 'pay_invoice',
        target: 'invoice',
        invoice: decoded.value,
        amountMsat: amount.value,
        maxFeeMsat: params.data.max_fee ?? null,
        metadata: params.data.metadata,
      });
    }
    case 'pay_keysend': {
      const params = payKeysendParamsSchema.safeParse(body.params);
      if (!params.success) return paramsError(body.method, params.error);
      if (params.data.amount <= 0n) return fail('BAD_REQUEST', 'pay_keysend amount must be positive');
      return ok({
        method: 'pay_keysend',
        target: 'keysend',
        destination: params.data.pubkey,
        preimage: params.data.preimage ?? null,
        tlvRecords: params.data.tlv_records ?? [],
        amountMsat: params.data.amount,
        maxFeeMsat: params.data.max_fee ?? null,
        metadata: params.data.metadata,
      });
    }
    case 'pay': {
      const params = payParamsSchema.safeParse(body.params);
      if (!params.success) return paramsError(body.method, params.error);
      const instruction = parsePaymentInstruction(params.data.payment);
      if (!instruction.ok) return fail(instruction.error.code, instruction.error.message);
      const note = params.data.payer_note === undefined || params.data.payer_note === '' ? null : params.data.payer_note;
      const maxFeeMsat = params.data.max_fee ?? null;
      if (instruction.value.type === 'lightning_address') {
        const amount = params.data.amount;
        if (amount === undefined || amount <= 0n) return fail('BAD_REQUEST', 'paying a lightning address needs a positive amount');
        return ok({ method: 'pay', target: 'lightning_address', address: instruction.value.address, payerNote: note, amountMsat: amount, maxFeeMsat, metadata: params.data.metadata });
      }
      // NWC-321: a payer note must be delivered or the payment refused; BOLT 11 cannot carry one.
      if (note !== null) return fail('BAD_REQUEST', 'a BOLT 11 invoice cannot carry a payer note');
      const amount = invoiceAmount(instruction.value.invoice, params.data.amount, instruction.value.uriAmountMsat);
      if (!amount.ok) return amount;
      return ok({ method: 'pay', target: 'invoice', invoice: instruction.value.invoice, amountMsat: amount.value, maxFeeMsat, metadata: params.data.metadata });
    }
    default:
      return fail('RESTRICTED', `method ${body.method} does not authorize a payment`);
  }
}

/** The amount an invoice payment authorizes: every amount given must agree. */
function invoiceAmount(invoice: DecodedInvoice, paramsAmount: Msat | undefined, uriAmount: Msat | null): Result<Msat> {
  const given = [invoice.amountMsat, uriAmount, paramsAmount ?? null].filter((a): a is Msat => a !== null);
  const amount = given[0];
  if (amount === undefined) return fail('BAD_REQUEST', 'amountless invoice without an amount');
  if (given.some((a) => a !== amount)) return fail('BAD_REQUEST', 'amount does not match the invoice');
  return ok(amount);
}

interface AuthorizedPaymentBase {
  grant: Grant;
  requestId: string;
  connectionPubkey: string;
  method: string;
  /** The app's own fee cap (`params.max_fee`), or null. */
  maxFeeCapMsat: Msat | null;
  /** Everything the app signed about the payment. */
  signed: SignedPayment;
}

export interface AuthorizedInvoicePayment extends AuthorizedPaymentBase {
  target: 'invoice';
  invoice: DecodedInvoice;
}

export interface AuthorizedKeysendPayment extends AuthorizedPaymentBase {
  target: 'keysend';
  invoice: null;
  destination: string;
  preimage: string | null;
  tlvRecords: TlvRecord[];
}

export interface AuthorizedLightningAddressPayment extends AuthorizedPaymentBase {
  target: 'lightning_address';
  invoice: null;
  lightningAddress: LightningAddress;
  payerNote: string | null;
}

export type AuthorizedPayment = AuthorizedInvoicePayment | AuthorizedKeysendPayment | AuthorizedLightningAddressPayment;

/**
 * The stateless half of a vault's check (docs/vault-api.md, "Authorization"): signatures,
 * ownership, freshness, the decrypted plaintext naming this very payment (invoice, keysend
 * destination with its preimage and TLV records, or lightning address) and amount, the
 * method granted, a fee limit within the app's own `max_fee`, the operator allowed. The
 * stateful half (newest grant, request never spent, budget used, lock, balance) is the
 * vault's, with `checkSpendLimits` for the grant's limits.
 */
export function verifyPaymentAuthorization(auth: Authorization, payment: InvoicePaymentToAuthorize): Result<AuthorizedInvoicePayment>;
export function verifyPaymentAuthorization(auth: Authorization, payment: PaymentToAuthorize): Result<AuthorizedPayment>;
export function verifyPaymentAuthorization(auth: Authorization, payment: PaymentToAuthorize): Result<AuthorizedPayment> {
  const parsedGrant = parseGrant(auth.grant);
  if (!parsedGrant.ok) return parsedGrant;
  const grant = parsedGrant.value;
  if (grant.userPubkey !== payment.depositOwner) return fail('UNAUTHORIZED', 'grant is not signed by the deposit owner');
  const inForce = grantInForce(grant, payment.nowSec);
  if (!inForce.ok) return inForce;

  const request = auth.request;
  if (request.kind !== KIND.nwcRequest) return fail('UNAUTHORIZED', `request must be kind ${KIND.nwcRequest}`);
  if (request.pubkey !== grant.connectionPubkey) return fail('UNAUTHORIZED', 'request is not signed by the granted connection key');
  if (!hasValidSignature(request)) return fail('UNAUTHORIZED', 'request signature is invalid');
  if (request.created_at < payment.nowSec - REQUEST_MAX_AGE_SECONDS) return fail('EXPIRED', 'request is too old');
  if (request.created_at > payment.nowSec + REQUEST_MAX_SKEW_SECONDS) return fail('EXPIRED', 'request is dated in the future');
  if (requestExpired(request, payment.nowSec)) return fail('EXPIRED', 'request has expired');
  if (requestEncryption(request) !== auth.encryption) return fail('UNAUTHORIZED', 'encryption does not match the request');

  let body: z.infer<typeof nwcRequestBodySchema>;
  try {
    const plaintext = decryptContent(auth.encryption, hexToBytes(auth.key), request.content);
    const parsed = nwcRequestBodySchema.safeParse(JSON.parse(plaintext));
    if (!parsed.success) return fail('BAD_REQUEST', 'request plaintext is not a NIP-47 request');
    body = parsed.data;
  } catch {
    return fail('UNAUTHORIZED', 'request content does not decrypt with the given key');
  }
  if (!grant.methods.includes(body.method)) return fail('RESTRICTED', `method ${body.method} is not granted to this connection`);
  if (!isPayingMethod(body.method)) return fail('RESTRICTED', `method ${body.method} does not authorize a payment`);
  const parsedPayment = parseSignedPayment(body);
  if (!parsedPayment.ok) return parsedPayment;
  const signed = parsedPayment.value;

  const target: PaymentTarget = payment.target ?? { type: 'invoice', invoice: payment.invoice };
  const base = { grant, requestId: request.id, connectionPubkey: grant.connectionPubkey, method: body.method, maxFeeCapMsat: signed.maxFeeMsat, signed };
  let authorized: AuthorizedPayment;
  switch (target.type) {
    case 'invoice': {
      if (signed.target !== 'invoice') return fail('UNAUTHORIZED', `the app signed a ${describeTarget(signed)}, not an invoice`);
      if (signed.invoice.paymentRequest !== target.invoice.trim().toLowerCase()) {
        return fail('UNAUTHORIZED', 'the invoice being paid is not the one the app signed');
      }
      authorized = { ...base, target: 'invoice', invoice: signed.invoice };
      break;
    }
    case 'keysend': {
      if (signed.target !== 'keysend') return fail('UNAUTHORIZED', `the app signed a ${describeTarget(signed)}, not a keysend`);
      if (signed.destination !== target.destination) return fail('UNAUTHORIZED', 'the keysend destination is not the pubkey the app signed');
      if (signed.preimage !== target.preimage) return fail('UNAUTHORIZED', 'the keysend preimage is not the one the app signed');
      if (!sameTlvRecords(signed.tlvRecords, target.tlvRecords)) return fail('UNAUTHORIZED', 'the keysend TLV records are not the ones the app signed');
      authorized = { ...base, target: 'keysend', invoice: null, destination: signed.destination, preimage: signed.preimage, tlvRecords: signed.tlvRecords };
      break;
    }
    case 'lightning_address': {
      if (signed.target !== 'lightning_address') return fail('UNAUTHORIZED', `the app signed a ${describeTarget(signed)}, not a lightning address`);
      const address = parseLightningAddress(target.address);
      if (!address.ok || address.value.address !== signed.address.address) {
        return fail('UNAUTHORIZED', 'the lightning address being paid is not the one the app signed');
      }
      authorized = { ...base, target: 'lightning_address', invoice: null, lightningAddress: signed.address, payerNote: signed.payerNote };
      break;
    }
  }
  if (signed.amountMsat !== payment.amountMsat) return fail('UNAUTHORIZED', 'the amount being paid is not the one the app signed');
  if (signed.maxFeeMsat !== null && payment.maxFeeMsat > signed.maxFeeMsat) {
    return fail('FEE_LIMIT', `fee limit ${payment.maxFeeMsat} msat is above the app's own max_fee of ${signed.maxFeeMsat} msat`);
  }
  if (grant.vaultOperators !== null && !grant.vaultOperators.includes(payment.operatorNodePubkey)) {
    return fail('RESTRICTED', 'the grant does not allow this vault operator');
  }
  return ok(authorized);
}

function describeTarget(signed: SignedPayment): string {
  return signed.target === 'invoice' ? 'BOLT 11 invoice' : signed.target === 'keysend' ? 'keysend' : 'lightning address';
}
