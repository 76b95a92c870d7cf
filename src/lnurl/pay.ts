/**
 * LNURL-pay for lightning addresses (LUD-06, LUD-16), with comments (LUD-12), verify URLs
 * (LUD-21) and zaps (NIP-57). Invoices come from the same path make_invoice takes
 * (`makeInvoice`): a vault of the user's deposit chosen by the allocation rules, handed out only
 * after its vault proof verifies.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { getPublicKey } from 'nostr-tools/pure';
import type { TransactionRow } from '../db/schema.ts';
import type { DepositCandidate } from '../deposits/allocation.ts';
import type { WalletContext } from '../deposits/context.ts';
import { depositCandidates } from '../deposits/deposit-candidates.ts';
import { makeInvoice, refreshIncoming } from '../deposits/invoices.ts';
import { RateLimiter, type RateLimit } from '../nwc/rate-limiter.ts';
import type { Msat } from '../protocol/amounts.ts';
import { bytesToHex } from '../protocol/hex.ts';
import { Nip47Error } from '../protocol/nip47-error.ts';
import { fail, ok, type Result } from '../protocol/result.ts';
import { isStorable } from '../protocol/storable.ts';
import { findAddressByName } from './addresses.ts';
import { checkZapRequest, zapDescriptionHash, type ZapRequest } from './zap-request.ts';

/** How many characters of a LUD-12 comment are taken. */
export const COMMENT_ALLOWED = 255;
/** LNURL invoices are paid at once or not at all; a short expiry frees the room they hold sooner. */
export const LNURL_INVOICE_EXPIRY_SECONDS = 600;
/** Invoices one address hands out, per second and in a burst, per instance. */
export const DEFAULT_LNURL_RATE_LIMIT: RateLimit = { perSecond: 1, burst: 100 };

/** The most of a zap request kept in the transaction's metadata, as for an app's own metadata (NIP-47 answers must stay small). */
const MAX_METADATA_ZAP_LENGTH = 4096;

/** The lowest amount LUD-06 allows (1 msat), raised to what the vault accepts. */
const LUD06_MIN_SENDABLE = 1n;
const MAX_JSON_NUMBER = BigInt(Number.MAX_SAFE_INTEGER);

export interface LnurlOptions {
  wallet: WalletContext;
  /** The base URL payers reach the bridge at: the address's host and the callback come from it. */
  publicUrl: () => string;
  /** The key zap receipts are signed with (`nostrPubkey`). */
  zapSecret: Uint8Array;
  rateLimit?: RateLimit | undefined;
}

export interface ReceivableRange {
  minMsat: Msat;
  maxMsat: Msat;
}

/**
 * What one invoice to the user can be: from the lowest minimum to the highest maximum over the
 * deposits that can take money now (healthy operator with a score), each deposit's maximum being
 * the lesser of its operator's invoice limit and its room under the operator's deposit limit
 * (open invoices counted in). Null when no deposit can take anything.
 */
export function receivableRange(candidates: readonly DepositCandidate[], limitsOf: (operatorPubkey: string) => { minMsat: Msat; maxMsat: Msat } | undefined): ReceivableRange | null {
  let range: ReceivableRange | null = null;
  for (const c of candidates) {
    if (!c.healthy || c.score <= 0) continue;
    const limits = limitsOf(c.operatorPubkey);
    if (!limits) continue;
    const lo = limits.minMsat > LUD06_MIN_SENDABLE ? limits.minMsat : LUD06_MIN_SENDABLE;
    const hi = c.roomMsat !== null && c.roomMsat < limits.maxMsat ? c.roomMsat : limits.maxMsat;
    if (hi < lo) continue;
    range = range === null ? { minMsat: lo, maxMsat: hi } : { minMsat: lo < range.minMsat ? lo : range.minMsat, maxMsat: hi > range.maxMsat ? hi : range.maxMsat };
  }
  if (range && range.maxMsat > MAX_JSON_NUMBER) range.maxMsat = MAX_JSON_NUMBER;
  return range;
}

