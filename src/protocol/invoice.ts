import bolt11 from 'bolt11';
import type { Msat } from './amounts.ts';
import { fail, ok, type Result } from './result.ts';

export type BitcoinNetwork = 'mainnet' | 'testnet' | 'signet' | 'regtest';

/** BOLT 11 human-readable prefixes (after "ln") by network. */
const PREFIX_NETWORK: Record<string, BitcoinNetwork> = { bc: 'mainnet', tb: 'testnet', tbs: 'signet', bcrt: 'regtest' };

export interface DecodedInvoice {
  /** The invoice, lowercased. */
  paymentRequest: string;
  network: BitcoinNetwork;
  /** Null for an amountless invoice. */
  amountMsat: Msat | null;
  paymentHash: string;
  paymentSecret: string | null;
  /** The payee node key recovered from the invoice signature (33-byte compressed, hex). */
  payeeNodeKey: string;
  description: string | null;
  descriptionHash: string | null;
  /** Unix seconds. */
  createdAt: number;
  expiresAt: number;
  basicMpp: boolean;
}

/**
 * Invoices decoded lately, by their lowercased text: a payment's invoice is decoded by the bridge,
 * by the paying vault and by the network that routes it, and recovering the payee key from the
 * signature is most of the cost. Decoding is a function of the text alone; only valid invoices of
 * ordinary length are kept, a bounded number of them.
 */
const decoded = new Map<string, Readonly<DecodedInvoice>>();
const DECODED_CAPACITY = 1_024;
const DECODED_MAX_LENGTH = 4_096;

/** Decodes and checks a BOLT 11 invoice (signature, hash). Never throws. */
export function decodeInvoice(paymentRequest: string): Result<DecodedInvoice> {
  const lower = paymentRequest.trim().toLowerCase().replace(/^lightning:/, '');
  const known = decoded.get(lower);
  if (known) return ok(known);
  const result = decodeText(lower);
  if (result.ok && lower.length <= DECODED_MAX_LENGTH) {
    if (decoded.size >= DECODED_CAPACITY) decoded.delete(decoded.keys().next().value!);
    decoded.set(lower, Object.freeze(result.value));
  }
  return result;
}

function decodeText(lower: string): Result<DecodedInvoice> {
  // The human-readable part runs to the last '1'; its letters after "ln" name the network.
  const prefix = /^ln([a-z]+)/.exec(lower.slice(0, lower.lastIndexOf('1')))?.[1];
  const network = prefix === undefined ? undefined : PREFIX_NETWORK[prefix];
  if (network === undefined) return fail('BAD_REQUEST', 'not a BOLT 11 invoice of a known network');
  let decoded: ReturnType<typeof bolt11.decode>;
  try {
    decoded = bolt11.decode(lower, network === 'signet' ? { bech32: 'tbs', pubKeyHash: 111, scriptHash: 196, validWitnessVersions: [0, 1] } : undefined);
  } catch (error) {
    return fail('BAD_REQUEST', `invoice cannot be decoded: ${error instanceof Error ? error.message : 'invalid'}`);
  }
  const tags = decoded.tagsObject;
  if (!tags.payment_hash || !/^[0-9a-f]{64}$/.test(tags.payment_hash)) return fail('BAD_REQUEST', 'invoice has no payment hash');
  if (!decoded.payeeNodeKey || decoded.timestamp === undefined) return fail('BAD_REQUEST', 'invoice has no valid signature');
  const expiresAt = decoded.timeExpireDate ?? decoded.timestamp + (tags.expire_time ?? 3600);
  return ok({
    paymentRequest: lower,
    network,
    amountMsat: decoded.millisatoshis ? BigInt(decoded.millisatoshis) : null,
    paymentHash: tags.payment_hash,
    paymentSecret: tags.payment_secret ?? null,
    payeeNodeKey: decoded.payeeNodeKey,
    description: tags.description ?? null,
    descriptionHash: tags.purpose_commit_hash ?? null,
    createdAt: decoded.timestamp,
    expiresAt,
    basicMpp: Boolean(tags.feature_bits?.basic_mpp?.supported || tags.feature_bits?.basic_mpp?.required),
  });
}

/** Decodes an invoice and checks it is for `network` and not expired at `nowSec`. */
export function decodePayableInvoice(paymentRequest: string, network: BitcoinNetwork, nowSec: number): Result<DecodedInvoice> {
  const decoded = decodeInvoice(paymentRequest);
  if (!decoded.ok) return decoded;
  if (decoded.value.network !== network) {
    return fail('WRONG_NETWORK', `invoice is for ${decoded.value.network}, this wallet is on ${network}`);
  }
  if (decoded.value.expiresAt <= nowSec) return fail('INVOICE_EXPIRED', 'invoice has expired');
  return decoded;
}
