/**
 * NIP-57 zaps: the checks on a zap request (kind 9734) sent to an LNURL-pay callback, and the
 * zap receipt (kind 9735) the bridge signs once the invoice it asked for is paid.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import type { Event } from 'nostr-tools/pure';
import type { Msat } from '../protocol/amounts.ts';
import { bytesToHex } from '../protocol/hex.ts';
import { hasValidSignature, nostrEventSchema, signEvent } from '../protocol/nostr-event.ts';
import { fail, ok, type Result } from '../protocol/result.ts';
import { isStorable } from '../protocol/storable.ts';

export const ZAP_REQUEST_KIND = 9734;
export const ZAP_RECEIPT_KIND = 9735;

/** The largest zap request taken, as JSON text (it only travels in a URL, so it is small anyway). */
export const MAX_ZAP_REQUEST_LENGTH = 16_000;
/** The most relays a receipt is published to; a request naming more is refused. */
export const MAX_ZAP_RELAYS = 20;

const HEX32 = /^[0-9a-f]{64}$/;
/** A NIP-01 event coordinate `<kind>:<pubkey>:<d>`. */
const COORDINATE = /^(0|[1-9][0-9]{0,4}):[0-9a-f]{64}:[^\n]*$/;

export interface ZapRequest {
  /** The event as received: its SHA-256 is the invoice's description hash, and the receipt's `description`. */
  raw: string;
  event: Event;
  relays: string[];
}

/**
 * Checks a zap request as NIP-57 Appendix D asks, for a payment of `amountMsat` to
 * `recipientPubkey` (the address owner's key): valid signature, kind 9734, tags, exactly one `p`
 * naming the recipient, at most one `e` (an event id), a `relays` tag of ws(s) URLs, an `amount`
 * tag (when present) equal to the amount asked, a valid `a` coordinate (when present), and at
 * most one `P`, equal to the zap sender (the request's own pubkey, which the receipt names in
 * its `P` tag). Errors are BAD_REQUEST with the reason.
 */
export function checkZapRequest(raw: string, amountMsat: Msat, recipientPubkey: string): Result<ZapRequest> {
  if (raw.length > MAX_ZAP_REQUEST_LENGTH) return fail('BAD_REQUEST', `zap request is longer than ${MAX_ZAP_REQUEST_LENGTH} characters`);
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return fail('BAD_REQUEST', 'zap request (nostr) is not JSON');
  }
  if (!isStorable(json)) return fail('BAD_REQUEST', 'zap request holds characters that cannot be stored (NUL or an unpaired surrogate)');
  const parsed = nostrEventSchema.safeParse(json);
  if (!parsed.success) return fail('BAD_REQUEST', 'zap request (nostr) is not a Nostr event');
  const event = parsed.data;
  if (event.kind !== ZAP_REQUEST_KIND) return fail('BAD_REQUEST', `zap request must be kind ${ZAP_REQUEST_KIND}, not ${event.kind}`);
  if (!hasValidSignature(event)) return fail('BAD_REQUEST', 'zap request signature is invalid');
  if (event.tags.length === 0) return fail('BAD_REQUEST', 'zap request has no tags');
  const named = (name: string) => event.tags.filter((t) => t[0] === name);

  const p = named('p');
  if (p.length !== 1) return fail('BAD_REQUEST', `zap request must have exactly one p tag, not ${p.length}`);
  if (p[0]?.[1] !== recipientPubkey) return fail('BAD_REQUEST', "zap request's p tag is not the key of this lightning address's owner");

  const e = named('e');
  if (e.length > 1) return fail('BAD_REQUEST', 'zap request must have at most one e tag');
  if (e.length === 1 && !HEX32.test(e[0]?.[1] ?? '')) return fail('BAD_REQUEST', "zap request's e tag is not an event id");

  const a = named('a');
  if (a.length > 1) return fail('BAD_REQUEST', 'zap request must have at most one a tag');
  if (a.length === 1 && !COORDINATE.test(a[0]?.[1] ?? '')) return fail('BAD_REQUEST', "zap request's a tag is not an event coordinate (kind:pubkey:d)");

  const sender = named('P');
  if (sender.length > 1) return fail('BAD_REQUEST', 'zap request must have at most one P tag');
  if (sender.length === 1 && sender[0]?.[1] !== event.pubkey) return fail('BAD_REQUEST', "zap request's P tag is not its sender's key");

  const amounts = named('amount');
  if (amounts.length > 1) return fail('BAD_REQUEST', 'zap request must have at most one amount tag');
  if (amounts.length === 1 && amounts[0]?.[1] !== amountMsat.toString()) {
    return fail('BAD_REQUEST', `zap request's amount tag (${(amounts[0]?.[1] ?? '').slice(0, 20)}) is not the amount asked (${amountMsat} msat)`);
  }

  const relayTags = named('relays');
  if (relayTags.length !== 1) return fail('BAD_REQUEST', 'zap request must have one relays tag naming where its receipt goes');
  const relays = relayTags[0]?.slice(1) ?? [];
  if (relays.length === 0) return fail('BAD_REQUEST', "zap request's relays tag names no relay");
  if (relays.length > MAX_ZAP_RELAYS) return fail('BAD_REQUEST', `zap request names more than ${MAX_ZAP_RELAYS} relays`);
  for (const relay of relays) {
    if (!isRelayUrl(relay)) return fail('BAD_REQUEST', `zap request names a relay that is not a ws:// or wss:// URL: ${relay.slice(0, 100)}`);
  }
  return ok({ raw, event, relays: [...new Set(relays)] });
}

function isRelayUrl(value: string): boolean {
  if (value.length > 512) return false;
  try {
    const url = new URL(value);
    return (url.protocol === 'wss:' || url.protocol === 'ws:') && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

/** The description hash of a zap invoice: SHA-256 of the zap request exactly as received (UTF-8). */
export function zapDescriptionHash(raw: string): string {
  return bytesToHex(sha256(new TextEncoder().encode(raw)));
}

export interface SettledZap {
  /** The zap request as received. */
  raw: string;
  /** The invoice (BOLT 11) the request was answered with. */
  invoice: string;
  preimage: string;
  /** Unix seconds: the receipt's created_at, so building it again gives the same event. */
  settledAt: number;
}

/**
 * The zap receipt (NIP-57 Appendix E), signed with `secretKey` (the key named `nostrPubkey` in
 * the pay request): the request's `p`, `e`, `a` and `k` tags, `P` = the sender, the invoice,
 * the request as `description`, and the preimage; empty content; created at settlement time.
 */
export function buildZapReceipt(zap: SettledZap, secretKey: Uint8Array): Event {
  // Checked when it came in (checkZapRequest); parsed again rather than trusted from storage.
  const request = nostrEventSchema.parse(JSON.parse(zap.raw));
  const copied = request.tags.filter((t) => (t[0] === 'p' || t[0] === 'e' || t[0] === 'a' || t[0] === 'k') && typeof t[1] === 'string').map((t) => [t[0] as string, t[1] as string]);
  const tags = [...copied, ['P', request.pubkey], ['bolt11', zap.invoice], ['description', zap.raw], ['preimage', zap.preimage]];
  return signEvent({ kind: ZAP_RECEIPT_KIND, created_at: zap.settledAt, tags, content: '' }, secretKey);
}