/** The pay request's `metadata` string (LUD-06 text/plain, LUD-16 text/identifier); the invoice commits to its SHA-256. */
export function payRequestMetadata(address: string): string {
  return JSON.stringify([
    ['text/plain', `Payment to ${address}`],
    ['text/identifier', address],
  ]);
}

export interface CallbackQuery {
  amount: string;
  comment?: string | undefined;
  nostr?: string | undefined;
}

/** The LNURL-pay service of the bridge's lightning addresses. Errors are values: never throws for bad input. */
export class LnurlService {
  readonly #wallet: WalletContext;
  readonly #publicUrl: () => string;
  readonly zapPubkey: string;
  readonly #limiter: RateLimiter;

  constructor(options: LnurlOptions) {
    this.#wallet = options.wallet;
    this.#publicUrl = options.publicUrl;
    this.zapPubkey = getPublicKey(options.zapSecret);
    this.#limiter = new RateLimiter(options.rateLimit ?? DEFAULT_LNURL_RATE_LIMIT);
  }

  /** `name@host` for this bridge's public URL. */
  addressOf(name: string): string {
    return `${name}@${new URL(this.#publicUrl()).host}`;
  }

  /** The LUD-16 URL of an address of this bridge. */
  payRequestUrl(name: string): string {
    return `${this.#base()}/.well-known/lnurlp/${name}`;
  }

