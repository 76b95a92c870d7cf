import { z } from 'zod';
import { nip47Msat } from './amounts.ts';
import { compressedPubkeyHex, hex32 } from './hex.ts';

/** The decrypted body of a NIP-47 request: `{ method, params }`. */
export const nwcRequestBodySchema = z.object({
  method: z.string().min(1).max(64),
  params: z.record(z.string(), z.unknown()).default({}),
});

/** NIP-47 `metadata`: at most 4096 characters once serialized, otherwise dropped (NIP-47, "Metadata"). */
export const nip47Metadata = z
  .record(z.string(), z.unknown())
  .optional()
  .transform((m) => (m !== undefined && JSON.stringify(m).length <= 4096 ? m : undefined));

/**
 * The app's own cap on routing fees (msats), optional on every paying method. A vault refuses
 * a `max_fee_msat` above it (`FEE_LIMIT`), so a bridge cannot raise what the app signed.
 */
const maxFee = nip47Msat.optional();

/** pay_invoice params. Shared with vaults, which parse the plaintext an app signed. */
export const payInvoiceParamsSchema = z.object({
  invoice: z.string().min(1).max(8192),
  amount: nip47Msat.optional(),
  metadata: nip47Metadata,
  max_fee: maxFee,
});

/** Smallest custom TLV type: types below 2^16 belong to the Lightning protocol (BOLT 4). */
export const MIN_CUSTOM_TLV_TYPE = 65_536n;
const TLV_TYPE_LIMIT = 2n ** 64n;
/** Bytes of one TLV value (an onion payload holds at most 1300 bytes in all). */
const MAX_TLV_VALUE_BYTES = 1300;
const MAX_TLV_RECORDS = 64;

/** A custom TLV record of a keysend payment: `type` a u64, `value` lowercase hex. */
export interface TlvRecord {
  type: bigint;
  value: string;
}

/**
 * A TLV type: a JSON number (a safe integer: NIP-47 writes types as numbers, and one past 2^53
 * has already lost precision) or a decimal string, from 2^16 up to 2^64 − 1.
 */
export const tlvType = z
  .union([
    z.number().int('tlv type must be an integer').nonnegative().max(Number.MAX_SAFE_INTEGER, 'tlv type past 2^53 must be a decimal string'),
    z.string().regex(/^(0|[1-9][0-9]{0,19})$/, 'tlv type must be a decimal integer'),
  ])
  .transform((t) => BigInt(t))
  .refine((t) => t >= MIN_CUSTOM_TLV_TYPE, 'tlv type must be at least 65536 (lower types belong to the protocol)')
  .refine((t) => t < TLV_TYPE_LIMIT, 'tlv type must be below 2^64');

/** One TLV record: `{ type, value }`, the value hex (either case, kept lowercase). */
export const tlvRecordSchema = z.object({
  type: tlvType,
  value: z
    .string()
    .max(MAX_TLV_VALUE_BYTES * 2)
    .regex(/^([0-9a-fA-F]{2})*$/, 'tlv value must be hex of whole bytes')
    .transform((v) => v.toLowerCase()),
});

/** TLV records: at most 64, each type once, kept in ascending type order (as a TLV stream is). */
export const tlvRecordsSchema = z
  .array(tlvRecordSchema)
  .max(MAX_TLV_RECORDS)
  .refine((records) => new Set(records.map((r) => r.type)).size === records.length, 'tlv types must be distinct')
  .transform((records): TlvRecord[] => canonicalTlvRecords(records));

/** TLV records sorted by type (a TLV stream's order), so two lists compare by value. */
export function canonicalTlvRecords(records: readonly TlvRecord[]): TlvRecord[] {
  return [...records].map((r) => ({ type: r.type, value: r.value.toLowerCase() })).sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}

/** True when both lists hold the same records (order does not matter). */
export function sameTlvRecords(a: readonly TlvRecord[], b: readonly TlvRecord[]): boolean {
  const x = canonicalTlvRecords(a);
  const y = canonicalTlvRecords(b);
  return x.length === y.length && x.every((r, i) => r.type === y[i]?.type && r.value === y[i]?.value);
}

/** TLV records for the wire (Vault API, NIP-47 answers): the type as a decimal string. */
export function tlvRecordsToWire(records: readonly TlvRecord[]): { type: string; value: string }[] {
  return records.map((r) => ({ type: r.type.toString(), value: r.value }));
}

/** pay_keysend params (NIP-47). Shared with vaults, which parse the plaintext an app signed. */
export const payKeysendParamsSchema = z.object({
  amount: nip47Msat,
  pubkey: compressedPubkeyHex,
  preimage: hex32.optional(),
  tlv_records: tlvRecordsSchema.optional(),
  metadata: nip47Metadata,
  max_fee: maxFee,
});

/**
 * `pay` params (NWC-321): `payment` is a BIP-321 URI with a `lightning` instruction, a bare
 * BOLT 11 or `lightning:` URI, or a lightning address (see `parsePaymentInstruction`).
 */
export const payParamsSchema = z.object({
  payment: z.string().min(1).max(8192),
  amount: nip47Msat.optional(),
  payer_note: z.string().max(2000).optional(),
  metadata: nip47Metadata,
  max_fee: maxFee,
});

/** NIP-47 methods whose signed request authorizes a balance decrease at a vault. */
export const PAYING_METHODS = ['pay_invoice', 'pay_keysend', 'pay'] as const;
export type PayingMethod = (typeof PAYING_METHODS)[number];

export function isPayingMethod(method: string): method is PayingMethod {
  return (PAYING_METHODS as readonly string[]).includes(method);
}
