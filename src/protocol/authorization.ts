import { z } from 'zod';
import type { Event } from 'nostr-tools/pure';
import type { Msat } from './amounts.ts';
import { grantInForce, parseGrant, type Grant } from './grant.ts';
import { bytesToHex, hex32, hexToBytes } from './hex.ts';
import { decodeInvoice, type DecodedInvoice } from './invoice.ts';
import { KIND } from './kinds.ts';
import { hasValidSignature, nostrEventSchema, tagValue } from './nostr-event.ts';
import { nwcRequestBodySchema, payInvoiceParamsSchema } from './nwc-request.ts';
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

/** The payment a vault is asked to make, to be matched against the authorization. */
export interface PaymentToAuthorize {
  depositOwner: string;
  operatorNodePubkey: string;
  invoice: string;
  amountMsat: Msat;
  maxFeeMsat: Msat;
  nowSec: number;
}

export interface AuthorizedPayment {
  grant: Grant;
  requestId: string;
  connectionPubkey: string;
  method: string;
  invoice: DecodedInvoice;
}

/**
 * The stateless half of a vault's check (docs/vault-api.md, "Authorization"): signatures,
 * ownership, freshness, the decrypted plaintext naming this very invoice and amount, the
 * method granted, the operator allowed. The stateful half (newest grant, request never spent,
 * budget used, lock, balance) is the vault's, with `checkSpendLimits` for the grant's limits.
 */
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
  if (body.method !== 'pay_invoice') return fail('RESTRICTED', `method ${body.method} does not authorize a payment`);
  const params = payInvoiceParamsSchema.safeParse(body.params);
  if (!params.success) return fail('BAD_REQUEST', 'pay_invoice params are invalid');

  const signedInvoice = decodeInvoice(params.data.invoice);
  if (!signedInvoice.ok) return signedInvoice;
  const invoice = signedInvoice.value;
  if (invoice.paymentRequest !== payment.invoice.trim().toLowerCase()) {
    return fail('UNAUTHORIZED', 'the invoice being paid is not the one the app signed');
  }
  const signedAmount = invoice.amountMsat ?? params.data.amount;
  if (signedAmount === undefined) return fail('BAD_REQUEST', 'amountless invoice without an amount');
  if (invoice.amountMsat !== null && params.data.amount !== undefined && params.data.amount !== invoice.amountMsat) {
    return fail('BAD_REQUEST', 'amount does not match the invoice');
  }
  if (signedAmount !== payment.amountMsat) return fail('UNAUTHORIZED', 'the amount being paid is not the one the app signed');
  if (grant.vaultOperators !== null && !grant.vaultOperators.includes(payment.operatorNodePubkey)) {
    return fail('RESTRICTED', 'the grant does not allow this vault operator');
  }
  return ok({ grant, requestId: request.id, connectionPubkey: grant.connectionPubkey, method: body.method, invoice });
}