  #base(): string {
    return this.#publicUrl().replace(/\/+$/, '');
  }

  async #range(userPubkey: string): Promise<ReceivableRange | null> {
    const candidates = await depositCandidates(this.#wallet, this.#wallet.db, userPubkey);
    return receivableRange(candidates, (operator) => {
      const limits = this.#wallet.operators.get(operator)?.info.limits;
      return limits ? { minMsat: limits.min_invoice_msat, maxMsat: limits.max_invoice_msat } : undefined;
    });
  }

  /** The LUD-06 payRequest of `/.well-known/lnurlp/<name>`. */
  async payRequest(name: string): Promise<Result<Record<string, unknown>>> {
    const address = await findAddressByName(this.#wallet.db, name);
    if (!address) return fail('NOT_FOUND', `no lightning address ${name.slice(0, 64)} here`);
    const range = await this.#range(address.userPubkey);
    if (!range) return fail('UNAVAILABLE', 'this address cannot receive payments right now: none of its vault operators can take any');
    return ok({
      tag: 'payRequest',
      callback: `${this.#base()}/lnurlp/${address.name}/callback`,
      minSendable: Number(range.minMsat),
      maxSendable: Number(range.maxMsat),
      metadata: payRequestMetadata(this.addressOf(address.name)),
      commentAllowed: COMMENT_ALLOWED,
      allowsNostr: true,
      nostrPubkey: this.zapPubkey,
    });
  }

  /**
   * The LUD-06 callback: an invoice for `amount` msat into one of the owner's deposits, its
   * description hash that of the metadata, or for a zap that of the zap request. Checks the
   * amount against the current range, the comment's length, and the zap request (NIP-57).
   */
  async callback(name: string, query: CallbackQuery): Promise<Result<Record<string, unknown>>> {
    const address = await findAddressByName(this.#wallet.db, name);
    if (!address) return fail('NOT_FOUND', `no lightning address ${name.slice(0, 64)} here`);
    if (!/^[1-9][0-9]{0,17}$/.test(query.amount)) return fail('BAD_REQUEST', 'amount must be a positive whole number of millisatoshis');
    const amountMsat = BigInt(query.amount);
    const comment = query.comment ?? '';
    if (!isStorable(comment)) return fail('BAD_REQUEST', 'comment holds characters that cannot be stored (NUL or an unpaired surrogate)');
    if ([...comment].length > COMMENT_ALLOWED) return fail('BAD_REQUEST', `comment is longer than ${COMMENT_ALLOWED} characters`);
    let zap: ZapRequest | null = null;
    if (query.nostr !== undefined) {
      const checked = checkZapRequest(query.nostr, amountMsat, address.userPubkey);
      if (!checked.ok) return checked;
      zap = checked.value;
    }
    const range = await this.#range(address.userPubkey);
    if (!range) return fail('UNAVAILABLE', 'this address cannot receive payments right now: none of its vault operators can take any');
    if (amountMsat < range.minMsat || amountMsat > range.maxMsat) {
      return fail('BAD_REQUEST', `amount must be between ${range.minMsat} and ${range.maxMsat} msat, not ${amountMsat}`);
    }
    if (!this.#limiter.take(address.name)) return fail('QUOTA_EXCEEDED', 'too many invoices asked of this address; try again in a moment');

    const identifier = this.addressOf(address.name);
    const descriptionHash = zap ? zapDescriptionHash(zap.raw) : bytesToHex(sha256(new TextEncoder().encode(payRequestMetadata(identifier))));
    let tx: TransactionRow;
    try {
      tx = await makeInvoice(this.#wallet, {
        userPubkey: address.userPubkey,
        connectionPubkey: null,
        amountMsat,
        descriptionHash,
        expirySeconds: LNURL_INVOICE_EXPIRY_SECONDS,
        metadata: {
          lightning_address: identifier,
          ...(comment.length > 0 ? { comment } : {}),
          // The zap request itself when it is small (the whole of it stays in lnurl_invoices).
          ...(zap ? (zap.raw.length <= MAX_METADATA_ZAP_LENGTH ? { nostr: zap.event } : { nostr_zap: { id: zap.event.id, pubkey: zap.event.pubkey } }) : {}),
        },
      });
    } catch (error) {
      if (error instanceof Nip47Error && error.code === 'BAD_REQUEST') return fail('BAD_REQUEST', error.message);
      if (error instanceof Nip47Error && error.code === 'INTERNAL') return fail('UNAVAILABLE', `cannot make an invoice right now: ${error.message}`);
      this.#wallet.logger.error({ err: error, address: address.name }, 'could not make an LNURL invoice');
      return fail('INTERNAL', 'could not make an invoice');
    }
    await this.#wallet.db
      .insertInto('lnurl_invoices')
      .values({
        transaction_id: tx.id,
        payment_hash: tx.payment_hash,
        address_name: address.name,
        zap_request: zap?.raw ?? null,
        zap_relays: zap ? JSON.stringify(zap.relays) : null,
      })
      .execute();
    return ok({ status: 'OK', pr: tx.invoice, routes: [], verify: `${this.#base()}/lnurlp/${address.name}/verify/${tx.payment_hash}` });
  }

  /**
   * LUD-21: whether an invoice handed out for this address is settled, with its preimage. A
   * pending one is first asked of its vault, so the answer does not wait for the event stream.
   * Only invoices made over LNURL answer; any other hash is "Not found".
   */
  async verify(name: string, paymentHash: string): Promise<Result<Record<string, unknown>>> {
    if (!/^[0-9a-f]{64}$/.test(paymentHash)) return fail('NOT_FOUND', 'Not found');
    const find = () =>
      this.#wallet.db
        .selectFrom('lnurl_invoices')
        .innerJoin('transactions', 'transactions.id', 'lnurl_invoices.transaction_id')
        .selectAll('transactions')
        .where('lnurl_invoices.payment_hash', '=', paymentHash)
        .where('lnurl_invoices.address_name', '=', name.toLowerCase())
        .executeTakeFirst();
    let tx = await find();
    if (!tx) return fail('NOT_FOUND', 'Not found');
    if (tx.state === 'pending' || tx.state === 'accepted') {
      await refreshIncoming(this.#wallet, tx);
      tx = (await find()) ?? tx;
    }
    const settled = tx.state === 'settled';
    return ok({ status: 'OK', settled, preimage: settled ? tx.preimage : null, pr: tx.invoice });
  }
}
