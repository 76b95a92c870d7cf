/**
 * Builds what an NWC app and its user sign, for tests: a user key U, a connection key C, the
 * wallet service key S; grants signed by U; kind 23194 requests signed by C and encrypted to S;
 * and the vault authorization made of them (docs/vault-api.md, "Authorization").
 */
import { generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { buildAuthorization, type Authorization } from '../../src/protocol/authorization.ts';
import { grantTerms, signGrant, type GrantTerms } from '../../src/protocol/grant.ts';
import { KIND } from '../../src/protocol/kinds.ts';
import { signEvent } from '../../src/protocol/nostr-event.ts';
import { encryptContent, sharedKey, type NwcEncryption } from '../../src/protocol/nwc-encryption.ts';

export interface Keypair {
  secretKey: Uint8Array;
  pubkey: string;
}

export function newKeypair(): Keypair {
  const secretKey = generateSecretKey();
  return { secretKey, pubkey: getPublicKey(secretKey) };
}

/** The three keys of one NWC connection. */
export interface NwcParty {
  user: Keypair;
  connection: Keypair;
  service: Keypair;
}

export function newParty(): NwcParty {
  return { user: newKeypair(), connection: newKeypair(), service: newKeypair() };
}

export const PAYING_GRANT_METHODS = ['pay_invoice', 'pay_keysend', 'pay', 'get_balance', 'make_invoice', 'lookup_invoice'];

/** A grant by the party's user for its connection: all paying methods, no budget, unless overridden. */
export function signTestGrant(party: NwcParty, overrides: Partial<GrantTerms> = {}, createdAt?: number, signer: Keypair = party.user): Event {
  return signGrant(grantTerms(party.connection.pubkey, PAYING_GRANT_METHODS, overrides), signer.secretKey, createdAt);
}

export interface RequestOptions {
  method?: string;
  /** `params.amount` in msat (a JSON number, as NIP-47 has it). */
  amountMsat?: bigint;
  createdAt?: number;
  /** An `expiration` tag: unix seconds, or any string to test a malformed tag. */
  expiration?: number | string;
  encryption?: NwcEncryption;
  /** Signs with this key instead of the connection key. */
  signer?: Keypair;
}

/**
 * A NIP-47 `pay_invoice` request as the app sends it: encrypted with the conversation key of
 * (C, S), signed by C. Returns the event and the key that decrypts it.
 */
export function signPayRequest(party: NwcParty, invoice: string, options: RequestOptions = {}): { request: Event; key: Uint8Array } {
  const params: Record<string, unknown> = { invoice };
  if (options.amountMsat !== undefined) params.amount = Number(options.amountMsat);
  return signNwcRequest(party, options.method ?? 'pay_invoice', params, options);
}

/** Any NIP-47 request as the app sends it (`params` exactly as written into the plaintext). */
export function signNwcRequest(
  party: NwcParty,
  method: string,
  params: Record<string, unknown>,
  options: Omit<RequestOptions, 'method' | 'amountMsat'> = {},
): { request: Event; key: Uint8Array } {
  const encryption = options.encryption ?? 'nip44_v2';
  const key = sharedKey(encryption, party.connection.secretKey, party.service.pubkey);
  const content = encryptContent(encryption, key, JSON.stringify({ method, params }));
  const tags = [['p', party.service.pubkey]];
  if (encryption === 'nip44_v2') tags.push(['encryption', 'nip44_v2']);
  if (options.expiration !== undefined) tags.push(['expiration', String(options.expiration)]);
  const request = signEvent(
    { kind: KIND.nwcRequest, created_at: options.createdAt ?? Math.floor(Date.now() / 1000), tags, content },
    (options.signer ?? party.connection).secretKey,
  );
  return { request, key };
}

/** The authorization a bridge forwards to a vault for paying `invoice` under `grant`. */
export function payAuthorization(party: NwcParty, grant: Event, invoice: string, options: RequestOptions = {}): Authorization {
  const { request, key } = signPayRequest(party, invoice, options);
  return buildAuthorization(grant, request, options.encryption ?? 'nip44_v2', key);
}

/** The authorization for any signed request (`pay_keysend`, NWC-321 `pay`, …) with these params. */
export function requestAuthorization(
  party: NwcParty,
  grant: Event,
  method: string,
  params: Record<string, unknown>,
  options: Omit<RequestOptions, 'method' | 'amountMsat'> = {},
): Authorization {
  const { request, key } = signNwcRequest(party, method, params, options);
  return buildAuthorization(grant, request, options.encryption ?? 'nip44_v2', key);
}

/** NIP-47 `pay_keysend` params as an app writes them (TLV types as JSON numbers). */
export function keysendParams(p: {
  amountMsat: bigint;
  pubkey: string;
  preimage?: string;
  tlvRecords?: { type: number | string; value: string }[];
  maxFeeMsat?: bigint;
}): Record<string, unknown> {
  return {
    amount: Number(p.amountMsat),
    pubkey: p.pubkey,
    ...(p.preimage === undefined ? {} : { preimage: p.preimage }),
    ...(p.tlvRecords === undefined ? {} : { tlv_records: p.tlvRecords }),
    ...(p.maxFeeMsat === undefined ? {} : { max_fee: Number(p.maxFeeMsat) }),
  };
}

/** NWC-321 `pay` params as an app writes them. */
export function pay321Params(p: { payment: string; amountMsat?: bigint; payerNote?: string; maxFeeMsat?: bigint }): Record<string, unknown> {
  return {
    payment: p.payment,
    ...(p.amountMsat === undefined ? {} : { amount: Number(p.amountMsat) }),
    ...(p.payerNote === undefined ? {} : { payer_note: p.payerNote }),
    ...(p.maxFeeMsat === undefined ? {} : { max_fee: Number(p.maxFeeMsat) }),
  };
}
